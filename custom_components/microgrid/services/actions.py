"""Actions: overrides, the audit log, the day plan and the learned models (registered once)."""

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
from homeassistant.helpers import config_validation as cv, selector
from homeassistant.util import dt as dt_util
import voluptuous as vol

from ..const import DOMAIN
from ..control.coordinator import MicrogridCoordinator
from ..learning.manager import report_attrs
from ..people.permissions import Actor, BadRequest
from ..planning.manager import HORIZON_SLOTS, SLOT_MINUTES, WhatIf
from ..runtime import MicrogridConfigEntry
from ..services.caller import async_admin, async_site_caller

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
SERVICE_VERIFY_AUDIT_LOG: Final = "verify_audit_log"
SERVICE_OPTIMIZE: Final = "optimize"
SERVICE_GET_SCHEDULE: Final = "get_schedule"
SERVICE_SIMULATE: Final = "simulate"
SERVICE_APPLY_SCHEDULE: Final = "apply_schedule"
SERVICE_RETRAIN: Final = "retrain"
SERVICE_GET_FORECAST: Final = "get_forecast"

ATTR_SOC: Final = "soc_pct"
ATTR_PV_SCALE: Final = "pv_scale"
ATTR_DEMAND_SCALE: Final = "demand_scale"
ATTR_ZONES_OFF: Final = "zones_off"
ATTR_RATED_W: Final = "rated_w"
ATTR_HORIZON_HOURS: Final = "horizon_hours"

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


_WHAT_IF = {
    vol.Optional(ATTR_SOC): vol.All(vol.Coerce(float), vol.Range(min=0, max=100)),
    vol.Optional(ATTR_PV_SCALE, default=1.0): vol.All(vol.Coerce(float), vol.Range(min=0, max=10)),
    vol.Optional(ATTR_DEMAND_SCALE, default=1.0): vol.All(
        vol.Coerce(float), vol.Range(min=0, max=10)
    ),
    vol.Optional(ATTR_ZONES_OFF, default=list): vol.All(cv.ensure_list, [cv.string]),
    vol.Optional(ATTR_RATED_W, default=dict): {
        cv.string: vol.All(vol.Coerce(float), vol.Range(min=0, max=100_000))
    },
    vol.Optional(ATTR_HORIZON_HOURS, default=24): vol.All(
        vol.Coerce(int), vol.Range(min=1, max=48)
    ),
}
ENTRY_SCHEMA: Final = vol.Schema(_ENTRY)
SIMULATE_SCHEMA: Final = vol.Schema({**_ENTRY, **_WHAT_IF})
APPLY_SCHEMA: Final = vol.Schema(
    {
        **_ENTRY,
        **_WHAT_IF,
        vol.Optional(ATTR_DURATION, default=timedelta(hours=6)): vol.All(
            cv.time_period, vol.Range(min=timedelta(minutes=5), max=MAX_OVERRIDE)
        ),
    }
)


def _coordinator(call: ServiceCall) -> MicrogridCoordinator:
    """The loaded entry's coordinator, or a translated validation error."""
    entry_id: str = call.data[ATTR_CONFIG_ENTRY]
    entry: MicrogridConfigEntry | None = call.hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="invalid_config_entry",
            translation_placeholders={"config_entry": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise BadRequest(
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
    raise BadRequest(
        translation_domain=DOMAIN,
        translation_key="unknown_zone",
        translation_placeholders={"zone": value},
    )


async def _admin(call: ServiceCall, coordinator: MicrogridCoordinator) -> Actor:
    """The calling admin; others are rate-limited, then refused (audited, Unauthorized)."""
    return await async_admin(
        call.hass, coordinator.config_entry, call.context, request=f"{DOMAIN}.{call.service}"
    )


async def _caller(call: ServiceCall, coordinator: MicrogridCoordinator) -> Actor:
    """Anyone may call; users who are not admins are rate-limited."""
    return await async_site_caller(
        call.hass, coordinator.config_entry, call.context, request=f"{DOMAIN}.{call.service}"
    )


async def _async_override_zone(call: ServiceCall) -> ServiceResponse:
    """Force a zone on or off until the override expires (admin, with a reason)."""
    coordinator = _coordinator(call)
    actor = await _admin(call, coordinator)
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
    coordinator = _coordinator(call)
    actor = await _admin(call, coordinator)
    zone_id = _zone_id(coordinator, call.data[ATTR_ZONE])
    if not coordinator.async_clear_override(zone_id, actor=actor.audit_id, actor_name=actor.name):
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="no_override",
            translation_placeholders={"zone": zone_id},
        )


async def _async_get_audit_log(call: ServiceCall) -> ServiceResponse:
    """The audit trail, newest first (admin)."""
    coordinator = _coordinator(call)
    await _admin(call, coordinator)
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
    chain = await coordinator.audit.async_verification()
    return {
        "entries": entries,
        "count": len(entries),
        "verified": chain["valid"],
        "first_broken": chain["first_broken"],
    }


async def _async_verify_audit_log(call: ServiceCall) -> ServiceResponse:
    """Recompute the audit trail's hash chain (admin)."""
    coordinator = _coordinator(call)
    await _admin(call, coordinator)
    return await coordinator.audit.async_verify()


def _what_if(coordinator: MicrogridCoordinator, data: dict) -> WhatIf:
    """The what-if changes of a simulate/apply call, with zone names resolved."""
    return WhatIf(
        soc_pct=data.get(ATTR_SOC),
        pv_scale=data[ATTR_PV_SCALE],
        demand_scale=data[ATTR_DEMAND_SCALE],
        zones_off=frozenset(_zone_id(coordinator, z) for z in data[ATTR_ZONES_OFF]),
        rated_w={_zone_id(coordinator, z): w for z, w in data[ATTR_RATED_W].items()},
        horizon_slots=data[ATTR_HORIZON_HOURS] * 60 // SLOT_MINUTES,
    )


def _no_reading() -> BadRequest:
    """Planning needs the battery's state of charge."""
    return BadRequest(translation_domain=DOMAIN, translation_key="no_reading")


async def _async_optimize(call: ServiceCall) -> ServiceResponse:
    """Re-plan now (admin) and answer with the new plan's summary."""
    coordinator = _coordinator(call)
    actor = await _admin(call, coordinator)
    result = await coordinator.planner.async_replan("action")
    if result is None:
        raise _no_reading()
    coordinator.audit.record(
        now=dt_util.utcnow(),
        actor=actor.audit_id,
        actor_name=actor.name,
        action="optimize",
        unmet=list(result.unmet),
    )
    return coordinator.planner.summary()


async def _async_get_schedule(call: ServiceCall) -> ServiceResponse:
    """The current plan."""
    coordinator = _coordinator(call)
    await _caller(call, coordinator)
    return coordinator.planner.summary()


async def _async_simulate(call: ServiceCall) -> ServiceResponse:
    """A what-if plan; never touches a relay."""
    coordinator = _coordinator(call)
    await _caller(call, coordinator)
    outcome = await coordinator.planner.async_simulate(_what_if(coordinator, call.data))
    if outcome is None:
        raise _no_reading()
    inp, result = outcome
    return {
        **coordinator.planner.summary(result),
        "status": "simulated",
        "assumed": {
            "soc_pct": inp.battery.soc_pct,
            "pv_wh": round(sum(inp.pv_w) * SLOT_MINUTES / 60, 1),
            "zones": [z.zone_id for z in inp.zones],
        },
    }


async def _async_apply_schedule(call: ServiceCall) -> ServiceResponse:
    """Plan (optionally a what-if) and let it drive the zones for a while (admin, audited)."""
    coordinator = _coordinator(call)
    actor = await _admin(call, coordinator)
    outcome = await coordinator.planner.async_simulate(_what_if(coordinator, call.data))
    if outcome is None:
        raise _no_reading()
    _, result = outcome
    until = dt_util.utcnow() + call.data[ATTR_DURATION]
    coordinator.planner.install(result, until=until)
    coordinator.audit.record(
        now=dt_util.utcnow(),
        actor=actor.audit_id,
        actor_name=actor.name,
        action="apply_schedule",
        message=f"{actor.name} applied a schedule until {until:%H:%M}",
        until=until.isoformat(),
        unmet=list(result.unmet),
    )
    return coordinator.planner.summary()


async def _async_retrain(call: ServiceCall) -> ServiceResponse:
    """Retrain the models now from the recorded history (admin, audited)."""
    coordinator = _coordinator(call)
    actor = await _admin(call, coordinator)
    report = await coordinator.ml.async_retrain("action")
    coordinator.audit.record(
        now=dt_util.utcnow(),
        actor=actor.audit_id,
        actor_name=actor.name,
        action="retrain",
        rows=report.rows,
        method=report.method,
    )
    return report_attrs(report)


async def _async_get_forecast(call: ServiceCall) -> ServiceResponse:
    """The demand forecast over the planner's horizon: site, PV and each zone per slot."""
    coordinator = _coordinator(call)
    await _caller(call, coordinator)
    response = coordinator.ml.forecast_response(dt_util.utcnow(), HORIZON_SLOTS)
    if response is None:
        raise BadRequest(translation_domain=DOMAIN, translation_key="no_forecast")
    return response


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
    for service, handler, schema, response in (
        (SERVICE_OPTIMIZE, _async_optimize, ENTRY_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_GET_SCHEDULE, _async_get_schedule, ENTRY_SCHEMA, SupportsResponse.ONLY),
        (SERVICE_VERIFY_AUDIT_LOG, _async_verify_audit_log, ENTRY_SCHEMA, SupportsResponse.ONLY),
        (SERVICE_SIMULATE, _async_simulate, SIMULATE_SCHEMA, SupportsResponse.ONLY),
        (SERVICE_APPLY_SCHEDULE, _async_apply_schedule, APPLY_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_RETRAIN, _async_retrain, ENTRY_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_GET_FORECAST, _async_get_forecast, ENTRY_SCHEMA, SupportsResponse.ONLY),
    ):
        hass.services.async_register(
            DOMAIN, service, handler, schema=schema, supports_response=response
        )
