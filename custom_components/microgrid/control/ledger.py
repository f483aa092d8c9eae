"""What actually happened each local day: energy served and (estimated) unserved per zone,
the lowest state of charge, time in each band. Fed by the coordinator's decisions; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
import math
from typing import Any, Final

from ..optimizer.model import Band, PriorityClass
from .energy import MAX_INTEGRATION_GAP_S

# A zone decided off for one of these reasons wanted power and did not get it. Off by its own
# household's request or outside its schedule is no shortfall; a deferrable zone waiting for
# its planned run is counted by the plan's jobs, not here.
SHED_REASONS: Final = frozenset(
    {
        "admin_override",
        "deep_discharge_cutoff",
        "battery_emergency",
        "battery_conservation",
        "power_budget",
        "overload_shed",
        "priority_shed",
        "power_limit",
        "power_limit_unknown",
        "min_off_time",
        "dispatch_error",
        "keep_state",
    }
)
REPORTS_KEPT: Final = 14


@dataclass(frozen=True, kw_only=True, slots=True)
class ZoneSample:
    """One zone at one decision."""

    priority: PriorityClass
    household: str | None
    relay_on: bool | None  # confirmed by its board; None: unknown (offline)
    decided_on: bool | None
    reason: str | None
    expected_w: float  # what it draws when on (learned, else its rating)


@dataclass(frozen=True, kw_only=True, slots=True)
class ZoneDay:
    """One zone over one day."""

    priority: PriorityClass
    household: str | None
    served_wh: float = 0.0
    unserved_wh: float = 0.0  # estimated: its usual draw while shed
    on_h: float = 0.0
    shed_h: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class DayReport:
    """One local day of the site."""

    day: date
    start: datetime
    end: datetime
    zones: dict[str, ZoneDay] = field(default_factory=dict)
    min_soc_pct: float | None = None
    band_h: dict[str, float] = field(default_factory=dict)
    observed_h: float = 0.0

    def by_class(self) -> dict[str, dict[str, float]]:
        """Served and unserved Wh per priority class."""
        return _group(self.zones, lambda z: z.priority.value)

    def by_household(self) -> dict[str, dict[str, float]]:
        """Served and unserved Wh per household (zones without one are left out)."""
        return _group(
            {k: z for k, z in self.zones.items() if z.household}, lambda z: str(z.household)
        )

    def for_household(self, household: str) -> DayReport:
        """The part of the report a household may see: its own zones."""
        return replace(
            self, zones={k: z for k, z in self.zones.items() if z.household == household}
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON form (action responses, storage, notifications)."""
        return {
            "day": self.day.isoformat(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "observed_h": round(self.observed_h, 3),
            "min_soc_pct": None if self.min_soc_pct is None else round(self.min_soc_pct, 1),
            "band_h": {k: round(v, 3) for k, v in self.band_h.items()},
            "zones": {
                k: {
                    "priority": z.priority.value,
                    "household": z.household,
                    "served_wh": round(z.served_wh, 1),
                    "unserved_wh": round(z.unserved_wh, 1),
                    "on_h": round(z.on_h, 3),
                    "shed_h": round(z.shed_h, 3),
                }
                for k, z in sorted(self.zones.items())
            },
            "by_class": self.by_class(),
            "by_household": self.by_household(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DayReport:
        """Back from storage (raises KeyError/TypeError/ValueError when malformed)."""
        return cls(
            day=date.fromisoformat(raw["day"]),
            start=datetime.fromisoformat(raw["start"]),
            end=datetime.fromisoformat(raw["end"]),
            observed_h=float(raw["observed_h"]),
            min_soc_pct=None if raw["min_soc_pct"] is None else float(raw["min_soc_pct"]),
            band_h={str(k): float(v) for k, v in raw["band_h"].items()},
            zones={
                str(k): ZoneDay(
                    priority=PriorityClass(z["priority"]),
                    household=z.get("household"),
                    served_wh=float(z["served_wh"]),
                    unserved_wh=float(z["unserved_wh"]),
                    on_h=float(z["on_h"]),
                    shed_h=float(z["shed_h"]),
                )
                for k, z in raw["zones"].items()
            },
        )


def _group(zones: Mapping[str, ZoneDay], key: Any) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for zone in zones.values():
        slot = out.setdefault(key(zone), {"served_wh": 0.0, "unserved_wh": 0.0})
        slot["served_wh"] = round(slot["served_wh"] + zone.served_wh, 1)
        slot["unserved_wh"] = round(slot["unserved_wh"] + zone.unserved_wh, 1)
    return out


class DayLedger:
    """Accumulates today; hands back yesterday's report when the local day turns."""

    def __init__(self, tz: tzinfo) -> None:
        """Nothing observed yet."""
        self.tz = tz
        self.today: DayReport | None = None
        self.reports: list[DayReport] = []  # closed days, oldest first
        self._last: tuple[datetime, float | None, Band | None, dict[str, ZoneSample]] | None = None
        self._served_base: dict[str, float] = {}  # zone -> its energy counter (Wh) at day start

    def observe(
        self,
        now: datetime,
        *,
        soc_pct: float | None,
        band: Band | None,
        zones: Mapping[str, ZoneSample],
        served_wh: Mapping[str, float],
    ) -> DayReport | None:
        """Account the time since the last observation (to the previous state, as it held
        then); `served_wh` are the zones' energy counters. Returns the day closed now, if any."""
        closed = None
        day = now.astimezone(self.tz).date()
        if self.today is not None and day != self.today.day:
            closed = self._close(now, served_wh)
        if self.today is None:
            self.today = DayReport(day=day, start=now, end=now)
            self._served_base = dict(served_wh)
        self._integrate(now)
        self.today = replace(
            self.today,
            end=now,
            zones=self._served(served_wh),
            min_soc_pct=_lower(self.today.min_soc_pct, soc_pct),
        )
        self._last = (now, soc_pct, band, dict(zones))
        return closed

    def _integrate(self, now: datetime) -> None:
        """Add the interval since the last observation, if it is short enough to trust."""
        assert self.today is not None
        if self._last is None:
            return
        at, _, band, zones = self._last
        dt_h = (now - at).total_seconds() / 3600
        if not 0 < dt_h * 3600 <= MAX_INTEGRATION_GAP_S:
            return
        band_h = dict(self.today.band_h)
        if band is not None:
            band_h[band.value] = band_h.get(band.value, 0.0) + dt_h
        days = dict(self.today.zones)
        for zone_id, sample in zones.items():
            zone = days.get(zone_id) or ZoneDay(
                priority=sample.priority, household=sample.household
            )
            shed = (
                sample.decided_on is False
                and sample.reason in SHED_REASONS
                and sample.priority is not PriorityClass.DEFERRABLE
            )
            days[zone_id] = replace(
                zone,
                on_h=zone.on_h + (dt_h if sample.relay_on else 0.0),
                shed_h=zone.shed_h + (dt_h if shed else 0.0),
                unserved_wh=zone.unserved_wh + (sample.expected_w * dt_h if shed else 0.0),
            )
        self.today = replace(
            self.today, zones=days, band_h=band_h, observed_h=self.today.observed_h + dt_h
        )

    def _served(self, served_wh: Mapping[str, float]) -> dict[str, ZoneDay]:
        """Today's zones with their served energy from the counters."""
        assert self.today is not None
        out = dict(self.today.zones)
        for zone_id, zone in out.items():
            delta = served_wh.get(zone_id, 0.0) - self._served_base.get(zone_id, 0.0)
            out[zone_id] = replace(zone, served_wh=max(0.0, delta))
        return out

    def _close(self, now: datetime, served_wh: Mapping[str, float]) -> DayReport:
        """Finish today at `now` (the interval up to the turn counts to it)."""
        self._integrate(now)
        assert self.today is not None
        done = replace(self.today, end=now, zones=self._served(served_wh))
        self.reports = [*self.reports, done][-REPORTS_KEPT:]
        self.today = None
        self._last = None
        return done

    def state(self) -> dict[str, Any]:
        """What survives a restart: today so far, its served-energy base, the closed days."""
        return {
            "today": self.today.as_dict() if self.today else None,
            "served_base": self._served_base,
            "reports": [r.as_dict() for r in self.reports],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Back from `state()`; a malformed part is dropped (the rest is kept)."""
        try:
            self.reports = [DayReport.from_dict(r) for r in data.get("reports", [])][-REPORTS_KEPT:]
        except (KeyError, TypeError, ValueError):
            self.reports = []
        try:
            today = data.get("today")
            self.today = DayReport.from_dict(today) if today else None
            self._served_base = {str(k): float(v) for k, v in data.get("served_base", {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            self.today, self._served_base = None, {}

    def report(self, day: date | None = None) -> DayReport | None:
        """A closed day's report (the latest by default), or today's so far when `day` is today."""
        if self.today is not None and day == self.today.day:
            return self.today
        if day is None:
            return self.reports[-1] if self.reports else None
        return next((r for r in self.reports if r.day == day), None)


def _lower(current: float | None, value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return current
    return value if current is None else min(current, value)
