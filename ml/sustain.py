"""Battery sustain time: hours until the emergency band and until empty, with P10/P50/P90.

Energy balance over the forecast net load (load - PV, W per slot), on a battery whose effective
capacity and forecast error spread are learned from the site's own history. No scikit-learn.
A level that is not reached within the forecast horizon gives `math.inf` hours.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math

import numpy as np

from .features import SeriesContext, seasonal_index, seasonal_persistence, take
from .history import History, resample

DEFAULT_KNOTS_H: tuple[float, ...] = (0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 36, 48)
MIN_CAPACITY_ROWS = 48  # slots of SoC history needed before trusting the learned capacity factor
MIN_ENERGY_WH = 1.0  # floor of the forecast energy a relative error is measured against


@dataclass(frozen=True, kw_only=True)
class SustainCorrection:
    """What history teaches: how fast SoC really moves, and how wrong energy forecasts are.

    `soc_rate_factor` is the realised SoC change per change the nameplate balance predicts
    (> 1: the battery holds less than its nameplate). `load_err_q*` and `pv_err_q*` are
    quantiles of the realised minus forecast cumulative load (PV) energy, as a fraction of the
    forecast cumulative load (PV) energy, `knots_h` hours ahead: relative, so a spread learned
    in a light season still fits a heavy one.
    """

    soc_rate_factor: float = 1.0
    knots_h: tuple[float, ...] = ()
    load_err_q10: tuple[float, ...] = ()
    load_err_q50: tuple[float, ...] = ()
    load_err_q90: tuple[float, ...] = ()
    pv_err_q10: tuple[float, ...] = ()
    pv_err_q50: tuple[float, ...] = ()
    pv_err_q90: tuple[float, ...] = ()
    rows: int = 0

    def spread_wh(
        self, hours: np.ndarray, load_wh: np.ndarray, pv_wh: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Extra and spared drain (Wh, both >= 0) around the median at `hours` ahead.

        `load_wh` and `pv_wh` are the forecast cumulative energies at `hours`; load and PV
        errors are taken as independent, so their spreads add in quadrature.
        """
        if not self.knots_h:
            z = np.zeros_like(hours)
            return z, z

        def at(a: tuple[float, ...], b: tuple[float, ...]) -> np.ndarray:
            return np.interp(hours, self.knots_h, np.subtract(a, b))

        load_up = load_wh * at(self.load_err_q90, self.load_err_q50)
        load_down = load_wh * at(self.load_err_q50, self.load_err_q10)
        pv_down = pv_wh * at(self.pv_err_q50, self.pv_err_q10)
        pv_up = pv_wh * at(self.pv_err_q90, self.pv_err_q50)
        return np.hypot(load_up, pv_down), np.hypot(load_down, pv_up)


# The P10/P90 spread a site gets until its own history has taught one: the relative errors of the
# seasonal-persistence load and PV forecasts on one measured household (bench/data, EMHASS) with
# TMY3 PV, fitted on its first 183 days (the benchmark scores the last 56). Regenerate with
# `python -m bench.ml --print-sustain-prior`. One household swings more than a village's summed
# feeders, so the band errs wide: P10 early, P90 late.
PRIOR_SPREAD = SustainCorrection(
    knots_h=DEFAULT_KNOTS_H,
    load_err_q10=(
        -0.682,
        -0.637,
        -0.591,
        -0.563,
        -0.547,
        -0.503,
        -0.477,
        -0.448,
        -0.409,
        -0.342,
        -0.299,
        -0.286,
    ),
    load_err_q50=(
        -0.145,
        -0.124,
        -0.105,
        -0.085,
        -0.07,
        -0.052,
        -0.044,
        -0.023,
        -0.015,
        -0.006,
        0.014,
        0.022,
    ),
    load_err_q90=(
        1.13,
        0.998,
        0.864,
        0.796,
        0.738,
        0.669,
        0.647,
        0.584,
        0.532,
        0.489,
        0.435,
        0.424,
    ),
    pv_err_q10=(
        -0.588,
        -0.58,
        -0.561,
        -0.55,
        -0.55,
        -0.538,
        -0.534,
        -0.526,
        -0.516,
        -0.463,
        -0.434,
        -0.42,
    ),
    pv_err_q50=(
        -0.013,
        -0.012,
        -0.015,
        -0.015,
        -0.015,
        -0.016,
        -0.015,
        -0.015,
        -0.015,
        -0.014,
        -0.029,
        -0.046,
    ),
    pv_err_q90=(1.514, 1.396, 1.256, 1.181, 1.161, 1.124, 1.086, 1.053, 1.019, 0.88, 0.973, 1.081),
)


def with_prior_spread(correction: SustainCorrection | None) -> SustainCorrection:
    """`correction`, with PRIOR_SPREAD's error quantiles while it has none of its own (before the
    first training, or too little history for them); its SoC rate factor is kept."""
    if correction is None:
        return PRIOR_SPREAD
    if correction.knots_h:
        return correction
    return replace(PRIOR_SPREAD, soc_rate_factor=correction.soc_rate_factor, rows=correction.rows)


@dataclass(frozen=True, kw_only=True)
class SustainEstimate:
    """Hours until the emergency band and until empty (P10 soonest … P90 latest; inf: not
    reached within `horizon_h`)."""

    hours_to_emergency_p10: float
    hours_to_emergency_p50: float
    hours_to_emergency_p90: float
    hours_to_empty_p10: float
    hours_to_empty_p50: float
    hours_to_empty_p90: float
    horizon_h: float
    usable_wh: float  # energy above the emergency band now (effective capacity)


def energy_path_wh(*, start_wh: float, full_wh: float, net_w: np.ndarray, dt_h: np.ndarray):
    """Stored energy at each slot boundary; charging stops at full (no floor: we look for it)."""
    out = np.empty(net_w.shape[0] + 1)
    out[0] = start_wh
    e = start_wh
    for i, (p, h) in enumerate(zip(net_w, dt_h)):
        e = min(e - p * h, full_wh)
        out[i + 1] = e
    return out


def first_crossing_h(times_h: np.ndarray, energy_wh: np.ndarray, level_wh: float) -> float:
    """First time the piecewise-linear energy path falls to `level_wh` (inf if never)."""
    if energy_wh[0] <= level_wh:
        return 0.0
    below = np.nonzero(energy_wh <= level_wh)[0]
    if below.size == 0:
        return math.inf
    i = int(below[0])
    e0, e1 = energy_wh[i - 1], energy_wh[i]
    frac = (e0 - level_wh) / (e0 - e1)
    return float(times_h[i - 1] + frac * (times_h[i] - times_h[i - 1]))


def _cumulative_wh(power_w: np.ndarray, dt_h: np.ndarray) -> np.ndarray:
    """Energy at each slot boundary from slot powers, starting at 0."""
    return np.concatenate([[0.0], np.cumsum(power_w * dt_h)])


def sustain_time(
    *,
    now: float,
    capacity_wh: float,
    soc_pct: float,
    emergency_pct: float = 10.0,
    forecast_net_w: np.ndarray,
    slot_minutes: int,
    correction: SustainCorrection | None = None,
    forecast_pv_w: np.ndarray | None = None,
) -> SustainEstimate:
    """Hours the battery lasts under `forecast_net_w` (W per slot, the first holding `now`).

    `forecast_pv_w` (optional, same slots) is the PV part of the net load; it only shapes the
    P10/P90 spread (load and PV are wrong in different ways). Without it, a positive net counts
    as load and a negative one as PV. Without a correction, P10 = P50 = P90 (the plain energy
    balance).
    """
    net = np.asarray(forecast_net_w, dtype=float)
    if capacity_wh <= 0 or not math.isfinite(capacity_wh):
        raise ValueError(f"capacity_wh must be a positive number, got {capacity_wh}")
    if not 0.0 <= soc_pct <= 100.0 or not 0.0 <= emergency_pct < 100.0:
        raise ValueError(
            f"soc_pct and emergency_pct must lie in 0..100, got {soc_pct}, {emergency_pct}"
        )
    if slot_minutes <= 0 or net.ndim != 1 or net.size == 0 or not np.all(np.isfinite(net)):
        raise ValueError("forecast_net_w must be a non-empty finite 1-D array; slot_minutes > 0")
    if forecast_pv_w is None:
        pv = np.maximum(-net, 0.0)
    else:
        pv = np.maximum(np.nan_to_num(np.asarray(forecast_pv_w, dtype=float)), 0.0)
        if pv.shape != net.shape:
            raise ValueError("forecast_pv_w must have the slots of forecast_net_w")
    corr = correction or SustainCorrection()
    slot_h = slot_minutes / 60.0
    # The first slot is partly over: only what is left of it counts.
    elapsed_h = (now % (slot_minutes * 60.0)) / 3600.0
    dt_h = np.full(net.size, slot_h)
    dt_h[0] = max(slot_h - elapsed_h, 0.0)
    times_h = np.concatenate([[0.0], np.cumsum(dt_h)])
    full_wh = capacity_wh / corr.soc_rate_factor
    path = energy_path_wh(start_wh=full_wh * soc_pct / 100.0, full_wh=full_wh, net_w=net, dt_h=dt_h)
    more, less = corr.spread_wh(
        times_h, _cumulative_wh(np.maximum(net + pv, 0.0), dt_h), _cumulative_wh(pv, dt_h)
    )
    emergency_wh = full_wh * emergency_pct / 100.0
    levels = {"emergency": emergency_wh, "empty": 0.0}
    hours = {}
    for name, level in levels.items():
        # P10 (soonest) assumes the drain runs high, P90 (latest) that it runs low.
        hours[f"{name}_p10"] = first_crossing_h(times_h, path - more, level)
        hours[f"{name}_p50"] = first_crossing_h(times_h, path, level)
        hours[f"{name}_p90"] = first_crossing_h(times_h, path + less, level)
    return SustainEstimate(
        hours_to_emergency_p10=hours["emergency_p10"],
        hours_to_emergency_p50=hours["emergency_p50"],
        hours_to_emergency_p90=hours["emergency_p90"],
        hours_to_empty_p10=hours["empty_p10"],
        hours_to_empty_p50=hours["empty_p50"],
        hours_to_empty_p90=hours["empty_p90"],
        horizon_h=float(times_h[-1]),
        usable_wh=float(max(path[0] - emergency_wh, 0.0)),
    )


def fit_soc_rate_factor(
    soc_pct: np.ndarray, net_w: np.ndarray, *, capacity_wh: float, slot_h: float
) -> tuple[float, int]:
    """Least-squares slope of realised vs nameplate-predicted SoC change per slot."""
    d_obs = np.diff(soc_pct)
    d_pred = -net_w[:-1] * slot_h / capacity_wh * 100.0
    # Near full the charger tapers and near empty the inverter cuts: keep the linear middle.
    ok = (
        np.isfinite(d_obs)
        & np.isfinite(d_pred)
        & (soc_pct[:-1] > 5)
        & (soc_pct[:-1] < 95)
        & (soc_pct[1:] < 95)
        & (soc_pct[1:] > 5)
        & (np.abs(d_pred) > 1e-3)
    )
    if ok.sum() < MIN_CAPACITY_ROWS:
        return 1.0, int(ok.sum())
    k = float(np.sum(d_obs[ok] * d_pred[ok]) / np.sum(d_pred[ok] ** 2))
    return float(np.clip(k, 0.5, 2.0)), int(ok.sum())


def persistence_forecasts(
    ctx: SeriesContext, origins: np.ndarray, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fallback load and PV forecasts: the same-slot load profile and yesterday's PV."""
    load = seasonal_persistence(ctx, origins, steps)
    pv = take(ctx.pv_w, seasonal_index(origins, steps, ctx.slots_per_day))
    return load, np.where(np.isfinite(pv), pv, 0.0)


def relative_error_quantiles(
    actual_w: np.ndarray, forecast_w: np.ndarray, columns: list[int], *, slot_h: float
) -> np.ndarray:
    """P10/P50/P90 of the cumulative energy error over the forecast energy, at `columns` steps.

    `actual_w` and `forecast_w` are origins x steps. A row with a gap, or whose forecast energy
    is too small to measure a relative error against (PV at night), is left out of its column;
    a column with fewer than 10 rows left is NaN.
    """
    err = np.cumsum((actual_w - forecast_w) * slot_h, axis=1)[:, columns]
    base = np.cumsum(forecast_w * slot_h, axis=1)[:, columns]
    rel = np.where(base >= MIN_ENERGY_WH, err / np.maximum(base, MIN_ENERGY_WH), np.nan)
    out = np.full((3, len(columns)), np.nan)
    for j in range(len(columns)):
        col = rel[:, j][np.isfinite(rel[:, j])]
        if col.size >= 10:
            out[:, j] = np.quantile(col, [0.1, 0.5, 0.9])
    return out


def fit_sustain_correction(
    history: History,
    *,
    capacity_wh: float,
    slot_minutes: int = 30,
    knots_h: tuple[float, ...] = DEFAULT_KNOTS_H,
    utc_offset_s: float = 0.0,
) -> SustainCorrection:
    """Learn the SoC rate factor and the relative load and PV forecast error quantiles.

    Errors are those of the seasonal-persistence forecasts (out of sample by construction); only
    their spread around the median is used, so they widen or narrow P10/P90 but never move P50.
    """
    grid = resample(history, slot_minutes)
    if grid.size < 2:
        return SustainCorrection()
    slot_h = slot_minutes / 60.0
    pv_w = np.where(np.isfinite(grid.pv_w), grid.pv_w, 0.0)
    net = grid.site_load_w - pv_w
    k, rows = fit_soc_rate_factor(grid.soc_pct, net, capacity_wh=capacity_wh, slot_h=slot_h)
    ctx = SeriesContext(
        grid_start_s=float(grid.timestamps[0]),
        slot_s=slot_minutes * 60.0,
        load_w=grid.site_load_w,
        pv_w=grid.pv_w,
        relay_on_fraction=np.full(grid.size, np.nan),
        utc_offset_s=utc_offset_s,
    )
    n = grid.size
    d = ctx.slots_per_day
    h_max = max(1, round(max(knots_h) / slot_h))
    origins = np.arange(d, n - 1, max(1, round(1.0 / slot_h)))
    if origins.size < 10:
        return SustainCorrection(soc_rate_factor=k, rows=rows)
    o = np.repeat(origins, h_max)
    s = np.tile(np.arange(1, h_max + 1), origins.size)
    inside = o + s < n
    load_fc = np.full(o.shape, np.nan)
    pv_fc = np.full(o.shape, np.nan)
    load_fc[inside], pv_fc[inside] = persistence_forecasts(ctx, o[inside], s[inside])
    load_act = np.full(o.shape, np.nan)
    pv_act = np.full(o.shape, np.nan)
    load_act[inside] = grid.site_load_w[(o + s)[inside]]
    pv_act[inside] = pv_w[(o + s)[inside]]
    steps = [min(h_max, max(1, round(h / slot_h))) - 1 for h in knots_h]
    shape = (origins.size, h_max)
    q_load = relative_error_quantiles(
        load_act.reshape(shape), load_fc.reshape(shape), steps, slot_h=slot_h
    )
    q_pv = relative_error_quantiles(
        pv_act.reshape(shape), pv_fc.reshape(shape), steps, slot_h=slot_h
    )
    # A site without PV (or PV only ever forecast as 0) has no PV error to learn: none.
    q_pv = np.where(np.isnan(q_pv).all(axis=0), 0.0, q_pv)
    keep = np.isfinite(q_load).all(axis=0) & np.isfinite(q_pv).all(axis=0)
    if not keep.any():
        return SustainCorrection(soc_rate_factor=k, rows=rows)
    q_load, q_pv = q_load[:, keep], q_pv[:, keep]
    used = np.asarray(knots_h, dtype=float)[keep]
    return SustainCorrection(
        soc_rate_factor=k,
        knots_h=tuple(float(h) for h in used),
        load_err_q10=tuple(map(float, q_load[0])),
        load_err_q50=tuple(map(float, q_load[1])),
        load_err_q90=tuple(map(float, q_load[2])),
        pv_err_q10=tuple(map(float, q_pv[0])),
        pv_err_q50=tuple(map(float, q_pv[1])),
        pv_err_q90=tuple(map(float, q_pv[2])),
        rows=rows,
    )
