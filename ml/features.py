"""Feature engineering (numpy only): calendar terms, lags, rolling means, relay and weather."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .history import SECONDS_PER_DAY

DAYS_PER_WEEK = 7
PROFILE_DAYS = 7  # the same-slot profile averages this many past days
# The anchor profile also takes the same weekday this many weeks back (when the history has it).
ANCHOR_EXTRA_WEEKS = (2, 3)

DEMAND_FEATURE_NAMES: tuple[str, ...] = (
    "hour_sin",
    "hour_cos",
    "hour2_sin",
    "hour2_cos",
    "weekday_sin",
    "weekday_cos",
    "weekend",
    "steps_ahead_h",
    "lag_day_w",
    "lag_week_w",
    "profile_day_w",
    "profile_weekday_w",
    "profile_3day_w",
    "profile_day_median_w",
    "lag_day_smooth_w",
    "last_w",
    "mean_1h_w",
    "mean_3h_w",
    "mean_6h_w",
    "mean_24h_w",
    "mean_7d_w",
    "pv_mean_24h_w",
    "pv_lag_day_w",
    "relay_on_fraction",
    "temperature_c",
    "temperature_24h_c",
    "temperature_vs_7d_c",
    "profile_q25_w",
    "profile_q75_w",
    "profile_anchor_w",
)


# Columns measured in the series' own watts (scaled together when the model normalises).
LOAD_COLUMNS: tuple[int, ...] = tuple(
    i for i, n in enumerate(DEMAND_FEATURE_NAMES) if n.endswith("_w") and not n.startswith("pv_")
)
LEVEL_COLUMN = DEMAND_FEATURE_NAMES.index("mean_7d_w")
ANCHOR_COLUMN = DEMAND_FEATURE_NAMES.index("profile_anchor_w")
DAY_MEAN_COLUMN = DEMAND_FEATURE_NAMES.index("mean_24h_w")
TEMPERATURE_COLUMNS: tuple[int, ...] = tuple(
    i for i, n in enumerate(DEMAND_FEATURE_NAMES) if n.startswith("temperature")
)


def load_scale(x: np.ndarray) -> np.ndarray:
    """Per-row level of the series (its last week's mean, else last day's), at least 1 W."""
    week = x[:, LEVEL_COLUMN]
    day = x[:, DAY_MEAN_COLUMN]
    level = np.where(np.isfinite(week), week, day)
    return np.maximum(np.where(np.isfinite(level), level, 1.0), 1.0)


def anchor_profile(x: np.ndarray) -> np.ndarray:
    """Per-row seasonal anchor (robust profile, else the last day's mean, else 0) in x's units."""
    anchor = x[:, ANCHOR_COLUMN]
    day = x[:, DAY_MEAN_COLUMN]
    return np.where(np.isfinite(anchor), anchor, np.where(np.isfinite(day), day, 0.0))


def normalise_load(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with every load column divided by the row's level, and that level."""
    scale = load_scale(x)
    out = x.copy()
    cols = list(LOAD_COLUMNS)
    out[:, cols] = x[:, cols] / scale[:, None]
    return out, scale


def calendar_features(slot_start_s: np.ndarray, *, utc_offset_s: float = 0.0) -> np.ndarray:
    """Hour of day (two harmonics) and weekday as cyclic terms, plus a weekend flag."""
    t = np.asarray(slot_start_s, dtype=float) + utc_offset_s
    day_frac = np.mod(t, SECONDS_PER_DAY) / SECONDS_PER_DAY
    # Epoch day 0 (1970-01-01) was a Thursday: +3 makes Monday 0.
    weekday = np.mod(np.floor(t / SECONDS_PER_DAY) + 3, DAYS_PER_WEEK)
    a = 2 * np.pi * day_frac
    w = 2 * np.pi * weekday / DAYS_PER_WEEK
    return np.column_stack(
        [
            np.sin(a),
            np.cos(a),
            np.sin(2 * a),
            np.cos(2 * a),
            np.sin(w),
            np.cos(w),
            (weekday >= 5).astype(float),
        ]
    )


def lag(series: np.ndarray, k: int) -> np.ndarray:
    """`series` delayed by k slots (NaN where no earlier value exists)."""
    out = np.full_like(np.asarray(series, dtype=float), np.nan)
    if k < out.shape[0]:
        out[k:] = series[: out.shape[0] - k]
    return out


def trailing_mean(series: np.ndarray, window: int) -> np.ndarray:
    """Mean of the finite values among the last `window` slots, inclusive (NaN if none)."""
    s = np.asarray(series, dtype=float)
    ok = np.isfinite(s)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, s, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, s.shape[0] + 1)
    lo = np.maximum(idx - window, 0)
    total = csum[idx] - csum[lo]
    count = ccnt[idx] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def take(series: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """series[idx], NaN where idx falls outside the series."""
    ok = (idx >= 0) & (idx < series.shape[0])
    out = np.full(idx.shape, np.nan)
    out[ok] = series[idx[ok]]
    return out


def nanmean_rows(m: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN (NaN for an all-NaN row) without a warning."""
    ok = np.isfinite(m)
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(ok, m, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)


def nanquantile_rows(m: np.ndarray, q: float) -> np.ndarray:
    """Row quantiles ignoring NaN (linear interpolation, NaN for an all-NaN row), vectorised:
    `np.nanquantile(m, q, axis=1)` without its all-NaN warning (not thread-safe to silence)."""
    srt = np.sort(m, axis=1)  # NaN sorts last
    count = (~np.isnan(m)).sum(axis=1)
    pos = q * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    rows = np.arange(m.shape[0])
    frac = pos - lo
    out = srt[rows, lo] * (1 - frac) + srt[rows, hi] * frac
    return np.where(count > 0, out, np.nan)


@dataclass(frozen=True, kw_only=True)
class SeriesContext:
    """One series on a regular slot grid, with its exogenous inputs on the same grid."""

    grid_start_s: float
    slot_s: float
    load_w: np.ndarray
    pv_w: np.ndarray
    relay_on_fraction: np.ndarray
    temperature_c: np.ndarray | None = None
    utc_offset_s: float = 0.0

    @property
    def slots_per_day(self) -> int:
        """Slots in one day."""
        return round(SECONDS_PER_DAY / self.slot_s)


def seasonal_index(origins: np.ndarray, steps: np.ndarray, period: int) -> np.ndarray:
    """Index of the latest same-phase slot (multiple of `period`) at or before each origin."""
    k = np.ceil(steps / period).astype(np.int64)
    return origins + steps - k * period


def _rows(origins: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(origins, steps) as integer arrays; every step at least one slot ahead."""
    origins = np.asarray(origins, dtype=np.int64)
    steps = np.asarray(steps, dtype=np.int64)
    if np.any(steps < 1):
        raise ValueError("steps ahead must be >= 1")
    return origins, steps


def _past_days(y: np.ndarray, day_idx: np.ndarray, d: int) -> np.ndarray:
    """The same slot on the PROFILE_DAYS days up to `day_idx`, one column per day."""
    return np.column_stack([take(y, day_idx - m * d) for m in range(PROFILE_DAYS)])


def demand_features(ctx: SeriesContext, origins: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """One row per (origin, step): features known at slot `origin` for slot `origin + step`.

    `origin` is the last slot with data; every lag is taken at or before it, never after.
    """
    origins, steps = _rows(origins, steps)
    y = ctx.load_w
    d = ctx.slots_per_day
    target = origins + steps
    cal = calendar_features(ctx.grid_start_s + target * ctx.slot_s, utc_offset_s=ctx.utc_offset_s)
    day_idx = seasonal_index(origins, steps, d)
    week_idx = seasonal_index(origins, steps, d * DAYS_PER_WEEK)
    past_days = _past_days(y, day_idx, d)
    profile = nanmean_rows(past_days)
    profile_median = nanquantile_rows(past_days, 0.5)
    # The anchor: a median robust to one-off days, with the same weekday of earlier weeks
    # weighing in (their slots also lie at or before the origin).
    week_back = [take(y, week_idx - (k - 1) * d * DAYS_PER_WEEK) for k in ANCHOR_EXTRA_WEEKS]
    anchor = nanquantile_rows(np.column_stack([past_days, *week_back]), 0.5)
    # Yesterday around the same slot: the neighbours may lie after the origin, so mask them.
    nbr = [np.where(day_idx + k <= origins, take(y, day_idx + k), np.nan) for k in (-1, 0, 1)]
    lag_smooth = nanmean_rows(np.column_stack(nbr))
    weekday_profile = nanmean_rows(
        np.column_stack([take(y, week_idx - m * d * DAYS_PER_WEEK) for m in range(2)])
    )
    hour_slots = max(1, round(3600.0 / ctx.slot_s))
    mean_1h = take(trailing_mean(y, hour_slots), origins)
    mean_3h = take(trailing_mean(y, 3 * hour_slots), origins)
    mean_6h = take(trailing_mean(y, 6 * hour_slots), origins)
    mean_24h = take(trailing_mean(y, d), origins)
    mean_7d = take(trailing_mean(y, DAYS_PER_WEEK * d), origins)
    pv_24h = take(trailing_mean(ctx.pv_w, d), origins)
    if ctx.temperature_c is None:
        temperature = temperature_24h = temperature_7d = np.full(origins.shape, np.nan)
    else:
        # Heating and cooling follow the weather. The anchor profile already holds the last
        # week's; what it cannot know is how today's temperature departs from that week's.
        temperature = take(ctx.temperature_c, origins)
        temperature_24h = take(trailing_mean(ctx.temperature_c, d), origins)
        temperature_7d = take(trailing_mean(ctx.temperature_c, DAYS_PER_WEEK * d), origins)
    return np.column_stack(
        [
            cal,
            steps * ctx.slot_s / 3600.0,
            take(y, day_idx),
            take(y, week_idx),
            profile,
            weekday_profile,
            nanmean_rows(past_days[:, :3]),
            profile_median,
            lag_smooth,
            take(y, origins),
            mean_1h,
            mean_3h,
            mean_6h,
            mean_24h,
            mean_7d,
            pv_24h,
            take(ctx.pv_w, day_idx),
            take(ctx.relay_on_fraction, origins),
            temperature,
            temperature_24h,
            temperature_24h - temperature_7d,
            nanquantile_rows(past_days, 0.25),
            nanquantile_rows(past_days, 0.75),
            anchor,
        ]
    )


def seasonal_persistence(ctx: SeriesContext, origins: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Mean of the same slot over up to 7 past days; else the last day's mean; else NaN (the
    `profile_day_w` and `mean_24h_w` features, without building the other ones)."""
    origins, steps = _rows(origins, steps)
    y = ctx.load_w
    d = ctx.slots_per_day
    profile = nanmean_rows(_past_days(y, seasonal_index(origins, steps, d), d))
    mean_24h = take(trailing_mean(y, d), origins)
    return np.where(np.isfinite(profile), profile, mean_24h)
