"""The simulated site's physics: battery, solar and zone loads. Pure; the clock is an argument."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
import hashlib
import math
from types import MappingProxyType

# Open-circuit voltage of a 12 V lead-acid/LiFePO4-like bank (SoC %, volts), strictly increasing.
OCV_12V: tuple[tuple[float, float], ...] = (
    (0.0, 11.5),
    (10.0, 11.8),
    (20.0, 11.95),
    (30.0, 12.05),
    (40.0, 12.15),
    (50.0, 12.25),
    (60.0, 12.35),
    (70.0, 12.45),
    (80.0, 12.55),
    (90.0, 12.68),
    (100.0, 12.9),
)

PROFILES = ("constant", "clinic", "night", "day", "residential")


@dataclass(frozen=True, kw_only=True, slots=True)
class BatterySpec:
    """A battery bank."""

    capacity_wh: float = 5000.0
    nominal_voltage_v: float = 12.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    internal_resistance_ohm: float = 0.01

    def __post_init__(self) -> None:
        """Refuse impossible banks."""
        if self.capacity_wh <= 0 or self.nominal_voltage_v <= 0:
            raise ValueError("capacity_wh and nominal_voltage_v must be positive")
        if not (0 < self.charge_efficiency <= 1 and 0 < self.discharge_efficiency <= 1):
            raise ValueError("efficiencies must be in (0, 1]")
        if self.internal_resistance_ohm < 0:
            raise ValueError("internal_resistance_ohm must be >= 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class SolarSpec:
    """A PV array: a clear-sky-like bell between sunrise and sunset, optional seeded clouds."""

    peak_w: float = 1200.0
    sunrise_h: float = 6.0
    sunset_h: float = 18.0
    cloudiness: float = 0.0  # 0: clear sky; 1: output may drop to nothing under a cloud
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse impossible arrays."""
        if self.peak_w < 0 or not 0 <= self.sunrise_h < self.sunset_h <= 24:
            raise ValueError("need peak_w >= 0 and 0 <= sunrise_h < sunset_h <= 24")
        if not 0 <= self.cloudiness <= 1:
            raise ValueError("cloudiness must be in [0, 1]")


@dataclass(frozen=True, kw_only=True, slots=True)
class ZoneSpec:
    """A zone as the simulated site knows it: node, class, rating and load shape."""

    zone_id: str
    name: str
    priority: str  # "critical" | "semi_critical" | "non_critical" | "deferrable"
    rated_w: float
    profile: str = "constant"
    schedule: str = "always"  # optimizer.model.Schedule value the integration should configure

    def __post_init__(self) -> None:
        """Refuse unknown shapes and negative ratings."""
        if self.profile not in PROFILES:
            raise ValueError(f"unknown load profile {self.profile!r}; one of {PROFILES}")
        if self.rated_w < 0:
            raise ValueError("rated_w must be >= 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteSpec:
    """The whole simulated site."""

    battery: BatterySpec = field(default_factory=BatterySpec)
    solar: SolarSpec = field(default_factory=SolarSpec)
    zones: tuple[ZoneSpec, ...] = ()
    tz: tzinfo = UTC  # the site's local time drives sun and load shapes


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteState:
    """The site at one instant."""

    at: datetime
    soc_pct: float
    battery_voltage_v: float
    solar_w: float  # what the panels could deliver now
    solar_used_w: float  # what was taken from them (less when the battery is full)
    load_w: float  # total load served
    battery_power_w: float  # + charging, - discharging (at the battery terminals)
    unserved_w: float = 0.0  # demand the empty battery could not carry
    zone_load_w: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


# ----- battery -------------------------------------------------------------------------------


def ocv_v(soc_pct: float, nominal_voltage_v: float = 12.0) -> float:
    """Open-circuit voltage at a state of charge (linear between table points)."""
    soc = min(100.0, max(0.0, soc_pct))
    socs = [p[0] for p in OCV_12V]
    i = min(bisect_right(socs, soc), len(OCV_12V) - 1)
    (s0, v0), (s1, v1) = OCV_12V[i - 1], OCV_12V[i]
    return (v0 + (v1 - v0) * (soc - s0) / (s1 - s0)) * nominal_voltage_v / 12.0


def terminal_voltage_v(soc_pct: float, battery_power_w: float, spec: BatterySpec) -> float:
    """Terminal voltage: OCV plus I·R while charging, minus I·R sag while discharging."""
    current_a = battery_power_w / spec.nominal_voltage_v
    return ocv_v(soc_pct, spec.nominal_voltage_v) + current_a * spec.internal_resistance_ohm


def battery_step(
    soc_pct: float, net_w: float, dt_s: float, spec: BatterySpec
) -> tuple[float, float, float]:
    """Integrate a net power (+ surplus, - deficit) for dt_s.

    Returns (new_soc_pct, absorbed_w, delivered_w): absorbed_w is the surplus actually taken in
    (the rest is curtailed), delivered_w the deficit actually covered (the rest goes unserved).
    """
    hours = dt_s / 3600.0
    if hours <= 0:
        return soc_pct, 0.0, 0.0
    stored_wh = spec.capacity_wh * min(100.0, max(0.0, soc_pct)) / 100.0
    if net_w >= 0:
        headroom_wh = spec.capacity_wh - stored_wh
        absorbed_w = min(net_w, headroom_wh / spec.charge_efficiency / hours)
        stored_wh += absorbed_w * hours * spec.charge_efficiency
        return _soc(stored_wh, spec), absorbed_w, 0.0
    delivered_w = min(-net_w, stored_wh * spec.discharge_efficiency / hours)
    stored_wh -= delivered_w * hours / spec.discharge_efficiency
    return _soc(stored_wh, spec), 0.0, delivered_w


def _soc(stored_wh: float, spec: BatterySpec) -> float:
    """State of charge from stored energy, clamped to [0, 100]."""
    return min(100.0, max(0.0, 100.0 * stored_wh / spec.capacity_wh))


# ----- solar ---------------------------------------------------------------------------------


def _hour_of_day(now: datetime, tz: tzinfo) -> float:
    """Local hour of day as a float (naive datetimes are taken as UTC)."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    local = aware.astimezone(tz)
    return local.hour + local.minute / 60.0 + local.second / 3600.0


def clear_sky_w(hour: float, spec: SolarSpec) -> float:
    """Clear-sky PV output at a local hour: a bell between sunrise and sunset."""
    if not spec.sunrise_h < hour < spec.sunset_h:
        return 0.0
    x = (hour - spec.sunrise_h) / (spec.sunset_h - spec.sunrise_h)
    return spec.peak_w * math.sin(math.pi * x) ** 1.5


def _cloud_sample(seed: int, bucket: int) -> float:
    """A deterministic pseudo-random number in [0, 1) for one 10-minute bucket."""
    digest = hashlib.blake2b(f"{seed}:{bucket}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


def cloud_factor(now: datetime, spec: SolarSpec) -> float:
    """Fraction of clear-sky output passing the clouds (1 when cloudiness is 0), smooth in time."""
    if spec.cloudiness == 0:
        return 1.0
    t = now.timestamp() / 600.0
    bucket = math.floor(t)
    frac = t - bucket
    sample = (1 - frac) * _cloud_sample(spec.seed, bucket) + frac * _cloud_sample(
        spec.seed, bucket + 1
    )
    return 1.0 - spec.cloudiness * sample


def solar_w(now: datetime, spec: SolarSpec, tz: tzinfo = UTC) -> float:
    """PV output at `now`."""
    return clear_sky_w(_hour_of_day(now, tz), spec) * cloud_factor(now, spec)


# ----- loads ---------------------------------------------------------------------------------


def profile_factor(profile: str, hour: float) -> float:
    """A zone's share of its rated power at a local hour, in [0, 1]."""
    match profile:
        case "constant":
            return 1.0
        case "clinic":
            return 1.0 if 7 <= hour < 19 else 0.6
        case "night":
            return 1.0 if hour >= 18 or hour < 6 else 0.0
        case "day":
            return 1.0 if 8 <= hour < 17 else 0.0
        case "residential":
            if 6 <= hour < 9 or 18 <= hour < 23:
                return 1.0
            return 0.3 if 9 <= hour < 18 else 0.15
    raise ValueError(f"unknown load profile {profile!r}")


def zone_load_w(zone: ZoneSpec, now: datetime, tz: tzinfo = UTC) -> float:
    """What a zone draws at `now` while its relay is on."""
    return zone.rated_w * profile_factor(zone.profile, _hour_of_day(now, tz))


# ----- the site ------------------------------------------------------------------------------


def initial_state(spec: SiteSpec, now: datetime, soc_pct: float) -> SiteState:
    """The site at rest at `now` with the given state of charge (no relay on yet)."""
    soc = min(100.0, max(0.0, soc_pct))
    return SiteState(
        at=now,
        soc_pct=soc,
        battery_voltage_v=terminal_voltage_v(soc, 0.0, spec.battery),
        solar_w=solar_w(now, spec.solar, spec.tz),
        solar_used_w=0.0,
        load_w=0.0,
        battery_power_w=0.0,
    )


def advance(
    spec: SiteSpec,
    state: SiteState,
    now: datetime,
    dt_s: float,
    relay_states: Mapping[str, bool],
    *,
    load_scale: Mapping[str, float] | None = None,
) -> SiteState:
    """The site after dt_s ending at `now`, powers taken at `now` (relays by zone_id).

    `load_scale` multiplies a zone's draw (a fault: an overloaded or leaking circuit).
    """
    if dt_s < 0 or not math.isfinite(dt_s):
        raise ValueError("dt_s must be a finite number >= 0")
    scale = load_scale or {}
    if any(not math.isfinite(f) or f < 0 for f in scale.values()):
        raise ValueError("load_scale factors must be finite and >= 0")
    pv_w = solar_w(now, spec.solar, spec.tz)
    demand = {
        zone.zone_id: zone_load_w(zone, now, spec.tz) * scale.get(zone.zone_id, 1.0)
        if relay_states.get(zone.zone_id)
        else 0.0
        for zone in spec.zones
    }
    demand_w = sum(demand.values())
    net_w = pv_w - demand_w
    # With no time passed the flows are those of a 1 s step, the SoC stays put.
    soc, absorbed_w, delivered_w = battery_step(state.soc_pct, net_w, dt_s or 1.0, spec.battery)
    if dt_s == 0:
        soc = state.soc_pct
    if net_w >= 0:
        served_fraction = 1.0
        solar_used_w = demand_w + absorbed_w
        battery_w = absorbed_w
    else:
        served_w = pv_w + delivered_w
        served_fraction = served_w / demand_w if demand_w else 1.0
        solar_used_w = pv_w
        battery_w = -delivered_w
    zone_w = {zone_id: w * served_fraction for zone_id, w in demand.items()}
    load_w = sum(zone_w.values())
    return SiteState(
        at=now,
        soc_pct=soc,
        battery_voltage_v=terminal_voltage_v(soc, battery_w, spec.battery),
        solar_w=pv_w,
        solar_used_w=solar_used_w,
        load_w=load_w,
        battery_power_w=battery_w,
        unserved_w=max(0.0, demand_w - load_w),
        zone_load_w=MappingProxyType(zone_w),
    )


class SiteModel:
    """The shared site: holds the current state and advances it (the physics stays pure)."""

    def __init__(self, spec: SiteSpec, *, now: datetime, soc_pct: float) -> None:
        """Start at rest at `now`."""
        self.spec = spec
        self.state = initial_state(spec, now, soc_pct)
        # The site's own energy counts since start, per zone: what it delivered, and what the
        # zone would have drawn while its relay was off or the empty battery could not carry it.
        self.served_wh: dict[str, float] = {z.zone_id: 0.0 for z in spec.zones}
        self.unserved_wh: dict[str, float] = {z.zone_id: 0.0 for z in spec.zones}

    def step(
        self,
        now: datetime,
        dt_s: float,
        relay_states: Mapping[str, bool],
        load_scale: Mapping[str, float] | None = None,
    ) -> SiteState:
        """Advance by dt_s to `now` and return the new state (and count each zone's energy)."""
        self.state = advance(self.spec, self.state, now, dt_s, relay_states, load_scale=load_scale)
        hours = dt_s / 3600
        scale = load_scale or {}
        for zone in self.spec.zones:
            wanted_w = zone_load_w(zone, now, self.spec.tz) * scale.get(zone.zone_id, 1.0)
            got_w = self.state.zone_load_w.get(zone.zone_id, 0.0)
            self.served_wh[zone.zone_id] += got_w * hours
            self.unserved_wh[zone.zone_id] += max(0.0, wanted_w - got_w) * hours
        return self.state

    def set_soc(self, soc_pct: float) -> SiteState:
        """Force the state of charge (site control for tests and the demo)."""
        if not math.isfinite(soc_pct) or not 0 <= soc_pct <= 100:
            raise ValueError("soc_pct must be within [0, 100]")
        self.state = replace(
            self.state,
            soc_pct=soc_pct,
            battery_voltage_v=terminal_voltage_v(
                soc_pct, self.state.battery_power_w, self.spec.battery
            ),
        )
        return self.state
