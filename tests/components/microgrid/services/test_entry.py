"""Every action names its site: a loaded microgrid entry, else a translated validation error."""

from __future__ import annotations

from homeassistant.auth.models import User
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import call


async def test_the_entry_must_be_a_loaded_site(
    hass: HomeAssistant, init_integration: MockConfigEntry, admin_user: User
) -> None:
    """Unknown ids and other integrations' entries are invalid_config_entry; an unloaded site
    is unloaded_config_entry, by title."""
    other = MockConfigEntry(domain="sun", title="Sun")
    other.add_to_hass(hass)
    for entry_id in ("not-an-entry", other.entry_id):
        with pytest.raises(ServiceValidationError) as err:
            await call(hass, "get_schedule", {"config_entry": entry_id}, admin_user)
        assert err.value.translation_key == "invalid_config_entry"
        assert err.value.translation_placeholders == {"config_entry": entry_id}
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "get_schedule", {"config_entry": init_integration.entry_id}, admin_user)
    assert err.value.translation_key == "unloaded_config_entry"
    assert "The microgrid site Village is not loaded" in str(err.value)


async def test_zones_are_named_by_id_or_name(
    hass: HomeAssistant, init_integration: MockConfigEntry, admin_user: User
) -> None:
    """A zone is its id or its name in any case; anything else is unknown_zone."""
    site = {"config_entry": init_integration.entry_id, "state": "on", "reason": "testing"}
    for zone in ("Zone2", "Street lights", "STREET LIGHTS"):
        response = await call(hass, "override_zone", {**site, "zone": zone}, admin_user)
        assert response["zone"] == "Zone2"
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "override_zone", {**site, "zone": "zone2 "}, admin_user)
    assert err.value.translation_key == "unknown_zone"
    assert err.value.translation_placeholders == {"zone": "zone2 "}
