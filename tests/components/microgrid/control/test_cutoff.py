"""The admin's deep-discharge cutoff: below it even the clinic goes off to save the battery."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.microgrid.const import CONF_DEEP_DISCHARGE_CUTOFF_PCT, DEFAULT_OPTIONS
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import push, site_records, wait_for

CUTOFF = 5.0


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """The admin set a 5 % cutoff (hysteresis 2 %)."""
    return DEFAULT_OPTIONS | {CONF_DEEP_DISCHARGE_CUTOFF_PCT: CUTOFF}


async def test_critical_zones_go_off_below_the_cutoff_and_return_above_it(
    init_integration: MockConfigEntry, rtdb: RTDBServer
) -> None:
    """At 4 % every zone, the clinic too, is off with the cutoff's reason and the command is
    written; at 6 % (inside the hysteresis) they stay off; at 8 % the clinic is back on."""
    coordinator = init_integration.runtime_data.coordinator
    assert coordinator.site.thresholds.deep_discharge_cutoff_pct == CUTOFF
    await push(init_integration, rtdb, site_records(8.0))
    clinic = coordinator.data.zones["Zone1"]
    assert clinic.desired_on is True and clinic.reason == "critical_always_on"

    await push(init_integration, rtdb, site_records(CUTOFF - 1, relay=True))
    for zone in coordinator.data.zones.values():
        assert zone.desired_on is False
        assert zone.reason == "deep_discharge_cutoff"
    await wait_for(lambda: (rtdb.get_value("commands/Zone1") or {}).get("command") == "OFF")

    # The relays opened (the boards echo it); the charge rebounds but not past the hysteresis.
    await push(init_integration, rtdb, site_records(CUTOFF + 1, relay=False))
    assert coordinator.data.zones["Zone1"].desired_on is False

    await push(init_integration, rtdb, site_records(CUTOFF + 3, relay=False))
    clinic = coordinator.data.zones["Zone1"]
    assert clinic.desired_on is True and clinic.reason == "critical_always_on"
    await wait_for(lambda: (rtdb.get_value("commands/Zone1") or {}).get("command") == "ON")


async def test_without_a_cutoff_the_clinic_stays_on_at_one_percent(
    hass: Any, rtdb: RTDBServer, mock_config_entry: MockConfigEntry
) -> None:
    """The default: no cutoff, critical zones are never switched off by the policy."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(mock_config_entry, options=dict(DEFAULT_OPTIONS))
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    coordinator = mock_config_entry.runtime_data.coordinator
    assert coordinator.site.thresholds.deep_discharge_cutoff_pct is None
    await push(mock_config_entry, rtdb, site_records(1.0))
    clinic = coordinator.data.zones["Zone1"]
    assert clinic.desired_on is True and clinic.reason == "critical_always_on"
    await hass.config_entries.async_unload(mock_config_entry.entry_id)
