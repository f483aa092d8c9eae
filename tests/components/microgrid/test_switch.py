"""The switch platform, snapshot: each zone's relay and why it is where it is."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from sim.rtdb import RTDBServer

from .conftest import assert_platform_snapshot


@pytest.mark.freeze_time("2026-06-01 10:02:30+00:00")
@pytest.mark.parametrize("init_integration", [Platform.SWITCH], indirect=True)
async def test_switches(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """Four relays on at 80 %, each with its priority, household and reason."""
    await assert_platform_snapshot(hass, snapshot, init_integration, rtdb)
