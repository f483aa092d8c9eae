"""The site's history from the recorder, and the outdoor temperature from a state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant, State
from homeassistant.util import dt as dt_util
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.microgrid.const import CONF_TEMPERATURE_ENTITY
from custom_components.microgrid.learning.recorder import entity_roles, temperature_c
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import board_record, wait_for

from .conftest import ZONE_IDS, set_boards, started


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Let a test in this module set up the recorder (its patches must precede `hass`)."""


async def test_training_history_is_read_from_the_recorder(
    recorder_mock: Any,
    hass: HomeAssistant,
    rtdb: RTDBServer,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The site's own entities, found by unique id, come back as 5-minute means; so does the
    configured weather entity's temperature (an attribute, in °F), in °C."""
    freezer.move_to("2026-03-02T09:59:59+00:00")
    for zone_id in ZONE_IDS:
        rtdb.set_value(f"sensors/{zone_id}", board_record())
    weather = {"temperature_unit": "°F"}
    hass.states.async_set("weather.home", "sunny", {**weather, "temperature": 68.0})
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, options={CONF_TEMPERATURE_ENTITY: "weather.home"}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await started(hass, mock_config_entry)
    coordinator = mock_config_entry.runtime_data.coordinator
    ml = coordinator.ml
    await set_boards(rtdb, coordinator)
    await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=1))
    start = dt_util.utcnow()  # a slot boundary: what held before counts from here
    freezer.tick(timedelta(minutes=5))
    # Zone1 draws 300 W for the next slot, then its relay opens (no power); the other boards
    # keep reporting (a silent board's sensors go unavailable: NaN).
    # 25 °C with the same condition (only the attribute changes), then 15 °C and cloudy.
    steps = (({"power": 300.0}, "sunny", 77.0), ({"relay": False}, "cloudy", 59.0))
    for zone1, condition, fahrenheit in steps:
        hass.states.async_set("weather.home", condition, {**weather, "temperature": fahrenheit})
        now = dt_util.utcnow()
        for zone_id in ZONE_IDS:
            rtdb.set_value(
                f"sensors/{zone_id}", board_record(at=now, **(zone1 if zone_id == "Zone1" else {}))
            )
        await wait_for(
            lambda now=now: all(
                abs((coordinator.readings[z].received_at - now).total_seconds()) < 1
                for z in ZONE_IDS
            )
        )
        await hass.async_block_till_done()
        freezer.tick(timedelta(minutes=5))
    await async_wait_recording_done(hass)
    roles = entity_roles(hass, mock_config_entry.entry_id, ZONE_IDS)
    assert set(roles) >= {"load", "pv", "soc", "voltage", "power:Zone1", "relay:Zone4"}
    h = await ml.async_recorded_history(start, dt_util.utcnow())
    assert h.timestamps[0] == start.timestamp() and np.all(np.diff(h.timestamps) == 300.0)
    np.testing.assert_allclose(h.zone_power_w["Zone1"][:3], [100.0, 300.0, 0.0])
    np.testing.assert_allclose(h.zone_relay_on["Zone1"][:3], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(h.zone_power_w["Zone2"][:3], [100.0] * 3)
    np.testing.assert_allclose(h.soc_pct[:3], [80.0] * 3)
    np.testing.assert_allclose(h.site_load_w[:2], [400.0, 600.0])
    assert h.temperature_c is not None
    np.testing.assert_allclose(h.temperature_c[:3], [20.0, 25.0, 15.0])
    # The live buffer samples it too, with every board reading.
    recent = ml.recent_history().temperature_c
    assert recent is not None
    np.testing.assert_allclose(recent[np.isfinite(recent)][-2:], [25.0, 15.0])
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


def test_outdoor_temperature_from_a_weather_entity_or_a_sensor() -> None:
    """°C from either source, converted from its own unit; None when it cannot be known."""
    weather = State("weather.home", "rainy", {"temperature": 50.0, "temperature_unit": "°F"})
    assert temperature_c(weather) == pytest.approx(10.0)
    assert temperature_c(State("sensor.out", "21.5", {"unit_of_measurement": "°C"})) == 21.5
    assert temperature_c(State("sensor.out", "300.15", {"unit_of_measurement": "K"})) == (
        pytest.approx(27.0)
    )
    for unknown in (
        None,
        State("sensor.out", "unavailable", {"unit_of_measurement": "°C"}),
        State("sensor.out", "21.5", {}),  # no unit: not a temperature we can read
        State("sensor.out", "21.5", {"unit_of_measurement": "W"}),
        State("weather.home", "sunny", {"temperature_unit": "°C"}),  # no temperature
        State("weather.home", "sunny", {"temperature": "nan", "temperature_unit": "°C"}),
    ):
        assert temperature_c(unknown) is None
