"""The site in HA's Energy dashboard: solar as a source, the battery in and out, each zone as a
device; HA's own `energy/validate` finds nothing wrong with the site's statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from sim.rtdb import RTDBServer

from .conftest import ZONES, board_record, entity_id, push, wait_for

ENERGY_KEYS = ("solar_energy", "battery_charge_energy", "battery_discharge_energy")


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder's patches must precede `hass`."""


def _records(at: Any, *, solar: float, power: float) -> dict[str, dict[str, Any]]:
    return {z: board_record(at=at, solar=solar, power=power) for z, *_ in ZONES}


async def test_battery_energy_follows_solar_minus_load(
    recorder_mock: Any,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    rtdb: RTDBServer,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Solar above the load charges the battery, below it discharges it (kWh counters); with
    the counters as the Energy dashboard's battery, `energy/validate` reports no issue."""
    # The next 5-minute boundary (statistics periods start there); not a fixed date, so the
    # websocket token made for the test is neither from the future nor expired.
    now = dt_util.utcnow()
    t0 = now.replace(second=0, microsecond=0) + timedelta(minutes=5 - now.minute % 5)
    freezer.move_to(t0)
    assert await async_setup_component(hass, "energy", {})
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    link = mock_config_entry.runtime_data.link
    await wait_for(lambda: link.connected)
    coordinator = mock_config_entry.runtime_data.coordinator
    zones = len(ZONES)
    # Each board reports 1,000 W of PV (one panel array, seen by every board) and 100 W of
    # load: the site makes 1,000 W and uses zones x 100 W, so the battery takes the rest.
    await push(mock_config_entry, rtdb, _records(dt_util.utcnow(), solar=1000.0, power=100.0))
    freezer.tick(timedelta(minutes=6))
    await push(mock_config_entry, rtdb, _records(dt_util.utcnow(), solar=1000.0, power=100.0))
    charged = (1000.0 - zones * 100.0) * 360 / 3_600_000
    assert coordinator.data.battery_charge_energy_kwh == pytest.approx(charged)
    assert coordinator.data.battery_discharge_energy_kwh == 0.0
    # Night: no PV, the same load comes out of the battery.
    await push(mock_config_entry, rtdb, _records(dt_util.utcnow(), solar=0.0, power=100.0))
    freezer.tick(timedelta(minutes=6))
    await push(mock_config_entry, rtdb, _records(dt_util.utcnow(), solar=0.0, power=100.0))
    # Between the day and night records the net power swung from +600 W to -400 W: the
    # first push at night closes a 0 s step (no energy), the 6 minutes after it discharge.
    assert coordinator.data.battery_discharge_energy_kwh == pytest.approx(
        zones * 100.0 * 360 / 3_600_000
    )
    assert coordinator.data.battery_charge_energy_kwh == pytest.approx(charged)

    ids = {key: entity_id(hass, mock_config_entry, key, "sensor") for key in ENERGY_KEYS}
    for key, eid in ids.items():
        state = hass.states.get(eid)
        assert state is not None, key
        assert state.attributes["state_class"] == "total_increasing"
        assert state.attributes["unit_of_measurement"] == "kWh"
    await async_wait_recording_done(hass)
    for minutes in (0, 5, 10):  # compile the 5-minute statistics the recorder would
        do_adhoc_statistics(hass, start=t0 + timedelta(minutes=minutes))
        await async_wait_recording_done(hass)

    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "energy/save_prefs",
            "energy_sources": [
                {
                    "type": "solar",
                    "stat_energy_from": ids["solar_energy"],
                    "config_entry_solar_forecast": None,
                },
                {
                    "type": "battery",
                    "stat_energy_from": ids["battery_discharge_energy"],
                    "stat_energy_to": ids["battery_charge_energy"],
                },
            ],
        }
    )
    assert (await client.receive_json())["success"]
    await client.send_json_auto_id({"type": "energy/validate"})
    reply = await client.receive_json()
    assert reply["success"], reply
    issues = [i for source in reply["result"]["energy_sources"] for i in source]
    assert issues == [], issues
