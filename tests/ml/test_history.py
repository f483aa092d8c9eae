"""History validation and resampling."""

from __future__ import annotations

import numpy as np
import pytest

from ml.history import History, empty_history, resample


def _h(ts, load, **kw):
    n = len(ts)
    nan = np.full(n, np.nan)
    return History(timestamps=ts, site_load_w=load, pv_w=nan, soc_pct=nan, voltage_v=nan, **kw)


def test_mismatched_lengths_are_refused_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="site_load_w"):
        _h([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match=r"zone_power_w\[Zone1\]"):
        _h([0.0, 1.0], [1.0, 2.0], zone_power_w={"Zone1": [1.0]})


def test_unordered_or_non_finite_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing"):
        _h([0.0, 0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        _h([0.0, np.nan], [1.0, 2.0])


def test_resample_averages_each_slot_and_keeps_gaps_missing() -> None:
    ts = np.array([0.0, 60.0, 120.0, 1000.0])  # slot 0 has three samples, slots 1-2 none
    h = _h(ts, [10.0, 20.0, np.nan, 40.0], zone_relay_on={"Z": [1.0, 0.0, 1.0, 1.0]})
    r = resample(h, 5)
    assert r.timestamps.tolist() == [0.0, 300.0, 600.0, 900.0]
    assert r.site_load_w[0] == pytest.approx(15.0)  # NaN ignored, not counted as 0
    assert np.isnan(r.site_load_w[1]) and np.isnan(r.site_load_w[2])
    assert r.site_load_w[3] == pytest.approx(40.0)
    assert r.zone_relay_on["Z"][0] == pytest.approx(2 / 3)


def test_resample_aligns_slots_to_the_clock_and_refuses_bad_slots() -> None:
    h = _h([130.0, 400.0], [1.0, 3.0])
    assert resample(h, 5).timestamps.tolist() == [0.0, 300.0]
    with pytest.raises(ValueError):
        resample(h, 0)
    assert resample(empty_history(), 5).size == 0


def test_before_drops_the_future() -> None:
    h = _h([0.0, 10.0, 20.0], [1.0, 2.0, 3.0], zone_power_w={"Z": [1.0, 2.0, 3.0]})
    b = h.before(20.0)
    assert b.size == 2 and b.zone_power_w["Z"].tolist() == [1.0, 2.0]
