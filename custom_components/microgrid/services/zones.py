"""Zone actions: force a zone on or off for a while (override_zone), and undo it."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.helpers import config_validation as cv
import voluptuous as vol

from ..const import DOMAIN
from ..people.permissions import BadRequest
from .caller import async_action_admin
from .entry import ATTR_ZONE, ENTRY_FIELD, loaded_entry, zone_id

ATTR_STATE: Final = "state"
ATTR_REASON: Final = "reason"
ATTR_DURATION: Final = "duration"

SERVICE_OVERRIDE_ZONE: Final = "override_zone"
SERVICE_CLEAR_OVERRIDE: Final = "clear_override"

# The longest any admin decision (an override, an applied schedule) holds without renewal.
MAX_OVERRIDE: Final = timedelta(hours=24)

OVERRIDE_SCHEMA: Final = vol.Schema(
    {
        **ENTRY_FIELD,
        vol.Required(ATTR_ZONE): cv.string,
        vol.Required(ATTR_STATE): vol.In(["on", "off"]),
        vol.Required(ATTR_REASON): vol.All(cv.string, vol.Length(min=3, max=500)),
        vol.Optional(ATTR_DURATION, default=timedelta(hours=1)): vol.All(
            cv.time_period, vol.Range(min=timedelta(minutes=1), max=MAX_OVERRIDE)
        ),
    }
)
CLEAR_SCHEMA: Final = vol.Schema({**ENTRY_FIELD, vol.Required(ATTR_ZONE): cv.string})


async def _async_override_zone(call: ServiceCall) -> ServiceResponse:
    """Force a zone on or off until the override expires (admin, with a reason)."""
    entry = loaded_entry(call)
    actor = await async_action_admin(call, entry)
    coordinator = entry.runtime_data.coordinator
    zone = zone_id(coordinator.site, call.data[ATTR_ZONE])
    override = coordinator.async_set_override(
        zone,
        call.data[ATTR_STATE] == "on",
        reason=call.data[ATTR_REASON],
        duration=call.data[ATTR_DURATION],
        actor=actor.audit_id,
        actor_name=actor.name,
    )
    return {
        "zone": zone,
        "state": call.data[ATTR_STATE],
        "expires": override.expires.isoformat(),
    }


async def _async_clear_override(call: ServiceCall) -> None:
    """Return a zone to automatic control (admin)."""
    entry = loaded_entry(call)
    actor = await async_action_admin(call, entry)
    coordinator = entry.runtime_data.coordinator
    zone = zone_id(coordinator.site, call.data[ATTR_ZONE])
    if not coordinator.async_clear_override(zone, actor=actor.audit_id, actor_name=actor.name):
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="no_override",
            translation_placeholders={"zone": zone},
        )


@callback
def async_setup_zone_services(hass: HomeAssistant) -> None:
    """Register the zone actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_OVERRIDE_ZONE,
        _async_override_zone,
        schema=OVERRIDE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_CLEAR_OVERRIDE, _async_clear_override, schema=CLEAR_SCHEMA
    )
