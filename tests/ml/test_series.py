"""Step series by role become slot means in a History."""

from __future__ import annotations

import numpy as np
import pytest

from ml.series import history_from_series, history_of_roles, roles_of, step_means


def test_step_means_weigh_each_value_by_how_long_it_held() -> None:
    """A value holds until the next; unavailable time carries no weight."""
    grid = np.array([0.0, 300.0, 600.0])
    times = np.array([0.0, 150.0, 300.0, 450.0])
    values = np.array([100.0, 200.0, np.nan, 50.0])
    out = step_means(times, values, grid_s=grid, slot_s=300.0, end_s=700.0)
    assert out[0] == pytest.approx(150.0)  # half at 100, half at 200
    assert out[1] == pytest.approx(50.0)  # unavailable half ignored
    assert out[2] == pytest.approx(50.0)  # the last value holds to the end
    assert np.isnan(
        step_means(np.array([900.0]), np.array([1.0]), grid_s=grid, slot_s=300.0, end_s=1000.0)
    ).all()


def test_recorded_series_become_a_trimmed_history() -> None:
    """Roles map to History fields; slots before the first measurement are dropped."""
    series = {
        "load": (np.array([1000.0, 1900.0]), np.array([400.0, 500.0])),
        "soc": (np.array([1000.0]), np.array([60.0])),
        "power:Zone1": (np.array([1000.0]), np.array([120.0])),
        "relay:Zone1": (np.array([1000.0, 2000.0]), np.array([1.0, 0.0])),
    }
    h = history_from_series(
        series, zones=("Zone1", "Zone2"), start_s=0.0, end_s=2400.0, slot_s=300.0
    )
    assert h.timestamps[0] == 900.0 and h.timestamps[-1] == 2100.0
    assert h.zone_power_w["Zone1"][1] == pytest.approx(120.0)
    assert np.isnan(h.zone_power_w["Zone2"]).all() and np.isnan(h.pv_w).all()
    assert h.zone_relay_on["Zone1"][-1] == pytest.approx(0.0)


def test_roles_of_is_the_inverse_of_history_of_roles() -> None:
    """Every series comes back under the role it was built from."""
    grid = np.array([0.0, 300.0])
    roles = ("load", "pv", "soc", "voltage", "temperature", "power:Zone1", "relay:Zone1")
    column = {role: np.array([float(i), float(i) + 0.5]) for i, role in enumerate(roles)}
    back = roles_of(history_of_roles(grid, ("Zone1",), column.__getitem__))
    assert set(back) == set(roles)
    for role in roles:
        np.testing.assert_array_equal(back[role], column[role])
