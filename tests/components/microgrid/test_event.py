"""The event platform, snapshot: the site's alert event entity, before and after an alert."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion
from syrupy.matchers import path_type

from sim.rtdb import RTDBServer

from .conftest import assert_platform_snapshot, push, site_records

# Alert ids are ULIDs: random beyond their time part.
ALERT_ID = path_type({r"(.*\.)?alert_id": (str,)}, regex=True)


@pytest.mark.freeze_time("2026-06-01 10:02:30+00:00")
@pytest.mark.parametrize("init_integration", [Platform.EVENT], indirect=True)
async def test_alert_event(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """No alert yet: unknown, with every alert type; the battery at 8 % fires
    battery_emergency with the alert as attributes."""
    entry = init_integration
    await assert_platform_snapshot(hass, snapshot, entry, rtdb)
    await push(entry, rtdb, site_records(8.0))
    await hass.async_block_till_done()
    [entity] = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    assert hass.states.get(entity.entity_id) == snapshot(name="after-alert", matcher=ALERT_ID)
