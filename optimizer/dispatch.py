"""The single entry point the integration and the simulator call on every reading.

band -> hard rules (policy) -> greedy choice among free zones -> load balancer. Never raises:
an unexpected error is logged and answered with the safe state (critical on, the rest off).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
import logging

from .balancer import balance
from .greedy import greedy_dispatch
from .model import (
    Band,
    Decision,
    PriorityClass,
    SiteReading,
    Thresholds,
    Zone,
    ZoneDecision,
    ZoneState,
)
from .policy import Reason, band_for, evaluate_policy, sane_thresholds

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class DispatchInput:
    """Everything the immediate decision needs; the clock is `now`."""

    now: datetime
    reading: SiteReading
    previous_band: Band | None
    thresholds: Thresholds
    zones: tuple[Zone, ...]
    states: Mapping[str, ZoneState]  # by zone_id; a zone with no state: relay off, unknown
    planned_on: Mapping[str, bool] | None = None  # the fresh DP plan's state for this slot
    # what the plan expects each zone it puts on to draw in this slot (W; its demand forecast)
    planned_w: Mapping[str, float] | None = None


def _decide(inp: DispatchInput) -> Decision:
    """Band, rules, greedy choice, balancer."""
    thresholds = sane_thresholds(inp.thresholds)
    band = band_for(inp.reading.soc_pct, inp.previous_band, thresholds)
    rules = evaluate_policy(
        now=inp.now,
        reading=inp.reading,
        band=band,
        thresholds=thresholds,
        zones=inp.zones,
        states=inp.states,
    )
    decisions = greedy_dispatch(
        now=inp.now,
        reading=inp.reading,
        band=band,
        zones=inp.zones,
        states=inp.states,
        rules=rules,
        planned_on=inp.planned_on,
        planned_w=inp.planned_w,
    )
    decisions = balance(
        now=inp.now,
        reading=inp.reading,
        band=band,
        thresholds=thresholds,
        zones=inp.zones,
        states=inp.states,
        decisions=decisions,
        planned_w=inp.planned_w,
    )
    return Decision(band=band, zones=decisions)


def safe_decision(inp: DispatchInput) -> Decision:
    """The fallback when deciding failed: critical zones on, every other zone off (all forced)."""
    band = inp.previous_band if isinstance(inp.previous_band, Band) else Band.CONSERVATION
    zones: dict[str, ZoneDecision] = {}
    for zone in inp.zones or ():
        zone_id = getattr(zone, "zone_id", None)
        if not isinstance(zone_id, str):
            continue
        critical = getattr(zone, "priority", None) == PriorityClass.CRITICAL
        zones[zone_id] = ZoneDecision(
            zone_id=zone_id, on=critical, reason=str(Reason.DISPATCH_ERROR), forced=True
        )
    return Decision(band=band, zones=zones)


def dispatch(inp: DispatchInput) -> Decision:
    """Decide every zone's state for this reading; never raises."""
    try:
        return _decide(inp)
    except Exception:  # the relays must get an answer whatever went wrong
        _LOGGER.exception("Dispatch failed; falling back to the safe state")
        try:
            return safe_decision(inp)
        except Exception:
            _LOGGER.exception("Safe-state fallback failed")
            return Decision(band=Band.CONSERVATION, zones={})
