"""Each zone's relay as a switch: shows the confirmed state; toggles ask within the rules."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import MicrogridZoneEntity
from .people.permissions import zone_switch_refusal
from .runtime import MicrogridConfigEntry
from .services.caller import async_site_caller, refusal

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MicrogridConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One relay switch per zone, under the zone's subentry."""
    coordinator = entry.runtime_data.coordinator
    for zone in coordinator.site.zones:
        async_add_entities(
            [ZoneRelaySwitch(coordinator, zone.zone_id)],
            config_subentry_id=coordinator.site.zone_subentry.get(zone.zone_id),
        )


class ZoneRelaySwitch(MicrogridZoneEntity, SwitchEntity):
    """A zone relay."""

    _attr_translation_key = "relay"

    def __init__(self, coordinator, zone_id: str) -> None:  # type: ignore[no-untyped-def]
        """Key `relay`."""
        super().__init__(coordinator, zone_id, "relay")

    @property
    def is_on(self) -> bool | None:
        """The state the board confirmed (relayState), not the one asked for."""
        snap = self.zone_snapshot
        return snap.relay_on if snap else None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Why the zone is where it is, and any command on its way."""
        snap = self.zone_snapshot
        if snap is None:
            return {}
        zone = snap.zone
        return {
            "zone_id": zone.zone_id,
            "priority": zone.priority.value,
            "household": zone.household,
            "desired_state": None
            if snap.desired_on is None
            else ("on" if snap.desired_on else "off"),
            "reason": snap.reason,
            "forced": snap.forced,
            "pending_command": snap.pending.as_dict() if snap.pending else None,
            "board_mode": snap.reading.mode if snap.reading else None,
        }

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Ask for the zone on."""
        await self._async_request(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Ask for the zone off."""
        await self._async_request(False)

    async def _async_request(self, on: bool) -> None:
        """Check the caller (rate limit, then the rules), then record the request and decide."""
        coordinator = self.coordinator
        zone = coordinator.site.zone(self.zone_id)
        assert zone is not None
        entry = coordinator.config_entry
        request = f"switch.turn_{'on' if on else 'off'}"
        actor = await async_site_caller(
            self.hass, entry, self._context, request=request, zone_id=self.zone_id
        )
        reason = zone_switch_refusal(coordinator.site, actor, zone, coordinator.band, on)
        if reason is not None:
            raise refusal(
                entry, actor, reason, {"zone": zone.name}, request=request, zone_id=self.zone_id
            )
        coordinator.async_set_request(self.zone_id, on, actor=actor.audit_id, actor_name=actor.name)
