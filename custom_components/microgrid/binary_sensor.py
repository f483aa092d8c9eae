"""Binary sensors: the site's emergency, anomaly and stream; each zone's board and anomaly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import MicrogridEntity, MicrogridZoneEntity
from .optimizer.model import Band
from .runtime import MicrogridConfigEntry
from .snapshot import SiteSnapshot

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class SiteBinarySensorDescription(BinarySensorEntityDescription):
    """A site binary sensor read from the snapshot."""

    is_on_fn: Callable[[SiteSnapshot], bool | None]
    attrs_fn: Callable[[SiteSnapshot], dict[str, Any] | None] = lambda _: None


SITE_BINARY_SENSORS: tuple[SiteBinarySensorDescription, ...] = (
    SiteBinarySensorDescription(
        key="emergency",
        translation_key="emergency",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=lambda s: None if s.band is None else s.band is Band.EMERGENCY,
    ),
    SiteBinarySensorDescription(
        key="site_anomaly",
        translation_key="site_anomaly",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=lambda s: s.ml.site_anomaly is not None,
        attrs_fn=lambda s: s.ml.site_anomaly,
    ),
    SiteBinarySensorDescription(
        key="stream_connected",
        translation_key="stream_connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on_fn=lambda s: s.connected,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MicrogridConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Site binary sensors, and a board-online sensor per zone."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(SiteBinarySensor(coordinator, d) for d in SITE_BINARY_SENSORS)
    for zone in coordinator.site.zones:
        async_add_entities(
            [
                BoardOnlineSensor(coordinator, zone.zone_id),
                ZoneAnomalySensor(coordinator, zone.zone_id),
            ],
            config_subentry_id=coordinator.site.zone_subentry.get(zone.zone_id),
        )


class SiteBinarySensor(MicrogridEntity, BinarySensorEntity):
    """A site-level binary sensor."""

    entity_description: SiteBinarySensorDescription

    def __init__(self, coordinator, description: SiteBinarySensorDescription) -> None:  # type: ignore[no-untyped-def]
        """Describe it."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def is_on(self) -> bool | None:
        """From the snapshot."""
        data = self.coordinator.data
        return self.entity_description.is_on_fn(data) if data else None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Detail some site binary sensors carry."""
        data = self.coordinator.data
        return self.entity_description.attrs_fn(data) if data else None


class BoardOnlineSensor(MicrogridZoneEntity, BinarySensorEntity):
    """Whether the zone's board reports fresh readings (always available itself)."""

    _attr_translation_key = "board_online"
    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, coordinator, zone_id: str) -> None:  # type: ignore[no-untyped-def]
        """Key `board_online`."""
        super().__init__(coordinator, zone_id, "board_online")

    @property
    def available(self) -> bool:
        """It reports offline rather than going unavailable."""
        return self.coordinator.last_update_success or self.coordinator.data is not None

    @property
    def is_on(self) -> bool | None:
        """Online while fresh."""
        snap = self.zone_snapshot
        return snap.online if snap else None


class ZoneAnomalySensor(MicrogridZoneEntity, BinarySensorEntity):
    """On while an anomaly of the zone is active; its type and score as attributes."""

    _attr_translation_key = "anomaly"
    _attr_device_class = BinarySensorDeviceClass.PROBLEM

    def __init__(self, coordinator, zone_id: str) -> None:  # type: ignore[no-untyped-def]
        """Key `anomaly`."""
        super().__init__(coordinator, zone_id, "anomaly")

    @property
    def available(self) -> bool:
        """A silent board is itself an anomaly: stay available while it is away."""
        return self.coordinator.last_update_success or self.coordinator.data is not None

    @property
    def _active(self) -> dict[str, Any] | None:
        """The zone's active anomaly, if any."""
        data = self.coordinator.data
        return data.ml.zone_anomalies.get(self.zone_id) if data else None

    @property
    def is_on(self) -> bool | None:
        """An anomaly is active."""
        return None if self.coordinator.data is None else self._active is not None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Type, score, all active types and when the strongest evidence was seen."""
        return self._active or {"score": 0.0, "type": None}
