"""Plan actions: re-plan (optimize), read the plan (get_schedule), try a what-if (simulate) and
let one drive the zones for a while (apply_schedule)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

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
from ..people.permissions import BadRequest
from ..planning.manager import SLOT_MINUTES, WhatIf
from ..site import SiteConfig
from .caller import async_action_admin, async_action_caller
from .entry import ENTRY_FIELD, ENTRY_SCHEMA, loaded_entry, zone_id
from .zones import ATTR_DURATION, MAX_OVERRIDE

ATTR_SOC: Final = "soc_pct"
ATTR_PV_SCALE: Final = "pv_scale"
ATTR_DEMAND_SCALE: Final = "demand_scale"
ATTR_ZONES_OFF: Final = "zones_off"
ATTR_RATED_W: Final = "rated_w"
ATTR_HORIZON_HOURS: Final = "horizon_hours"

SERVICE_OPTIMIZE: Final = "optimize"
SERVICE_GET_SCHEDULE: Final = "get_schedule"
SERVICE_SIMULATE: Final = "simulate"
SERVICE_APPLY_SCHEDULE: Final = "apply_schedule"

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
SIMULATE_SCHEMA: Final = vol.Schema({**ENTRY_FIELD, **_WHAT_IF})
APPLY_SCHEMA: Final = vol.Schema(
    {
        **ENTRY_FIELD,
        **_WHAT_IF,
        vol.Optional(ATTR_DURATION, default=timedelta(hours=6)): vol.All(
            cv.time_period, vol.Range(min=timedelta(minutes=5), max=MAX_OVERRIDE)
        ),
    }
)


def _what_if(site: SiteConfig, data: dict[str, Any]) -> WhatIf:
    """The what-if changes of a simulate/apply call, with zone names resolved."""
    return WhatIf(
        soc_pct=data.get(ATTR_SOC),
        pv_scale=data[ATTR_PV_SCALE],
        demand_scale=data[ATTR_DEMAND_SCALE],
        zones_off=frozenset(zone_id(site, z) for z in data[ATTR_ZONES_OFF]),
        rated_w={zone_id(site, z): w for z, w in data[ATTR_RATED_W].items()},
        horizon_slots=data[ATTR_HORIZON_HOURS] * 60 // SLOT_MINUTES,
    )


def _no_reading() -> BadRequest:
    """Planning needs the battery's state of charge."""
    return BadRequest(translation_domain=DOMAIN, translation_key="no_reading")


async def _async_optimize(call: ServiceCall) -> ServiceResponse:
    """Re-plan now (admin) and answer with the new plan's summary."""
    entry = loaded_entry(call)
    actor = await async_action_admin(call, entry)
    planner = entry.runtime_data.coordinator.planner
    result = await planner.async_replan("action")
    if result is None:
        raise _no_reading()
    entry.runtime_data.audit.record(
        now=dt_util.utcnow(),
        actor=actor.audit_id,
        actor_name=actor.name,
        action="optimize",
        unmet=list(result.unmet),
    )
    return planner.summary()


async def _async_get_schedule(call: ServiceCall) -> ServiceResponse:
    """The current plan."""
    entry = loaded_entry(call)
    await async_action_caller(call, entry)
    return entry.runtime_data.coordinator.planner.summary()


async def _async_simulate(call: ServiceCall) -> ServiceResponse:
    """A what-if plan; never touches a relay."""
    entry = loaded_entry(call)
    await async_action_caller(call, entry)
    coordinator = entry.runtime_data.coordinator
    outcome = await coordinator.planner.async_simulate(_what_if(coordinator.site, call.data))
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
    entry = loaded_entry(call)
    actor = await async_action_admin(call, entry)
    coordinator = entry.runtime_data.coordinator
    outcome = await coordinator.planner.async_simulate(_what_if(coordinator.site, call.data))
    if outcome is None:
        raise _no_reading()
    _, result = outcome
    until = dt_util.utcnow() + call.data[ATTR_DURATION]
    coordinator.planner.install(result, until=until)
    entry.runtime_data.audit.record(
        now=dt_util.utcnow(),
        actor=actor.audit_id,
        actor_name=actor.name,
        action="apply_schedule",
        message=f"{actor.name} applied a schedule until {until:%H:%M}",
        until=until.isoformat(),
        unmet=list(result.unmet),
    )
    return coordinator.planner.summary()


@callback
def async_setup_plan_services(hass: HomeAssistant) -> None:
    """Register the plan actions."""
    for service, handler, schema, response in (
        (SERVICE_OPTIMIZE, _async_optimize, ENTRY_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_GET_SCHEDULE, _async_get_schedule, ENTRY_SCHEMA, SupportsResponse.ONLY),
        (SERVICE_SIMULATE, _async_simulate, SIMULATE_SCHEMA, SupportsResponse.ONLY),
        (SERVICE_APPLY_SCHEDULE, _async_apply_schedule, APPLY_SCHEMA, SupportsResponse.OPTIONAL),
    ):
        hass.services.async_register(
            DOMAIN, service, handler, schema=schema, supports_response=response
        )
