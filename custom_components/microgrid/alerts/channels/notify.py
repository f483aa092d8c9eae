"""The notify channel: a notify action or notify entity per target, and people's phones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import slugify

from ..model import Alert

# A notify action that hangs must not hold the other channels.
DELIVERY_TIMEOUT_S: Final = 30


class NotifyChannel:
    """One notify action (`notify.mobile_app_x`) or notify entity (via notify.send_message)."""

    def __init__(self, hass: HomeAssistant, target: str) -> None:
        """For one normalized target."""
        self._hass = hass
        self.name = target

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Call the notify action and wait for it (bounded)."""
        service = self.name.split(".", 1)[1]
        if self._hass.services.has_service("notify", service):
            call = ("notify", service, {"message": alert.message, "title": alert.title})
        elif self._hass.states.get(self.name) is not None:
            call = (
                "notify",
                "send_message",
                {"entity_id": self.name, "message": alert.message, "title": alert.title},
            )
        else:
            raise HomeAssistantError(f"no notify action or entity {self.name}")
        async with asyncio.timeout(DELIVERY_TIMEOUT_S):
            await self._hass.services.async_call(*call, blocking=True)


def member_notify_targets(hass: HomeAssistant, user_ids: Iterable[str]) -> tuple[str, ...]:
    """The mobile-app notify actions of these HA users' phones."""
    users = set(user_ids)
    return tuple(
        sorted(
            f"notify.mobile_app_{slugify(entry.data['device_name'])}"
            for entry in hass.config_entries.async_entries("mobile_app")
            if entry.data.get("user_id") in users and entry.data.get("device_name")
        )
    )
