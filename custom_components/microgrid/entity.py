"""Base entities: one site device, one device per zone (attached to its subentry)."""

from __future__ import annotations

from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .control.coordinator import MicrogridCoordinator
from .snapshot import ZoneSnapshot


def site_device_info(coordinator: MicrogridCoordinator) -> DeviceInfo:
    """The site device: every site-level entity's, and the parent of each zone's."""
    return DeviceInfo(
        identifiers={(DOMAIN, coordinator.config_entry.entry_id)},
        name=coordinator.site.site_name,
        manufacturer="Microgrid",
        model="Solar + battery site",
    )


def site_device_id(coordinator: MicrogridCoordinator) -> str:
    """The site device's registry id, registering the device first if needed.

    Zone devices name their parent by id (`via_device_id`; `via_device` identifiers stop
    working in HA 2027.8), and a zone entity may be set up before any site entity.
    """
    entry = coordinator.config_entry
    device = dr.async_get(coordinator.hass).async_get_or_create(
        config_entry_id=entry.entry_id, **site_device_info(coordinator)
    )
    return device.id


class MicrogridEntity(CoordinatorEntity[MicrogridCoordinator]):
    """An entity of the site device."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: MicrogridCoordinator, key: str) -> None:
        """Site-level entity keyed by `key` (also its translation key)."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_device_info = site_device_info(coordinator)


class MicrogridZoneEntity(CoordinatorEntity[MicrogridCoordinator]):
    """An entity of one zone's device; unavailable while its board is offline."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: MicrogridCoordinator, zone_id: str, key: str) -> None:
        """Zone-level entity keyed by zone and `key`."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        zone = coordinator.site.zone(zone_id)
        assert zone is not None
        self.zone_id = zone_id
        self._attr_unique_id = f"{entry.entry_id}_{zone_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, f"{entry.entry_id}_{zone_id}")},
            name=zone.name,
            manufacturer="Microgrid",
            model=f"ESP32 zone board ({zone.priority.value})",
            serial_number=zone_id,
            via_device_id=site_device_id(coordinator),
        )

    @property
    def zone_snapshot(self) -> ZoneSnapshot | None:
        """This zone in the latest snapshot."""
        data = self.coordinator.data
        return data.zones.get(self.zone_id) if data else None

    @property
    def available(self) -> bool:
        """Stale readings make the zone's entities unavailable."""
        snap = self.zone_snapshot
        return super().available and snap is not None and snap.online
