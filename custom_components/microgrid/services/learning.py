"""Learning actions: retrain the models now (retrain) and read the demand forecast
(get_forecast)."""

from __future__ import annotations

from typing import Final

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.util import dt as dt_util

from ..const import DOMAIN
from ..learning.manager import report_attrs
from ..people.permissions import BadRequest
from ..planning.manager import HORIZON_SLOTS
from .caller import async_action_admin, async_action_caller
from .entry import ENTRY_SCHEMA, loaded_entry

SERVICE_RETRAIN: Final = "retrain"
SERVICE_GET_FORECAST: Final = "get_forecast"


async def _async_retrain(call: ServiceCall) -> ServiceResponse:
    """Retrain the models now from the recorded history (admin, audited)."""
    entry = loaded_entry(call)
    actor = await async_action_admin(call, entry)
    report = await entry.runtime_data.coordinator.ml.async_retrain("action")
    entry.runtime_data.audit.record(
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
    entry = loaded_entry(call)
    await async_action_caller(call, entry)
    ml = entry.runtime_data.coordinator.ml
    response = ml.forecast_response(dt_util.utcnow(), HORIZON_SLOTS)
    if response is None:
        raise BadRequest(translation_domain=DOMAIN, translation_key="no_forecast")
    return response


@callback
def async_setup_learning_services(hass: HomeAssistant) -> None:
    """Register the learning actions."""
    for service, handler, response in (
        (SERVICE_RETRAIN, _async_retrain, SupportsResponse.OPTIONAL),
        (SERVICE_GET_FORECAST, _async_get_forecast, SupportsResponse.ONLY),
    ):
        hass.services.async_register(
            DOMAIN, service, handler, schema=ENTRY_SCHEMA, supports_response=response
        )
