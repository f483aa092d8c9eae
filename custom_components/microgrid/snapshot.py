"""The site at one instant as the entities read it: zones, readings, decisions, plan, learning."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .device import BoardReading
from .optimizer.model import Band, Decision, Zone


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
    battery_charge_energy_kwh: float = 0.0
    battery_discharge_energy_kwh: float = 0.0
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
