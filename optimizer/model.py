"""The site model shared by the policy, the dispatcher, the planner and the balancer.

Frozen, keyword-only dataclasses; units live in the names; the clock is always an argument.
No Home Assistant import here, ever (this package also runs on its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class PriorityClass(StrEnum):
    """A zone's priority class, most important first."""

    CRITICAL = "critical"
    SEMI_CRITICAL = "semi_critical"
    NON_CRITICAL = "non_critical"
    DEFERRABLE = "deferrable"

    @property
    def rank(self) -> int:
        """1 for critical … 4 for deferrable (lower is more important)."""
        return _RANK[self]


_RANK = {
    PriorityClass.CRITICAL: 1,
    PriorityClass.SEMI_CRITICAL: 2,
    PriorityClass.NON_CRITICAL: 3,
    PriorityClass.DEFERRABLE: 4,
}


class Band(StrEnum):
    """The operating band the battery state of charge puts the site in."""

    NORMAL = "normal"  # SoC >= conservation threshold (20 %)
    CONSERVATION = "conservation"  # emergency <= SoC < conservation (10-20 %)
    EMERGENCY = "emergency"  # SoC < emergency threshold (10 %)


class Schedule(StrEnum):
    """When an automatically run zone wants to be on (semi-critical street lights: night)."""

    ALWAYS = "always"
    NIGHT = "night"  # only while the sun is down
    DAY = "day"  # only while the sun is up


@dataclass(frozen=True, kw_only=True, slots=True)
class Thresholds:
    """The policy's thresholds (options flow), all in percent of state of charge or seconds."""

    conservation_pct: float = 20.0
    emergency_pct: float = 10.0
    critical_alert_pct: float = 5.0
    hysteresis_pct: float = 2.0
    min_on_s: float = 300.0
    min_off_s: float = 300.0
    # Admin-set deep-discharge cutoff: below it even critical zones go off. None: never.
    deep_discharge_cutoff_pct: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Zone:
    """A switched zone: one relay on one board (`zone_id` is the Firebase node, e.g. Zone1)."""

    zone_id: str
    name: str
    priority: PriorityClass
    rated_w: float
    household: str | None = None
    schedule: Schedule = Schedule.ALWAYS
    min_on_s: float | None = None  # None: Thresholds.min_on_s
    min_off_s: float | None = None  # None: Thresholds.min_off_s
    essential_service: bool = False  # a clinic or hospital (alerts reach the authorities)


@dataclass(frozen=True, kw_only=True, slots=True)
class Override:
    """An admin override: forces a zone on or off until it expires."""

    on: bool
    reason: str
    expires: datetime
    user_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ZoneState:
    """What is known now of one zone."""

    zone_id: str
    relay_on: bool  # confirmed by the board (relayState echo)
    power_w: float = 0.0
    last_change: datetime | None = None  # when relay_on last changed (for min on/off times)
    request_on: bool | None = None  # the last household/admin toggle; None: no preference
    override: Override | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteReading:
    """The site-wide measurements the policy needs now."""

    soc_pct: float
    solar_w: float = 0.0
    load_w: float = 0.0
    power_limit_w: float = 0.0  # min(inverter limit, battery discharge limit + PV); 0: no limit
    sun_up: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class ZoneDecision:
    """The decided state of one zone and why (a short machine-readable reason)."""

    zone_id: str
    on: bool
    reason: str
    forced: bool = False  # the policy forces it; household and optimizer cannot change it


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """The decided state of every zone, with the band it was decided in."""

    band: Band
    zones: dict[str, ZoneDecision] = field(default_factory=dict)

    def on_zones(self) -> frozenset[str]:
        """The zones decided on."""
        return frozenset(z for z, d in self.zones.items() if d.on)
