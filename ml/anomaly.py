"""Anomaly detection: explicit, typed checks with thresholds learned from clean history, plus an
Isolation Forest over hourly per-zone windows for patterns no check names.

Each anomaly carries a type, a score (the evidence divided by its threshold: > 1 is anomalous)
and the time of its strongest evidence. scikit-learn is imported only inside `fit`/`score`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .features import calendar_features, nanquantile_rows
from .history import SECONDS_PER_DAY, History

RELAY_OFF_POWER_FLOW = "relay_off_power_flow"
SENSOR_SPIKE = "sensor_spike"
BASE_LOAD_DRIFT = "base_load_drift"
BOARD_SILENT = "board_silent"
VOLTAGE_SOC_MISMATCH = "voltage_soc_mismatch"
IMPOSSIBLE_VALUE = "impossible_value"
UNUSUAL_PATTERN = "unusual_pattern"  # Isolation Forest only; no explicit check names it
ANOMALY_TYPES: tuple[str, ...] = (
    RELAY_OFF_POWER_FLOW,
    SENSOR_SPIKE,
    BASE_LOAD_DRIFT,
    BOARD_SILENT,
    VOLTAGE_SOC_MISMATCH,
    IMPOSSIBLE_VALUE,
    UNUSUAL_PATTERN,
)


@dataclass(frozen=True, kw_only=True)
class Anomaly:
    """One detected anomaly (zone_id None: site-wide)."""

    zone_id: str | None
    type: str
    score: float
    at: float
    detail: Mapping[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AnomalyConfig:
    """Tunable limits; learned thresholds never go below these floors."""

    window_s: float = SECONDS_PER_DAY  # score looks at [now - window_s, now)
    silent_after_s: float = 900.0
    relay_off_floor_w: float = 5.0
    relay_off_min_samples: int = 2
    spike_sigmas: float = 10.0
    spike_tail_factor: float = 2.0  # and above this many times the largest clean residual
    drift_window_s: float = 3 * SECONDS_PER_DAY  # a slow rise shows over days, not hours
    # A leak persists: the floor must stand out over the last `drift_persist_s` and over the
    # whole `drift_window_s`, at both quantiles (heating and fridges cycle, a leak never stops).
    drift_persist_s: float = 2 * SECONDS_PER_DAY
    drift_quantile: float = 0.02
    drift_quantile_high: float = 0.05
    # `drift_checks_needed` of those four floors must exceed their clean level, relative to the
    # other zones' floors (cold weather lifts all zones, a leak one), by `drift_sigmas` robust
    # spreads of that log ratio in training; every floor by at least `drift_floor_w`; and the
    # zone's own floor must sit `drift_own_sigmas` spreads above its own learned base (so a drop
    # in the other zones is not read as a rise in this one). Tuned on bench/ml.py's tuning
    # splits (--anomaly-offset-weeks 8/12/16/20, seeds 1/4/2/3, 8-day windows as
    # learning.ANOMALY_DAYS), never on the report split.
    drift_sigmas: float = 3.0
    drift_checks_needed: int = 2
    drift_own_sigmas: float = 1.0
    drift_floor_w: float = 10.0
    # The recent history scored holds the zone's clean days before a leak began: the windows
    # that closed 3, 4, 5 and 6 days ago (the last an 8-day history still covers; at least
    # `drift_min_reference` of them) are the local reference. A leak needs `drift_checks_needed`
    # floors above the trained ratio by `drift_sigmas`, `drift_local_checks` above the local one
    # by `drift_local_sigmas` (same learned spread), and `drift_own_checks` floors up by
    # `drift_own_rise` in log (~22 %) on the zone's own reference floors: a step in the site's
    # load reaches the zones a day apart, but it does not lift the one zone that keeps reading
    # as before. A leak older than the reference (all of it shifted) still shows if every
    # trained check stands `drift_settled_sigmas` above.
    drift_reference_days: int = 4
    drift_min_reference: int = 2
    drift_local_checks: int = 3
    drift_local_sigmas: float = 1.0
    drift_own_checks: int = 2
    drift_own_rise: float = 0.2
    drift_settled_sigmas: float = 8.0
    voltage_sigmas: float = 6.0
    voltage_min_samples: int = 3
    max_zone_power_w: float = 50_000.0
    max_voltage_v: float = 1_000.0
    negative_tolerance_w: float = 5.0
    pattern_quantile: float = 0.0005  # Isolation Forest: flag below this share of clean windows
    # Off by default: on real household data the forest flags ~2 % of clean days as the season
    # moves; its score still rides along in every zone anomaly's detail.
    emit_unusual_pattern: bool = False


@dataclass(frozen=True, kw_only=True)
class ZoneStats:
    """What clean history says is normal for one zone."""

    off_threshold_w: float
    spike_threshold_w: float
    base_w: float
    base_spread_w: float
    scale_w: float
    sample_interval_s: float
    # Per drift check (window, quantile): the clean log ratio of this zone's floor to the other
    # zones' median floor (its absolute log on a one-zone site) and that ratio's robust spread.
    # Empty (physics-only stats, or too little history): the zone is not judged for drift.
    drift_log_offset: tuple[float, ...] = ()
    drift_log_scale: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class VoltageModel:
    """Linear battery voltage from SoC and net power, with a robust residual scale."""

    coef: tuple[float, ...]
    sigma_v: float

    def residual(self, voltage_v: np.ndarray, soc_pct: np.ndarray, net_w: np.ndarray):
        """Measured minus modelled voltage."""
        return voltage_v - _voltage_design(soc_pct, net_w) @ np.asarray(self.coef)


def _voltage_design(soc_pct: np.ndarray, net_w: np.ndarray) -> np.ndarray:
    s = soc_pct / 100.0
    return np.column_stack([np.ones_like(s), s, s**2, s**3, net_w / 1000.0])


def _mad(x: np.ndarray) -> float:
    """Scaled median absolute deviation (a robust standard deviation)."""
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def spike_residual(power_w: np.ndarray) -> np.ndarray:
    """Each sample minus the median of its 5-sample neighbourhood (NaN at the edges)."""
    n = power_w.shape[0]
    out = np.full(n, np.nan)
    if n < 5:
        return out
    med = nanquantile_rows(np.lib.stride_tricks.sliding_window_view(power_w, 5), 0.5)
    out[2:-2] = power_w[2:-2] - med
    return out


def floor_w(power_w: np.ndarray, relay: np.ndarray | None, quantile: float) -> float:
    """Low quantile of the power drawn while the relay is on (NaN with under 12 samples)."""
    return float(floors_w(power_w, relay, (quantile,))[0])


def floors_w(
    power_w: np.ndarray, relay: np.ndarray | None, quantiles: tuple[float, ...]
) -> np.ndarray:
    """`floor_w` at several quantiles, the window cut and ranked once."""
    ok = np.isfinite(power_w)
    if relay is not None:
        ok &= ~(relay < 0.5)
    if ok.sum() < 12:
        return np.full(len(quantiles), np.nan)
    return np.quantile(power_w[ok], quantiles)


def rolling_floors_w(
    ts: np.ndarray,
    power_w: np.ndarray,
    relay: np.ndarray | None,
    *,
    window_s: float,
    quantile: float,
) -> np.ndarray:
    """The base-load floor of every `window_s` window ending at a UTC midnight."""
    if ts.size == 0:
        return np.empty(0)
    ends = np.arange(
        np.ceil(ts[0] / SECONDS_PER_DAY) * SECONDS_PER_DAY + window_s, ts[-1] + 1.0, SECONDS_PER_DAY
    )
    out = []
    for end in ends:
        sel = (ts >= end - window_s) & (ts < end)
        out.append(floor_w(power_w[sel], None if relay is None else relay[sel], quantile))
    return np.asarray(out)


_DRIFT_LOG_OFFSET_W = 10.0  # keeps the log of a near-zero floor finite and calm
_DRIFT_MIN_LOG_SCALE = 0.05  # no floor repeats to better than ~5 %, however calm training was
_OUTAGE_SHARE = 0.25  # a floor under this share of the zone's usual one: the board dropped out


def long_floor_w(log_floors: np.ndarray) -> np.ndarray:
    """The (drift_window_s, drift_quantile) floor in W (row 2 in `drift_checks` order) of each
    column of log floors."""
    return np.exp(log_floors[2]) - _DRIFT_LOG_OFFSET_W


def outage(log_floors: np.ndarray, usual_w: float, config: AnomalyConfig) -> np.ndarray:
    """Whether each window's longest floor sits far under the zone's usual one (readings of zero
    for an hour or more: a dropout or a power cut, not a base load), so it cannot be a reference."""
    floor = long_floor_w(log_floors)
    return (usual_w > config.drift_floor_w) & (floor < _OUTAGE_SHARE * usual_w)


def drift_checks(config: AnomalyConfig) -> tuple[tuple[float, float], ...]:
    """(window_s, quantile) of every floor a base-load drift must lift (window outer: the order
    `log_floors` rows and `long_floor_w` rely on)."""
    return tuple(
        (w, q)
        for w in (config.drift_persist_s, config.drift_window_s)
        for q in (config.drift_quantile, config.drift_quantile_high)
    )


def window_floors_w(
    ts: np.ndarray,
    power_w: np.ndarray,
    relay: np.ndarray | None,
    *,
    end_s: float,
    window_s: float,
    quantiles: tuple[float, ...],
) -> np.ndarray:
    """Floors over [end_s - window_s, end_s) (NaN when the data covers under 60 % of it)."""
    lo, hi = np.searchsorted(ts, [end_s - window_s, end_s])
    if hi <= lo or ts[lo] > end_s - 0.6 * window_s:
        return np.full(len(quantiles), np.nan)
    return floors_w(power_w[lo:hi], None if relay is None else relay[lo:hi], quantiles)


def log_floors(h: History, zone: str, ends: np.ndarray, config: AnomalyConfig) -> np.ndarray:
    """log(floor + offset) per drift check (rows) and window end (columns)."""
    p = h.zone_power_w[zone]
    p = np.where(p > config.max_zone_power_w, np.nan, p)
    relay = h.zone_relay_on.get(zone)
    quantiles = (config.drift_quantile, config.drift_quantile_high)
    blocks = [
        np.array(
            [
                window_floors_w(h.timestamps, p, relay, end_s=e, window_s=w, quantiles=quantiles)
                for e in ends
            ]
        ).reshape(ends.size, len(quantiles))
        for w in (config.drift_persist_s, config.drift_window_s)
    ]
    out = np.concatenate([b.T for b in blocks])  # rows in drift_checks order
    return np.log(np.maximum(out, 0.0) + _DRIFT_LOG_OFFSET_W)


def own_rise_sigmas(log_floors: np.ndarray, stats: ZoneStats) -> float:
    """How far the zone's longest low floor sits above its own learned base, in spreads of it."""
    floor = float(long_floor_w(log_floors))
    spread = max(stats.base_spread_w, 0.05 * stats.base_w, 5.0)
    return (floor - stats.base_w) / spread if np.isfinite(stats.base_w) else float("nan")


def drift_ends_s(now: float, config: AnomalyConfig) -> np.ndarray:
    """`now`, then the ends of the reference windows: days that closed before the drift window
    opened, as far back as a window of recent history still covers them."""
    first = round(config.drift_window_s / SECONDS_PER_DAY)
    back = np.arange(first, first + config.drift_reference_days)
    return now - SECONDS_PER_DAY * np.concatenate([[0], back])


def cross_log_ratios(logs: Mapping[str, np.ndarray], zone: str) -> np.ndarray:
    """The zone's log floors minus the other zones' median, per check and window end (its own
    log floors on a one-zone site; NaN where no other zone has a floor)."""
    others = [v for o, v in logs.items() if o != zone]
    return logs[zone] - _median_rows(others, logs[zone].shape)


def drift_sigmas(
    ratios: np.ndarray, stats: ZoneStats, min_reference: int
) -> tuple[np.ndarray, ...]:
    """Per check, how far the latest cross-zone log ratio (column 0) sits above the clean one
    learned in training, and above its own median over the reference windows (columns 1:),
    in learned spreads of that ratio (NaN without enough reference windows)."""
    now = ratios[:, 0]
    scale = np.asarray(stats.drift_log_scale)
    trained = (now - np.asarray(stats.drift_log_offset)) / scale
    ref = ratios[:, 1:]
    enough = np.isfinite(ref).sum(axis=1) >= min_reference
    local = np.where(enough, (now - nanquantile_rows(ref, 0.5)) / scale, np.nan)
    return trained, local


def own_log_rise(log_floors: np.ndarray) -> np.ndarray:
    """Per check, the latest log floor (column 0) minus its median over the reference windows
    (NaN without any)."""
    ref = log_floors[:, 1:]
    enough = np.isfinite(ref).any(axis=1)
    return np.where(enough, log_floors[:, 0] - nanquantile_rows(ref, 0.5), np.nan)


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The k-th largest value, NaN counting as the smallest (-inf when there are under k)."""
    v = np.sort(np.where(np.isfinite(values), values, -np.inf))
    return float(v[-min(k, v.size)]) if v.size else float("-inf")


def _median_rows(rows: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Elementwise median of `rows`, ignoring NaN (zeros when there are none: one zone)."""
    if not rows:
        return np.zeros(shape)
    stacked = np.stack(rows).reshape(len(rows), -1)
    return nanquantile_rows(stacked.T, 0.5).reshape(shape)


def _window_features(
    ts: np.ndarray, power_w: np.ndarray, relay: np.ndarray | None, scale_w: float
) -> tuple[np.ndarray, np.ndarray]:
    """Hourly windows: level, spread, peak, relay share, power while off, hour of day."""
    ok = np.isfinite(power_w)
    if not ok.any():
        return np.empty((0, 7)), np.empty(0)
    hours = np.floor(ts[ok] / 3600.0)
    p = power_w[ok] / max(scale_w, 1.0)
    r = np.ones_like(p) if relay is None else np.nan_to_num(relay[ok], nan=1.0)
    uniq, inv = np.unique(hours, return_inverse=True)
    m = uniq.size
    count = np.bincount(inv, minlength=m)
    mean = np.bincount(inv, weights=p, minlength=m) / count
    var = np.bincount(inv, weights=p * p, minlength=m) / count - mean**2
    peak = np.full(m, -np.inf)
    np.maximum.at(peak, inv, p)
    relay_share = np.bincount(inv, weights=r, minlength=m) / count
    off = r < 0.5
    off_n = np.bincount(inv, weights=off.astype(float), minlength=m)
    off_sum = np.bincount(inv, weights=np.where(off, p, 0.0), minlength=m)
    off_mean = np.where(off_n > 0, off_sum / np.maximum(off_n, 1), 0.0)
    cal = calendar_features(uniq * 3600.0)
    x = np.column_stack(
        [mean, np.sqrt(np.maximum(var, 0.0)), peak, relay_share, off_mean, cal[:, 0], cal[:, 1]]
    )
    keep = count >= 3
    return x[keep], uniq[keep] * 3600.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of the True runs in `mask` (end exclusive)."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]))


class AnomalyDetector:
    """Learns normal behaviour from clean history; `score` reports typed anomalies."""

    def __init__(self, *, config: AnomalyConfig | None = None, seed: int = 0) -> None:
        """Configure limits; nothing is learned until `fit`."""
        self.config = config or AnomalyConfig()
        self.seed = seed
        self.zone_stats: dict[str, ZoneStats] = {}
        self.voltage_model: VoltageModel | None = None
        self.pv_max_by_hour_w: np.ndarray | None = None
        self.forest: Any = None
        self.forest_threshold: float | None = None

    @property
    def fitted(self) -> bool:
        """Whether `fit` has learned anything."""
        return bool(self.zone_stats) or self.voltage_model is not None

    def fit(self, history: History) -> AnomalyDetector:
        """Learn per-zone thresholds, the voltage model, the PV day profile and the forest."""
        c = self.config
        ts = history.timestamps
        windows = []
        drift = self._fit_drift(history)
        for zone in history.zones:
            p = history.zone_power_w.get(zone)
            if p is None or not np.isfinite(p).any():
                continue
            relay = history.zone_relay_on.get(zone)
            off = p[(relay < 0.5) & np.isfinite(p)] if relay is not None else np.empty(0)
            off_thr = (
                max(c.relay_off_floor_w, 1.5 * float(np.quantile(off, 0.999)))
                if off.size
                else c.relay_off_floor_w
            )
            res = spike_residual(p)
            res_ok = np.abs(res[np.isfinite(res)])
            tail = float(res_ok.max()) if res_ok.size else 0.0
            spike_thr = max(c.spike_sigmas * _mad(res), c.spike_tail_factor * tail, 1.0)
            bases = rolling_floors_w(
                ts, p, relay, window_s=c.drift_window_s, quantile=c.drift_quantile
            )
            bases = bases[np.isfinite(bases)]
            seen = ts[np.isfinite(p)]
            interval = float(np.median(np.diff(seen))) if seen.size > 1 else c.silent_after_s
            scale = float(np.quantile(p[np.isfinite(p)], 0.95))
            self.zone_stats[zone] = ZoneStats(
                off_threshold_w=off_thr,
                spike_threshold_w=spike_thr,
                # The latest week sets the level (the season moves it); all windows set the spread.
                base_w=float(np.median(bases[-7:])) if bases.size else float("nan"),
                base_spread_w=_mad(bases) if bases.size > 2 else 0.0,
                scale_w=max(scale, 1.0),
                sample_interval_s=interval,
                drift_log_offset=drift.get(zone, ((), ()))[0],
                drift_log_scale=drift.get(zone, ((), ()))[1],
            )
            x, _ = _window_features(ts, p, relay, max(scale, 1.0))
            windows.append(x)
        self.voltage_model = self._fit_voltage(history)
        self.pv_max_by_hour_w = self._fit_pv_profile(history)
        feats = np.vstack(windows) if windows else np.empty((0, 7))
        if feats.shape[0] >= 50:
            from sklearn.ensemble import IsolationForest

            self.forest = IsolationForest(n_estimators=100, random_state=self.seed, n_jobs=1).fit(
                feats
            )
            clean = self.forest.score_samples(feats)
            self.forest_threshold = float(np.quantile(clean, c.pattern_quantile))
        return self

    def _fit_drift(self, history: History) -> dict[str, tuple[tuple[float, ...], ...]]:
        """Per zone: the clean log ratio of each floor to the other zones' and its spread."""
        c = self.config
        ts = history.timestamps
        zones = [z for z in history.zones if np.isfinite(history.zone_power_w.get(z, [])).any()]
        if ts.size == 0 or not zones:
            return {}
        first = np.ceil(ts[0] / SECONDS_PER_DAY) * SECONDS_PER_DAY + c.drift_window_s
        ends = np.arange(first, ts[-1] + 3600.0, SECONDS_PER_DAY)
        logs = {z: log_floors(history, z, ends, c) for z in zones}
        for z in zones:  # a dropout is neither a floor nor a reference for the other zones
            floors = long_floor_w(logs[z])
            floors = floors[np.isfinite(floors)]
            if floors.size == 0:  # too little history for a single floor: nothing to mask
                continue
            logs[z][:, outage(logs[z], float(np.median(floors)), c)] = np.nan
        out = {}
        for zone in zones:
            ratio = cross_log_ratios(logs, zone)
            ok = np.isfinite(ratio).all(axis=0)
            if ok.sum() < 5:  # too few days to know how the floor moves
                continue
            out[zone] = (
                tuple(float(np.median(r[ok])) for r in ratio),
                tuple(max(_mad(r[ok]), _DRIFT_MIN_LOG_SCALE) for r in ratio),
            )
        return out

    @staticmethod
    def _fit_voltage(history: History) -> VoltageModel | None:
        net = history.site_load_w - np.nan_to_num(history.pv_w)
        ok = np.isfinite(history.voltage_v) & np.isfinite(history.soc_pct) & np.isfinite(net)
        if ok.sum() < 50:
            return None
        x = _voltage_design(history.soc_pct[ok], net[ok])
        coef, *_ = np.linalg.lstsq(x, history.voltage_v[ok], rcond=None)
        res = history.voltage_v[ok] - x @ coef
        return VoltageModel(coef=tuple(float(v) for v in coef), sigma_v=max(_mad(res), 0.01))

    @staticmethod
    def _fit_pv_profile(history: History) -> np.ndarray | None:
        ok = np.isfinite(history.pv_w)
        if ok.sum() < 48:
            return None
        hour = (np.floor(history.timestamps[ok] / 3600.0) % 24).astype(int)
        out = np.zeros(24)
        for h in range(24):
            sel = history.pv_w[ok][hour == h]
            out[h] = float(sel.max()) if sel.size else np.inf
        return out

    def score(self, history_recent: History, *, now: float) -> list[Anomaly]:
        """Anomalies in [now - window_s, now): at most one per (zone, type), the strongest."""
        c = self.config
        h = history_recent.before(now)
        found: list[Anomaly] = []
        win = h.timestamps >= now - c.window_s
        for zone in sorted(set(self.zone_stats) | set(h.zones)):
            found += self._score_zone(h, zone, win, now)
        found += self._score_site(h, win)
        if h.size:
            found += self._score_drift(h, now)
        best: dict[tuple[str | None, str], Anomaly] = {}
        for a in found:
            key = (a.zone_id, a.type)
            if key not in best or a.score > best[key].score:
                best[key] = a
        return sorted(best.values(), key=lambda a: -a.score)

    def _score_zone(self, h: History, zone: str, win: np.ndarray, now: float) -> list[Anomaly]:
        c = self.config
        stats = self.zone_stats.get(zone)
        ts = h.timestamps
        p = h.zone_power_w.get(zone, np.full(ts.shape, np.nan))
        relay = h.zone_relay_on.get(zone)
        out: list[Anomaly] = []
        # Board silent: the longest stretch without a power reading, ending in the window.
        seen = ts[np.isfinite(p)]
        limit = max(c.silent_after_s, 3 * stats.sample_interval_s if stats else 0.0)
        edges = np.concatenate([seen, [now]]) if seen.size else np.array([now - c.window_s, now])
        gaps = np.diff(edges)
        if gaps.size:
            i = int(np.argmax(gaps))
            if gaps[i] > limit and edges[i + 1] >= now - c.window_s:
                out.append(
                    Anomaly(
                        zone_id=zone,
                        type=BOARD_SILENT,
                        score=float(gaps[i] / limit),
                        at=float(edges[i]),
                        detail={"silent_s": float(gaps[i])},
                    )
                )
        pw = np.where(win, p, np.nan)
        # Impossible values: negative or beyond any plausible board rating.
        bad = (pw < -c.negative_tolerance_w) | (pw > c.max_zone_power_w) | np.isinf(pw)
        if bad.any():
            i = int(np.nonzero(bad)[0][np.argmax(np.abs(np.nan_to_num(pw[bad], posinf=1e12)))])
            out.append(
                Anomaly(
                    zone_id=zone,
                    type=IMPOSSIBLE_VALUE,
                    score=2.0,
                    at=float(ts[i]),
                    detail={"power_w": float(pw[i])},
                )
            )
        pw = np.where(bad, np.nan, pw)
        if stats is None:
            return out
        # Power flowing while the relay reports OFF, for several samples in a row.
        if relay is not None:
            flow = (relay < 0.5) & (pw > stats.off_threshold_w)
            for a, b in _runs(flow):
                if b - a >= c.relay_off_min_samples:
                    level = float(np.median(pw[a:b]))
                    out.append(
                        Anomaly(
                            zone_id=zone,
                            type=RELAY_OFF_POWER_FLOW,
                            score=level / stats.off_threshold_w,
                            at=float(ts[a]),
                            detail={"power_w": level, "samples": float(b - a)},
                        )
                    )
        # Spikes: a sample far above its neighbourhood median.
        res = spike_residual(pw)
        if np.isfinite(res).any():
            i = int(np.nanargmax(np.abs(res)))
            if abs(res[i]) > stats.spike_threshold_w:
                out.append(
                    Anomaly(
                        zone_id=zone,
                        type=SENSOR_SPIKE,
                        score=float(abs(res[i]) / stats.spike_threshold_w),
                        at=float(ts[i]),
                        detail={"power_w": float(pw[i]), "residual_w": float(res[i])},
                    )
                )
        pattern = self._score_pattern(ts, pw, relay, zone, stats)
        if pattern:
            iso = pattern[0].detail["isolation_score"]
            out = [replace(a, detail={**a.detail, "isolation_score": iso}) for a in out]
            if self.config.emit_unusual_pattern and pattern[0].score > 1:
                out += pattern
        return out

    def _score_drift(self, h: History, now: float) -> list[Anomaly]:
        """Zones whose floors rose against the other zones' and against their own a few days
        before (or stand far above their clean ratio to the other zones' on every check)."""
        c = self.config
        n_checks = len(drift_checks(c))
        fitted = [
            z
            for z, s in self.zone_stats.items()
            if len(s.drift_log_offset) == n_checks and z in h.zone_power_w
        ]
        ends = drift_ends_s(now, c)
        logs = {}
        for z in fitted:
            v = log_floors(h, z, ends, c)
            v[:, outage(v, self.zone_stats[z].base_w, c)] = np.nan
            v[:, ~np.isfinite(v).all(axis=0)] = np.nan  # a window counts with every check or none
            logs[z] = v
        out = []
        for zone in fitted:
            stats = self.zone_stats[zone]
            own = logs[zone][:, 0]
            # Cold weather or the season lifts every zone's floor; a leak or theft lifts one.
            ratios = cross_log_ratios(logs, zone)
            if not np.isfinite(ratios[:, 0]).all():
                continue  # too short a look, or nothing to tell a leak from the weather
            trained, local = drift_sigmas(ratios, stats, c.drift_min_reference)
            expected = own - ratios[:, 0] + np.asarray(stats.drift_log_offset)
            rise_w = float(np.min(np.exp(own) - np.exp(expected)))
            sigmas = _kth_largest(trained, c.drift_checks_needed)
            leak = (
                sigmas > c.drift_sigmas
                and _kth_largest(local, c.drift_local_checks) > c.drift_local_sigmas
                and _kth_largest(own_log_rise(logs[zone]), c.drift_own_checks) > c.drift_own_rise
            )
            settled = _kth_largest(trained, n_checks) > c.drift_settled_sigmas
            if (
                (leak or settled)
                and rise_w > c.drift_floor_w
                and own_rise_sigmas(own, stats) > c.drift_own_sigmas
            ):
                out.append(
                    Anomaly(
                        zone_id=zone,
                        type=BASE_LOAD_DRIFT,
                        score=sigmas / c.drift_sigmas,
                        at=float(h.timestamps[-1]),
                        detail={
                            "base_w": float(long_floor_w(own)),
                            "clean_base_w": float(long_floor_w(expected)),
                            "rise_w": rise_w,
                            "sigmas": sigmas,
                        },
                    )
                )
        return out

    def _score_pattern(self, ts, pw, relay, zone: str, stats: ZoneStats) -> list[Anomaly]:
        """The most isolated hourly window (score > 1: rarer than `pattern_quantile`)."""
        if self.forest is None:
            return []
        x, starts = _window_features(ts, pw, relay, stats.scale_w)
        if x.shape[0] == 0:
            return []
        s = self.forest.score_samples(x)
        i = int(np.argmin(s))
        return [
            Anomaly(
                zone_id=zone,
                type=UNUSUAL_PATTERN,
                score=float(s[i] / self.forest_threshold),
                at=float(starts[i]),
                detail={"isolation_score": float(s[i])},
            )
        ]

    def _score_site(self, h: History, win: np.ndarray) -> list[Anomaly]:
        c = self.config
        ts = h.timestamps
        out: list[Anomaly] = []
        soc = np.where(win, h.soc_pct, np.nan)
        volt = np.where(win, h.voltage_v, np.nan)
        pv = np.where(win, h.pv_w, np.nan)
        checks = {
            "soc_pct": (soc < 0) | (soc > 100),
            "voltage_v": (volt <= 0) | (volt > c.max_voltage_v),
            "pv_w": pv < -c.negative_tolerance_w,
            "site_load_w": np.where(win, h.site_load_w, 0) < -c.negative_tolerance_w,
        }
        if self.pv_max_by_hour_w is not None:
            hour = (np.floor(ts / 3600.0) % 24).astype(int)
            prof = self.pv_max_by_hour_w
            # Solar against time of day: well above anything seen this hour or the next/previous
            # (sunrise moves up to an hour a month), e.g. full sun at night.
            around = np.maximum(np.maximum(np.roll(prof, 1), np.roll(prof, -1)), prof)
            limit = 1.5 * around[hour] + 0.05 * float(prof.max()) + 50.0
            checks["pv_vs_time_of_day"] = pv > limit
        for name, bad in checks.items():
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                out.append(
                    Anomaly(
                        zone_id=None,
                        type=IMPOSSIBLE_VALUE,
                        score=2.0,
                        at=float(ts[i]),
                        detail={"check": name},
                    )
                )
        vm = self.voltage_model
        if vm is not None:
            net = h.site_load_w - np.nan_to_num(h.pv_w)
            valid = (soc >= 0) & (soc <= 100) & (volt > 0) & (volt <= c.max_voltage_v)
            z = np.abs(vm.residual(volt, soc, net)) / vm.sigma_v
            z = np.where(valid, z, np.nan)
            mismatch = z > c.voltage_sigmas
            for a, b in _runs(mismatch):
                if b - a >= c.voltage_min_samples:
                    zz = float(np.median(z[a:b]))
                    out.append(
                        Anomaly(
                            zone_id=None,
                            type=VOLTAGE_SOC_MISMATCH,
                            score=zz / c.voltage_sigmas,
                            at=float(ts[a]),
                            detail={"sigmas": zz, "samples": float(b - a)},
                        )
                    )
        return out
