"""Feature engineering: calendar terms, lags, rolling means, no look-ahead."""

from __future__ import annotations

import warnings

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from ml.features import (
    DEMAND_FEATURE_NAMES,
    SeriesContext,
    calendar_features,
    demand_features,
    lag,
    seasonal_persistence,
    trailing_mean,
)

MONDAY_S = 1_700_438_400.0  # 2023-11-20 00:00 UTC, a Monday


def test_calendar_is_cyclic_and_knows_the_weekday() -> None:
    c = calendar_features(np.array([MONDAY_S, MONDAY_S + 7 * 86_400, MONDAY_S + 5 * 86_400]))
    np.testing.assert_allclose(c[0], c[1], atol=1e-9)  # same hour, same weekday a week later
    assert c[0, 6] == 0.0 and c[2, 6] == 1.0  # Saturday is weekend
    shifted = calendar_features(np.array([MONDAY_S]), utc_offset_s=3 * 3600)
    assert shifted[0, 0] == pytest.approx(np.sin(2 * np.pi * 3 / 24))


def test_lag_and_trailing_mean_handle_edges_and_missing() -> None:
    s = np.array([1.0, np.nan, 3.0, 5.0])
    lagged = lag(s, 2)
    assert np.isnan(lagged[:2]).all() and lagged[2] == 1.0
    m = trailing_mean(s, 2)
    assert m[0] == 1.0 and m[1] == 1.0 and m[2] == 3.0 and m[3] == 4.0
    assert np.isnan(trailing_mean(np.array([np.nan]), 3)[0])


def _ctx(load: np.ndarray) -> SeriesContext:
    n = load.size
    return SeriesContext(
        grid_start_s=MONDAY_S,
        slot_s=3600.0,
        load_w=load,
        pv_w=np.zeros(n),
        relay_on_fraction=np.ones(n),
    )


@settings(max_examples=25, deadline=None)
@given(origin=st.integers(30, 80), step=st.integers(1, 48), seed=st.integers(0, 1000))
def test_features_never_look_past_the_origin(origin: int, step: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    load = rng.uniform(0, 100, 200)
    changed = load.copy()
    changed[origin + 1 :] = rng.uniform(1000, 2000, 200 - origin - 1)
    a = demand_features(_ctx(load), np.array([origin]), np.array([step]))
    b = demand_features(_ctx(changed), np.array([origin]), np.array([step]))
    np.testing.assert_array_equal(a, b)


def test_features_have_one_named_column_each_and_refuse_step_zero() -> None:
    x = demand_features(_ctx(np.ones(60)), np.array([40]), np.array([3]))
    assert x.shape == (1, len(DEMAND_FEATURE_NAMES))
    with pytest.raises(ValueError):
        demand_features(_ctx(np.ones(60)), np.array([40]), np.array([0]))


def test_seasonal_persistence_repeats_a_periodic_day() -> None:
    day = np.arange(24, dtype=float) * 10
    load = np.tile(day, 5)
    pred = seasonal_persistence(_ctx(load), np.full(30, 119), np.arange(1, 31))
    np.testing.assert_allclose(pred, np.tile(day, 3)[:30])


@settings(max_examples=25, deadline=None)
@given(step=st.integers(1, 48), seed=st.integers(0, 1000))
def test_anchor_profile_is_a_median_of_past_days_and_weekdays(step: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    load = rng.uniform(0, 100, 30 * 24)
    load[rng.random(load.size) < 0.1] = np.nan
    origin = 29 * 24 - 1
    x = demand_features(_ctx(load), np.array([origin]), np.array([step]))[0]
    target = origin + step
    day = target - 24 * int(np.ceil(step / 24))
    week = target - 24 * 7 * int(np.ceil(step / (24 * 7)))
    past = [load[day - m * 24] for m in range(7)]
    col = DEMAND_FEATURE_NAMES.index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanmedian([*past, load[week - 7 * 24], load[week - 14 * 24]])
        q25, q75 = np.nanpercentile(past, [25, 75])
    np.testing.assert_allclose(x[col("profile_anchor_w")], want)
    np.testing.assert_allclose(x[col("profile_q25_w")], q25)
    np.testing.assert_allclose(x[col("profile_q75_w")], q75)
    changed = load.copy()
    changed[origin + 1 :] = 5000.0
    np.testing.assert_array_equal(
        x, demand_features(_ctx(changed), np.array([origin]), np.array([step]))[0]
    )
