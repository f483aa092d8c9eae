"""The event-entity channel: every alert fires the site's `event` entity (via the dispatcher)."""

from __future__ import annotations

from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.dispatcher import async_dispatcher_send

from ...const import DOMAIN
from ..model import Alert

SIGNAL_ALERT: Final = f"{DOMAIN}_alert_{{}}"  # .format(entry_id); payload (alert, escalated)


class EventEntityChannel:
    """The site's `event` entity, so automations can react (reached through the dispatcher)."""

    name = "event"

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """For one site entry."""
        self._hass = hass
        self._signal = SIGNAL_ALERT.format(entry_id)

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Fire the entity's event."""
        async_dispatcher_send(self._hass, self._signal, alert, escalated)
