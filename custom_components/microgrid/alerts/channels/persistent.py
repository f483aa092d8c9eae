"""The persistent-notification channel: one sidebar notification per alert (always on)."""

from __future__ import annotations

from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant, callback

from ...const import DOMAIN
from ..model import Alert


class PersistentNotificationChannel:
    """A persistent notification in the HA sidebar (always on)."""

    name = "persistent_notification"

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """For one site entry."""
        self._hass = hass
        self._entry_id = entry_id

    def notification_id(self, alert: Alert) -> str:
        """One notification per alert, so acknowledging it can dismiss it."""
        return f"{DOMAIN}_{self._entry_id}_{alert.alert_id}"

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Create (or, on escalation, replace) the notification."""
        self.show(alert)

    @callback
    def show(self, alert: Alert) -> None:
        """Create or replace the alert's notification. A message to one household is not shown
        here (every user of HA sees these): it is in that household's inbox."""
        if alert.household is not None:
            return
        persistent_notification.async_create(
            self._hass, alert.message, alert.title, self.notification_id(alert)
        )

    @callback
    def dismiss(self, alert: Alert) -> None:
        """Remove the alert's notification."""
        persistent_notification.async_dismiss(self._hass, self.notification_id(alert))
