"""Anomaly detector: each injected fault is caught with its type; clean data stays quiet."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest

from ml.anomaly import (
    BASE_LOAD_DRIFT,
    BOARD_SILENT,
    IMPOSSIBLE_VALUE,
    RELAY_OFF_POWER_FLOW,
    SENSOR_SPIKE,
    UNUSUAL_PATTERN,
    VOLTAGE_SOC_MISMATCH,
    AnomalyConfig,
    AnomalyDetector,
    ZoneStats,
)

from .synth import DAY_S, START_S, site_history

HOUR = 12  # 5-minute samples per hour


@pytest.fixture(scope="module")
def detector() -> AnomalyDetector:
    train = site_history(days=7, seed=1)
    # Zone2 is switched off every night 01:00-05:00 in training, drawing nothing.
    relay = train.zone_relay_on["Zone2"].copy()
    hour = (train.timestamps % DAY_S) / 3600
    off = (hour >= 1) & (hour < 5)
    relay[off] = 0.0
    power = train.zone_power_w["Zone2"].copy()
    power[off] = 0.0
    train = replace(
        train,
        zone_relay_on={**train.zone_relay_on, "Zone2": relay},
        zone_power_w={**train.zone_power_w, "Zone2": power},
    )
    return AnomalyDetector().fit(train)


def _day(seed: int = 7):
    return site_history(days=1, seed=seed, start_s=START_S + 8 * DAY_S)


def _types(detector, h, now=None):
    now = h.timestamps[-1] + 300 if now is None else now
    return {(a.zone_id, a.type) for a in detector.score(h, now=now)}


@pytest.mark.parametrize("seed", [7, 8, 9, 10])
def test_clean_days_raise_nothing(detector, seed) -> None:
    assert _types(detector, _day(seed)) == set()


def _with_zone(h, zone, power=None, relay=None):
    return replace(
        h,
        zone_power_w={**h.zone_power_w, zone: h.zone_power_w[zone] if power is None else power},
        zone_relay_on={**h.zone_relay_on, zone: h.zone_relay_on[zone] if relay is None else relay},
    )


def test_relay_off_while_power_flows(detector) -> None:
    h = _day()
    relay = h.zone_relay_on["Zone1"].copy()
    relay[100:124] = 0.0  # reported OFF for two hours, but power keeps flowing (stuck relay)
    found = detector.score(_with_zone(h, "Zone1", relay=relay), now=h.timestamps[-1] + 300)
    hit = [a for a in found if a.type == RELAY_OFF_POWER_FLOW]
    assert [a.zone_id for a in hit] == ["Zone1"] and hit[0].score > 1
    assert hit[0].at == h.timestamps[100]


def test_relay_off_with_no_power_is_normal(detector) -> None:
    h = _day()
    relay = h.zone_relay_on["Zone1"].copy()
    power = h.zone_power_w["Zone1"].copy()
    relay[100:124] = 0.0
    power[100:124] = 0.0
    assert _types(detector, _with_zone(h, "Zone1", power=power, relay=relay)) == set()


def test_sensor_spike(detector) -> None:
    h = _day()
    power = h.zone_power_w["Zone2"].copy()
    power[150] = 3_000.0
    assert (("Zone2", SENSOR_SPIKE)) in _types(detector, _with_zone(h, "Zone2", power=power))


def test_base_load_drift_over_days(detector) -> None:
    h = site_history(days=3, seed=7, start_s=START_S + 8 * DAY_S)
    assert _types(detector, h) == set()
    leak = np.linspace(70.0, 120.0, h.size)  # a leak growing to 120 W on a ~60 W floor
    found = _types(detector, _with_zone(h, "Zone1", power=h.zone_power_w["Zone1"] + leak))
    assert found == {("Zone1", BASE_LOAD_DRIFT)}


def test_drift_needs_days_of_data(detector) -> None:
    h = _day()
    power = h.zone_power_w["Zone1"] + 120.0
    assert _types(detector, _with_zone(h, "Zone1", power=power)) == set()


def test_isolation_forest_scores_ride_along_and_its_type_is_opt_in(detector) -> None:
    h = _day()
    power = h.zone_power_w["Zone2"].copy()
    power[150] = 3_000.0
    h = _with_zone(h, "Zone2", power=power)
    found = detector.score(h, now=h.timestamps[-1] + 300)
    assert all("isolation_score" in a.detail for a in found if a.zone_id == "Zone2")
    opt_in = AnomalyDetector(config=AnomalyConfig(emit_unusual_pattern=True))
    opt_in.zone_stats, opt_in.forest = detector.zone_stats, detector.forest
    opt_in.forest_threshold = detector.forest_threshold
    types = {a.type for a in opt_in.score(h, now=h.timestamps[-1] + 300)}
    assert UNUSUAL_PATTERN in types


def test_board_silent(detector) -> None:
    h = _day()
    power = h.zone_power_w["Zone2"].copy()
    power[200:] = np.nan  # stops reporting at ~16:40
    found = detector.score(_with_zone(h, "Zone2", power=power), now=h.timestamps[-1] + 300)
    silent = [a for a in found if a.type == BOARD_SILENT]
    assert [a.zone_id for a in silent] == ["Zone2"]
    assert silent[0].at == h.timestamps[199]


def test_voltage_inconsistent_with_soc(detector) -> None:
    h = _day()
    v = h.voltage_v.copy()
    v[60:80] += 0.6  # the voltage says full while SoC says half
    assert (None, VOLTAGE_SOC_MISMATCH) in _types(detector, replace(h, voltage_v=v))


def test_impossible_values(detector) -> None:
    h = _day()
    soc = h.soc_pct.copy()
    soc[10] = 130.0
    pv = h.pv_w.copy()
    pv[5] = 800.0  # full sun at 00:25 UTC
    power = h.zone_power_w["Zone1"].copy()
    power[40] = -500.0
    types = _types(detector, _with_zone(replace(h, soc_pct=soc, pv_w=pv), "Zone1", power=power))
    assert {(None, IMPOSSIBLE_VALUE), ("Zone1", IMPOSSIBLE_VALUE)} <= types
    found = detector.score(replace(h, pv_w=pv), now=h.timestamps[-1])
    details = {a.detail.get("check") for a in found}
    assert "pv_vs_time_of_day" in details


def test_unfitted_detector_still_checks_physics() -> None:
    h = _day()
    power = h.zone_power_w["Zone1"].copy()
    power[3] = -1_000.0
    types = _types(AnomalyDetector(), _with_zone(h, "Zone1", power=power))
    assert types == {("Zone1", IMPOSSIBLE_VALUE)}


def test_empty_history_trains_and_reports_every_zone_silent() -> None:
    from ml.history import empty_history

    h = empty_history(("Zone1",))
    found = AnomalyDetector().fit(h).score(h, now=1e9)
    assert [(a.zone_id, a.type) for a in found] == [("Zone1", BOARD_SILENT)]


def _three_days(seed: int = 7):
    return site_history(days=3, seed=seed, start_s=START_S + 8 * DAY_S)


def test_drift_must_persist_over_days(detector) -> None:
    h = _three_days()
    last_day = h.timestamps >= h.timestamps[-1] - DAY_S + 300
    # The same 60 W rise on the last day only (a cold night, a guest): not a leak.
    brief = h.zone_power_w["Zone1"] + 60.0 * last_day
    assert _types(detector, _with_zone(h, "Zone1", power=brief)) == set()
    # Held for all three days it is.
    held = h.zone_power_w["Zone1"] + 60.0
    assert _types(detector, _with_zone(h, "Zone1", power=held)) == {("Zone1", BASE_LOAD_DRIFT)}


def test_drift_shared_by_every_zone_is_the_weather(detector) -> None:
    h = _three_days()
    cold = {z: p * 1.8 for z, p in h.zone_power_w.items()}  # every floor up 80 %
    assert BASE_LOAD_DRIFT not in {t for _, t in _types(detector, replace(h, zone_power_w=cold))}
    alone = {**h.zone_power_w, "Zone1": h.zone_power_w["Zone1"] * 1.8}
    found = detector.score(replace(h, zone_power_w=alone), now=h.timestamps[-1] + 300)
    drift = [a for a in found if a.type == BASE_LOAD_DRIFT]
    assert [a.zone_id for a in drift] == ["Zone1"]
    assert drift[0].score > 1 and drift[0].detail["rise_w"] > 10.0


def test_drift_stats_survive_the_model_store(detector) -> None:
    from dataclasses import asdict

    stats = detector.zone_stats["Zone1"]
    assert len(stats.drift_log_offset) == len(stats.drift_log_scale) == 4
    assert all(s > 0 for s in stats.drift_log_scale)
    # ml/store.py saves ZoneStats and AnomalyConfig as asdict() and rebuilds them with **.
    assert ZoneStats(**asdict(stats)) == stats
    assert AnomalyConfig(**asdict(detector.config)) == detector.config


def test_zone_without_drift_stats_is_not_judged(detector) -> None:
    h = _three_days()
    held = _with_zone(h, "Zone1", power=h.zone_power_w["Zone1"] + 200.0)
    bare = AnomalyDetector()
    bare.zone_stats = {
        z: replace(s, drift_log_offset=(), drift_log_scale=())
        for z, s in detector.zone_stats.items()
    }
    assert BASE_LOAD_DRIFT not in {a.type for a in bare.score(held, now=h.timestamps[-1] + 300)}


def test_slow_rise_in_one_zone_is_drift_but_a_seasonal_rise_is_not(detector) -> None:
    h = _three_days()
    rise = np.linspace(0.0, 1.0, h.size)
    leak = h.zone_power_w["Zone1"] + 30.0 + 70.0 * rise  # a leak growing to 100 W over 3 days
    assert _types(detector, _with_zone(h, "Zone1", power=leak)) == {("Zone1", BASE_LOAD_DRIFT)}
    # Autumn: every zone's load creeps up together, by up to 60 %.
    season = {z: p * (1.2 + 0.4 * rise) for z, p in h.zone_power_w.items()}
    found = _types(detector, replace(h, zone_power_w=season))
    assert BASE_LOAD_DRIFT not in {t for _, t in found}


def test_a_dropout_elsewhere_is_not_a_rise_here(detector) -> None:
    h = _three_days()
    power = h.zone_power_w["Zone2"].copy()
    power[400:450] = 0.0  # Zone2 reads zero for 4 hours (a board dropout or a power cut)
    found = _types(detector, _with_zone(h, "Zone2", power=power))
    assert BASE_LOAD_DRIFT not in {t for _, t in found}


def _week(seed: int = 7):
    """What the integration scores: its last ANOMALY_DAYS (8) days."""
    return site_history(days=8, seed=seed, start_s=START_S + 8 * DAY_S)


def _local_only(detector: AnomalyDetector) -> AnomalyDetector:
    """The fitted detector without the settled-leak fallback: drift needs the local reference."""
    local = copy.copy(detector)
    local.config = replace(detector.config, drift_settled_sigmas=float("inf"))
    return local


def _ramp_over_last_days(h, days: float = 3.0) -> np.ndarray:
    """0 before the last `days`, then 0.3 rising to 1.0 (a leak that began `days` ago)."""
    start = h.timestamps[-1] + 300 - days * DAY_S
    on = h.timestamps >= start
    return np.where(on, 0.3 + 0.7 * (h.timestamps - start) / (days * DAY_S), 0.0)


def test_leak_rising_over_the_last_days_of_a_week_is_drift(detector) -> None:
    h = _week()
    local = _local_only(detector)
    assert _types(local, h) == set()
    leak = h.zone_power_w["Zone1"] + 80.0 * _ramp_over_last_days(h)
    found = local.score(_with_zone(h, "Zone1", power=leak), now=h.timestamps[-1] + 300)
    assert [(a.zone_id, a.type) for a in found] == [("Zone1", BASE_LOAD_DRIFT)]
    assert found[0].detail["rise_w"] > 10.0


def test_the_same_rise_in_every_zone_of_a_week_is_not_drift(detector) -> None:
    h = _week()
    ramp = _ramp_over_last_days(h)
    cold = {z: p * (1.0 + 0.8 * ramp) for z, p in h.zone_power_w.items()}
    found = _types(detector, replace(h, zone_power_w=cold))
    assert BASE_LOAD_DRIFT not in {t for _, t in found}


def test_a_dropout_in_a_week_is_not_drift(detector) -> None:
    h = _week()
    for zone in ("Zone1", "Zone2"):
        power = h.zone_power_w[zone].copy()
        power[-600:-550] = 0.0  # reads zero for 4 hours two days ago (a dropout, a power cut)
        assert BASE_LOAD_DRIFT not in {t for _, t in _types(detector, _with_zone(h, zone, power))}


def test_a_leak_older_than_the_reference_still_shows(detector) -> None:
    h = _week()
    held = _with_zone(h, "Zone1", power=h.zone_power_w["Zone1"] + 150.0)  # all week long
    assert BASE_LOAD_DRIFT not in {t for _, t in _types(_local_only(detector), held)}
    assert _types(detector, held) == {("Zone1", BASE_LOAD_DRIFT)}
