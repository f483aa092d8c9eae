"""Energy counters (total_increasing, kWh): per zone, site solar and site consumption."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
import math

from homeassistant.util import dt as dt_util

# Energy is integrated only across gaps shorter than this; a longer gap is unknown, not zero.
MAX_INTEGRATION_GAP_S = 600.0


def zone_key(zone_id: str) -> str:
    """The counter of a zone's delivered energy."""
    return f"zone:{zone_id}"


SITE_SOLAR = "site:solar"
SITE_CONSUMPTION = "site:consumption"
# The battery takes what solar gives beyond the load and gives what the load takes beyond solar
# (the boards measure no battery current; conversion losses are not modelled).
BATTERY_CHARGE = "battery:charge"
BATTERY_DISCHARGE = "battery:discharge"


def trapezoid_kwh(previous_w: float, current_w: float, dt_s: float) -> float:
    """Energy between two power samples `dt_s` apart; 0 across a gap too long to trust."""
    if not 0 < dt_s <= MAX_INTEGRATION_GAP_S:
        return 0.0
    return (previous_w + current_w) / 2 * dt_s / 3_600_000


class EnergyCounters:
    """The persisted counters; `on_change` is told after every addition (to save soon)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        """Empty counters until `restore`."""
        self.kwh: dict[str, float] = {}
        self._on_change = on_change
        self._day_base: dict[str, tuple[date, float]] = {}
        self._last_site: tuple[datetime, float, float] | None = None  # (at, solar W, load W)

    def restore(self, saved: dict[str, float]) -> None:
        """The counters as last saved (non-finite values dropped)."""
        self.kwh = {k: float(v) for k, v in saved.items() if math.isfinite(v)}

    def add(self, key: str, kwh: float) -> None:
        """Add to a total_increasing counter."""
        if kwh > 0 and math.isfinite(kwh):
            self.kwh[key] = self.kwh.get(key, 0.0) + kwh
            self._on_change()

    def total(self, key: str) -> float:
        """A counter's value (0 before its first energy)."""
        return self.kwh.get(key, 0.0)

    def integrate_site(self, now: datetime, solar_w: float | None, load_w: float | None) -> None:
        """Integrate site solar and consumption since the last call (unknown power: a gap)."""
        if solar_w is None or load_w is None:
            self._last_site = None
            return
        if self._last_site is not None:
            at, prev_solar, prev_load = self._last_site
            dt_s = (now - at).total_seconds()
            self.add(SITE_SOLAR, trapezoid_kwh(prev_solar, solar_w, dt_s))
            self.add(SITE_CONSUMPTION, trapezoid_kwh(prev_load, load_w, dt_s))
            prev_net, net = prev_solar - prev_load, solar_w - load_w
            self.add(BATTERY_CHARGE, trapezoid_kwh(max(prev_net, 0.0), max(net, 0.0), dt_s))
            self.add(BATTERY_DISCHARGE, trapezoid_kwh(max(-prev_net, 0.0), max(-net, 0.0), dt_s))
        self._last_site = (now, solar_w, load_w)

    def today_wh(self, zone_id: str, now: datetime) -> float:
        """A zone's energy since the first look today (local day)."""
        today = dt_util.as_local(now).date()
        total = self.total(zone_key(zone_id))
        base = self._day_base.get(zone_id)
        if base is None or base[0] != today:
            self._day_base[zone_id] = (today, total)
            return 0.0
        return (total - base[1]) * 1000.0
