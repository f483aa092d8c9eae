"""The baseline the planner is measured against: threshold load shedding, blueprint style.

Like the popular Home Assistant load-shedding blueprints: everything that wants power is on;
above 90 % of the power capacity zones are shed lowest priority first (largest first within a
class); a shed zone is restored once the load with it stays below 80 % and it has been off for
5 minutes. The SoC bands of the seed policy apply (below 20 % non-critical and deferrable zones
go off, below 10 % everything but critical). Deferrable jobs simply start at their earliest time.
Critical zones are never shed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .model import PriorityClass, Zone

SHED_AT = 0.9
RESTORE_BELOW = 0.8
MIN_OFF = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True, slots=True)
class ThresholdState:
    """What the baseline remembers between readings: when each zone it shed went off."""

    shed_since: Mapping[str, datetime] = field(default_factory=dict)


def _band_allows(zone: Zone, soc_pct: float, conservation_pct: float, emergency_pct: float) -> bool:
    """Whether the SoC band lets this class run at all."""
    if zone.priority is PriorityClass.CRITICAL:
        return True
    if soc_pct < emergency_pct:
        return False
    if soc_pct < conservation_pct:
        return zone.priority is PriorityClass.SEMI_CRITICAL
    return True


def threshold_decide(
    *,
    now: datetime,
    zones: tuple[Zone, ...],
    wants_on: Mapping[str, bool],
    power_w: Mapping[str, float],
    soc_pct: float,
    capacity_w: float,
    state: ThresholdState,
    conservation_pct: float = 20.0,
    emergency_pct: float = 10.0,
) -> tuple[dict[str, bool], ThresholdState]:
    """The zones on for this reading and the baseline's new memory."""
    shed_since = dict(state.shed_since)
    on: dict[str, bool] = {}
    for zone in zones:
        allowed = _band_allows(zone, soc_pct, conservation_pct, emergency_pct)
        on[zone.zone_id] = bool(wants_on.get(zone.zone_id, False)) and allowed
    pending = {z for z in shed_since if on.get(z)}  # shed earlier and still wanted
    for zone_id in list(shed_since):
        on[zone_id] = False
        if zone_id not in pending:
            del shed_since[zone_id]  # no longer wanted: nothing to restore
    load_w = sum(power_w.get(z, 0.0) for z, is_on in on.items() if is_on)
    shed_order = sorted(
        (z for z in zones if z.priority is not PriorityClass.CRITICAL),
        key=lambda z: (-z.priority.rank, -power_w.get(z.zone_id, 0.0), z.zone_id),
    )
    for zone in shed_order:
        if load_w <= SHED_AT * capacity_w:
            break
        if on[zone.zone_id]:
            on[zone.zone_id] = False
            load_w -= power_w.get(zone.zone_id, 0.0)
            shed_since[zone.zone_id] = now
    for zone in reversed(shed_order):  # restore the most important first
        since = shed_since.get(zone.zone_id)
        if zone.zone_id not in pending or since is None or now - since < MIN_OFF:
            continue
        if load_w + power_w.get(zone.zone_id, 0.0) < RESTORE_BELOW * capacity_w:
            on[zone.zone_id] = True
            load_w += power_w.get(zone.zone_id, 0.0)
            del shed_since[zone.zone_id]
    return on, ThresholdState(shed_since=shed_since)
