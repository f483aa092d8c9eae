"""The site's alert event entity: every alert fires it, so automations can react."""

from __future__ import annotations

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .alerts.channels.event import SIGNAL_ALERT
from .alerts.model import Alert, AlertType
from .const import DOMAIN
from .runtime import MicrogridConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MicrogridConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One alert event entity per site."""
    async_add_entities([MicrogridAlertEvent(entry.entry_id)])


class MicrogridAlertEvent(EventEntity):
    """Fires `battery_low`, `battery_emergency`, … with the alert as attributes.

    Not a coordinator entity: alerts matter most when the site's data is failing, so this
    entity stays available and fires regardless.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_translation_key = "alerts"
    _attr_event_types = [t.value for t in AlertType]

    def __init__(self, entry_id: str) -> None:
        """The alerts of one site, on the site's device."""
        self._entry_id = entry_id
        self._attr_unique_id = f"{entry_id}_alerts"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, entry_id)})

    async def async_added_to_hass(self) -> None:
        """Listen for the site's alerts."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, SIGNAL_ALERT.format(self._entry_id), self._async_alert
            )
        )

    @callback
    def _async_alert(self, alert: Alert, escalated: bool) -> None:
        """Fire the event for one alert (again, flagged, when it escalates)."""
        self._trigger_event(
            alert.alert_type,
            {
                "alert_id": alert.alert_id,
                "severity": alert.severity.value,
                "title": alert.title,
                "message": alert.message,
                "zone_id": alert.zone_id,
                "soc_pct": alert.soc_pct,
                "escalated": escalated,
            },
        )
        self.async_write_ha_state()
