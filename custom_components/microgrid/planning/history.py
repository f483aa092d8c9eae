"""What the site measured, per 5-minute slot: the history the persistence forecast reads.

The forecast itself is pure and shared with the simulator (`optimizer.forecast`); this module
only averages the readings into slots and keeps two days of them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
import math

from ..optimizer.forecast import (
    HISTORY_DAYS,
    Observed,
    mean_on_w,
    persistence_forecast,
    slot_start,
)
from ..optimizer.model import Zone

SLOT_MINUTES = 5
HISTORY_SLOTS = HISTORY_DAYS * 24 * 60 // SLOT_MINUTES  # what the persistence forecast reads


@dataclass(kw_only=True)
class _SlotAverage:
    """A running average of one 5-minute slot."""

    slot_start: datetime
    solar_sum: float = 0.0
    zone_sum: dict[str, float] = field(default_factory=dict)  # power while the relay was on
    zone_count: dict[str, int] = field(default_factory=dict)
    count: int = 0


class SlotHistory:
    """5-minute averages of solar and zone power: the persistence forecast until ML takes over."""

    def __init__(self) -> None:
        """Keep two days."""
        self._slots: deque[_SlotAverage] = deque(maxlen=HISTORY_SLOTS)

    @staticmethod
    def slot_of(now: datetime) -> datetime:
        """The start of the slot holding `now`."""
        return slot_start(now, SLOT_MINUTES)

    def add(self, now: datetime, solar_w: float | None, zone_w: dict[str, float]) -> None:
        """Add one sample to the current slot (`zone_w`: zones whose relay is on)."""
        start = self.slot_of(now)
        # The clock stepped back (NTP, a restored VM): slots now in the future are dropped,
        # so the series stays in time order.
        while self._slots and self._slots[-1].slot_start > start:
            self._slots.pop()
        if not self._slots or self._slots[-1].slot_start != start:
            self._slots.append(_SlotAverage(slot_start=start))
        slot = self._slots[-1]
        slot.count += 1
        slot.solar_sum += solar_w if solar_w is not None and math.isfinite(solar_w) else 0.0
        for zone_id, watts in zone_w.items():
            slot.zone_sum[zone_id] = slot.zone_sum.get(zone_id, 0.0) + watts
            slot.zone_count[zone_id] = slot.zone_count.get(zone_id, 0) + 1

    def observed(self, now: datetime) -> Observed:
        """The slots kept as series from the oldest to the slot holding `now` (NaN: no sample;
        a zone's draw is NaN where its relay was never seen on in the slot)."""
        last = self.slot_of(now)
        slots = sorted(
            (s for s in self._slots if s.count and s.slot_start <= last), key=lambda s: s.slot_start
        )
        start = slots[0].slot_start if slots else last
        shape = Observed(start=start, slot_minutes=SLOT_MINUTES, pv_w=())
        length = max(shape.index_of(last) + 1, 0)
        pv = [math.nan] * length
        zones: dict[str, list[float]] = {}
        for slot in slots:
            index = shape.index_of(slot.slot_start)
            pv[index] = slot.solar_sum / slot.count
            for zone_id, samples in slot.zone_count.items():
                row = zones.setdefault(zone_id, [math.nan] * length)
                row[index] = slot.zone_sum[zone_id] / samples
        return Observed(start=start, slot_minutes=SLOT_MINUTES, pv_w=pv, zone_on_w=zones)

    def _observed_so_far(self) -> Observed | None:
        """The slots kept, up to the latest with a sample (None: none yet)."""
        latest = next((s for s in reversed(self._slots) if s.count), None)
        return None if latest is None else self.observed(latest.slot_start)

    def mean_on_w(self, zone_id: str, *, default: float) -> float:
        """The zone's average draw while its relay was on, over the slots kept."""
        observed = self._observed_so_far()
        return default if observed is None else mean_on_w(observed, zone_id, default=default)

    def forecast(
        self,
        now: datetime,
        slots: int,
        *,
        zones: tuple[Zone, ...],
        latitude: float,
        longitude: float,
        pv_peak_prior_w: float,
    ) -> tuple[tuple[float, ...], dict[str, tuple[float, ...]]]:
        """PV and each non-deferrable zone's draw while on, per slot from the slot holding
        `now` (`optimizer.forecast.persistence_forecast`)."""
        return persistence_forecast(
            self.observed(now),
            first=self.slot_of(now),
            horizon_slots=slots,
            zones=zones,
            latitude_deg=latitude,
            longitude_deg=longitude,
            pv_peak_prior_w=pv_peak_prior_w,
        )
