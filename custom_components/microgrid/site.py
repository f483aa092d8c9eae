"""The site as configured: zones, households, thresholds and limits, read from the entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import ConfigEntry

from .const import (
    CONF_BATTERY_CAPACITY_WH,
    CONF_CONSERVATION_PCT,
    CONF_CONTROL_MODE,
    CONF_CRITICAL_ALERT_PCT,
    CONF_DEEP_DISCHARGE_CUTOFF_PCT,
    CONF_EMERGENCY_PCT,
    CONF_ESSENTIAL_SERVICE,
    CONF_HOUSEHOLD,
    CONF_HYSTERESIS_PCT,
    CONF_MEMBERS,
    CONF_MIN_OFF_S,
    CONF_MIN_ON_S,
    CONF_NAME,
    CONF_NOMINAL_VOLTAGE_V,
    CONF_POWER_LIMIT_W,
    CONF_PRIORITY,
    CONF_RATED_W,
    CONF_SCHEDULE,
    CONF_SITE_NAME,
    CONF_TEMPERATURE_ENTITY,
    CONF_ZONE_ID,
    CONTROL_MODE_AUTO,
    DEFAULT_OPTIONS,
    SUBENTRY_HOUSEHOLD,
    SUBENTRY_ZONE,
)
from .optimizer.model import PriorityClass, Schedule, Thresholds, Zone


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteConfig:
    """The site as configured: connection-independent facts the decisions need."""

    site_name: str
    capacity_wh: float
    nominal_voltage_v: float
    power_limit_w: float
    thresholds: Thresholds
    control_auto: bool
    zones: tuple[Zone, ...]
    zone_subentry: dict[str, str]  # zone_id -> subentry id
    households: dict[str, frozenset[str]]  # household name -> member user ids
    temperature_entity_id: str | None = None  # weather entity or temperature sensor

    def limit_w(self, zones: tuple[Zone, ...] | None = None) -> float:
        """The power limit to plan with: the configured one, else (0: none) the summed ratings
        of `zones` (the site's own by default)."""
        if self.power_limit_w > 0:
            return self.power_limit_w
        return sum(z.rated_w for z in (self.zones if zones is None else zones))

    def zone(self, zone_id: str) -> Zone | None:
        """The configured zone with this id, if any."""
        return next((z for z in self.zones if z.zone_id == zone_id), None)


def zone_from_subentry(data: dict[str, Any]) -> Zone:
    """A Zone from a zone subentry's data (validated by the config flow)."""
    return Zone(
        zone_id=data[CONF_ZONE_ID],
        name=data.get(CONF_NAME) or data[CONF_ZONE_ID],
        priority=PriorityClass(data.get(CONF_PRIORITY, PriorityClass.NON_CRITICAL)),
        rated_w=float(data.get(CONF_RATED_W, 0.0)),
        household=data.get(CONF_HOUSEHOLD) or None,
        schedule=Schedule(data.get(CONF_SCHEDULE, Schedule.ALWAYS)),
        essential_service=bool(data.get(CONF_ESSENTIAL_SERVICE, False)),
    )


def site_config(entry: ConfigEntry) -> SiteConfig:
    """The site as configured in the entry's data, options and subentries."""
    options = {**DEFAULT_OPTIONS, **entry.options}
    zones = []
    zone_subentry = {}
    households: dict[str, frozenset[str]] = {}
    for subentry in entry.subentries.values():
        if subentry.subentry_type == SUBENTRY_ZONE:
            zone = zone_from_subentry(dict(subentry.data))
            zones.append(zone)
            zone_subentry[zone.zone_id] = subentry.subentry_id
        elif subentry.subentry_type == SUBENTRY_HOUSEHOLD:
            households[subentry.data[CONF_NAME]] = frozenset(subentry.data.get(CONF_MEMBERS, []))
    zones.sort(key=lambda z: z.zone_id)
    return SiteConfig(
        site_name=entry.data.get(CONF_SITE_NAME) or entry.title,
        capacity_wh=float(entry.data[CONF_BATTERY_CAPACITY_WH]),
        nominal_voltage_v=float(entry.data[CONF_NOMINAL_VOLTAGE_V]),
        power_limit_w=float(entry.data[CONF_POWER_LIMIT_W]),
        thresholds=Thresholds(
            conservation_pct=float(options[CONF_CONSERVATION_PCT]),
            emergency_pct=float(options[CONF_EMERGENCY_PCT]),
            critical_alert_pct=float(options[CONF_CRITICAL_ALERT_PCT]),
            hysteresis_pct=float(options[CONF_HYSTERESIS_PCT]),
            min_on_s=float(options[CONF_MIN_ON_S]),
            min_off_s=float(options[CONF_MIN_OFF_S]),
            deep_discharge_cutoff_pct=(
                float(cutoff) if (cutoff := options.get(CONF_DEEP_DISCHARGE_CUTOFF_PCT)) else None
            ),
        ),
        control_auto=options[CONF_CONTROL_MODE] == CONTROL_MODE_AUTO,
        zones=tuple(zones),
        zone_subentry=zone_subentry,
        households=households,
        temperature_entity_id=options.get(CONF_TEMPERATURE_ENTITY) or None,
    )
