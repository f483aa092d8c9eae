"""Fixtures and helpers for the learning tests: synthetic history, trained models, waiting."""

from __future__ import annotations

from datetime import UTC, datetime
import math
from pathlib import Path
import time
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.microgrid.learning.manager import MLManager
from custom_components.microgrid.ml import store
from custom_components.microgrid.ml.history import History
from custom_components.microgrid.ml.pipeline import train
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import ZONES, board_record, entity_id, wait_for

DAY_S = 86_400.0
ZONE_IDS = tuple(z for z, *_ in ZONES)


def synthetic_history(end_s: float, *, days: float = 9.0, seed: int = 0) -> History:
    """A clean 5-minute site history ending at `end_s`: daily-shaped zone loads, PV, battery."""
    rng = np.random.default_rng(seed)
    end = math.floor(end_s / 300.0) * 300.0
    t = end - 300.0 * np.arange(int(days * DAY_S / 300.0), 0, -1)
    hour = (t % DAY_S) / 3600.0
    shape = 1.0 + 0.8 * np.exp(-(((hour - 19.0) / 2.5) ** 2))
    power = {
        z: np.maximum((60.0 + 30.0 * i) * shape + rng.normal(0.0, 8.0, t.size), 0.0)
        for i, z in enumerate(ZONE_IDS)
    }
    load = np.sum(list(power.values()), axis=0)
    pv = 900.0 * np.clip(np.sin((hour - 6.0) / 12.0 * np.pi), 0.0, None)
    soc = np.clip(55.0 + 25.0 * np.sin((hour - 9.0) / 24.0 * 2 * np.pi), 0, 100)
    voltage = 11.8 + 1.4 * soc / 100.0 + rng.normal(0.0, 0.01, t.size)
    return History(
        timestamps=t,
        site_load_w=load,
        pv_w=pv,
        soc_pct=soc,
        voltage_v=voltage,
        zone_power_w=power,
        zone_relay_on={z: np.ones(t.size) for z in ZONE_IDS},
    )


@pytest.fixture(scope="module")
def trained() -> store.TrainedModels:
    """Models trained once on nine synthetic days ending now (regression, not persistence)."""
    now = datetime.now(UTC).timestamp()
    return train(synthetic_history(now), now_s=now, capacity_wh=5000.0, utc_offset_s=0.0)


@pytest.fixture(autouse=True)
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Stored models go to a temporary config directory."""
    hass.config.config_dir = str(tmp_path)
    return tmp_path


@pytest.fixture
def synthetic_loader(monkeypatch: pytest.MonkeyPatch) -> list[tuple[datetime, datetime]]:
    """The recorder history replaced by synthetic days ending at the asked end."""
    asked: list[tuple[datetime, datetime]] = []

    async def fake(self: MLManager, start: datetime, end: datetime) -> History:
        asked.append((start, end))
        return synthetic_history(end.timestamp()).before(end.timestamp())

    monkeypatch.setattr(MLManager, "async_recorded_history", fake)
    return asked


def ml_of(entry: MockConfigEntry) -> MLManager:
    """The site's learning manager."""
    return entry.runtime_data.coordinator.ml


async def until(hass: HomeAssistant, predicate: Any, rounds: int = 1500) -> None:
    """Poll while executor work (training) runs; the loop clock may be frozen."""
    for _ in range(rounds):
        if predicate():
            return
        await hass.async_add_executor_job(time.sleep, 0.02)
    raise AssertionError("condition not reached")


async def started(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Wait for the learning start (seed, load, maybe train) to end: its last step publishes
    the first demand forecast (the boards report from setup on)."""
    sensor = entity_id(hass, entry, "demand_forecast", "sensor")

    def forecast_shown() -> bool:
        state = hass.states.get(sensor)
        return state is not None and state.state not in ("unknown", "unavailable")

    await until(hass, forecast_shown)


async def set_boards(rtdb: RTDBServer, coordinator: Any, **record: Any) -> None:
    """Every board reports `record` now; wait until the coordinator has them all."""
    now = dt_util.utcnow()
    for zone_id in ZONE_IDS:
        rtdb.set_value(f"sensors/{zone_id}", board_record(at=now, **record))
    await wait_for(
        lambda: all(
            (r := coordinator.readings.get(z)) is not None
            and r.soc_pct == record.get("soc", 80.0)
            and abs((r.received_at - now).total_seconds()) < 1
            for z in ZONE_IDS
        )
    )
