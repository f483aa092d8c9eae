"""The one persistence forecast the planner gets: PV and each zone's draw from what was measured.

Home Assistant (`planning.history.SlotHistory`) and the closed-loop simulator (`simulate.py`)
both call it, so the benchmark's persistence runs plan on the forecast the integration plans on.
Seasonal persistence: each slot ahead is the value measured at the same time of day on the most
recent earlier day that has it. Where no day has it: PV is a clear-sky day scaled to the array's
peak seen so far (`pv_peak_prior_w` until the sun was seen well up), a zone draws its average
draw while on so far (its rating until it was seen on).

`ml/` has its own seasonal persistence (the mean over the past week, the baseline its demand
models are trained against and back-tested on); it forecasts for the learning entities, and its
trained model replaces this one's demand zone by zone in Home Assistant when it beats it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from .model import PriorityClass, Zone
from .sun import sine_of_elevation_s

# How far back the forecast looks (Home Assistant keeps this much; the simulator shows this much).
HISTORY_DAYS = 2
# The array's peak is judged only in slots where the clear-sky shape is at least this.
PEAK_MIN_SHAPE = 0.3
# The job tier's low PV forecast: the forecast times how much of the forecast PV actually came
# over the last SPREAD_WINDOW_H hours (at most 1), times SPREAD_MARGIN; before there is
# SPREAD_MIN_SEEN_WH of forecast PV to judge by, times EndReserve.pv_share.
SPREAD_WINDOW_H = 3.0
SPREAD_MARGIN = 0.9
SPREAD_MIN_SEEN_WH = 50.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Observed:
    """What was measured: one mean per slot from `start`, oldest first (NaN: nothing measured)."""

    start: datetime
    slot_minutes: int
    pv_w: Sequence[float]
    # Each zone's mean draw while its relay was on; NaN where it was off (or not heard).
    zone_on_w: Mapping[str, Sequence[float]] = field(default_factory=dict)

    @property
    def slots_per_day(self) -> int:
        """Slots in 24 h."""
        return 24 * 60 // self.slot_minutes

    def index_of(self, slot_start: datetime) -> int:
        """The index the slot starting at `slot_start` has (or would have) in these series."""
        return round((slot_start - self.start) / timedelta(minutes=self.slot_minutes))

    def seconds(self, first: int, count: int) -> np.ndarray:
        """The start of slots first..first+count-1 in seconds since the epoch."""
        return self.start.timestamp() + 60.0 * self.slot_minutes * np.arange(first, first + count)


def slot_start(now: datetime, slot_minutes: int) -> datetime:
    """The start of the slot holding `now` (slots are aligned to the hour)."""
    return now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % slot_minutes)


def _at(series: np.ndarray, index: np.ndarray) -> np.ndarray:
    """series[index], NaN where the index falls outside it."""
    inside = (index >= 0) & (index < len(series))
    out = np.full(index.shape, np.nan)
    out[inside] = series[index[inside]]
    return out


def same_slot_before(
    values: Sequence[float], now_index: int, horizon_slots: int, slots_per_day: int
) -> np.ndarray:
    """Seasonal persistence: for slots now_index.. ahead, the value at the same time of day on
    the most recent day before the slot now that has one (NaN where no day has it)."""
    series = np.asarray(values, dtype=float)[: max(now_index, 0)]  # the slot now is not known
    wanted = np.arange(now_index, now_index + horizon_slots)
    out = np.full(horizon_slots, np.nan)
    days_back = 1
    while np.isnan(out).any():
        src = wanted - days_back * slots_per_day
        if (src < 0).all():
            break
        todo = np.isnan(out)
        out[todo] = _at(series, src[todo])
        days_back += 1
    return out


def pv_peak_w(observed: Observed, latitude_deg: float, longitude_deg: float) -> float | None:
    """The array's clear-sky peak as seen so far (None until the sun was well up)."""
    pv = np.asarray(observed.pv_w, dtype=float)
    shape = sine_of_elevation_s(observed.seconds(0, len(pv)), latitude_deg, longitude_deg)
    seen = np.isfinite(pv) & (shape >= PEAK_MIN_SHAPE)
    return float(np.max(pv[seen] / shape[seen])) if seen.any() else None


def mean_on_w(observed: Observed, zone_id: str, *, default: float) -> float:
    """The zone's average draw while its relay was on, over the slots measured (else default)."""
    row = np.asarray(observed.zone_on_w.get(zone_id, ()), dtype=float)
    seen = row[np.isfinite(row)]
    return float(seen.mean()) if seen.size else default


def persistence_forecast(
    observed: Observed,
    *,
    first: datetime,
    horizon_slots: int,
    zones: Sequence[Zone],
    latitude_deg: float,
    longitude_deg: float,
    pv_peak_prior_w: float,
) -> tuple[tuple[float, ...], dict[str, tuple[float, ...]]]:
    """PV and each non-deferrable zone's draw while on, per slot from the slot starting at
    `first` (deferrable zones draw what their jobs need; the planner ignores their rows)."""
    per_day = observed.slots_per_day
    now_index = observed.index_of(first)
    pv = same_slot_before(observed.pv_w, now_index, horizon_slots, per_day)
    missing = np.isnan(pv)
    if missing.any():
        # Until the array has been seen in good sun, assume one about the size of the inverter.
        peak = pv_peak_w(observed, latitude_deg, longitude_deg) or pv_peak_prior_w
        shape = sine_of_elevation_s(
            observed.seconds(now_index, horizon_slots), latitude_deg, longitude_deg
        )
        pv = np.where(missing, peak * np.maximum(shape, 0.0), pv)
    demand: dict[str, tuple[float, ...]] = {}
    for zone in zones:
        if zone.priority is PriorityClass.DEFERRABLE:
            continue
        row = same_slot_before(
            observed.zone_on_w.get(zone.zone_id, ()), now_index, horizon_slots, per_day
        )
        if np.isnan(row).any():
            level = mean_on_w(observed, zone.zone_id, default=zone.rated_w)
            row = np.where(np.isnan(row), level, row)
        demand[zone.zone_id] = tuple(float(w) for w in row)
    return tuple(max(0.0, float(p)) for p in pv), demand


def pv_low_share(observed: Observed, *, first: datetime, pv_share: float) -> float:
    """The share of the PV forecast the lower tiers are planned against (`PlanInput.pv_low_w`):
    how much of what persistence said came over the last hours before the slot `first`
    (measured / the same slots a day earlier, at most 1) x SPREAD_MARGIN; `pv_share` while too
    little PV could be judged."""
    pv = np.asarray(observed.pv_w, dtype=float)
    per_day = observed.slots_per_day
    now_index = observed.index_of(first)
    window = round(SPREAD_WINDOW_H * 60 / observed.slot_minutes)
    seen_idx = np.arange(max(now_index - window, per_day), max(now_index, per_day))
    seen, said = _at(pv, seen_idx), _at(pv, seen_idx - per_day)
    both = np.isfinite(seen) & np.isfinite(said)
    said_sum = float(said[both].sum())
    if said_sum * observed.slot_minutes / 60.0 < SPREAD_MIN_SEEN_WH:
        return pv_share
    return min(1.0, float(seen[both].sum()) / said_sum) * SPREAD_MARGIN
