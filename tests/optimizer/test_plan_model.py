"""Tests for how a plan is read back slot by slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from optimizer.plan_model import JobPlan, Plan

START = datetime(2025, 1, 27, 3, 0, tzinfo=UTC)


def make_plan(
    zone_on: dict[str, tuple[bool, ...]],
    demand_w: dict[str, tuple[float, ...]],
    jobs: tuple[JobPlan, ...] = (),
) -> Plan:
    """A two-slot plan with these states and demand forecasts."""
    return Plan(
        slot_start=(START, START + timedelta(minutes=5)),
        zone_on=zone_on,
        soc_pct=(50.0, 50.0, 50.0),
        served_wh={},
        unserved_wh={},
        job_starts={},
        jobs=jobs,
        unmet=(),
        objective=0.0,
        switches=0,
        slot_minutes=5,
        demand_w=demand_w,
    )


def test_a_zone_expected_to_draw_nothing_is_not_held_off() -> None:
    """Planned off at 0 W: the plan has no say (the rules decide); at 80 W it sheds it."""
    plan = make_plan(
        {"lights": (False, False), "homes": (False, True)},
        {"lights": (0.0, 120.0), "homes": (80.0, 80.0)},
    )
    assert plan.planned_on_at(START) == {"homes": False}
    assert plan.planned_on_at(START + timedelta(minutes=5)) == {"lights": False, "homes": True}


def test_a_zone_planned_on_or_with_a_job_keeps_the_plans_word() -> None:
    """On at 0 W stays on; a deferrable zone with a job is held off even at 0 W forecast."""
    job = JobPlan(
        job_id="pump daily",
        zone_id="pump",
        start=START + timedelta(minutes=5),
        slots=(1,),
        planned_wh=25.0,
        energy_wh=25.0,
    )
    plan = make_plan(
        {"lights": (True, True), "pump": (False, True)},
        {"lights": (0.0, 0.0), "pump": (0.0, 0.0)},
        jobs=(job,),
    )
    assert plan.planned_on_at(START) == {"lights": True, "pump": False}


def test_no_forecast_kept_means_the_plan_decides() -> None:
    """A plan without demand rows (older callers) is read as before."""
    plan = make_plan({"homes": (False, False)}, {})
    assert plan.planned_on_at(START) == {"homes": False}
