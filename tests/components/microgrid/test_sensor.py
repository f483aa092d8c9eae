"""The sensor platform, snapshot: every site and zone sensor of the demo site."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from sim.rtdb import RTDBServer

from .conftest import assert_platform_snapshot


@pytest.mark.freeze_time("2026-06-01 10:02:30+00:00")
@pytest.mark.parametrize("init_integration", [Platform.SENSOR], indirect=True)
async def test_sensors(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """Four healthy boards at 80 %, planned and forecast: the site's readings, plan, forecast
    and each zone's power and energy."""
    await assert_platform_snapshot(hass, snapshot, init_integration, rtdb)
