"""Base entities: one site device, one device per zone (attached to its subentry)."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import MicrogridCoordinator
from .models import ZoneSnapshot


class MicrogridEntity(CoordinatorEntity[MicrogridCoordinator]):
    """An entity of the site device."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: MicrogridCoordinator, key: str) -> None:
        """Site-level entity keyed by `key` (also its translation key)."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=coordinator.site.site_name,
            manufacturer="Microgrid",
            model="Solar + battery site",
        )


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
            via_device=(DOMAIN, entry.entry_id),
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
