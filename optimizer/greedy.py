"""Greedy dispatch: the immediate choice among the zones the policy leaves free.

Forced zones are taken as the policy says. Each free zone has a wish (its schedule, the
household's request, the plan, PV surplus); wishes are admitted by class, then by value per
watt, while they fit the power budget the band allows now. Min on/off times hold non-forced
changes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
import math

from .model import Band, PriorityClass, Schedule, SiteReading, Zone, ZoneDecision, ZoneState
from .policy import (
    Reason,
    ZoneRule,
    expected_w as zone_expected_w,
    finite_nonneg,
    state_of,
    timer_hold,
)

# Value of one zone's service; only the order within a class matters (classes sort first).
CLASS_WEIGHT: dict[PriorityClass, float] = {
    PriorityClass.CRITICAL: 1000.0,
    PriorityClass.SEMI_CRITICAL: 100.0,
    PriorityClass.NON_CRITICAL: 10.0,
    PriorityClass.DEFERRABLE: 1.0,
}
# Share of the battery's discharge power the conservation band lets the free zones use.
CONSERVATION_BATTERY_SHARE = 0.5


@dataclass(frozen=True, kw_only=True, slots=True)
class _Wish:
    """What a free zone would like, and whether only PV surplus may feed it."""

    on: bool
    reason: str
    surplus_only: bool = False


def pv_w(reading: SiteReading) -> float:
    """Solar power now; unknown counts as none."""
    return finite_nonneg(reading.solar_w) or 0.0


def limit_w(reading: SiteReading) -> float | None:
    """The power limit when one is set (finite, > 0); None when there is none or it is unknown."""
    limit = finite_nonneg(reading.power_limit_w)
    return limit if limit is not None and 0.0 < limit < math.inf else None


def budget_w(*, reading: SiteReading, band: Band, zones: Sequence[Zone]) -> float:
    """Power the zones may draw now: PV plus what the band lets the battery give."""
    limit = limit_w(reading)
    if band == Band.NORMAL:
        return limit if limit is not None else math.inf
    pv = pv_w(reading)
    if band == Band.EMERGENCY:
        return pv
    if limit is not None:
        battery_w = max(0.0, limit - pv)
    else:
        # No limit configured: let the battery feed a share of the site's rated load.
        battery_w = sum(r for z in zones if (r := finite_nonneg(z.rated_w)) is not None)
    return pv + CONSERVATION_BATTERY_SHARE * battery_w


def value_per_w(zone: Zone, load_w: float) -> float:
    """Class weight per expected watt (a zone drawing nothing is worth running)."""
    weight = CLASS_WEIGHT.get(zone.priority, 0.0)
    if load_w <= 0.0:
        return math.inf
    return weight / load_w


def _planned(planned_on: Mapping[str, bool] | None, zone_id: str) -> bool | None:
    """The plan's state for this zone now, if the plan has one."""
    if not isinstance(planned_on, Mapping):
        return None
    value = planned_on.get(zone_id)
    return value if isinstance(value, bool) else None


def _schedule_wish(zone: Zone, reading: SiteReading) -> _Wish:
    """Semi-critical automatic control: the zone's schedule against the sun."""
    sun_up = bool(reading.sun_up)
    if zone.schedule == Schedule.NIGHT:
        return _Wish(on=not sun_up, reason=Reason.SCHEDULE_NIGHT)
    if zone.schedule == Schedule.DAY:
        return _Wish(on=sun_up, reason=Reason.SCHEDULE_DAY)
    return _Wish(on=True, reason=Reason.SCHEDULE_ALWAYS)


def _semi_critical_wish(zone: Zone, reading: SiteReading, plan: bool | None) -> _Wish:
    """Automatic by schedule; the plan may only shed it (a household 'on' means 'auto')."""
    wish = _schedule_wish(zone, reading)
    if wish.on and plan is False:
        return _Wish(on=False, reason=Reason.PLAN)
    return wish


def _non_critical_wish(state: ZoneState, band: Band, plan: bool | None) -> _Wish:
    """The household's request in NORMAL; else the plan; else the relay stays as it is."""
    if band == Band.NORMAL and state.request_on is True:
        return _Wish(on=True, reason=Reason.HOUSEHOLD_REQUEST)
    if plan is not None:
        return _Wish(on=plan, reason=Reason.PLAN)
    if state.request_on is True:
        return _Wish(on=state.relay_on, reason=Reason.HOUSEHOLD_REQUEST)
    return _Wish(on=state.relay_on, reason=Reason.KEEP_STATE)


def _deferrable_wish(state: ZoneState, plan: bool | None) -> _Wish:
    """The plan first, then a household request, else run on PV surplus."""
    if plan is not None:
        return _Wish(on=plan, reason=Reason.PLAN)
    if state.request_on is True:
        return _Wish(on=True, reason=Reason.HOUSEHOLD_REQUEST)
    return _Wish(on=True, reason=Reason.PV_SURPLUS, surplus_only=True)


def zone_wish(
    *,
    zone: Zone,
    state: ZoneState,
    rule: ZoneRule,
    band: Band,
    reading: SiteReading,
    planned_on: Mapping[str, bool] | None,
) -> _Wish:
    """What a free zone would like now, before the budget and the timers."""
    if state.request_on is False:
        return _Wish(on=False, reason=Reason.HOUSEHOLD_REQUEST)
    if not rule.may_start and not state.relay_on:
        return _Wish(on=False, reason=rule.reason)
    plan = _planned(planned_on, zone.zone_id)
    if zone.priority == PriorityClass.SEMI_CRITICAL:
        return _semi_critical_wish(zone, reading, plan)
    if zone.priority == PriorityClass.NON_CRITICAL:
        return _non_critical_wish(state, band, plan)
    if zone.priority == PriorityClass.DEFERRABLE:
        return _deferrable_wish(state, plan)
    return _Wish(on=state.relay_on, reason=Reason.KEEP_STATE)


def _missing_rule(zone: Zone) -> ZoneRule:
    """A rule for a zone the policy did not cover: critical on, anything else may not start."""
    if zone.priority == PriorityClass.CRITICAL:
        return ZoneRule(zone_id=zone.zone_id, force=True, reason=Reason.CRITICAL_ALWAYS_ON)
    return ZoneRule(zone_id=zone.zone_id, force=None, reason=Reason.KEEP_STATE, may_start=False)


def _decide(zone_id: str, on: bool, reason: str, *, forced: bool = False) -> ZoneDecision:
    """A zone decision."""
    return ZoneDecision(zone_id=zone_id, on=on, reason=str(reason), forced=forced)


def greedy_dispatch(
    *,
    now: datetime,
    reading: SiteReading,
    band: Band,
    zones: Sequence[Zone],
    states: Mapping[str, ZoneState],
    rules: Mapping[str, ZoneRule],
    planned_on: Mapping[str, bool] | None,
    planned_w: Mapping[str, float] | None = None,
) -> dict[str, ZoneDecision]:
    """Forced zones as the rules say; free zones by class and value per watt within the budget.

    A zone that is off counts with what the plan expects it to draw now (`planned_w`), else its
    rating.
    """
    planned_w = planned_w or {}

    def expected_w(zone: Zone, state: ZoneState) -> float:
        return zone_expected_w(zone, state, planned_w.get(zone.zone_id))

    decisions: dict[str, ZoneDecision] = {}
    committed_w = 0.0
    pending: list[tuple[Zone, ZoneState, ZoneRule, _Wish]] = []
    for zone in zones:
        state = state_of(states, zone.zone_id)
        rule = rules.get(zone.zone_id) or _missing_rule(zone)
        if rule.force is not None:
            decisions[zone.zone_id] = _decide(zone.zone_id, rule.force, rule.reason, forced=True)
            committed_w += expected_w(zone, state) if rule.force else 0.0
            continue
        wish = zone_wish(
            zone=zone, state=state, rule=rule, band=band, reading=reading, planned_on=planned_on
        )
        if wish.on != state.relay_on:
            hold = timer_hold(
                now=now, state=state, min_on_s=rule.min_on_s, min_off_s=rule.min_off_s
            )
            if hold is not None:
                decisions[zone.zone_id] = _decide(zone.zone_id, state.relay_on, hold)
                committed_w += expected_w(zone, state) if state.relay_on else 0.0
                continue
        if not wish.on:
            decisions[zone.zone_id] = _decide(zone.zone_id, False, wish.reason)
            continue
        pending.append((zone, state, rule, wish))

    budget = budget_w(reading=reading, band=band, zones=zones)
    pv = pv_w(reading)

    def order(item: tuple[Zone, ZoneState, ZoneRule, _Wish]) -> tuple[int, float, str]:
        zone, state, _, _ = item
        return (zone.priority.rank, -value_per_w(zone, expected_w(zone, state)), zone.zone_id)

    for zone, state, rule, wish in sorted(pending, key=order):
        load_w = expected_w(zone, state)
        room_w = pv if wish.surplus_only else budget
        if committed_w + load_w <= room_w:
            decisions[zone.zone_id] = _decide(zone.zone_id, True, wish.reason)
            committed_w += load_w
            continue
        hold = timer_hold(now=now, state=state, min_on_s=rule.min_on_s, min_off_s=rule.min_off_s)
        if state.relay_on and hold is not None:
            decisions[zone.zone_id] = _decide(zone.zone_id, True, hold)
            committed_w += load_w
            continue
        short = Reason.NO_PV_SURPLUS if wish.surplus_only else Reason.POWER_BUDGET
        decisions[zone.zone_id] = _decide(zone.zone_id, False, short)
    return {zone.zone_id: decisions[zone.zone_id] for zone in zones}
