"""The alert actions (send_alert, get_alerts, acknowledge_alert) and a site's alert set-up."""

from __future__ import annotations

from functools import partial
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

from ..alerts.channels.notify import member_notify_targets
from ..alerts.gateways import async_add_gateway_channels
from ..alerts.manager import DATA_ALERTS, MAX_ALERTS, AlertManager
from ..alerts.model import Alert, AlertType, Severity
from ..alerts.options import AlertOptions
from ..const import CONF_SERVICE_ACCOUNT, DOMAIN
from ..people.permissions import Actor, BadRequest
from ..runtime import MicrogridConfigEntry
from .caller import async_admin, async_site_caller, refusal
from .messages import household_named

ATTR_CONFIG_ENTRY: Final = "config_entry"
ATTR_ALERT_ID: Final = "alert_id"
ATTR_MESSAGE: Final = "message"
ATTR_TITLE: Final = "title"
ATTR_SEVERITY: Final = "severity"
ATTR_HOUSEHOLD: Final = "household"
ATTR_SITE_TARGETS: Final = "site_targets"
ATTR_OPEN_ONLY: Final = "open_only"
ATTR_ALERT_TYPE: Final = "alert_type"
ATTR_LIMIT: Final = "limit"

SERVICE_SEND_ALERT: Final = "send_alert"
SERVICE_GET_ALERTS: Final = "get_alerts"
SERVICE_ACKNOWLEDGE_ALERT: Final = "acknowledge_alert"

_ENTRY = {vol.Required(ATTR_CONFIG_ENTRY): selector.ConfigEntrySelector({"integration": DOMAIN})}
SEND_SCHEMA: Final = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_MESSAGE): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=1000)),
        vol.Optional(ATTR_TITLE): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=200)),
        vol.Optional(ATTR_SEVERITY, default=Severity.INFO.value): vol.In(
            [s.value for s in Severity]
        ),
        vol.Optional(ATTR_HOUSEHOLD): cv.string,
        vol.Optional(ATTR_SITE_TARGETS, default=True): cv.boolean,
    }
)
GET_SCHEMA: Final = vol.Schema(
    {
        **_ENTRY,
        vol.Optional(ATTR_OPEN_ONLY, default=False): cv.boolean,
        vol.Optional(ATTR_ALERT_TYPE): vol.In([t.value for t in AlertType]),
        vol.Optional(ATTR_LIMIT, default=50): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=MAX_ALERTS)
        ),
    }
)
ACK_SCHEMA: Final = vol.Schema(
    {**_ENTRY, vol.Optional(ATTR_ALERT_ID): vol.All(cv.ensure_list, [cv.string])}
)


async def async_setup_alerts(hass: HomeAssistant, entry: MicrogridConfigEntry) -> AlertManager:
    """Create and start the site's alert manager on its coordinator; it stops with the entry."""
    coordinator = entry.runtime_data.coordinator

    @callback
    def restart_zone(zone_id: str) -> bool:
        """A failing critical zone's restart attempt: its ON command written again now, as a
        fresh command (not the next retry of the old one). Not in monitor mode."""
        if not coordinator.site.control_auto or coordinator.site.zone(zone_id) is None:
            return False
        commands = coordinator.commands
        commands.pending.pop(zone_id, None)
        commands.reconcile(dt_util.utcnow(), {zone_id: (True, "restart")}, {zone_id: None}, {})
        return True

    manager = AlertManager(
        hass,
        entry_id=entry.entry_id,
        site=coordinator.site,
        audit=entry.runtime_data.audit,
        options=AlertOptions.from_options(entry.options),
        snapshot=lambda: coordinator.data,
        subscribe=coordinator.async_add_listener,
        create_task=partial(entry.async_create_task, hass),
        restart_zone=restart_zone,
    )
    await async_add_gateway_channels(
        hass, manager, entry.options, entry.data.get(CONF_SERVICE_ACCOUNT)
    )
    managers = hass.data.setdefault(DATA_ALERTS, {})
    managers[entry.entry_id] = manager

    @callback
    def _forget() -> None:
        managers.pop(entry.entry_id, None)

    entry.async_on_unload(_forget)
    await manager.async_start()
    entry.async_on_unload(manager.async_stop)
    return manager


def _site(call: ServiceCall) -> tuple[MicrogridConfigEntry, AlertManager]:
    """The loaded site and its alert manager, or a translated validation error."""
    entry_id: str = call.data[ATTR_CONFIG_ENTRY]
    entry: MicrogridConfigEntry | None = call.hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="invalid_config_entry",
            translation_placeholders={"config_entry": entry_id},
        )
    manager = call.hass.data.get(DATA_ALERTS, {}).get(entry_id)
    if entry.state is not ConfigEntryState.LOADED or manager is None:
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="unloaded_config_entry",
            translation_placeholders={"config_entry": entry.title},
        )
    return entry, manager


async def _async_site_user(
    call: ServiceCall, entry: MicrogridConfigEntry, manager: AlertManager
) -> Actor:
    """The caller (rate-limited unless an admin), who must be a user of this site."""
    request = f"{DOMAIN}.{call.service}"
    actor = await async_site_caller(call.hass, entry, call.context, request=request)
    if not manager.is_site_user(actor):
        raise refusal(entry, actor, "not_site_user", request=request, context=call.context)
    return actor


async def _async_send_alert(call: ServiceCall) -> ServiceResponse:
    """An admin's message to the site's notify targets and/or a household's members."""
    entry, manager = _site(call)
    actor = await async_admin(call.hass, entry, call.context, request=f"{DOMAIN}.{call.service}")
    members: tuple[str, ...] = ()
    household: str | None = call.data.get(ATTR_HOUSEHOLD)
    if household is not None:
        household = household_named(entry, household)
        members = member_notify_targets(call.hass, manager.site.households[household])
    alert = manager.async_raise(
        AlertType.CUSTOM,
        Severity(call.data[ATTR_SEVERITY]),
        now=dt_util.utcnow(),
        message=call.data[ATTR_MESSAGE],
        title=call.data.get(ATTR_TITLE),
        household=household,
        actor=actor,
        extra_targets=members,
        site_targets=call.data[ATTR_SITE_TARGETS],
    )
    if household is not None:
        # Only the household's members (and admins) read it: its inbox, not a notification.
        entry.runtime_data.inbox.post(
            now=alert.created_at,
            household=household,
            message=alert.message,
            title=alert.title,
            severity=alert.severity.value,
            sender=actor.user_id,
            sender_name=actor.name,
        )
    sent = await manager.async_delivered(alert.alert_id) or alert
    return {
        **manager.alert_dict(sent),
        "household": household,
        "household_targets": list(members),
    }


async def _async_get_alerts(call: ServiceCall) -> ServiceResponse:
    """The alert history, newest first, with acknowledged/escalated state, each alert's
    ladder and delivery attempts, and the site's ladder (minutes after an alert per rung)."""
    entry, manager = _site(call)
    await _async_site_user(call, entry, manager)
    alerts = manager.query(
        open_only=call.data[ATTR_OPEN_ONLY],
        alert_type=call.data.get(ATTR_ALERT_TYPE),
        limit=call.data[ATTR_LIMIT],
    )
    return {
        "alerts": alerts,
        "count": len(alerts),
        "open": sum(1 for a in manager.alerts if a.open),
        "ladder_minutes": {
            step.rung.value: round(step.delay.total_seconds() / 60, 2)
            for step in manager.options.ladder
        },
    }


async def _async_acknowledge_alert(call: ServiceCall) -> ServiceResponse:
    """Acknowledge one, several or (no id) every open alert; stops their ladders."""
    entry, manager = _site(call)
    actor = await _async_site_user(call, entry, manager)
    ids: list[str] | None = call.data.get(ATTR_ALERT_ID)
    targets: list[Alert] = []
    for alert_id in ids or ():
        if (alert := manager.get(alert_id)) is None:
            raise BadRequest(
                translation_domain=DOMAIN,
                translation_key="unknown_alert",
                translation_placeholders={"alert_id": alert_id},
            )
        targets.append(alert)
    if ids is None:  # every open alert; refused only when the caller may take none of them
        open_alerts = [a for a in manager.alerts if a.open]
        if any(manager.acknowledge_refusal(a, actor) is None for a in open_alerts):
            open_alerts = []
        targets = open_alerts
    for alert in targets:
        if (reason := manager.acknowledge_refusal(alert, actor)) is not None:
            raise refusal(
                entry,
                actor,
                reason,
                {"title": alert.title},
                request=f"{DOMAIN}.{call.service}",
                zone_id=alert.zone_id,
                alert_id=alert.alert_id,
            )
    done = manager.async_acknowledge(ids, actor)
    return {"acknowledged": [a.alert_id for a in done], "count": len(done)}


@callback
def async_setup_alert_services(hass: HomeAssistant) -> None:
    """Register the alert actions (once, from async_setup)."""
    for service, handler, schema, response in (
        (SERVICE_SEND_ALERT, _async_send_alert, SEND_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_GET_ALERTS, _async_get_alerts, GET_SCHEMA, SupportsResponse.ONLY),
        (
            SERVICE_ACKNOWLEDGE_ALERT,
            _async_acknowledge_alert,
            ACK_SCHEMA,
            SupportsResponse.OPTIONAL,
        ),
    ):
        hass.services.async_register(
            DOMAIN, service, handler, schema=schema, supports_response=response
        )
