"""The site's measured history as plain arrays, and resampling it to a regular slot grid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

SECONDS_PER_DAY = 86_400.0


def _as_float_array(name: str, values: object, n: int) -> np.ndarray:
    """Return `values` as a 1-D float array of length n, or raise ValueError naming it."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"history.{name} must be 1-D with {n} values, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, kw_only=True)
class History:
    """Measurements at `timestamps` (epoch seconds, UTC, increasing); NaN means missing.

    Relay series hold 1.0 (on) / 0.0 (off), or the fraction of a slot on after `resample`.
    """

    timestamps: np.ndarray
    site_load_w: np.ndarray
    pv_w: np.ndarray
    soc_pct: np.ndarray
    voltage_v: np.ndarray
    zone_power_w: Mapping[str, np.ndarray] = field(default_factory=dict)
    zone_relay_on: Mapping[str, np.ndarray] = field(default_factory=dict)
    temperature_c: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Coerce to float arrays and refuse mismatched lengths or unordered timestamps."""
        ts = np.asarray(self.timestamps, dtype=float)
        if ts.ndim != 1:
            raise ValueError(f"history.timestamps must be 1-D, got shape {ts.shape}")
        if not np.all(np.isfinite(ts)):
            raise ValueError("history.timestamps must all be finite epoch seconds")
        if ts.size > 1 and np.any(np.diff(ts) <= 0):
            raise ValueError("history.timestamps must be strictly increasing")
        n = ts.shape[0]
        object.__setattr__(self, "timestamps", ts)
        for name in ("site_load_w", "pv_w", "soc_pct", "voltage_v"):
            object.__setattr__(self, name, _as_float_array(name, getattr(self, name), n))
        if self.temperature_c is not None:
            object.__setattr__(
                self, "temperature_c", _as_float_array("temperature_c", self.temperature_c, n)
            )
        power = {
            str(z): _as_float_array(f"zone_power_w[{z}]", v, n)
            for z, v in self.zone_power_w.items()
        }
        relay = {
            str(z): _as_float_array(f"zone_relay_on[{z}]", v, n)
            for z, v in self.zone_relay_on.items()
        }
        object.__setattr__(self, "zone_power_w", power)
        object.__setattr__(self, "zone_relay_on", relay)

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(self.timestamps.shape[0])

    @property
    def zones(self) -> tuple[str, ...]:
        """Zone ids with a power or relay series, sorted."""
        return tuple(sorted(set(self.zone_power_w) | set(self.zone_relay_on)))

    def span_s(self) -> float:
        """Seconds between the first and the last sample (0 for fewer than two)."""
        return float(self.timestamps[-1] - self.timestamps[0]) if self.size > 1 else 0.0

    def before(self, end_s: float) -> History:
        """The samples strictly before `end_s` (so data from the future never leaks in)."""
        return self.select(self.timestamps < end_s)

    def select(self, mask: np.ndarray) -> History:
        """The samples where the boolean `mask` holds."""
        return replace(
            self,
            timestamps=self.timestamps[mask],
            site_load_w=self.site_load_w[mask],
            pv_w=self.pv_w[mask],
            soc_pct=self.soc_pct[mask],
            voltage_v=self.voltage_v[mask],
            zone_power_w={z: v[mask] for z, v in self.zone_power_w.items()},
            zone_relay_on={z: v[mask] for z, v in self.zone_relay_on.items()},
            temperature_c=None if self.temperature_c is None else self.temperature_c[mask],
        )


def empty_history(zones: tuple[str, ...] = ()) -> History:
    """A history with no samples (for a site that has not recorded anything yet)."""
    e = np.empty(0)
    return History(
        timestamps=e,
        site_load_w=e,
        pv_w=e,
        soc_pct=e,
        voltage_v=e,
        zone_power_w={z: e for z in zones},
        zone_relay_on={z: e for z in zones},
    )


def slot_grid(start_s: float, end_s: float, slot_s: float) -> np.ndarray:
    """Slot starts aligned to multiples of `slot_s` covering [start_s, end_s]."""
    first = np.floor(start_s / slot_s) * slot_s
    last = np.floor(end_s / slot_s) * slot_s
    return first + slot_s * np.arange(round((last - first) / slot_s) + 1)


def _bin_mean(values: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Mean of the finite values in each bin; NaN for a bin with none."""
    ok = np.isfinite(values)
    total = np.bincount(bins[ok], weights=values[ok], minlength=n_bins)
    count = np.bincount(bins[ok], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def resample(history: History, slot_minutes: int) -> History:
    """Slot means on a regular grid (slot starts as timestamps); empty slots stay NaN.

    Relay series become the fraction of samples with the relay on.
    """
    if slot_minutes <= 0:
        raise ValueError(f"slot_minutes must be positive, got {slot_minutes}")
    if history.size == 0:
        return history
    slot_s = slot_minutes * 60.0
    grid = slot_grid(history.timestamps[0], history.timestamps[-1], slot_s)
    bins = np.floor((history.timestamps - grid[0]) / slot_s).astype(np.int64)
    n = grid.shape[0]

    def mean(v: np.ndarray) -> np.ndarray:
        return _bin_mean(v, bins, n)

    return History(
        timestamps=grid,
        site_load_w=mean(history.site_load_w),
        pv_w=mean(history.pv_w),
        soc_pct=mean(history.soc_pct),
        voltage_v=mean(history.voltage_v),
        zone_power_w={z: mean(v) for z, v in history.zone_power_w.items()},
        zone_relay_on={z: mean(v) for z, v in history.zone_relay_on.items()},
        temperature_c=None if history.temperature_c is None else mean(history.temperature_c),
    )
