"""The switch platform, snapshot: each zone's relay and why it is where it is."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from sim.rtdb import RTDBServer

from .conftest import settle_site


@pytest.mark.freeze_time("2026-06-01 10:02:30+00:00")
@pytest.mark.parametrize("init_integration", [Platform.SWITCH], indirect=True)
async def test_switches(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """Four relays on at 80 %, each with its priority, household and reason."""
    await settle_site(init_integration, rtdb)
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)
