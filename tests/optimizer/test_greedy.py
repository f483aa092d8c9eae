"""Greedy dispatch: wishes of free zones, class then value-per-watt order, budget, min on/off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from optimizer.greedy import CONSERVATION_BATTERY_SHARE, budget_w, greedy_dispatch
from optimizer.model import (
    Band,
    PriorityClass,
    Schedule,
    SiteReading,
    Thresholds,
    Zone,
    ZoneDecision,
    ZoneState,
)
from optimizer.policy import Reason, evaluate_policy

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=1)
CRIT, SEMI, NON, DEFER = (
    PriorityClass.CRITICAL,
    PriorityClass.SEMI_CRITICAL,
    PriorityClass.NON_CRITICAL,
    PriorityClass.DEFERRABLE,
)


def zone(zone_id: str, priority: PriorityClass, rated_w: float = 100.0, **kw) -> Zone:
    return Zone(zone_id=zone_id, name=zone_id, priority=priority, rated_w=rated_w, **kw)


def state(zone_id: str, relay_on: bool = False, **kw) -> ZoneState:
    kw.setdefault("last_change", LONG_AGO)
    return ZoneState(zone_id=zone_id, relay_on=relay_on, **kw)


def run(
    zones: tuple[Zone, ...],
    states: dict[str, ZoneState] | None = None,
    *,
    soc: float = 60.0,
    band: Band = Band.NORMAL,
    solar_w: float = 0.0,
    limit_w: float = 0.0,
    sun_up: bool = True,
    planned_on: dict[str, bool] | None = None,
    thresholds: Thresholds = Thresholds(),
    now: datetime = NOW,
) -> dict[str, ZoneDecision]:
    reading = SiteReading(soc_pct=soc, solar_w=solar_w, power_limit_w=limit_w, sun_up=sun_up)
    states = states or {}
    rules = evaluate_policy(
        now=now, reading=reading, band=band, thresholds=thresholds, zones=zones, states=states
    )
    return greedy_dispatch(
        now=now,
        reading=reading,
        band=band,
        zones=zones,
        states=states,
        rules=rules,
        planned_on=planned_on,
    )


def on_reason(decision: ZoneDecision) -> tuple[bool, str]:
    return decision.on, decision.reason


# ---- semi-critical: automatic by schedule --------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "sun_up", "expected_on", "reason"),
    [
        (Schedule.NIGHT, False, True, Reason.SCHEDULE_NIGHT),
        (Schedule.NIGHT, True, False, Reason.SCHEDULE_NIGHT),
        (Schedule.DAY, True, True, Reason.SCHEDULE_DAY),
        (Schedule.DAY, False, False, Reason.SCHEDULE_DAY),
        (Schedule.ALWAYS, True, True, Reason.SCHEDULE_ALWAYS),
        (Schedule.ALWAYS, False, True, Reason.SCHEDULE_ALWAYS),
    ],
)
def test_semi_critical_follows_its_schedule(
    schedule: Schedule, sun_up: bool, expected_on: bool, reason: str
) -> None:
    zones = (zone("light", SEMI, schedule=schedule),)
    assert on_reason(run(zones, sun_up=sun_up)["light"]) == (expected_on, reason)


def test_semi_critical_household_off_and_back_to_auto() -> None:
    zones = (zone("light", SEMI, schedule=Schedule.NIGHT),)
    off = {"light": state("light", True, request_on=False)}
    assert on_reason(run(zones, off, sun_up=False)["light"]) == (False, Reason.HOUSEHOLD_REQUEST)
    # "On" from a household means "auto": it cannot light the street in daytime.
    auto = {"light": state("light", False, request_on=True)}
    assert run(zones, auto, sun_up=True)["light"].on is False
    assert run(zones, auto, sun_up=False)["light"].on is True


def test_semi_critical_runs_automatically_in_conservation_and_plan_may_shed_it() -> None:
    zones = (zone("light", SEMI, schedule=Schedule.NIGHT),)
    kw = {"soc": 15.0, "band": Band.CONSERVATION, "limit_w": 1000.0}
    assert run(zones, sun_up=False, **kw)["light"].on is True
    shed = run(zones, sun_up=False, planned_on={"light": False})["light"]
    assert on_reason(shed) == (False, Reason.PLAN)
    # The plan cannot light it against its schedule.
    assert run(zones, sun_up=True, planned_on={"light": True})["light"].on is False


# ---- non-critical: the household decides in NORMAL -----------------------------------------


def test_non_critical_follows_the_household_in_normal() -> None:
    zones = (zone("tv", NON),)
    assert on_reason(run(zones, {"tv": state("tv", False, request_on=True)})["tv"]) == (
        True,
        Reason.HOUSEHOLD_REQUEST,
    )
    assert on_reason(run(zones, {"tv": state("tv", True, request_on=False)})["tv"]) == (
        False,
        Reason.HOUSEHOLD_REQUEST,
    )


@pytest.mark.parametrize("relay_on", [True, False])
def test_non_critical_without_request_keeps_its_relay(relay_on: bool) -> None:
    zones = (zone("tv", NON),)
    assert on_reason(run(zones, {"tv": state("tv", relay_on)})["tv"]) == (
        relay_on,
        Reason.KEEP_STATE,
    )


def test_non_critical_without_request_follows_the_plan() -> None:
    zones = (zone("tv", NON),)
    decision = run(zones, {"tv": state("tv", False)}, planned_on={"tv": True})["tv"]
    assert on_reason(decision) == (True, Reason.PLAN)


def test_conservation_non_critical_cannot_start_but_may_stay_on() -> None:
    zones = (zone("tv", NON),)
    kw = {"soc": 15.0, "band": Band.CONSERVATION, "limit_w": 10_000.0}
    off = run(zones, {"tv": state("tv", False, request_on=True)}, **kw)["tv"]
    assert on_reason(off) == (False, Reason.BATTERY_CONSERVATION)
    on = run(zones, {"tv": state("tv", True, request_on=True)}, **kw)["tv"]
    assert on_reason(on) == (True, Reason.HOUSEHOLD_REQUEST)
    plan_on = run(zones, {"tv": state("tv", False)}, planned_on={"tv": True}, **kw)["tv"]
    assert plan_on.on is False
    plan_off = run(zones, {"tv": state("tv", True)}, planned_on={"tv": False}, **kw)["tv"]
    assert on_reason(plan_off) == (False, Reason.PLAN)


# ---- deferrable: plan, request, PV surplus -------------------------------------------------


def test_deferrable_runs_when_the_plan_says_so() -> None:
    zones = (zone("pump", DEFER, 400.0),)
    assert on_reason(run(zones, planned_on={"pump": True})["pump"]) == (True, Reason.PLAN)
    stop = run(zones, {"pump": state("pump", True, request_on=True)}, planned_on={"pump": False})
    assert on_reason(stop["pump"]) == (False, Reason.PLAN)


def test_deferrable_household_request_runs_it_and_off_stops_it() -> None:
    zones = (zone("pump", DEFER, 400.0),)
    assert on_reason(run(zones, {"pump": state("pump", request_on=True)})["pump"]) == (
        True,
        Reason.HOUSEHOLD_REQUEST,
    )
    off = run(zones, {"pump": state("pump", True, request_on=False)}, planned_on={"pump": True})
    assert on_reason(off["pump"]) == (False, Reason.HOUSEHOLD_REQUEST)


def test_deferrable_runs_on_pv_surplus_only() -> None:
    zones = (zone("clinic", CRIT, 300.0), zone("pump", DEFER, 400.0))
    assert on_reason(run(zones, solar_w=700.0)["pump"]) == (True, Reason.PV_SURPLUS)
    assert on_reason(run(zones, solar_w=699.0)["pump"]) == (False, Reason.NO_PV_SURPLUS)


def test_pv_surplus_counts_every_zone_admitted_before() -> None:
    zones = (zone("clinic", CRIT, 300.0), zone("tv", NON, 200.0), zone("pump", DEFER, 400.0))
    states = {"tv": state("tv", True, request_on=True, power_w=200.0)}
    assert run(zones, states, solar_w=899.0)["pump"].on is False
    assert run(zones, states, solar_w=900.0)["pump"].on is True


# ---- budget and order ----------------------------------------------------------------------


def test_budget_admits_by_class_then_value_per_watt() -> None:
    zones = (
        zone("clinic", CRIT, 300.0),
        zone("light", SEMI, 400.0),
        zone("tv_big", NON, 500.0),
        zone("tv_small", NON, 200.0),
    )
    states = {
        "tv_big": state("tv_big", False, request_on=True),
        "tv_small": state("tv_small", False, request_on=True),
    }
    decisions = run(zones, states, limit_w=1000.0)
    assert decisions["clinic"].on and decisions["light"].on
    assert on_reason(decisions["tv_small"]) == (True, Reason.HOUSEHOLD_REQUEST)
    assert on_reason(decisions["tv_big"]) == (False, Reason.POWER_BUDGET)


def test_value_per_watt_uses_measured_power_of_running_zones() -> None:
    zones = (zone("a", NON, 100.0), zone("b", NON, 300.0))
    # b is rated 300 W but measured drawing 50 W: it is the better value now.
    states = {
        "a": state("a", False, request_on=True),
        "b": state("b", True, request_on=True, power_w=50.0),
    }
    decisions = run(zones, states, limit_w=120.0)
    assert decisions["b"].on and not decisions["a"].on


def test_conservation_budget_gives_part_of_the_battery() -> None:
    zones = (zone("clinic", CRIT, 100.0),)
    reading = SiteReading(soc_pct=15.0, solar_w=200.0, power_limit_w=1200.0)
    assert budget_w(reading=reading, band=Band.NORMAL, zones=zones) == 1200.0
    assert budget_w(reading=reading, band=Band.CONSERVATION, zones=zones) == pytest.approx(
        200.0 + CONSERVATION_BATTERY_SHARE * 1000.0
    )


def test_conservation_sheds_non_critical_when_the_budget_is_short() -> None:
    zones = (zone("clinic", CRIT, 400.0), zone("light", SEMI, 200.0), zone("tv", NON, 300.0))
    states = {z.zone_id: state(z.zone_id, True, request_on=True, power_w=z.rated_w) for z in zones}
    normal = run(zones, states, limit_w=1000.0)
    assert all(d.on for d in normal.values())
    short = run(zones, states, soc=15.0, band=Band.CONSERVATION, limit_w=1000.0, sun_up=True)
    # budget 0 W PV + half of 1000 W: the clinic and the light (600 W) already exceed it.
    assert short["clinic"].on
    assert on_reason(short["tv"]) == (False, Reason.POWER_BUDGET)


# ---- min on/off times ----------------------------------------------------------------------


def test_min_on_time_holds_a_non_forced_switch_off() -> None:
    zones = (zone("tv", NON),)
    fresh = {"tv": state("tv", True, request_on=False, last_change=NOW - timedelta(seconds=100))}
    assert on_reason(run(zones, fresh)["tv"]) == (True, Reason.MIN_ON_TIME)
    later = run(zones, fresh, now=NOW + timedelta(seconds=200))["tv"]
    assert on_reason(later) == (False, Reason.HOUSEHOLD_REQUEST)


def test_min_off_time_holds_a_non_forced_switch_on() -> None:
    zones = (zone("tv", NON, min_off_s=600.0),)
    fresh = {"tv": state("tv", False, request_on=True, last_change=NOW - timedelta(seconds=300))}
    assert on_reason(run(zones, fresh)["tv"]) == (False, Reason.MIN_OFF_TIME)
    assert run(zones, fresh, now=NOW + timedelta(seconds=300))["tv"].on is True


def test_forced_changes_ignore_min_on_time() -> None:
    zones = (zone("clinic", CRIT), zone("tv", NON), zone("pump", DEFER))
    just_now = NOW - timedelta(seconds=1)
    states = {
        "clinic": state("clinic", False, last_change=just_now),
        "tv": state("tv", True, request_on=True, last_change=just_now),
        "pump": state("pump", True, request_on=True, last_change=just_now),
    }
    emergency = run(zones, states, soc=9.0, band=Band.EMERGENCY)
    assert emergency["clinic"].on and emergency["clinic"].forced
    assert on_reason(emergency["tv"]) == (False, Reason.BATTERY_EMERGENCY)
    assert emergency["tv"].forced and not emergency["pump"].on
    conservation = run(zones, states, soc=15.0, band=Band.CONSERVATION)
    assert on_reason(conservation["pump"]) == (False, Reason.BATTERY_CONSERVATION)


def test_a_zone_held_on_by_its_min_on_time_uses_budget_first() -> None:
    zones = (zone("a", NON, 300.0), zone("b", NON, 100.0))
    states = {
        "a": state(
            "a", True, request_on=False, power_w=300.0, last_change=NOW - timedelta(seconds=5)
        ),
        "b": state("b", False, request_on=True),
    }
    decisions = run(zones, states, limit_w=350.0)
    assert on_reason(decisions["a"]) == (True, Reason.MIN_ON_TIME)
    assert on_reason(decisions["b"]) == (False, Reason.POWER_BUDGET)


def test_running_zone_over_budget_waits_for_its_min_on_time() -> None:
    zones = (zone("clinic", CRIT, 500.0), zone("tv", NON, 300.0))
    states = {
        "tv": state(
            "tv", True, request_on=True, power_w=300.0, last_change=NOW - timedelta(seconds=10)
        )
    }
    assert on_reason(run(zones, states, limit_w=600.0)["tv"]) == (True, Reason.MIN_ON_TIME)
    later = run(zones, states, limit_w=600.0, now=NOW + timedelta(seconds=300))["tv"]
    assert on_reason(later) == (False, Reason.POWER_BUDGET)


def test_decisions_keep_the_zone_order_and_cover_every_zone() -> None:
    zones = (zone("z3", DEFER), zone("z1", CRIT), zone("z2", SEMI))
    assert list(run(zones)) == ["z3", "z1", "z2"]
