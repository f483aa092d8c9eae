"""Sustain time: energy balance in hours, quantiles, learned correction."""

from __future__ import annotations

import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from ml.sustain import (
    SustainCorrection,
    fit_soc_rate_factor,
    fit_sustain_correction,
    sustain_time,
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
        err_q10_wh=(-400.0, -1_200.0),
        err_q50_wh=(0.0, 0.0),
        err_q90_wh=(400.0, 1_200.0),
    )
    e = _est(correction=corr)
    assert e.hours_to_emergency_p10 < e.hours_to_emergency_p50 < e.hours_to_emergency_p90
    assert e.hours_to_emergency_p50 == pytest.approx(8.0)
    # At 8 h the spread is 800 Wh: 1.6 h at 500 W, so P10 falls near 8 / (1 + 0.2).
    assert e.hours_to_empty_p10 < e.hours_to_empty_p50 < e.hours_to_empty_p90


def test_bad_inputs_raise_value_errors() -> None:
    for kw in (
        {"capacity_wh": 0.0},
        {"soc_pct": 120.0},
        {"forecast_net_w": np.array([])},
        {"forecast_net_w": np.array([np.nan])},
        {"slot_minutes": 0},
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
    assert all(a <= b <= c for a, b, c in zip(corr.err_q10_wh, corr.err_q50_wh, corr.err_q90_wh))
    assert corr.knots_h and corr.err_q90_wh[-1] > corr.err_q10_wh[-1]
    # With the learned factor the same SoC lasts 1/1.25 as long.
    plain = _est(capacity_wh=5_000.0)
    learned = _est(capacity_wh=5_000.0, correction=SustainCorrection(soc_rate_factor=k))
    assert learned.hours_to_empty_p50 == pytest.approx(plain.hours_to_empty_p50 / k)
