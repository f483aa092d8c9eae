"""What the integration trains and runs: zones are forecast as drawn while on."""

from __future__ import annotations

import numpy as np

from ml.anomaly import AnomalyDetector
from ml.history import History
from ml.pipeline import demand_view, physics_stats


def test_demand_view_is_the_draw_while_on() -> None:
    """Off slots say nothing about demand; a half-on slot is scaled up to the on-draw."""
    h = History(
        timestamps=np.array([0.0, 300.0, 600.0]),
        site_load_w=np.array([100.0, 50.0, 0.0]),
        pv_w=np.zeros(3),
        soc_pct=np.full(3, 50.0),
        voltage_v=np.full(3, 12.5),
        zone_power_w={"Zone1": np.array([100.0, 50.0, 0.0])},
        zone_relay_on={"Zone1": np.array([1.0, 0.5, 0.0])},
    )
    view = demand_view(h)
    np.testing.assert_allclose(view.zone_power_w["Zone1"][:2], [100.0, 100.0])
    assert np.isnan(view.zone_power_w["Zone1"][2])
    np.testing.assert_array_equal(view.site_load_w, h.site_load_w)


def test_physics_stats_cover_only_zones_not_learned() -> None:
    """An untrained detector gets the relay-off floor for each zone; learned zones are kept."""
    detector = physics_stats(AnomalyDetector(), ("Zone1",), sample_interval_s=300.0)
    stats = detector.zone_stats["Zone1"]
    assert stats.off_threshold_w == detector.config.relay_off_floor_w
    assert stats.sample_interval_s == 300.0
    assert physics_stats(detector, ("Zone1",), sample_interval_s=60.0).zone_stats["Zone1"] is stats
