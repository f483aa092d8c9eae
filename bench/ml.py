"""ML benchmark on real data: demand back-test, sustain-time calibration, anomaly F1, timings.

Run: `.venv/bin/python -m bench.ml` (add `--quick` for a smaller run). Offline; a few minutes on
2 cores. Prints figures; it does not pass or fail. Data: bench/datasets.py (EMHASS household
load, pvlib TMY3 PV); see bench/data/README.md.

Rows named `hindsight_*` and `sustain_true_load_*` are references that see the future (the
day's true mean load, the realised load, a threshold set on the scored days themselves): no
forecaster or detector can use them; they show how much of an error the data leaves.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import math
import statistics
import time

import numpy as np

from bench import datasets
from ml.anomaly import (
    ANOMALY_TYPES,
    BASE_LOAD_DRIFT,
    BOARD_SILENT,
    IMPOSSIBLE_VALUE,
    RELAY_OFF_POWER_FLOW,
    SENSOR_SPIKE,
    UNUSUAL_PATTERN,
    VOLTAGE_SOC_MISMATCH,
    AnomalyConfig,
    AnomalyDetector,
    cross_log_ratios,
    drift_ends_s,
    log_floors,
    own_log_rise,
)
from ml.demand import DemandForecaster
from ml.features import seasonal_index
from ml.history import SECONDS_PER_DAY, History
from ml.store import dumps, train_all
from ml.sustain import PRIOR_SPREAD, SustainCorrection, fit_sustain_correction, sustain_time

UTC_OFFSET_S = 3600.0  # the household is in France (CET); the calendar terms use local time
NOMINAL_CAPACITY_WH = 10_000.0
TRUE_CAPACITY_WH = 9_000.0  # hidden from the model: the battery holds less than its nameplate
PV_KWP = 4.0
NOMINAL_V = 48.0


def _series_history(load_w: np.ndarray, ts: np.ndarray, pv_w: np.ndarray | None = None) -> History:
    """A site-only history (no zones) from a load series."""
    nan = np.full(ts.size, np.nan)
    return History(
        timestamps=ts,
        site_load_w=load_w,
        pv_w=nan if pv_w is None else pv_w,
        soc_pct=nan,
        voltage_v=nan,
    )


def _metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    err = pred - y
    big = y > 100.0
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err[big]) / y[big]) * 100),
        "r2": float(1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2)),
    }


# ---------------------------------------------------------------------------------------- demand
def bench_demand(weeks: int, origin_every_h: float) -> dict[str, float]:
    """Rolling-origin back-test: for each held-out week, train on everything before it."""
    load = datasets.household_load()
    ts = load.index.asi8 / 1e9
    y = load.to_numpy(dtype=float)
    slot_s = 1800.0
    d = 48
    horizon = 48
    week = 7 * d
    end = ts.size - ts.size % d
    first_test = end - weeks * week
    preds, truth, base_day, base_week, base_profile, targets = [], [], [], [], [], []
    fit_s = []
    for w in range(weeks):
        start = first_test + w * week
        f = DemandForecaster(slot_minutes=30, utc_offset_s=UTC_OFFSET_S, backtest_days=0)
        train = _series_history(y[:start], ts[:start])
        t0 = time.perf_counter()
        f.fit(train, now=ts[start])
        fit_s.append(time.perf_counter() - t0)
        step = max(1, round(origin_every_h * 2))
        for o in range(start - 1, min(start + week, end) - 1, step):
            n_ahead = min(horizon, end - 1 - o)
            if n_ahead < 1:
                continue
            hist = _series_history(y[o - 21 * d + 1 : o + 1], ts[o - 21 * d + 1 : o + 1])
            fc = f.predict(hist, now=ts[o] + slot_s, horizon_slots=n_ahead, slot_minutes=30)
            s = np.arange(1, n_ahead + 1)
            oo = np.full(n_ahead, o)
            preds.append(fc.site_w)
            truth.append(y[o + s])
            di = seasonal_index(oo, s, d)
            wi = seasonal_index(oo, s, week)
            base_day.append(y[di])
            base_week.append(y[wi])
            prof = np.mean([y[di - m * d] for m in range(7)], axis=0)
            base_profile.append(prof)
            targets.append(o + s)
    p, t = np.concatenate(preds), np.concatenate(truth)
    m = _metrics(p, t)
    out = {f"demand_{k}": v for k, v in m.items()}
    for name, b in (("day", base_day), ("week", base_week), ("profile7", base_profile)):
        bm = _metrics(np.concatenate(b), t)
        out[f"persistence_{name}_mae"] = bm["mae"]
        out[f"persistence_{name}_r2"] = bm["r2"]
        out[f"skill_vs_{name}"] = 1 - m["mae"] / bm["mae"]
    # References no forecaster can use (they see the future): how much of the error is left
    # once the day's level is known.
    day_persistence = np.concatenate(base_day)
    for name, ref in _hindsight_references(y, np.concatenate(targets), d).items():
        rm = _metrics(ref, t)
        out[f"hindsight_{name}_r2"] = rm["r2"]
        out[f"hindsight_{name}_skill_vs_day"] = 1 - rm["mae"] / _metrics(day_persistence, t)["mae"]
    out["demand_points"] = float(t.size)
    out["demand_fit_s_median"] = statistics.median(fit_s)
    out["demand_train_days_last"] = float((first_test + (weeks - 1) * week) / d)
    return out


def _hindsight_references(y: np.ndarray, target: np.ndarray, d: int) -> dict[str, np.ndarray]:
    """Non-causal predictions of y[target] (every target at least a week in): the past week's
    same-slot mean rescaled to the true mean of the target's day ("true_day_mean"), and the
    median of the same slot on the 7 days before and the 7 days after ("median_14_days_around")."""
    day_mean = np.bincount(np.arange(y.size) // d, weights=y) / d
    day = target // d
    week = np.arange(1, 8)
    profile = y[target[None, :] - week[:, None] * d].mean(axis=0)
    profile_day_mean = day_mean[day[None, :] - week[:, None]].mean(axis=0)
    around = np.concatenate([-week, week])[:, None] * d + target[None, :]
    inside = (around >= 0) & (around < y.size)
    return {
        "true_day_mean": profile * day_mean[day] / np.maximum(profile_day_mean, 1.0),
        "median_14_days_around": np.nanmedian(
            np.where(inside, y[np.clip(around, 0, y.size - 1)], np.nan), axis=0
        ),
    }


# --------------------------------------------------------------------------------------- sustain
def _simulate_soc(net_w: np.ndarray, slot_h: float, soc0: float, capacity_wh: float) -> np.ndarray:
    """SoC at each slot start of a battery (clamped 0..100) under the given net load."""
    soc = np.empty(net_w.size)
    s = soc0
    for i, p in enumerate(net_w):
        soc[i] = s
        s = min(max(s - p * slot_h / capacity_wh * 100.0, 0.0), 100.0)
    return soc


def _realised_hours(net_w: np.ndarray, slot_h: float, soc0: float, level: float) -> float:
    """Hours until the true battery reaches `level` % (inf if not within `net_w`)."""
    e = TRUE_CAPACITY_WH * soc0 / 100.0
    target = TRUE_CAPACITY_WH * level / 100.0
    if e <= target:
        return 0.0
    for i, p in enumerate(net_w):
        nxt = min(e - p * slot_h, TRUE_CAPACITY_WH)
        if nxt <= target:
            return (i + (e - target) / (e - nxt)) * slot_h
        e = nxt
    return math.inf


def _site_days(n_days: int, slot_minutes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    days = datasets.aligned_days(n_days, slot_minutes)
    load = np.concatenate([a.to_numpy(dtype=float) for a, _ in days])
    pv = np.concatenate([b.to_numpy(dtype=float) for _, b in days]) * PV_KWP
    ts = np.concatenate([a.index.asi8 / 1e9 for a, _ in days])
    return ts, load, pv


SUSTAIN_DAYS = 239
SUSTAIN_TEST_DAYS = 56


def _sustain_site() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Timestamps, load, PV and the true battery's SoC, 30-min slots, every day of the series."""
    ts, load, pv = _site_days(SUSTAIN_DAYS, 30)
    return ts, load, pv, _simulate_soc(load - pv, 0.5, 60.0, TRUE_CAPACITY_WH)


def sustain_prior() -> SustainCorrection:
    """ml.sustain.PRIOR_SPREAD's source: the error quantiles fitted on the days before the
    sustain benchmark's test days (so the benchmark scores the prior out of sample)."""
    ts, load, pv, soc = _sustain_site()
    before = ts < ts[-1] - SUSTAIN_TEST_DAYS * SECONDS_PER_DAY + 1.0
    hist = History(
        timestamps=ts[before],
        site_load_w=load[before],
        pv_w=pv[before],
        soc_pct=soc[before],
        voltage_v=np.full(before.sum(), np.nan),
    )
    fitted = fit_sustain_correction(
        hist, capacity_wh=NOMINAL_CAPACITY_WH, slot_minutes=30, utc_offset_s=UTC_OFFSET_S
    )
    return replace(fitted, soc_rate_factor=1.0, rows=0)


def bench_sustain(test_days: int, seed: int) -> dict[str, float]:
    """Sustain-time P50 error and P10-P90 coverage against the realised time on held-out days."""
    slot_minutes = 30
    slot_h = 0.5
    ts, load, pv, soc = _sustain_site()
    d = 48
    rng = np.random.default_rng(seed)
    volt = NOMINAL_V * (0.9 + 0.2 * soc / 100) + rng.normal(0, 0.05, ts.size)
    hist = History(timestamps=ts, site_load_w=load, pv_w=pv, soc_pct=soc, voltage_v=volt)
    split = ts.size - test_days * d
    # Retrained weekly on everything before, as the integration does (a model frozen for the
    # whole test span lags the heating season: its load forecast runs low week after week).
    f = corr = trained_at = None
    untrained_forecaster = DemandForecaster(slot_minutes=slot_minutes, utc_offset_s=UTC_OFFSET_S)
    # "prior_spread": what an untrained site shows (seasonal-persistence load forecast, nameplate
    # capacity, ml.sustain.PRIOR_SPREAD);
    # "true_load": the realised load in place of the forecast (a reference no forecaster reaches:
    # what is left of the P50 error once the load is known).
    results = {"persistence_pv": [], "perfect_pv": [], "prior_spread": [], "true_load": []}
    horizon = 48
    for o in range(split, ts.size - horizon, 3):
        if trained_at is None or o - trained_at >= 7 * d:
            trained_at = o
            train = hist.select(np.arange(ts.size) < o)
            f = DemandForecaster(
                slot_minutes=slot_minutes, utc_offset_s=UTC_OFFSET_S, backtest_days=0
            )
            f.fit(train, now=ts[o])
            corr = fit_sustain_correction(
                train, capacity_wh=NOMINAL_CAPACITY_WH, slot_minutes=30, utc_offset_s=UTC_OFFSET_S
            )
        recent = hist.select((ts > ts[o] - 21 * SECONDS_PER_DAY) & (ts < ts[o]))
        fc = f.predict(recent, now=ts[o], horizon_slots=horizon, slot_minutes=slot_minutes)
        untrained = untrained_forecaster.predict(
            recent, now=ts[o], horizon_slots=horizon, slot_minutes=slot_minutes
        )
        soc0 = float(rng.uniform(15.0, 100.0))
        actual_net = load[o : o + horizon] - pv[o : o + horizon]
        realised = _realised_hours(actual_net, slot_h, soc0, 10.0)
        pv_fc = pv[o - d : o - d + horizon]
        for name, load_c, pv_c, c in (
            ("persistence_pv", fc.site_w, pv_fc, corr),
            ("perfect_pv", fc.site_w, pv[o : o + horizon], corr),
            ("prior_spread", untrained.site_w, pv_fc, PRIOR_SPREAD),
            ("true_load", load[o : o + horizon], pv_fc, corr),
        ):
            est = sustain_time(
                now=ts[o],
                capacity_wh=NOMINAL_CAPACITY_WH,
                soc_pct=soc0,
                forecast_net_w=load_c - pv_c,
                forecast_pv_w=pv_c,
                slot_minutes=slot_minutes,
                correction=c,
            )
            results[name].append(
                (
                    realised,
                    est.hours_to_emergency_p10,
                    est.hours_to_emergency_p50,
                    est.hours_to_emergency_p90,
                )
            )
    out = {
        "sustain_soc_rate_factor": corr.soc_rate_factor,
        "sustain_true_rate_factor": NOMINAL_CAPACITY_WH / TRUE_CAPACITY_WH,
    }
    for name, rows in results.items():
        r = np.array(rows)
        real, p10, p50, p90 = r.T
        covered = (p10 <= real) & (real <= p90)
        finite = np.isfinite(real) & (real > 1.0)
        within = np.abs(p50[finite] - real[finite]) <= 0.15 * real[finite]
        out[f"sustain_{name}_points"] = float(len(rows))
        out[f"sustain_{name}_coverage_p10_p90"] = float(covered.mean())
        out[f"sustain_{name}_p50_within_15pct"] = float(within.mean()) if finite.any() else math.nan
        out[f"sustain_{name}_finite_points_gt_1h"] = float(finite.sum())
        rel = np.abs(p50[finite] - real[finite]) / real[finite]
        out[f"sustain_{name}_p50_median_rel_err"] = float(np.median(rel)) if finite.any() else 0.0
        signed = (p50[finite] - real[finite]) / real[finite]
        out[f"sustain_{name}_p50_median_signed_err"] = (
            float(np.median(signed)) if finite.any() else 0.0
        )
    return out


# -------------------------------------------------------------------------------------- anomaly
ZONES = ("Zone1", "Zone2", "Zone3")
LEAK_RATIO = (0.5, 3.0)  # injected leaks grow to this many times the zone's floor
LEAK_DAYS = 3  # an injected leak started this many days before the end of the scored day
RECENT_DAYS = 8  # what the integration scores (learning.ANOMALY_DAYS in the integration)
# Every type an explicit check names (the Isolation Forest's own type is not injected).
INJECTED = tuple(t for t in ANOMALY_TYPES if t != UNUSUAL_PATTERN)


def _anomaly_site(seed: int, shift_days: int = 1) -> History:
    """Three zones from the real household load (offset by days, scaled), 5-min, noisy.

    Zones of one site share its weather: a shift of a day or two keeps cold spells roughly
    common to all zones while the occupants' behaviour differs (a week apart, it does not).
    """
    rng = np.random.default_rng(seed)
    ts, load, pv = _site_days(239, 5)
    n = ts.size
    shift = shift_days * 288
    zone_p, zone_r = {}, {}
    hour = ((ts + UTC_OFFSET_S) % SECONDS_PER_DAY) / 3600
    for i, (z, scale) in enumerate(zip(ZONES, (1.0, 0.5, 0.3))):
        p = np.roll(load, i * shift) * scale
        p = np.maximum(p * (1 + rng.normal(0, 0.05, n)) + rng.normal(0, 5, n), 0.0)
        relay = np.ones(n)
        if z == "Zone3":  # shed every night 01:00-05:00: relay off, nothing drawn
            off = (hour >= 1) & (hour < 5)
            relay[off] = 0.0
            p[off] = np.abs(rng.normal(0, 0.5, off.sum()))
        zone_p[z], zone_r[z] = p, relay
    site = np.sum(list(zone_p.values()), axis=0)
    soc = _simulate_soc(site - pv, 5 / 60, 60.0, TRUE_CAPACITY_WH)
    volt = NOMINAL_V * (0.9 + 0.2 * soc / 100) - 0.02 * (site - pv) / NOMINAL_V
    volt = volt + rng.normal(0, 0.05, n)
    return History(
        timestamps=ts,
        site_load_w=site,
        pv_w=pv,
        soc_pct=soc,
        voltage_v=volt,
        zone_power_w=zone_p,
        zone_relay_on=zone_r,
    )


def _inject(
    day: History,
    kind: str,
    zone: str,
    rng: np.random.Generator,
    p99: float,
    last_day_from: int,
    leak_from: int,
    leak_ratio: float = 1.0,
):
    """A copy of the window with one labelled fault injected into its last day (a leak: into its
    last LEAK_DAYS days, from sample `leak_from`; the days before stay clean)."""
    n_all = day.size
    lo = last_day_from
    n = n_all - lo
    power = {z: v.copy() for z, v in day.zone_power_w.items()}
    relay = {z: v.copy() for z, v in day.zone_relay_on.items()}
    volt, soc = day.voltage_v.copy(), day.soc_pct.copy()
    if kind == RELAY_OFF_POWER_FLOW:  # stuck relay: reported OFF, power keeps flowing
        length = int(rng.integers(6, 36))
        on = relay[zone][lo:] > 0.5
        starts = [a for a in range(n - length) if on[a : a + length].all()]
        a = lo + int(rng.choice(starts))
        relay[zone][a : a + length] = 0.0
    elif kind == SENSOR_SPIKE:
        i = lo + int(rng.integers(5, n - 5))
        power[zone][i] += float(rng.uniform(2.0, 6.0)) * p99
    elif kind == BASE_LOAD_DRIFT:  # a leak grown over its days to `leak_ratio` x the floor
        on = relay[zone][leak_from:] > 0.5
        base = float(np.quantile(power[zone][leak_from:][on], 0.02))
        amp = leak_ratio * max(base, 40.0)
        # Behind the relay: it draws only while the relay is on.
        power[zone][leak_from:] += amp * np.linspace(0.3, 1.0, n_all - leak_from) * on
    elif kind == BOARD_SILENT:
        a = lo + int(rng.integers(0, n - 12))
        power[zone][a:] = np.nan
    elif kind == VOLTAGE_SOC_MISMATCH:  # a failing cell: voltage off by 3-8 % for 1-4 h
        a = lo + int(rng.integers(0, n - 48))
        sign = rng.choice([-1.0, 1.0])
        volt[a : a + int(rng.integers(12, 48))] += sign * NOMINAL_V * rng.uniform(0.03, 0.08)
    elif kind == IMPOSSIBLE_VALUE:
        i = lo + int(rng.integers(0, n))
        if rng.random() < 0.5:
            power[zone][i] = -float(rng.uniform(100, 2000))
        else:
            soc[i] = float(rng.choice([-5.0, 120.0]))
    return replace(day, zone_power_w=power, zone_relay_on=relay, voltage_v=volt, soc_pct=soc)


def _floor_rises(h: History, now: float) -> dict[str, tuple[float, float]]:
    """Per zone, the rise of its 2-day low floor (the detector's first drift check, in log) over
    the reference days: its own, and relative to the other zones' ("cross")."""
    c = AnomalyConfig()
    ends = drift_ends_s(now, c)
    logs = {z: log_floors(h, z, ends, c) for z in h.zones}
    out = {}
    for z in h.zones:
        cross = cross_log_ratios(logs, z)
        out[z] = (
            float(own_log_rise(logs[z])[0]),
            float(cross[0, 0] - np.nanmedian(cross[0, 1:])),
        )
    return out


def _recall_at_fpr(clean: list[float], faulty: list[float], fpr: float) -> float:
    """Share of `faulty` above the (1 - fpr) quantile of `clean` (NaN counts as not flagged)."""
    c = np.nan_to_num(np.asarray(clean), nan=-np.inf)
    f = np.nan_to_num(np.asarray(faulty), nan=-np.inf)
    return float(np.mean(f > np.quantile(c, 1.0 - fpr)))


def bench_anomaly(
    test_weeks: int, seed: int, verbose: bool = False, shift_days: int = 1, offset_weeks: int = 0
) -> dict[str, float]:
    """Per-type precision/recall/F1 on labelled injections; false-positive rate on clean days.

    Each test day is scored as the integration scores it: the RECENT_DAYS days ending with it;
    a leak is injected into the last LEAK_DAYS of them, every other fault into the last day.
    The test weeks end `offset_weeks` before the end of the series. AnomalyConfig's drift
    thresholds were tuned on the tuning splits (offset 8/16/12/20 with seed 1/2/4/3), so
    figures are honest only for the report split (offset 0, seed 0).
    """
    site = _anomaly_site(seed, shift_days)
    rng = np.random.default_rng(seed + 1)
    ts = site.timestamps
    day_idx = np.floor(ts / SECONDS_PER_DAY)
    days = np.unique(day_idx)
    first_test = days.size - 7 * (test_weeks + offset_weeks)
    counts = {k: {"tp": 0, "fp": 0, "fn": 0} for k in (*INJECTED, UNUSUAL_PATTERN)}
    clean_windows = clean_flagged = 0
    fit_s, score_s = [], []
    fp_examples: list[str] = []
    leaks: list[float] = []
    leak_hits: list[bool] = []
    # Floor rises of clean zone-days and of leaking ones, for the hindsight separability figure.
    rises_clean: list[tuple[float, float]] = []
    rises_leak: list[tuple[float, float]] = []
    keys: tuple[str | None, ...] = (*ZONES, None)
    for w in range(test_weeks):
        start_day = days[first_test + 7 * w]
        train = site.select((day_idx >= start_day - 28) & (day_idx < start_day))
        t0 = time.perf_counter()
        det = AnomalyDetector(seed=seed).fit(train)
        fit_s.append(time.perf_counter() - t0)
        p99 = {z: float(np.quantile(train.zone_power_w[z], 0.99)) for z in ZONES}
        for dd in days[first_test + 7 * w : first_test + 7 * w + 7]:
            # The integration scores its last RECENT_DAYS days; every check but the drift one
            # looks at the last day only.
            clean = site.select((day_idx > dd - RECENT_DAYS) & (day_idx <= dd))
            lo = int(np.searchsorted(clean.timestamps, dd * SECONDS_PER_DAY))
            leak_from = int(
                np.searchsorted(clean.timestamps, (dd + 1 - LEAK_DAYS) * SECONDS_PER_DAY)
            )
            now = (dd + 1) * SECONDS_PER_DAY
            rises_clean += _floor_rises(clean, now).values()
            cases: list[tuple[History, tuple[str | None, str] | None]] = [(clean, None)]
            for kind in INJECTED:  # every type on every test day, in a random zone
                zone = str(rng.choice(ZONES))
                ratio = float(rng.uniform(*LEAK_RATIO))
                day = _inject(clean, kind, zone, rng, p99[zone], lo, leak_from, ratio)
                if kind == BASE_LOAD_DRIFT:
                    leaks.append(ratio)
                    rises_leak.append(_floor_rises(day, now)[zone])
                site_level = kind == VOLTAGE_SOC_MISMATCH or (
                    kind == IMPOSSIBLE_VALUE and ((day.soc_pct < 0) | (day.soc_pct > 100)).any()
                )
                cases.append((day, (None if site_level else zone, kind)))
            for day, label in cases:
                t0 = time.perf_counter()
                found = det.score(day, now=now)
                score_s.append(time.perf_counter() - t0)
                got = {(a.zone_id, a.type) for a in found}
                if label is not None and label[1] == BASE_LOAD_DRIFT:
                    leak_hits.append(label in got)
                for key in keys:
                    want = {label[1]} if label is not None and label[0] == key else set()
                    have = {t for z, t in got if z == key}
                    if label is None:
                        clean_windows += 1
                        clean_flagged += bool(have)
                    for t, c in counts.items():
                        c["tp"] += (t in want) and (t in have)
                        c["fn"] += (t in want) and (t not in have)
                        if (t not in want) and (t in have):
                            c["fp"] += 1
                            fp_examples.append(f"{t}@{key} injected={label}")
    out: dict[str, float] = {}
    for t, c in counts.items():
        prec = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else math.nan
        rec = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else math.nan
        f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else math.nan
        out[f"anomaly_{t}_n"] = float(c["tp"] + c["fn"])
        out[f"anomaly_{t}_precision"] = prec
        out[f"anomaly_{t}_recall"] = rec
        out[f"anomaly_{t}_f1"] = f1
        out[f"anomaly_{t}_fp"] = float(c["fp"])
    lr, lh = np.array(leaks), np.array(leak_hits)
    for a, b in ((0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0)):
        sel = (lr >= a) & (lr < b)
        out[f"anomaly_drift_recall_leak_{a:g}-{b:g}x_floor"] = (
            float(lh[sel].mean()) if sel.any() else math.nan
        )
    # Hindsight: with its threshold set on these very days, how many leaks would a single floor
    # statistic catch at 1 % false positives per clean zone-day? (An upper reference for a
    # floor-based detector on this split, not a detector.)
    for i, name in enumerate(("own", "cross")):
        out[f"anomaly_drift_hindsight_{name}_recall_1pct_fpr"] = _recall_at_fpr(
            [r[i] for r in rises_clean], [r[i] for r in rises_leak], 0.01
        )
    out["anomaly_clean_windows"] = float(clean_windows)
    if verbose:
        for e in fp_examples:
            print("false positive:", e)
    out["anomaly_false_positive_rate"] = clean_flagged / max(clean_windows, 1)
    out["anomaly_fit_s_median"] = statistics.median(fit_s)
    out["anomaly_score_ms_median"] = statistics.median(score_s) * 1000
    return out


# --------------------------------------------------------------------------------------- timings
def bench_timings(seed: int) -> dict[str, float]:
    """train_all on one year of 5-min history (3 zones), forecast latency and model size."""
    site = _anomaly_site(seed)
    n_year = 365 * 288
    reps = int(np.ceil(n_year / site.size))
    ts = site.timestamps[0] + 300.0 * np.arange(n_year)

    def year(a: np.ndarray) -> np.ndarray:
        return np.tile(a, reps)[:n_year]

    hist = History(
        timestamps=ts,
        site_load_w=year(site.site_load_w),
        pv_w=year(site.pv_w),
        soc_pct=year(site.soc_pct),
        voltage_v=year(site.voltage_v),
        zone_power_w={z: year(v) for z, v in site.zone_power_w.items()},
        zone_relay_on={z: year(v) for z, v in site.zone_relay_on.items()},
    )
    now = ts[-1] + 300.0
    t0, c0 = time.perf_counter(), time.process_time()
    models = train_all(
        hist, now=now, capacity_wh=NOMINAL_CAPACITY_WH, slot_minutes=30, utc_offset_s=UTC_OFFSET_S
    )
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    # With an outdoor temperature the site's back-test runs twice (with and without it). The
    # series is synthetic (seasonal and daily swings plus noise): this row times, it does not
    # score.
    day_s = ts / SECONDS_PER_DAY
    warm = np.random.default_rng(seed).normal(0.0, 1.0, ts.size)
    temperature = 10 + 8 * np.sin(day_s / 365 * 2 * np.pi) + 4 * np.sin(day_s * 2 * np.pi) + warm
    warm_s = {}
    for name, h in (("without", hist), ("with", replace(hist, temperature_c=temperature))):
        t0 = time.perf_counter()  # after the first run: scikit-learn is imported, threads found
        train_all(
            h, now=now, capacity_wh=NOMINAL_CAPACITY_WH, slot_minutes=30, utc_offset_s=UTC_OFFSET_S
        )
        warm_s[name] = time.perf_counter() - t0
    recent = hist.select(ts > now - 15 * SECONDS_PER_DAY)
    lat, site_only = [], []
    site_recent = replace(recent, zone_power_w={}, zone_relay_on={})
    for _ in range(30):
        t0 = time.perf_counter()
        models.demand.predict(recent, now=now, horizon_slots=48, slot_minutes=30)
        lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        models.demand.predict(site_recent, now=now, horizon_slots=48, slot_minutes=30)
        site_only.append(time.perf_counter() - t0)
    lat_sustain = []
    for _ in range(30):
        t0 = time.perf_counter()
        sustain_time(
            now=now,
            capacity_wh=NOMINAL_CAPACITY_WH,
            soc_pct=70.0,
            forecast_net_w=np.full(48, 500.0),
            slot_minutes=30,
            correction=models.sustain,
        )
        lat_sustain.append(time.perf_counter() - t0)
    blob = dumps(models)
    return {
        "train_all_1y_5min_3zones_s": train_s,
        "train_all_1y_5min_3zones_cpu_s": train_cpu_s,
        "train_all_1y_5min_3zones_warm_s": warm_s["without"],
        "train_all_1y_5min_3zones_warm_with_temperature_s": warm_s["with"],
        "train_rows": float(models.report.rows),
        "backtest_mae_w": float(models.report.mae_backtest or math.nan),
        "forecast_site_and_3_zones_ms_median": statistics.median(lat) * 1000,
        "forecast_site_only_ms_median": statistics.median(site_only) * 1000,
        "sustain_ms_median": statistics.median(lat_sustain) * 1000,
        "model_size_bytes": float(len(blob)),
    }


def main() -> None:
    """Run every part and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer weeks and points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="list anomaly false positives")
    parser.add_argument(
        "--demand-weeks",
        type=int,
        default=8,
        help="held-out weeks at the end of the load series (30: all but 4)",
    )
    parser.add_argument(
        "--zone-shift-days",
        type=int,
        default=1,
        help="anomaly zones are the household load shifted by this many days",
    )
    parser.add_argument(
        "--anomaly-offset-weeks",
        type=int,
        default=0,
        help="anomaly test weeks end this many weeks before the series end "
        "(0: the report split; thresholds were tuned on 8/16/12/20 with "
        "--seed 1/2/4/3)",
    )
    parser.add_argument("--only", choices=["demand", "sustain", "anomaly", "timings"])
    parser.add_argument(
        "--print-sustain-prior",
        action="store_true",
        help="print the error quantiles behind ml.sustain.PRIOR_SPREAD and exit",
    )
    args = parser.parse_args()
    if args.print_sustain_prior:
        prior = sustain_prior()
        for name in ("knots_h", *(f"{s}_err_q{q}" for s in ("load", "pv") for q in (10, 50, 90))):
            print(f"{name}={tuple(round(v, 3) for v in getattr(prior, name))},")
        return
    parts = {
        "demand": lambda: bench_demand(
            weeks=2 if args.quick else args.demand_weeks, origin_every_h=6 if args.quick else 3
        ),
        "sustain": lambda: bench_sustain(test_days=14 if args.quick else 56, seed=args.seed),
        "anomaly": lambda: bench_anomaly(
            test_weeks=2 if args.quick else 8,
            seed=args.seed,
            verbose=args.verbose,
            shift_days=args.zone_shift_days,
            offset_weeks=args.anomaly_offset_weeks,
        ),
        "timings": lambda: bench_timings(seed=args.seed),
    }
    cmd = "python -m bench.ml" + (" --quick" if args.quick else "") + f" --seed {args.seed}"
    cmd += f" --demand-weeks {args.demand_weeks} --zone-shift-days {args.zone_shift_days}"
    cmd += f" --anomaly-offset-weeks {args.anomaly_offset_weeks}"
    print(f"# {cmd}" + (f" --only {args.only}" if args.only else ""))
    if args.only in (None, "anomaly"):
        split = "REPORT" if args.anomaly_offset_weeks == 0 and args.seed == 0 else "TUNING"
        print(
            f"# anomaly: {split} split (drift thresholds tuned on --anomaly-offset-weeks "
            "8/16/12/20 with --seed 1/2/4/3; report figures: offset 0, seed 0)"
        )
    for name, fn in parts.items():
        if args.only and name != args.only:
            continue
        t0 = time.perf_counter()
        figures = fn()
        print(f"\n## {name} ({time.perf_counter() - t0:.1f} s)")
        for k, v in figures.items():
            print(f"{k:48s} {v:12.4f}")


if __name__ == "__main__":
    main()
