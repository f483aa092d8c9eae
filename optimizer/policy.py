"""The priority policy: hard rules only (bands, household permissions, forced zone states).

Each rule is its own small function. The greedy dispatcher chooses among the zones these rules
leave free; the balancer then caps the switched-on load. Bad numbers (NaN, inf, negative) are
treated as unknown and never raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
import functools
import math

from .model import Band, Override, PriorityClass, SiteReading, Thresholds, Zone, ZoneState

_DEFAULTS = Thresholds()


class Reason(StrEnum):
    """Every reason a zone decision or a refused household request can carry (translation keys)."""

    CRITICAL_ALWAYS_ON = "critical_always_on"
    CRITICAL_ZONE = "critical_zone"
    ADMIN_OVERRIDE = "admin_override"
    DEEP_DISCHARGE_CUTOFF = "deep_discharge_cutoff"
    BATTERY_EMERGENCY = "battery_emergency"
    BATTERY_CONSERVATION = "battery_conservation"
    HOUSEHOLD_REQUEST = "household_request"
    ALLOWED = "allowed"
    KEEP_STATE = "keep_state"
    SCHEDULE_ALWAYS = "schedule_always"
    SCHEDULE_NIGHT = "schedule_night"
    SCHEDULE_DAY = "schedule_day"
    PLAN = "plan"
    PV_SURPLUS = "pv_surplus"
    NO_PV_SURPLUS = "no_pv_surplus"
    POWER_BUDGET = "power_budget"
    MIN_ON_TIME = "min_on_time"
    MIN_OFF_TIME = "min_off_time"
    OVERLOAD_SHED = "overload_shed"
    PRIORITY_SHED = "priority_shed"
    POWER_LIMIT = "power_limit"
    POWER_LIMIT_UNKNOWN = "power_limit_unknown"
    DISPATCH_ERROR = "dispatch_error"


@dataclass(frozen=True, kw_only=True, slots=True)
class ZoneRule:
    """What the hard rules say about one zone now: forced on, forced off, or free."""

    zone_id: str
    force: bool | None  # True: forced on; False: forced off; None: free (greedy decides)
    reason: str
    may_start: bool = True  # free zones only; False: an off zone must stay off (conservation)
    min_on_s: float = _DEFAULTS.min_on_s
    min_off_s: float = _DEFAULTS.min_off_s


# ---- numbers ------------------------------------------------------------------------------


def finite_nonneg(value: object) -> float | None:
    """The value as a float when it is a finite number >= 0, else None (unknown)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0.0 else None


def valid_soc_pct(soc_pct: object) -> float | None:
    """The state of charge when it is a usable reading, else None (NaN, inf, negative, None)."""
    return finite_nonneg(soc_pct)


def _or_default(thresholds: Thresholds, name: str) -> float:
    """One threshold when usable, else its default."""
    value = finite_nonneg(getattr(thresholds, name, None))
    return value if value is not None else float(getattr(_DEFAULTS, name))


@functools.lru_cache(maxsize=32)
def sane_thresholds(thresholds: Thresholds) -> Thresholds:
    """Thresholds with unusable values replaced by defaults and the bands in order.

    Cached: every rule of a decision asks for them (about 2 per zone), and a site's thresholds
    change only with its options (Thresholds is frozen, so a cached result cannot be altered).
    """
    emergency_pct = _or_default(thresholds, "emergency_pct")
    return Thresholds(
        # A misordered pair keeps the stricter reading: conservation starts no lower than emergency.
        conservation_pct=max(_or_default(thresholds, "conservation_pct"), emergency_pct),
        emergency_pct=emergency_pct,
        critical_alert_pct=_or_default(thresholds, "critical_alert_pct"),
        hysteresis_pct=_or_default(thresholds, "hysteresis_pct"),
        min_on_s=_or_default(thresholds, "min_on_s"),
        min_off_s=_or_default(thresholds, "min_off_s"),
        deep_discharge_cutoff_pct=finite_nonneg(
            getattr(thresholds, "deep_discharge_cutoff_pct", None)
        ),
    )


def min_times_s(zone: Zone, thresholds: Thresholds) -> tuple[float, float]:
    """The zone's (min_on_s, min_off_s): its own when set and valid, else the site's."""
    site = sane_thresholds(thresholds)
    on_s = finite_nonneg(zone.min_on_s)
    off_s = finite_nonneg(zone.min_off_s)
    return (
        on_s if on_s is not None else site.min_on_s,
        off_s if off_s is not None else site.min_off_s,
    )


# ---- time ---------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    """A naive datetime read as UTC, so naive and aware moments compare."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def elapsed_s(now: datetime, since: datetime | None) -> float | None:
    """Seconds from `since` to `now`; None when unknown (no time, or `since` in the future)."""
    if not isinstance(since, datetime) or not isinstance(now, datetime):
        return None
    seconds = (_aware(now) - _aware(since)).total_seconds()
    return seconds if seconds >= 0.0 else None


def override_active(override: Override | None, now: datetime) -> bool:
    """True while an admin override has not expired at `now` (it ends at `expires`)."""
    if override is None or not isinstance(override.expires, datetime):
        return False
    return _aware(override.expires) > _aware(now)


def timer_hold(*, now: datetime, state: ZoneState, min_on_s: float, min_off_s: float) -> str | None:
    """Why a non-forced change of this relay must wait (min on/off time), or None."""
    elapsed = elapsed_s(now, state.last_change)
    if elapsed is None:
        return None
    if state.relay_on and elapsed < min_on_s:
        return Reason.MIN_ON_TIME
    if not state.relay_on and elapsed < min_off_s:
        return Reason.MIN_OFF_TIME
    return None


def state_of(states: Mapping[str, ZoneState], zone_id: str) -> ZoneState:
    """The zone's state; a zone with no state is off, with nothing else known."""
    state = states.get(zone_id)
    return state if isinstance(state, ZoneState) else ZoneState(zone_id=zone_id, relay_on=False)


def expected_w(zone: Zone, state: ZoneState, planned_w: float | None = None) -> float:
    """The power a zone draws when on: measured while on, else what the day plan expects it to
    draw in this slot (its demand forecast), else rated; inf when none is known."""
    measured = finite_nonneg(state.power_w)
    if state.relay_on and measured is not None:
        return measured
    planned = finite_nonneg(planned_w)
    if planned is not None:
        return planned
    rated = finite_nonneg(zone.rated_w)
    # Unknown size: assume the worst, so it is never admitted into a budget it might break.
    return rated if rated is not None else math.inf


# ---- bands --------------------------------------------------------------------------------


def _raw_band(soc_pct: float, thresholds: Thresholds) -> Band:
    """The band a state of charge falls in, without hysteresis."""
    if soc_pct < thresholds.emergency_pct:
        return Band.EMERGENCY
    if soc_pct < thresholds.conservation_pct:
        return Band.CONSERVATION
    return Band.NORMAL


# Lower is more severe.
BAND_ORDER = {Band.EMERGENCY: 0, Band.CONSERVATION: 1, Band.NORMAL: 2}


def band_for(soc_pct: float | None, previous: Band | None, thresholds: Thresholds) -> Band:
    """The band: a lower one as soon as SoC is below it, a higher one only past the hysteresis."""
    site = sane_thresholds(thresholds)
    soc = valid_soc_pct(soc_pct)
    known_previous = Band(previous) if previous in BAND_ORDER else None  # "normal" from storage
    if soc is None:
        return known_previous or Band.CONSERVATION
    raw = _raw_band(soc, site)
    if known_previous is None or BAND_ORDER[raw] <= BAND_ORDER[known_previous]:
        return raw
    # Climbing: each step up needs the threshold plus the hysteresis.
    lifted = _raw_band(soc - site.hysteresis_pct, site)
    return max(known_previous, lifted, key=BAND_ORDER.__getitem__)


# ---- households ---------------------------------------------------------------------------


def _band_refusal(band: Band) -> str:
    """The reason a household may not switch a zone on in a band other than NORMAL."""
    return Reason.BATTERY_EMERGENCY if band == Band.EMERGENCY else Reason.BATTERY_CONSERVATION


def household_may_set(zone: Zone, band: Band, on: bool) -> tuple[bool, str]:
    """Whether a household may switch this zone on/off now, with a reason key."""
    if zone.priority == PriorityClass.CRITICAL:
        return False, Reason.CRITICAL_ZONE
    if not on:
        return True, Reason.ALLOWED
    if band == Band.NORMAL:
        return True, Reason.ALLOWED
    return False, _band_refusal(band)


# ---- per-zone rules -----------------------------------------------------------------------


def cutoff_holds(
    *,
    now: datetime,
    reading: SiteReading,
    thresholds: Thresholds,
    zones: Sequence[Zone],
    states: Mapping[str, ZoneState],
) -> bool:
    """True while the admin's deep-discharge cutoff holds the site off (unknown SoC: never)."""
    site = sane_thresholds(thresholds)
    soc = valid_soc_pct(reading.soc_pct)
    cutoff = site.deep_discharge_cutoff_pct
    if cutoff is None or soc is None:
        return False
    if soc < cutoff:
        return True
    if soc >= cutoff + site.hysteresis_pct:
        return False
    # In the hysteresis gap the site stays as it was (battery voltage rebounds unloaded). This is
    # one site-wide state, read from every zone not held by a live admin override: judged per
    # relay, a zone an expired override left on would stay on while the rest stayed cut.
    return not any(
        state.relay_on and not override_active(state.override, now)
        for state in (state_of(states, zone.zone_id) for zone in zones)
    )


def _critical_rule(zone: Zone) -> ZoneRule:
    """Critical: on in every band."""
    return ZoneRule(zone_id=zone.zone_id, force=True, reason=Reason.CRITICAL_ALWAYS_ON)


def _band_rule(zone: Zone, state: ZoneState, band: Band) -> ZoneRule:
    """Non-critical classes: forced off or free by band."""
    if band == Band.EMERGENCY:
        return ZoneRule(zone_id=zone.zone_id, force=False, reason=Reason.BATTERY_EMERGENCY)
    if band == Band.CONSERVATION:
        if zone.priority == PriorityClass.DEFERRABLE:
            return ZoneRule(zone_id=zone.zone_id, force=False, reason=Reason.BATTERY_CONSERVATION)
        if zone.priority == PriorityClass.NON_CRITICAL:
            # Households cannot turn it on; one that is on may stay on unless shed.
            return ZoneRule(
                zone_id=zone.zone_id,
                force=None,
                reason=Reason.BATTERY_CONSERVATION,
                may_start=False,
            )
    return ZoneRule(zone_id=zone.zone_id, force=None, reason=Reason.ALLOWED)


def zone_rule(
    *,
    now: datetime,
    band: Band,
    thresholds: Thresholds,
    zone: Zone,
    state: ZoneState,
    cut: bool,
) -> ZoneRule:
    """The hard rule for one zone: admin override, then the site's cutoff, then class and band."""
    site = sane_thresholds(thresholds)
    override = state.override
    if override is not None and override_active(override, now):
        rule = ZoneRule(zone_id=zone.zone_id, force=bool(override.on), reason=Reason.ADMIN_OVERRIDE)
    elif cut:
        # Below the cutoff the critical zones are off: so is every other zone.
        rule = ZoneRule(zone_id=zone.zone_id, force=False, reason=Reason.DEEP_DISCHARGE_CUTOFF)
    elif zone.priority == PriorityClass.CRITICAL:
        rule = _critical_rule(zone)
    else:
        rule = _band_rule(zone, state, band)
    on_s, off_s = min_times_s(zone, site)
    return replace(rule, min_on_s=on_s, min_off_s=off_s)


def evaluate_policy(
    *,
    now: datetime,
    reading: SiteReading,
    band: Band,
    thresholds: Thresholds,
    zones: Sequence[Zone],
    states: Mapping[str, ZoneState],
) -> dict[str, ZoneRule]:
    """Per zone: forced on, forced off or free, with the reason; live admin overrides win."""
    cut = cutoff_holds(now=now, reading=reading, thresholds=thresholds, zones=zones, states=states)
    return {
        zone.zone_id: zone_rule(
            now=now,
            band=band,
            thresholds=thresholds,
            zone=zone,
            state=state_of(states, zone.zone_id),
            cut=cut,
        )
        for zone in zones
    }
