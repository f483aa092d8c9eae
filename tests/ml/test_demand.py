"""Demand forecaster: fallback, regression, no look-ahead, slot conversion, clear errors."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from ml.demand import METHOD_PERSISTENCE, METHOD_REGRESSION, DemandForecaster
from ml.features import DEMAND_FEATURE_NAMES
from ml.history import empty_history

from .synth import DAY_S, site_history


def _truth(now: float, slots: int, seed: int = 99) -> np.ndarray:
    """The noiseless site load the synthetic site would draw after `now` (30-min means)."""
    h = site_history(days=3, slot_s=1800.0, noise_w=0.0, seed=seed, start_s=now)
    return h.site_load_w[:slots]


def test_fallback_before_a_week_of_history_repeats_recent_days() -> None:
    h = site_history(days=3, slot_s=1800.0, noise_w=0.0)
    now = h.timestamps[-1] + 1800.0
    f = DemandForecaster(slot_minutes=30)
    report = f.fit(h, now=now)
    assert report.method == METHOD_PERSISTENCE and report.rows == 0
    fc = f.predict(h, now=now, horizon_slots=48, slot_minutes=30)
    assert fc.method == METHOD_PERSISTENCE
    # History is Wed-Fri, the forecast day a Saturday (its shape is 15 % higher).
    expected = h.site_load_w[-48:]
    assert np.all(np.abs(fc.site_w - expected) <= 0.2 * expected)
    assert set(fc.zone_w) == {"Zone1", "Zone2"}


def test_regression_after_enough_history_tracks_the_daily_shape() -> None:
    h = site_history(days=16, slot_s=1800.0, noise_w=15.0)
    now = h.timestamps[-1] + 1800.0
    f = DemandForecaster(slot_minutes=30, max_iter=60)
    report = f.fit(h, now=now)
    assert report.method == METHOD_REGRESSION and report.rows > 1000
    assert report.mae_backtest is not None and report.mae_backtest < 40.0
    assert report.mae_persistence_backtest is not None
    assert report.skill == pytest.approx(1 - report.mae_backtest / report.mae_persistence_backtest)
    fc = f.predict(h, now=now, horizon_slots=48, slot_minutes=30)
    truth = _truth(now, 48)
    assert np.mean(np.abs(fc.site_w - truth)) < 30.0  # noise is 15 W per zone
    assert np.all(fc.site_w >= 0)
    np.testing.assert_allclose(fc.slot_start, now + 1800.0 * np.arange(48))


def test_data_after_now_is_ignored() -> None:
    h = site_history(days=4, slot_s=1800.0)
    now = h.timestamps[-1] - DAY_S
    f = DemandForecaster(slot_minutes=30)
    f.fit(h, now=now)
    a = f.predict(h, now=now, horizon_slots=12, slot_minutes=30)
    b = f.predict(h.before(now), now=now, horizon_slots=12, slot_minutes=30)
    np.testing.assert_array_equal(a.site_w, b.site_w)


def test_coarser_output_slots_are_time_weighted_means() -> None:
    h = site_history(days=4, slot_s=1800.0)
    now = h.timestamps[-1] + 1800.0  # on a whole hour
    f = DemandForecaster(slot_minutes=30)
    half = f.predict(h, now=now, horizon_slots=8, slot_minutes=30).site_w
    hourly = f.predict(h, now=now, horizon_slots=4, slot_minutes=60).site_w
    np.testing.assert_allclose(hourly, half.reshape(4, 2).mean(axis=1))


def test_no_history_or_bad_arguments_give_a_clear_error() -> None:
    f = DemandForecaster()
    with pytest.raises(ValueError, match="no history"):
        f.predict(empty_history(), now=1e9, horizon_slots=4, slot_minutes=30)
    h = site_history(days=1, slot_s=1800.0)
    with pytest.raises(ValueError):
        f.predict(h, now=h.timestamps[-1], horizon_slots=0, slot_minutes=30)
    with pytest.raises(ValueError):
        DemandForecaster(slot_minutes=0)


def test_importing_forecast_and_sustain_does_not_import_sklearn() -> None:
    code = (
        "import sys, ml.demand, ml.sustain, ml.anomaly, ml.store, ml.features;"
        "print(any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    assert out.stdout.strip() == "False"


def test_a_zone_without_measurements_forecasts_zero_not_nan(caplog) -> None:
    from dataclasses import replace

    h = site_history(days=2, slot_s=1800.0)
    h = replace(h, zone_power_w={**h.zone_power_w, "Zone2": np.full(h.size, np.nan)})
    f = DemandForecaster()
    with caplog.at_level(logging.DEBUG, logger="ml.demand"):
        fc = f.predict(h, now=h.timestamps[-1] + 1, horizon_slots=4, slot_minutes=30)
    assert np.all(fc.zone_w["Zone2"] == 0.0)
    assert np.all(np.isfinite(fc.site_w)) and np.all(fc.zone_w["Zone1"] > 0)
    # A zone that has not run yet is normal, and this runs every 5 minutes: no warning spam.
    assert "Zone2" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _heated_site(days: int = 60, seed: int = 5):
    """A site whose load rises 60 W per degree below 16 °C, under day-to-day weather."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    h = site_history(days=days, slot_s=1800.0, noise_w=10.0, zones=())
    daily = np.cumsum(rng.normal(0.0, 2.5, days)) + 8.0
    hour = (h.timestamps % DAY_S) / 3600.0
    temp = np.repeat(daily, 48)[: h.size] + 4.0 * np.sin((hour - 9.0) / 24.0 * 2.0 * np.pi)
    load = h.site_load_w + 60.0 * np.maximum(16.0 - temp, 0.0)
    return replace(h, site_load_w=load, temperature_c=temp)


def test_temperature_is_used_when_the_held_out_week_says_it_helps() -> None:
    from dataclasses import replace

    h = _heated_site()
    now = h.timestamps[-1] + 1800.0
    with_t = DemandForecaster(slot_minutes=30, backtest_days=14).fit(h, now=now)
    assert with_t.uses_temperature
    assert with_t.mae_backtest < 0.95 * with_t.mae_backtest_without_temperature
    blind = DemandForecaster(slot_minutes=30, backtest_days=14)
    report = blind.fit(replace(h, temperature_c=None), now=now)
    assert not report.uses_temperature and report.mae_backtest_without_temperature is None
    assert report.mae_backtest == pytest.approx(with_t.mae_backtest_without_temperature)


def test_temperature_that_does_not_help_is_left_out() -> None:
    from dataclasses import replace

    h = _heated_site()
    now = h.timestamps[-1] + 1800.0
    temperature = set(np.flatnonzero([n.startswith("temperature") for n in DEMAND_FEATURE_NAMES]))
    used = 0
    for seed in range(11, 19):
        # The same site, but the "temperature" is noise unrelated to the load: one held-out
        # week can still favour it by chance, but rarely.
        noise = np.random.default_rng(seed).normal(10.0, 5.0, h.size)
        f = DemandForecaster(slot_minutes=30, backtest_days=14)
        report = f.fit(replace(h, temperature_c=noise), now=now)
        used += report.uses_temperature
        if not report.uses_temperature:
            assert report.mae_backtest == pytest.approx(report.mae_backtest_without_temperature)
            assert not temperature & set(f.models["site"].columns.tolist())
    assert used <= 2
