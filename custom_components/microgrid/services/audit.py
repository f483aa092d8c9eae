"""Audit actions: read the trail (get_audit_log) and check its hash chain (verify_audit_log)."""

from __future__ import annotations

from typing import Final

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util
import voluptuous as vol

from ..const import DOMAIN
from .caller import async_action_admin
from .entry import ATTR_ZONE, ENTRY_FIELD, ENTRY_SCHEMA, loaded_entry, zone_id

ATTR_SINCE: Final = "since"
ATTR_ACTION: Final = "action"
ATTR_LIMIT: Final = "limit"

SERVICE_GET_AUDIT_LOG: Final = "get_audit_log"
SERVICE_VERIFY_AUDIT_LOG: Final = "verify_audit_log"

AUDIT_SCHEMA: Final = vol.Schema(
    {
        **ENTRY_FIELD,
        vol.Optional(ATTR_ZONE): cv.string,
        vol.Optional(ATTR_ACTION): cv.string,
        vol.Optional(ATTR_SINCE): cv.datetime,
        vol.Optional(ATTR_LIMIT, default=100): vol.All(vol.Coerce(int), vol.Range(min=1, max=5000)),
    }
)


async def _async_get_audit_log(call: ServiceCall) -> ServiceResponse:
    """The audit trail, newest first (admin)."""
    entry = loaded_entry(call)
    await async_action_admin(call, entry)
    audit = entry.runtime_data.audit
    zone = call.data.get(ATTR_ZONE)
    since = call.data.get(ATTR_SINCE)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt_util.get_default_time_zone())
    entries = audit.query(
        zone_id=zone_id(entry.runtime_data.coordinator.site, zone) if zone else None,
        action=call.data.get(ATTR_ACTION),
        since=dt_util.as_utc(since) if since else None,
        limit=call.data[ATTR_LIMIT],
    )
    chain = await audit.async_verification()
    return {
        "entries": entries,
        "count": len(entries),
        "verified": chain["valid"],
        "first_broken": chain["first_broken"],
    }


async def _async_verify_audit_log(call: ServiceCall) -> ServiceResponse:
    """Recompute the audit trail's hash chain (admin)."""
    entry = loaded_entry(call)
    await async_action_admin(call, entry)
    return await entry.runtime_data.audit.async_verify()


@callback
def async_setup_audit_services(hass: HomeAssistant) -> None:
    """Register the audit actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_AUDIT_LOG,
        _async_get_audit_log,
        schema=AUDIT_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_VERIFY_AUDIT_LOG,
        _async_verify_audit_log,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
