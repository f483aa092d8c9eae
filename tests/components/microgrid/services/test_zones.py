"""Zone actions: override_zone's answer and effect, clear_override and its refusal."""

from __future__ import annotations

from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.microgrid.const import DOMAIN
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import settle_site

from .conftest import call


@pytest.mark.freeze_time("2026-06-01 10:02:30+00:00")
async def test_override_and_clear(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    admin_user: User,
) -> None:
    """An admin forces the street lights off for 30 minutes (answered with the zone id and the
    expiry), then returns them to automatic control; a second clear has nothing to clear."""
    entry = init_integration
    await settle_site(entry, rtdb)
    coordinator = entry.runtime_data.coordinator
    override = {
        "config_entry": entry.entry_id,
        "zone": "Street lights",
        "state": "off",
        "reason": "Cable repair",
        "duration": {"minutes": 30},
    }
    assert await call(hass, "override_zone", override, admin_user) == snapshot
    assert coordinator.overrides["Zone2"].on is False
    clear = {"config_entry": entry.entry_id, "zone": "Zone2"}
    context = Context(user_id=admin_user.id)
    await hass.services.async_call(DOMAIN, "clear_override", clear, blocking=True, context=context)
    assert "Zone2" not in coordinator.overrides
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "clear_override", clear, blocking=True, context=context
        )
    assert err.value.translation_key == "no_override"
    assert "Zone Zone2 has no override to clear" in str(err.value)
