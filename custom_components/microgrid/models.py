"""Typed runtime data and the site snapshot the entities read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry

from .const import (
    CONF_HOUSEHOLD,
    CONF_NAME,
    CONF_PRIORITY,
    CONF_RATED_W,
    CONF_SCHEDULE,
    CONF_ZONE_ID,
)
from .optimizer.model import Band, Decision, PriorityClass, Schedule, Thresholds, Zone
from .protocol import BoardReading

if TYPE_CHECKING:
    from .audit import AuditLog
    from .coordinator import MicrogridCoordinator
    from .firebase import FirebaseLink


@dataclass(kw_only=True)
class MicrogridRuntimeData:
    """What a loaded site entry holds at run time."""

    coordinator: MicrogridCoordinator
    link: FirebaseLink
    audit: AuditLog


type MicrogridConfigEntry = ConfigEntry[MicrogridRuntimeData]


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


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingCommand:
    """A relay command written and not yet acknowledged by the board's relayState echo."""

    on: bool
    seq: int
    reason: str
    first_sent: datetime
    last_sent: datetime
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        """Attribute form for the switch."""
        return {
            "state": "on" if self.on else "off",
            "seq": self.seq,
            "reason": self.reason,
            "first_sent": self.first_sent.isoformat(),
            "attempts": self.attempts,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ZoneSnapshot:
    """One zone as the entities show it."""

    zone: Zone
    reading: BoardReading | None
    online: bool
    relay_on: bool | None  # confirmed by the board
    desired_on: bool | None
    reason: str | None
    forced: bool
    pending: PendingCommand | None
    energy_kwh: float

    @property
    def power_w(self) -> float | None:
        """The zone's measured load."""
        return self.reading.output_power_w if self.reading else None


@dataclass(frozen=True, kw_only=True, slots=True)
class MLView:
    """What the learning entities show: sustain time, demand forecast, model health, anomalies."""

    sustain_h: float | None = None  # hours to the emergency band (P50)
    sustain_attrs: dict[str, Any] | None = None
    forecast_next_w: float | None = None  # site demand in the next slot
    forecast_attrs: dict[str, Any] | None = None
    trained_at: datetime | None = None
    health_attrs: dict[str, Any] = field(default_factory=dict)
    zone_anomalies: dict[str, dict[str, Any]] = field(default_factory=dict)  # active, by zone
    site_anomaly: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteSnapshot:
    """The whole site at one instant: what every entity reads."""

    now: datetime
    connected: bool
    soc_pct: float | None
    voltage_v: float | None
    solar_w: float | None
    load_w: float | None
    band: Band | None
    decision: Decision | None
    zones: dict[str, ZoneSnapshot] = field(default_factory=dict)
    solar_energy_kwh: float = 0.0
    consumption_energy_kwh: float = 0.0
    plan_status: str | None = None
    plan_attrs: dict[str, Any] | None = None
    expected_unserved_wh: float | None = None
    unserved_by_class: dict[str, Any] | None = None
    ml: MLView = field(default_factory=MLView)

    @property
    def net_w(self) -> float | None:
        """Solar minus load: positive charges the battery."""
        if self.solar_w is None or self.load_w is None:
            return None
        return self.solar_w - self.load_w


def zone_from_subentry(data: dict[str, Any]) -> Zone:
    """A Zone from a zone subentry's data (validated by the config flow)."""
    return Zone(
        zone_id=data[CONF_ZONE_ID],
        name=data.get(CONF_NAME) or data[CONF_ZONE_ID],
        priority=PriorityClass(data.get(CONF_PRIORITY, PriorityClass.NON_CRITICAL)),
        rated_w=float(data.get(CONF_RATED_W, 0.0)),
        household=data.get(CONF_HOUSEHOLD) or None,
        schedule=Schedule(data.get(CONF_SCHEDULE, Schedule.ALWAYS)),
    )
