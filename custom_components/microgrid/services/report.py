"""The daily energy report as an action (get_daily_report): the whole site for admins, a
household member's own zones otherwise; and the reporter's wiring for a loaded site."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from typing import Any, Final

from homeassistant.core import (
    CALLBACK_TYPE,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util
import voluptuous as vol

from ..alerts.manager import DATA_ALERTS
from ..alerts.report import DEFAULT_REPORT_TIME, DailyReporter
from ..const import CONF_NOTIFY_TARGETS, CONF_REPORT_TIME, DOMAIN
from ..control.ledger import DayReport
from ..people.permissions import BadRequest, households_of
from ..runtime import MicrogridConfigEntry
from .caller import async_action_caller, refusal, request_of
from .entry import ENTRY_FIELD, loaded_entry

ATTR_DAY: Final = "day"
SERVICE_GET_DAILY_REPORT: Final = "get_daily_report"
REPORT_SCHEMA: Final = vol.Schema({**ENTRY_FIELD, vol.Optional(ATTR_DAY): cv.date})


def report_time(value: Any) -> time:
    """The configured send time ("HH:MM[:SS]"), else the default."""
    parsed = dt_util.parse_time(str(value)) if value else None
    return parsed or DEFAULT_REPORT_TIME


def _alerts_between(hass: HomeAssistant, entry_id: str, start: datetime, end: datetime) -> int:
    manager = hass.data.get(DATA_ALERTS, {}).get(entry_id)
    if manager is None:
        return 0
    return sum(1 for a in manager.alerts if start <= a.created_at < end)


def _overrides_between(entry: MicrogridConfigEntry, start: datetime, end: datetime) -> int:
    found = entry.runtime_data.audit.query(action="override_set", since=start, limit=10_000)
    return sum(1 for e in found if e["at"] < end.isoformat())


async def async_setup_reporter(hass: HomeAssistant, entry: MicrogridConfigEntry) -> DailyReporter:
    """The site's daily reporter, armed at the configured time (disarmed at unload)."""
    coordinator = entry.runtime_data.coordinator
    reporter = DailyReporter(
        hass,
        site=coordinator.site,
        strings=await async_get_translations(hass, hass.config.language, "exceptions", [DOMAIN]),
        report_of=coordinator.ledger.report,
        alerts_between=lambda start, end: _alerts_between(hass, entry.entry_id, start, end),
        overrides_between=lambda start, end: _overrides_between(entry, start, end),
        inbox=entry.runtime_data.inbox,
        notify_targets=tuple(entry.options.get(CONF_NOTIFY_TARGETS) or ()),
        at=report_time(entry.options.get(CONF_REPORT_TIME)),
    )
    stop: CALLBACK_TYPE = reporter.async_start()
    entry.async_on_unload(stop)
    entry.runtime_data.reporter = reporter
    return reporter


def _report_for(entry: MicrogridConfigEntry, day: date | None) -> DayReport:
    """The closed report of `day` (the latest by default), or today's so far."""
    ledger = entry.runtime_data.coordinator.ledger
    today = dt_util.now().date()
    found = ledger.report(day) if day is not None else ledger.report() or ledger.report(today)
    if found is None:
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="no_daily_report",
            translation_placeholders={"day": (day or today).isoformat()},
        )
    return found


async def _async_get_daily_report(call: ServiceCall) -> ServiceResponse:
    """A day as it happened: served and unserved energy, bands, alerts, overrides."""
    entry = loaded_entry(call)
    actor = await async_action_caller(call, entry)
    report = _report_for(entry, call.data.get(ATTR_DAY))
    reporter = entry.runtime_data.reporter
    if actor.is_admin:
        return reporter.response(report) if reporter else report.as_dict()
    own = households_of(entry.runtime_data.coordinator.site, actor.user_id)
    if not own:
        raise refusal(entry, actor, "not_site_user", request=request_of(call), context=call.context)
    part = replace(report, zones={k: z for k, z in report.zones.items() if z.household in own})
    return {**part.as_dict(), "households": sorted(own)}


@callback
def async_setup_report_services(hass: HomeAssistant) -> None:
    """Register the report action."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_DAILY_REPORT,
        _async_get_daily_report,
        schema=REPORT_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
