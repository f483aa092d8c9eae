"""Actions: admin overrides and the audit log (registered once, in async_setup)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import config_validation as cv, selector
from homeassistant.util import dt as dt_util
import voluptuous as vol

from .const import DOMAIN
from .coordinator import MicrogridCoordinator
from .models import MicrogridConfigEntry
from .permissions import Actor, async_actor

ATTR_CONFIG_ENTRY: Final = "config_entry"
ATTR_ZONE: Final = "zone"
ATTR_STATE: Final = "state"
ATTR_REASON: Final = "reason"
ATTR_DURATION: Final = "duration"
ATTR_SINCE: Final = "since"
ATTR_ACTION: Final = "action"
ATTR_LIMIT: Final = "limit"

SERVICE_OVERRIDE_ZONE: Final = "override_zone"
SERVICE_CLEAR_OVERRIDE: Final = "clear_override"
SERVICE_GET_AUDIT_LOG: Final = "get_audit_log"

MAX_OVERRIDE = timedelta(hours=24)

_ENTRY = {vol.Required(ATTR_CONFIG_ENTRY): selector.ConfigEntrySelector({"integration": DOMAIN})}

OVERRIDE_SCHEMA: Final = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_ZONE): cv.string,
        vol.Required(ATTR_STATE): vol.In(["on", "off"]),
        vol.Required(ATTR_REASON): vol.All(cv.string, vol.Length(min=3, max=500)),
        vol.Optional(ATTR_DURATION, default=timedelta(hours=1)): vol.All(
            cv.time_period, vol.Range(min=timedelta(minutes=1), max=MAX_OVERRIDE)
        ),
    }
)
CLEAR_SCHEMA: Final = vol.Schema({**_ENTRY, vol.Required(ATTR_ZONE): cv.string})
AUDIT_SCHEMA: Final = vol.Schema(
    {
        **_ENTRY,
        vol.Optional(ATTR_ZONE): cv.string,
        vol.Optional(ATTR_ACTION): cv.string,
        vol.Optional(ATTR_SINCE): cv.datetime,
        vol.Optional(ATTR_LIMIT, default=100): vol.All(vol.Coerce(int), vol.Range(min=1, max=5000)),
    }
)


def _coordinator(call: ServiceCall) -> MicrogridCoordinator:
    """The loaded entry's coordinator, or a translated validation error."""
    entry_id: str = call.data[ATTR_CONFIG_ENTRY]
    entry: MicrogridConfigEntry | None = call.hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_config_entry",
            translation_placeholders={"config_entry": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unloaded_config_entry",
            translation_placeholders={"config_entry": entry.title},
        )
    return entry.runtime_data.coordinator


def _zone_id(coordinator: MicrogridCoordinator, value: str) -> str:
    """A zone id from a zone id or its name (case-insensitive)."""
    for zone in coordinator.site.zones:
        if value in (zone.zone_id,) or value.casefold() == zone.name.casefold():
            return zone.zone_id
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_zone",
        translation_placeholders={"zone": value},
    )


async def _admin(call: ServiceCall) -> Actor:
    """The calling admin, or Unauthorized."""
    actor = await async_actor(call.hass, call.context)
    if not actor.is_admin:
        raise Unauthorized(context=call.context, permission="admin")
    return actor


async def _async_override_zone(call: ServiceCall) -> ServiceResponse:
    """Force a zone on or off until the override expires (admin, with a reason)."""
    actor = await _admin(call)
    coordinator = _coordinator(call)
    zone_id = _zone_id(coordinator, call.data[ATTR_ZONE])
    override = coordinator.async_set_override(
        zone_id,
        call.data[ATTR_STATE] == "on",
        reason=call.data[ATTR_REASON],
        duration=call.data[ATTR_DURATION],
        actor=actor.audit_id,
        actor_name=actor.name,
    )
    return {
        "zone": zone_id,
        "state": call.data[ATTR_STATE],
        "expires": override.expires.isoformat(),
    }


async def _async_clear_override(call: ServiceCall) -> None:
    """Return a zone to automatic control (admin)."""
    actor = await _admin(call)
    coordinator = _coordinator(call)
    zone_id = _zone_id(coordinator, call.data[ATTR_ZONE])
    if not coordinator.async_clear_override(zone_id, actor=actor.audit_id, actor_name=actor.name):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="no_override",
            translation_placeholders={"zone": zone_id},
        )


async def _async_get_audit_log(call: ServiceCall) -> ServiceResponse:
    """The audit trail, newest first (admin)."""
    await _admin(call)
    coordinator = _coordinator(call)
    zone = call.data.get(ATTR_ZONE)
    since = call.data.get(ATTR_SINCE)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt_util.get_default_time_zone())
    entries = coordinator.audit.query(
        zone_id=_zone_id(coordinator, zone) if zone else None,
        action=call.data.get(ATTR_ACTION),
        since=dt_util.as_utc(since) if since else None,
        limit=call.data[ATTR_LIMIT],
    )
    return {"entries": entries, "count": len(entries)}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions."""
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
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_AUDIT_LOG,
        _async_get_audit_log,
        schema=AUDIT_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
