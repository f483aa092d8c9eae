"""Live samples as slot means, seeded from a recorded history."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.buffer import SampleBuffer
from ml.history import History


def test_sample_buffer_averages_slots_and_seeds_only_the_past() -> None:
    """Samples average within their 5-minute slot; a recorded seed never overwrites live data."""
    buffer = SampleBuffer(slot_s=300.0, keep_s=22 * 86_400.0)
    buffer.add(600.0, {"load": 100.0, "power:Zone1": 10.0, "soc": None})
    buffer.add(700.0, {"load": 300.0, "power:Zone1": math.nan})
    seed = History(
        timestamps=np.array([300.0, 600.0]),
        site_load_w=np.array([50.0, 60.0]),
        pv_w=np.zeros(2),
        soc_pct=np.full(2, 70.0),
        voltage_v=np.full(2, 12.5),
        zone_power_w={"Zone1": np.array([20.0, 30.0])},
        zone_relay_on={"Zone1": np.ones(2)},
    )
    assert buffer.seed(seed, before_s=600.0) == 1  # only the slot at 300 s
    h = buffer.history(("Zone1",))
    assert h.timestamps.tolist() == [300.0, 600.0]
    assert h.site_load_w.tolist()[0] == pytest.approx(50.0)
    assert h.site_load_w[1] == pytest.approx(200.0)
    assert h.zone_power_w["Zone1"][1] == pytest.approx(10.0)


def test_sample_buffer_forgets_slots_older_than_it_keeps() -> None:
    """A new slot drops the slots more than `keep_s` before it."""
    buffer = SampleBuffer(slot_s=300.0, keep_s=600.0)
    for t in (0.0, 300.0, 600.0, 900.0):
        buffer.add(t, {"load": t})
    assert len(buffer) == 3
    assert buffer.history(()).timestamps.tolist() == [300.0, 600.0, 900.0]
