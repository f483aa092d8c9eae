"""Where alerts go: notify actions, persistent notifications, the event entity, SMS and push."""

from __future__ import annotations

from typing import Protocol

from ..model import Alert


class AlertChannel(Protocol):
    """Somewhere an alert goes (notify, persistent notification, event, Twilio SMS, FCM push)."""

    name: str

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Deliver the alert; raise HomeAssistantError when it could not be delivered."""
