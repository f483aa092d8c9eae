"""Load balancer: keep the switched-on load within a margin of the power limit.

Running zones are kept by priority (admin overrides, then class, smaller loads first) while
they fit under `margin` x limit; the rest are shed at once (a safety change). A zone that is
off starts only when the load would stay under `restore_margin` x limit (under `margin` x limit
when the day plan starts it now) and its min off time has passed, so the gap between the two
margins stops relays flapping. A higher class may take
the place of lower-class running zones whose min on time has passed. Critical zones are never
shed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
import math

from .model import Band, PriorityClass, SiteReading, Thresholds, Zone, ZoneDecision, ZoneState
from .policy import Reason, expected_w, min_times_s, state_of, timer_hold


def _no_limit(limit_w: float) -> bool:
    """0 (or +inf) means the site has no power limit."""
    return limit_w in (0.0, math.inf)


def _limit_unknown(limit_w: object) -> bool:
    """A limit that is not a usable number (NaN, negative, not a number)."""
    if isinstance(limit_w, bool) or not isinstance(limit_w, int | float):
        return True
    return math.isnan(limit_w) or limit_w < 0.0


def _keep_key(zone: Zone, decision: ZoneDecision, load_w: float) -> tuple[bool, int, float, str]:
    """Keep order: forced (admin) first, then class, then smaller loads."""
    return (not decision.forced, zone.priority.rank, load_w, zone.zone_id)


def _shed_key(zone: Zone, load_w: float) -> tuple[int, float, str]:
    """Shed order: lowest class first, larger loads first within a class."""
    return (-zone.priority.rank, -load_w, zone.zone_id)


def _off(decision: ZoneDecision, reason: str, *, forced: bool) -> ZoneDecision:
    """The decision turned into an off."""
    return replace(decision, on=False, reason=str(reason), forced=forced)


def balance(
    *,
    now: datetime,
    reading: SiteReading,
    band: Band,
    thresholds: Thresholds,
    zones: Sequence[Zone],
    states: Mapping[str, ZoneState],
    decisions: Mapping[str, ZoneDecision],
    margin: float = 0.9,
    restore_margin: float = 0.8,
    planned_w: Mapping[str, float] | None = None,
) -> dict[str, ZoneDecision]:
    """Cap the switched-on load at margin x limit; restore with hysteresis; never shed critical.

    Running zones count with their measured power; a zone that is off with what the plan expects
    it to draw now (`planned_w`), else its rating.
    """
    del band  # the band's rules are already in the decisions
    out = dict(decisions)
    limit = reading.power_limit_w
    by_id = {zone.zone_id: zone for zone in zones if zone.zone_id in out}
    state = {zone_id: state_of(states, zone_id) for zone_id in by_id}
    planned = planned_w or {}
    load = {
        zone_id: expected_w(by_id[zone_id], state[zone_id], planned.get(zone_id))
        for zone_id in by_id
    }

    def movable(zone_id: str) -> bool:
        return out[zone_id].on and by_id[zone_id].priority != PriorityClass.CRITICAL

    if _limit_unknown(limit):
        # Unknown limit: shed nothing, start nothing new that is not forced.
        for zone_id in by_id:
            if movable(zone_id) and not state[zone_id].relay_on and not out[zone_id].forced:
                out[zone_id] = _off(out[zone_id], Reason.POWER_LIMIT_UNKNOWN, forced=False)
        return out
    if _no_limit(float(limit)):
        return out
    margin = margin if math.isfinite(margin) and margin > 0.0 else 0.9
    if not (math.isfinite(restore_margin) and restore_margin > 0.0):
        restore_margin = 0.8
    cap_w = margin * limit
    restore_cap_w = min(restore_margin, margin) * limit

    total_w = sum(load[z] for z in by_id if out[z].on and not movable(z))
    running = [z for z in by_id if movable(z) and state[z].relay_on]
    starting = [z for z in by_id if movable(z) and not state[z].relay_on]
    kept: list[str] = []

    for zone_id in sorted(running, key=lambda z: _keep_key(by_id[z], out[z], load[z])):
        if total_w + load[zone_id] <= cap_w:
            kept.append(zone_id)
            total_w += load[zone_id]
        else:
            out[zone_id] = _off(out[zone_id], Reason.OVERLOAD_SHED, forced=True)

    for zone_id in sorted(starting, key=lambda z: _keep_key(by_id[z], out[z], load[z])):
        zone, decision = by_id[zone_id], out[zone_id]
        # The day plan already weighed this start (class order, energy, switching): it may use
        # the room up to the shed margin, as the plan counted on; the lower restore margin is
        # hysteresis for starts nobody planned.
        room_w = cap_w if decision.forced or zone_id in planned else restore_cap_w
        if not decision.forced:
            on_s, off_s = min_times_s(zone, thresholds)
            hold = timer_hold(now=now, state=state[zone_id], min_on_s=on_s, min_off_s=off_s)
            if hold is not None:
                out[zone_id] = _off(decision, hold, forced=False)
                continue
        if total_w + load[zone_id] <= room_w:
            total_w += load[zone_id]
            kept.append(zone_id)
            continue
        victims = _make_room(
            now=now,
            zone=zone,
            need_w=total_w + load[zone_id] - room_w,
            candidates=[z for z in kept if z in running and not out[z].forced],
            by_id=by_id,
            state=state,
            load=load,
            thresholds=thresholds,
        )
        if victims is None:
            reason = Reason.OVERLOAD_SHED if decision.forced else Reason.POWER_LIMIT
            out[zone_id] = _off(decision, reason, forced=decision.forced)
            continue
        for victim in victims:
            out[victim] = _off(out[victim], Reason.PRIORITY_SHED, forced=False)
            kept.remove(victim)
            total_w -= load[victim]
        total_w += load[zone_id]
        kept.append(zone_id)
    return out


def _make_room(
    *,
    now: datetime,
    zone: Zone,
    need_w: float,
    candidates: Sequence[str],
    by_id: Mapping[str, Zone],
    state: Mapping[str, ZoneState],
    load: Mapping[str, float],
    thresholds: Thresholds,
) -> list[str] | None:
    """Lower-class running zones past their min on time that free `need_w`, or None if none can."""
    if not math.isfinite(need_w):
        return None
    eligible = []
    for zone_id in candidates:
        other = by_id[zone_id]
        if other.priority.rank <= zone.priority.rank:
            continue
        on_s, off_s = min_times_s(other, thresholds)
        if timer_hold(now=now, state=state[zone_id], min_on_s=on_s, min_off_s=off_s) is None:
            eligible.append(zone_id)
    chosen: list[str] = []
    freed_w = 0.0
    for zone_id in sorted(eligible, key=lambda z: _shed_key(by_id[z], load[z])):
        if freed_w >= need_w:
            break
        chosen.append(zone_id)
        freed_w += load[zone_id]
    return chosen if freed_w >= need_w else None
