"""Household messages: an admin writes to a household's inbox (send_message); members read
theirs (get_notifications) and mark them read (mark_notifications_read). A household never sees
another's messages; admins see every household's."""

from __future__ import annotations

from typing import Final

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util
import voluptuous as vol

from ..alerts.channels.notify import NotifyChannel, member_notify_targets
from ..alerts.model import Alert, AlertType, Severity
from ..const import DOMAIN, LOGGER
from ..people.inbox import MAX_MESSAGE_CHARS, MAX_TITLE_CHARS, SEVERITIES
from ..people.permissions import Actor, BadRequest, households_of
from ..runtime import MicrogridConfigEntry
from .caller import async_action_admin, async_action_caller, refusal, request_of
from .entry import ENTRY_FIELD, loaded_entry

ATTR_HOUSEHOLD: Final = "household"
ATTR_MESSAGE: Final = "message"
ATTR_TITLE: Final = "title"
ATTR_SEVERITY: Final = "severity"
ATTR_UNREAD_ONLY: Final = "unread_only"
ATTR_LIMIT: Final = "limit"
ATTR_MESSAGE_ID: Final = "message_id"

SERVICE_SEND_MESSAGE: Final = "send_message"
SERVICE_GET_NOTIFICATIONS: Final = "get_notifications"
SERVICE_MARK_NOTIFICATIONS_READ: Final = "mark_notifications_read"

SEND_SCHEMA: Final = vol.Schema(
    {
        **ENTRY_FIELD,
        vol.Required(ATTR_HOUSEHOLD): vol.All(cv.string, vol.Length(min=1, max=100)),
        vol.Required(ATTR_MESSAGE): vol.All(cv.string, vol.Length(min=1, max=MAX_MESSAGE_CHARS)),
        vol.Optional(ATTR_TITLE): vol.All(cv.string, vol.Length(max=MAX_TITLE_CHARS)),
        vol.Optional(ATTR_SEVERITY, default="info"): vol.In(SEVERITIES),
    }
)
GET_SCHEMA: Final = vol.Schema(
    {
        **ENTRY_FIELD,
        vol.Optional(ATTR_HOUSEHOLD): cv.string,
        vol.Optional(ATTR_UNREAD_ONLY, default=False): cv.boolean,
        vol.Optional(ATTR_LIMIT, default=50): vol.All(vol.Coerce(int), vol.Range(min=1, max=500)),
    }
)
READ_SCHEMA: Final = vol.Schema(
    {
        **ENTRY_FIELD,
        vol.Optional(ATTR_HOUSEHOLD): cv.string,
        vol.Optional(ATTR_MESSAGE_ID): vol.All(
            cv.ensure_list, [vol.All(cv.string, vol.Length(max=64))], vol.Length(max=500)
        ),
    }
)


def household_named(entry: MicrogridConfigEntry, name: str) -> str:
    """The site's household with this name (any case); a translated error otherwise."""
    households = entry.runtime_data.coordinator.site.households
    found = next((h for h in households if h.casefold() == name.casefold()), None)
    if found is None:
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="unknown_household",
            translation_placeholders={"household": name},
        )
    return found


def _scope(call: ServiceCall, entry: MicrogridConfigEntry, actor: Actor) -> frozenset[str]:
    """The households whose messages this caller may see: an admin any (one if named), a
    household member only their own (another named one is refused, audited)."""
    site = entry.runtime_data.coordinator.site
    named = call.data.get(ATTR_HOUSEHOLD)
    household = household_named(entry, named) if named else None
    if actor.is_admin:
        return frozenset({household}) if household else frozenset(site.households)
    own = households_of(site, actor.user_id)
    if household is not None and household not in own:
        raise refusal(
            entry,
            actor,
            "not_your_household",
            {"household": household},
            request=request_of(call),
            context=call.context,
        )
    if not own:
        raise refusal(entry, actor, "not_site_user", request=request_of(call), context=call.context)
    return frozenset({household}) if household else own


async def _async_send_message(call: ServiceCall) -> ServiceResponse:
    """An admin's message to one household: its inbox, and its members' phones."""
    entry = loaded_entry(call)
    actor = await async_action_admin(call, entry)
    household = household_named(entry, call.data[ATTR_HOUSEHOLD])
    now = dt_util.utcnow()
    message = entry.runtime_data.inbox.post(
        now=now,
        household=household,
        message=call.data[ATTR_MESSAGE],
        title=call.data.get(ATTR_TITLE),
        severity=call.data[ATTR_SEVERITY],
        sender=actor.user_id,
        sender_name=actor.name,
    )
    entry.runtime_data.audit.record(
        now=now,
        actor=actor.audit_id,
        actor_name=actor.name,
        action="message_sent",
        message=f"{actor.name} wrote to {household}",
        household=household,
        message_id=message.message_id,
    )
    members = entry.runtime_data.coordinator.site.households[household]
    phones = member_notify_targets(call.hass, members)
    delivered = []
    as_alert = Alert(
        alert_id=message.message_id,
        alert_type=AlertType.CUSTOM,
        severity=Severity(message.severity),
        title=message.title or entry.runtime_data.coordinator.site.site_name,
        message=message.message,
        created_at=now,
    )
    for target in phones:
        try:
            await NotifyChannel(call.hass, target).async_send(as_alert, escalated=False)
            delivered.append(target)
        except (HomeAssistantError, TimeoutError) as err:
            LOGGER.warning("A message to %s did not reach %s: %s", household, target, err)
    return {**message.as_dict(), "delivered": delivered}


async def _async_get_notifications(call: ServiceCall) -> ServiceResponse:
    """The caller's household messages, newest first, with unread counts."""
    entry = loaded_entry(call)
    actor = await async_action_caller(call, entry)
    scope = _scope(call, entry, actor)
    inbox = entry.runtime_data.inbox
    messages = inbox.messages(
        sorted(scope), unread_only=call.data[ATTR_UNREAD_ONLY], limit=call.data[ATTR_LIMIT]
    )
    return {
        "messages": [m.as_dict() for m in messages],
        "count": len(messages),
        "unread": {household: inbox.unread(household) for household in sorted(scope)},
    }


async def _async_mark_notifications_read(call: ServiceCall) -> ServiceResponse:
    """Mark the named messages (or every unread one) of the caller's households read."""
    entry = loaded_entry(call)
    actor = await async_action_caller(call, entry)
    scope = _scope(call, entry, actor)
    marked = entry.runtime_data.inbox.mark_read(
        sorted(scope),
        now=dt_util.utcnow(),
        reader=actor.audit_id,
        message_ids=call.data.get(ATTR_MESSAGE_ID),
    )
    return {"marked": marked, "count": len(marked)}


@callback
def async_setup_message_services(hass: HomeAssistant) -> None:
    """Register the message actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_SEND_MESSAGE,
        _async_send_message,
        schema=SEND_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_NOTIFICATIONS,
        _async_get_notifications,
        schema=GET_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_MARK_NOTIFICATIONS_READ,
        _async_mark_notifications_read,
        schema=READ_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
