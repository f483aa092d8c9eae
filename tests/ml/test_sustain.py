"""Sustain time: energy balance in hours, quantiles, learned correction."""

from __future__ import annotations

from dataclasses import replace
import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from ml.sustain import (
    PRIOR_SPREAD,
    SustainCorrection,
    fit_soc_rate_factor,
    fit_sustain_correction,
    sustain_time,
    with_prior_spread,
)

from .synth import site_history

NOW = 1_700_006_400.0  # on a slot boundary


def _est(**kw):
    args = {
        "now": NOW,
        "capacity_wh": 10_000.0,
        "soc_pct": 50.0,
        "forecast_net_w": np.full(96, 500.0),
        "slot_minutes": 30,
    }
    return sustain_time(**{**args, **kw})


def test_constant_load_drains_at_the_energy_balance_rate() -> None:
    e = _est()
    # 40 % of 10 kWh above the 10 % band at 500 W: 8 h; 50 % to empty: 10 h.
    assert e.hours_to_emergency_p50 == pytest.approx(8.0)
    assert e.hours_to_empty_p50 == pytest.approx(10.0)
    assert e.usable_wh == pytest.approx(4_000.0)
    assert e.hours_to_emergency_p10 == e.hours_to_emergency_p90 == e.hours_to_emergency_p50


@settings(max_examples=30, deadline=None)
@given(
    capacity_wh=st.floats(500.0, 50_000.0),
    factor=st.floats(1.1, 4.0),
    soc=st.floats(15.0, 100.0),
    load_w=st.floats(50.0, 2_000.0),
)
def test_hours_scale_with_capacity(capacity_wh, factor, soc, load_w) -> None:
    net = np.full(20_000, load_w)
    a = _est(capacity_wh=capacity_wh, soc_pct=soc, forecast_net_w=net)
    b = _est(capacity_wh=capacity_wh * factor, soc_pct=soc, forecast_net_w=net)
    assert b.hours_to_emergency_p50 == pytest.approx(factor * a.hours_to_emergency_p50, rel=1e-6)
    assert b.hours_to_empty_p50 == pytest.approx(factor * a.hours_to_empty_p50, rel=1e-6)
    # Hours, not percent: energy over power.
    assert a.hours_to_empty_p50 == pytest.approx(capacity_wh * soc / 100 / load_w, rel=1e-6)


def test_never_reached_within_the_horizon_is_infinite_and_below_band_is_zero() -> None:
    e = _est(forecast_net_w=np.full(48, -200.0))
    assert math.isinf(e.hours_to_emergency_p50) and math.isinf(e.hours_to_empty_p90)
    assert e.horizon_h == pytest.approx(24.0)
    low = _est(soc_pct=5.0)
    assert low.hours_to_emergency_p50 == 0.0 and low.hours_to_empty_p50 == pytest.approx(1.0)


def test_charging_stops_at_full_and_a_partial_first_slot_counts_what_is_left() -> None:
    # 2 h of 5 kW surplus fill the battery (no more), then 1 kW drains 9 kWh to the band.
    net = np.concatenate([np.full(4, -5_000.0), np.full(40, 1_000.0)])
    e = _est(soc_pct=90.0, forecast_net_w=net)
    assert e.hours_to_emergency_p50 == pytest.approx(2.0 + 9.0)
    later = _est(now=NOW + 900, forecast_net_w=np.full(48, 500.0))
    assert later.hours_to_emergency_p50 == pytest.approx(8.0)
    assert later.horizon_h == pytest.approx(23.75)


def test_correction_orders_the_quantiles_and_moves_only_the_tails() -> None:
    corr = SustainCorrection(
        knots_h=(4.0, 12.0),
        load_err_q10=(-0.2, -0.2),
        load_err_q50=(0.0, 0.0),
        load_err_q90=(0.2, 0.2),
        pv_err_q10=(-0.5, -0.5),
        pv_err_q50=(0.0, 0.0),
        pv_err_q90=(0.5, 0.5),
    )
    e = _est(correction=corr)
    assert e.hours_to_emergency_p10 < e.hours_to_emergency_p50 < e.hours_to_emergency_p90
    assert e.hours_to_emergency_p50 == pytest.approx(8.0)
    # No PV: the load runs 20 % high or low, so 4 kWh last 8 / 1.2 or 8 / 0.8 hours.
    assert e.hours_to_emergency_p10 == pytest.approx(8.0 / 1.2)
    assert e.hours_to_emergency_p90 == pytest.approx(8.0 / 0.8)
    assert e.hours_to_empty_p10 < e.hours_to_empty_p50 < e.hours_to_empty_p90


def test_the_spread_is_relative_so_it_scales_with_the_load() -> None:
    corr = SustainCorrection(
        knots_h=(1.0, 24.0),
        load_err_q10=(-0.3, -0.3),
        load_err_q50=(0.0, 0.0),
        load_err_q90=(0.3, 0.3),
        pv_err_q10=(0.0, 0.0),
        pv_err_q50=(0.0, 0.0),
        pv_err_q90=(0.0, 0.0),
    )
    light = _est(correction=corr, forecast_net_w=np.full(96, 500.0))
    heavy = _est(correction=corr, forecast_net_w=np.full(96, 1_000.0))
    for a, b in (
        (light.hours_to_emergency_p10, heavy.hours_to_emergency_p10),
        (light.hours_to_emergency_p90, heavy.hours_to_emergency_p90),
    ):
        assert a == pytest.approx(2 * b)


def test_pv_errors_widen_the_spread_only_where_pv_is_forecast() -> None:
    corr = SustainCorrection(
        knots_h=(1.0, 24.0),
        load_err_q10=(0.0, 0.0),
        load_err_q50=(0.0, 0.0),
        load_err_q90=(0.0, 0.0),
        pv_err_q10=(-0.5, -0.5),
        pv_err_q50=(0.0, 0.0),
        pv_err_q90=(0.5, 0.5),
    )
    night = _est(correction=corr, forecast_net_w=np.full(96, 500.0), forecast_pv_w=np.zeros(96))
    assert night.hours_to_emergency_p10 == night.hours_to_emergency_p90 == pytest.approx(8.0)
    # 1 kW of load, 500 W of it covered by PV: the same net, but PV may bring half as much.
    sunny = _est(
        correction=corr, forecast_net_w=np.full(96, 500.0), forecast_pv_w=np.full(96, 500.0)
    )
    assert sunny.hours_to_emergency_p50 == pytest.approx(8.0)
    assert sunny.hours_to_emergency_p10 == pytest.approx(4_000.0 / 750.0)
    assert sunny.hours_to_emergency_p90 == pytest.approx(4_000.0 / 250.0)


def test_an_untrained_site_gets_the_prior_spread_and_keeps_its_learned_capacity() -> None:
    assert with_prior_spread(None) is PRIOR_SPREAD
    learned = SustainCorrection(
        knots_h=(1.0, 24.0),
        load_err_q10=(-0.1, -0.1),
        load_err_q50=(0.0, 0.0),
        load_err_q90=(0.1, 0.1),
        pv_err_q10=(0.0, 0.0),
        pv_err_q50=(0.0, 0.0),
        pv_err_q90=(0.0, 0.0),
    )
    assert with_prior_spread(learned) is learned  # its own spread wins
    # Too little history for error quantiles, enough for the capacity: both kept where known.
    capacity_only = SustainCorrection(soc_rate_factor=1.25, rows=400)
    merged = with_prior_spread(capacity_only)
    assert merged.soc_rate_factor == 1.25 and merged.rows == 400
    assert merged.knots_h == PRIOR_SPREAD.knots_h
    assert merged.load_err_q90 == PRIOR_SPREAD.load_err_q90
    plain = _est(correction=capacity_only)
    e = _est(correction=merged)
    assert e.hours_to_emergency_p50 == pytest.approx(plain.hours_to_emergency_p50)
    assert e.hours_to_emergency_p10 < e.hours_to_emergency_p50 < e.hours_to_emergency_p90
    assert plain.hours_to_emergency_p10 == plain.hours_to_emergency_p90


def test_the_prior_spread_is_a_valid_correction() -> None:
    p = PRIOR_SPREAD
    n = len(p.knots_h)
    assert n > 1 and list(p.knots_h) == sorted(p.knots_h)
    for q10, q50, q90 in (
        (p.load_err_q10, p.load_err_q50, p.load_err_q90),
        (p.pv_err_q10, p.pv_err_q50, p.pv_err_q90),
    ):
        assert len(q10) == len(q50) == len(q90) == n
        assert all(a < b < c for a, b, c in zip(q10, q50, q90))
    assert p.soc_rate_factor == 1.0


def test_bad_inputs_raise_value_errors() -> None:
    for kw in (
        {"capacity_wh": 0.0},
        {"soc_pct": 120.0},
        {"forecast_net_w": np.array([])},
        {"forecast_net_w": np.array([np.nan])},
        {"slot_minutes": 0},
        {"forecast_pv_w": np.zeros(3)},
    ):
        with pytest.raises(ValueError):
            _est(**kw)


def test_the_soc_rate_factor_is_learned_from_history() -> None:
    # The synthetic battery really holds 4 kWh; the nameplate says 5 kWh.
    h = site_history(days=6, capacity_wh=4_000.0)
    k, rows = fit_soc_rate_factor(
        h.soc_pct, h.site_load_w - h.pv_w, capacity_wh=5_000.0, slot_h=300 / 3600
    )
    assert rows > 100
    assert k == pytest.approx(1.25, rel=0.03)
    corr = fit_sustain_correction(h, capacity_wh=5_000.0, slot_minutes=30)
    assert corr.soc_rate_factor == pytest.approx(1.25, rel=0.05)
    for q10, q50, q90 in (
        (corr.load_err_q10, corr.load_err_q50, corr.load_err_q90),
        (corr.pv_err_q10, corr.pv_err_q50, corr.pv_err_q90),
    ):
        assert len(q10) == len(q50) == len(q90) == len(corr.knots_h) > 0
        assert all(a <= b <= c for a, b, c in zip(q10, q50, q90))
    assert corr.load_err_q90[-1] > corr.load_err_q10[-1]
    # With the learned factor the same SoC lasts 1/1.25 as long.
    plain = _est(capacity_wh=5_000.0)
    learned = _est(capacity_wh=5_000.0, correction=SustainCorrection(soc_rate_factor=k))
    assert learned.hours_to_empty_p50 == pytest.approx(plain.hours_to_empty_p50 / k)


def test_a_site_without_pv_learns_a_load_spread_and_no_pv_spread() -> None:
    h = site_history(days=6, capacity_wh=4_000.0)
    h = replace(h, pv_w=np.full(h.size, np.nan), soc_pct=np.full(h.size, np.nan))
    corr = fit_sustain_correction(h, capacity_wh=5_000.0, slot_minutes=30)
    assert corr.soc_rate_factor == 1.0 and corr.knots_h
    assert corr.load_err_q90[0] > corr.load_err_q10[0]
    assert corr.pv_err_q10 == corr.pv_err_q90 == tuple(0.0 for _ in corr.knots_h)
