"""Sensors: the site's battery, solar, load, energy and band; each zone's power and energy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import slugify

from .const import SIGNAL_INBOX
from .entity import MicrogridEntity, MicrogridZoneEntity
from .optimizer.model import Band
from .people.inbox import Inbox
from .planning.manager import PLAN_STATUSES
from .runtime import MicrogridConfigEntry
from .snapshot import SiteSnapshot, ZoneSnapshot

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class SiteSensorDescription(SensorEntityDescription):
    """A site sensor read from the snapshot."""

    value_fn: Callable[[SiteSnapshot], StateType]
    attrs_fn: Callable[[SiteSnapshot], dict[str, Any] | None] = lambda _: None


@dataclass(frozen=True, kw_only=True)
class ZoneSensorDescription(SensorEntityDescription):
    """A zone sensor read from the zone's snapshot."""

    value_fn: Callable[[ZoneSnapshot], StateType]
    needs_online: bool = True


def _site_energy(key: str, kwh: Callable[[SiteSnapshot], float]) -> SiteSensorDescription:
    """A site energy counter (kWh, total_increasing: fit for the Energy dashboard)."""
    return SiteSensorDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        suggested_display_precision=3,
        value_fn=lambda s: round(kwh(s), 6),
    )


SITE_SENSORS: tuple[SiteSensorDescription, ...] = (
    SiteSensorDescription(
        key="battery_soc",
        translation_key="battery_soc",
        device_class=SensorDeviceClass.BATTERY,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda s: s.soc_pct,
    ),
    SiteSensorDescription(
        key="battery_voltage",
        translation_key="battery_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda s: s.voltage_v,
    ),
    SiteSensorDescription(
        key="solar_power",
        translation_key="solar_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda s: s.solar_w,
    ),
    SiteSensorDescription(
        key="load_power",
        translation_key="load_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda s: s.load_w,
    ),
    SiteSensorDescription(
        key="net_power",
        translation_key="net_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda s: s.net_w,
    ),
    _site_energy("solar_energy", lambda s: s.solar_energy_kwh),
    _site_energy("consumption_energy", lambda s: s.consumption_energy_kwh),
    # For the Energy dashboard's battery: into the battery (solar beyond the load) and out of it.
    _site_energy("battery_charge_energy", lambda s: s.battery_charge_energy_kwh),
    _site_energy("battery_discharge_energy", lambda s: s.battery_discharge_energy_kwh),
    SiteSensorDescription(
        key="plan_status",
        translation_key="plan_status",
        device_class=SensorDeviceClass.ENUM,
        options=list(PLAN_STATUSES),
        value_fn=lambda s: s.plan_status,
        attrs_fn=lambda s: s.plan_attrs,
    ),
    SiteSensorDescription(
        key="expected_unserved_energy",
        translation_key="expected_unserved_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda s: s.expected_unserved_wh,
        attrs_fn=lambda s: s.unserved_by_class,
    ),
    SiteSensorDescription(
        key="sustain_time",
        translation_key="sustain_time",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.HOURS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda s: s.ml.sustain_h,
        attrs_fn=lambda s: s.ml.sustain_attrs,
    ),
    SiteSensorDescription(
        key="model_health",
        translation_key="model_health",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.ml.trained_at,  # type: ignore[arg-type,return-value]
        attrs_fn=lambda s: s.ml.health_attrs,
    ),
    SiteSensorDescription(
        key="operating_band",
        translation_key="operating_band",
        device_class=SensorDeviceClass.ENUM,
        options=[band.value for band in Band],
        value_fn=lambda s: s.band.value if s.band else None,
    ),
)

FORECAST_SENSOR = SiteSensorDescription(
    key="demand_forecast",
    translation_key="demand_forecast",
    device_class=SensorDeviceClass.POWER,
    native_unit_of_measurement=UnitOfPower.WATT,
    suggested_display_precision=0,
    value_fn=lambda s: s.ml.forecast_next_w,
    attrs_fn=lambda s: s.ml.forecast_attrs,
)

ZONE_SENSORS: tuple[ZoneSensorDescription, ...] = (
    ZoneSensorDescription(
        key="power",
        translation_key="zone_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda z: z.power_w,
    ),
    ZoneSensorDescription(
        key="energy",
        translation_key="zone_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        suggested_display_precision=3,
        # A counter stays meaningful while the board is away.
        needs_online=False,
        value_fn=lambda z: round(z.energy_kwh, 6),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MicrogridConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the site sensors and each zone's sensors (zones under their subentries)."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(SiteSensor(coordinator, d) for d in SITE_SENSORS)
    async_add_entities([ForecastSensor(coordinator, FORECAST_SENSOR)])
    for zone in coordinator.site.zones:
        async_add_entities(
            (ZoneSensor(coordinator, zone.zone_id, d) for d in ZONE_SENSORS),
            config_subentry_id=coordinator.site.zone_subentry.get(zone.zone_id),
        )
    async_add_entities(
        HouseholdUnreadSensor(coordinator, entry.runtime_data.inbox, household)
        for household in sorted(coordinator.site.households)
    )


class SiteSensor(MicrogridEntity, SensorEntity):
    """A site-level sensor."""

    entity_description: SiteSensorDescription

    def __init__(self, coordinator, description: SiteSensorDescription) -> None:  # type: ignore[no-untyped-def]
        """Describe it."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> StateType:
        """The value from the snapshot."""
        data = self.coordinator.data
        return self.entity_description.value_fn(data) if data else None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Extra detail some site sensors carry."""
        data = self.coordinator.data
        return self.entity_description.attrs_fn(data) if data else None


class ForecastSensor(SiteSensor):
    """The site's demand forecast: the next slot as state, hourly means kept out of the recorder
    (the full series is the `microgrid.get_forecast` action)."""

    _unrecorded_attributes = frozenset({"hourly_w", "slot_start", "computed_at"})


class ZoneSensor(MicrogridZoneEntity, SensorEntity):
    """A zone-level sensor."""

    entity_description: ZoneSensorDescription

    def __init__(self, coordinator, zone_id: str, description: ZoneSensorDescription) -> None:  # type: ignore[no-untyped-def]
        """Describe it."""
        super().__init__(coordinator, zone_id, description.key)
        self.entity_description = description

    @property
    def available(self) -> bool:
        """Counters stay available while the board is away; measurements do not."""
        if not self.entity_description.needs_online:
            return self.coordinator.last_update_success and self.zone_snapshot is not None
        return super().available

    @property
    def native_value(self) -> StateType:
        """The value from the zone's snapshot."""
        snap = self.zone_snapshot
        return self.entity_description.value_fn(snap) if snap else None


class HouseholdUnreadSensor(MicrogridEntity, SensorEntity):
    """How many of a household's inbox messages nobody has marked read."""

    _attr_translation_key = "household_unread"
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_native_unit_of_measurement = "messages"

    def __init__(self, coordinator, inbox: Inbox, household: str) -> None:  # type: ignore[no-untyped-def]
        """One household's count, updated whenever the site's inboxes change."""
        super().__init__(coordinator, f"household_{slugify(household)}_unread")
        self._inbox = inbox
        self._household = household
        self._attr_translation_placeholders = {"household": household}

    async def async_added_to_hass(self) -> None:
        """Follow the inbox (besides the coordinator's updates)."""
        await super().async_added_to_hass()
        signal = SIGNAL_INBOX.format(self.coordinator.config_entry.entry_id)
        self.async_on_remove(async_dispatcher_connect(self.hass, signal, self.async_write_ha_state))

    @property
    def native_value(self) -> int:
        """Unread messages."""
        return self._inbox.unread(self._household)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The household it counts for."""
        return {"household": self._household}
