"""The day planner: validation, physics, class priority, jobs, and agreement with the MILP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings, strategies as st
import numpy as np
import pytest

from optimizer.model import PriorityClass as P, Zone
from optimizer.plan_model import Battery, DeferrableJob, EndReserve, PlanInput, ReserveBands
from optimizer.planner import end_reserve_wh, physics_of, plan, step_energy_wh

NOW = datetime(2025, 6, 21, tzinfo=UTC)


def _zone(zone_id: str, priority: P, rated_w: float) -> Zone:
    return Zone(zone_id=zone_id, name=zone_id, priority=priority, rated_w=rated_w)


def _input(
    *,
    soc=50.0,
    cap=2000.0,
    pv=None,
    zones=None,
    demand=None,
    jobs=(),
    slots=24,
    slot_minutes=60,
    inverter=2000.0,
    max_w=1000.0,
    relay_on=None,
    end_reserve=None,
) -> PlanInput:
    zones = zones or (
        _zone("c", P.CRITICAL, 100),
        _zone("s", P.SEMI_CRITICAL, 100),
        _zone("n", P.NON_CRITICAL, 200),
    )
    return PlanInput(
        now=NOW,
        battery=Battery(capacity_wh=cap, soc_pct=soc, max_charge_w=max_w, max_discharge_w=max_w),
        inverter_limit_w=inverter,
        zones=tuple(zones),
        pv_w=tuple(pv if pv is not None else [0.0] * slots),
        demand_w=demand or {},
        jobs=tuple(jobs),
        relay_on=relay_on or {},
        slot_minutes=slot_minutes,
        horizon_slots=slots,
        end_reserve=end_reserve or EndReserve(),
    )


def _replay_soc(inp: PlanInput, result) -> np.ndarray:
    """Stored energy re-simulated from the plan's zone states and job runs."""
    phys = physics_of(inp)
    energy = [inp.battery.energy_wh]
    for t in range(inp.horizon_slots):
        load = 0.0
        for zone in inp.zones:
            if zone.priority is P.DEFERRABLE:
                continue
            if result.zone_on[zone.zone_id][t]:
                load += inp.zone_demand_w(zone)[t]
        for job in result.jobs:
            if t in job.slots:
                k = job.slots.index(t)
                slot_wh = next(z for z in inp.zones if z.zone_id == job.zone_id).rated_w
                slot_wh *= inp.slot_h
                load += min(slot_wh, job.energy_wh - k * slot_wh) / inp.slot_h
        energy.append(float(step_energy_wh(energy[-1], load, inp.pv_w[t], phys)))
    return np.array(energy)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="pv_w has 3 slots"):
        _input(pv=[0.0] * 3, slots=4)
    with pytest.raises(ValueError, match="soc_pct"):
        Battery(capacity_wh=100, soc_pct=120, max_charge_w=1, max_discharge_w=1)
    with pytest.raises(ValueError, match="horizon_slots"):
        _input(slots=577, pv=[0.0] * 577)
    with pytest.raises(ValueError, match="unknown zone"):
        _input(demand={"nope": (1.0,) * 24})
    with pytest.raises(ValueError, match="reserve bands"):
        ReserveBands(critical_pct=30, semi_critical_pct=10)
    with pytest.raises(ValueError, match="timezone"):
        PlanInput(
            now=datetime(2025, 1, 1),
            battery=Battery(capacity_wh=1, soc_pct=1, max_charge_w=1, max_discharge_w=1),
            inverter_limit_w=1,
            zones=(),
            pv_w=(0.0,),
            horizon_slots=1,
        )


def test_plenty_of_energy_serves_everything() -> None:
    result = plan(_input(soc=100, cap=20000, slots=6))
    for cls in (P.CRITICAL, P.SEMI_CRITICAL, P.NON_CRITICAL):
        assert result.unserved_wh[cls] == pytest.approx(0.0)
    assert result.unmet == ()
    assert all(all(v) for v in result.zone_on.values())


def test_scarce_energy_goes_to_critical_first() -> None:
    # 2000 Wh at 50 % = 1000 Wh; critical needs 100 W for 24 h = 2400 Wh: nothing else runs.
    result = plan(_input(soc=50))
    assert result.served_wh[P.SEMI_CRITICAL] == 0.0
    assert result.served_wh[P.NON_CRITICAL] == 0.0
    assert result.served_wh[P.CRITICAL] > 0.0
    assert any(item.startswith("critical c") for item in result.unmet)
    # Critical stays on while SoC is at or above the emergency band (10 %).
    for t, on in enumerate(result.zone_on["c"]):
        if result.soc_pct[t] >= 10.0:
            assert on


def test_lower_classes_stop_at_their_reserve() -> None:
    # No critical load: semi may go down to 10 %, non-critical only to 20 %.
    zones = (_zone("s", P.SEMI_CRITICAL, 100), _zone("n", P.NON_CRITICAL, 100))
    result = plan(_input(soc=60, zones=zones, slots=12))
    soc = np.array(result.soc_pct)
    n_on = np.array(result.zone_on["n"])
    assert np.all(soc[1:][n_on] >= 20.0 - 1e-6)
    assert soc.min() >= 10.0 - 1e-6
    assert result.served_wh[P.SEMI_CRITICAL] > result.served_wh[P.NON_CRITICAL]


def test_plan_soc_matches_its_own_replay() -> None:
    pv = [0, 0, 300, 900, 1200, 900, 300, 0] * 3
    result = plan(
        _input(
            soc=30,
            pv=pv,
            zones=(
                _zone("c", P.CRITICAL, 80),
                _zone("n", P.NON_CRITICAL, 400),
                _zone("p", P.DEFERRABLE, 500),
            ),
            jobs=[
                DeferrableJob(
                    zone_id="p", energy_wh=900, earliest=NOW, deadline=NOW + timedelta(hours=20)
                )
            ],
        )
    )
    replay = _replay_soc(
        _input(
            soc=30,
            pv=pv,
            zones=(
                _zone("c", P.CRITICAL, 80),
                _zone("n", P.NON_CRITICAL, 400),
                _zone("p", P.DEFERRABLE, 500),
            ),
        ),
        result,
    )
    assert np.allclose(np.array(result.soc_pct) / 100 * 2000, replay)


def test_deferrable_job_runs_in_the_sun_and_contiguously() -> None:
    pv = [0.0] * 10 + [800.0] * 4 + [0.0] * 10
    zones = (_zone("c", P.CRITICAL, 50), _zone("p", P.DEFERRABLE, 600))
    job = DeferrableJob(
        zone_id="p", energy_wh=1200, earliest=NOW, deadline=NOW + timedelta(hours=24), job_id="pump"
    )
    result = plan(_input(soc=25, pv=pv, zones=zones, jobs=[job]))
    (job_plan,) = result.jobs
    assert job_plan.complete
    assert job_plan.slots == tuple(range(job_plan.slots[0], job_plan.slots[0] + 2))
    assert set(job_plan.slots) <= set(range(10, 14))
    assert result.job_starts["p"] == NOW + timedelta(hours=job_plan.slots[0])
    assert result.served_wh[P.DEFERRABLE] == pytest.approx(1200)


def test_impossible_job_is_named_not_raised() -> None:
    zones = (_zone("p", P.DEFERRABLE, 500),)
    job = DeferrableJob(
        zone_id="p",
        energy_wh=5000,
        earliest=NOW,
        deadline=NOW + timedelta(hours=3),
        job_id="too-big",
    )
    result = plan(_input(soc=100, zones=zones, jobs=[job]))
    assert result.jobs[0].start is None
    assert result.unmet == ("job too-big: 0/5000 Wh planned",)


def test_planned_on_at_maps_time_to_slot() -> None:
    result = plan(_input(soc=100, cap=20000, slots=4))
    assert result.planned_on_at(NOW + timedelta(minutes=90)) == {"c": True, "s": True, "n": True}
    assert result.planned_on_at(NOW + timedelta(hours=4)) is None
    assert result.planned_on_at(NOW - timedelta(seconds=1)) is None


def test_planned_w_at_is_the_forecast_draw_of_zones_planned_on() -> None:
    """Dispatch counts an idle zone the plan starts with its forecast, not its rating."""
    demand = {"c": (50.0,) * 4, "s": (80.0,) * 4, "n": (120.0, 130.0, 140.0, 150.0)}
    result = plan(_input(soc=100, cap=20000, slots=4, demand=demand))
    assert result.planned_w_at(NOW + timedelta(minutes=90)) == {"c": 50.0, "s": 80.0, "n": 130.0}
    assert result.planned_w_at(NOW + timedelta(hours=4)) is None
    # a zone the plan keeps off has no expected draw (it is not being started)
    starved = plan(_input(soc=5, cap=2000, slots=4, demand=demand))
    assert not starved.zone_on["n"][0]
    assert "n" not in (starved.planned_w_at(NOW) or {})


def test_switch_cost_is_counted_against_relays_now() -> None:
    inp = _input(soc=100, cap=20000, slots=4, relay_on={"c": True, "s": True, "n": False})
    assert plan(inp).switches == 1


# --- properties (hypothesis) ------------------------------------------------------------------

_classes = st.sampled_from([P.CRITICAL, P.SEMI_CRITICAL, P.NON_CRITICAL])


@st.composite
def plan_inputs(draw) -> PlanInput:
    slots = draw(st.integers(2, 16))
    cap = draw(st.floats(200, 5000))
    max_w = draw(st.floats(100, 2000))
    n = draw(st.integers(1, 5))
    zones = tuple(_zone(f"z{i}", draw(_classes), draw(st.floats(5, 400))) for i in range(n))
    crit_w = sum(z.rated_w for z in zones if z.priority is P.CRITICAL)
    demand = {
        z.zone_id: tuple(draw(st.lists(st.floats(0, z.rated_w), min_size=slots, max_size=slots)))
        for z in zones
    }
    pv = draw(st.lists(st.floats(0, 2000), min_size=slots, max_size=slots))
    return PlanInput(
        now=NOW,
        battery=Battery(
            capacity_wh=cap,
            soc_pct=draw(st.floats(0, 100)),
            max_charge_w=max_w,
            max_discharge_w=max(max_w, crit_w),
        ),
        inverter_limit_w=max(draw(st.floats(100, 3000)), crit_w),
        zones=zones,
        pv_w=tuple(pv),
        demand_w=demand,
        slot_minutes=draw(st.sampled_from([5, 15, 60])),
        horizon_slots=slots,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan_inputs())
@example(
    PlanInput(
        now=NOW,
        battery=Battery(capacity_wh=200.0, soc_pct=0.0, max_charge_w=100.0, max_discharge_w=100.0),
        inverter_limit_w=100.0,
        zones=(_zone("z0", P.CRITICAL, 5.0),),
        pv_w=(0.0, 0.0),
        demand_w={"z0": (0.0, 1e-05)},
        slot_minutes=5,
        horizon_slots=2,
    )
)
def test_property_physics_and_critical(inp: PlanInput) -> None:
    result = plan(inp)
    phys = physics_of(inp)
    soc = np.array(result.soc_pct)
    assert np.all(soc >= -1e-9) and np.all(soc <= 100 + 1e-9)
    # The planner accepts a trajectory that ends up to 1e-6 Wh under a floor (its feasibility
    # tolerance) and reports SoC clipped to 0..100: a critical load of 1e-5 W on an empty
    # battery replays to -8.8e-7 Wh (hypothesis found it; the example below keeps it).
    assert np.allclose(soc / 100 * inp.battery.capacity_wh, _replay_soc(inp, result), atol=1e-6)
    for t in range(inp.horizon_slots):
        load = sum(inp.zone_demand_w(z)[t] for z in inp.zones if result.zone_on[z.zone_id][t])
        assert load <= inp.inverter_limit_w + 1e-6
        assert load - inp.pv_w[t] <= inp.battery.max_discharge_w + 1e-6
        crit_w = sum(inp.zone_demand_w(z)[t] for z in inp.zones if z.priority is P.CRITICAL)
        energy_wh = soc[t] / 100 * inp.battery.capacity_wh
        crit_fits = step_energy_wh(energy_wh, crit_w, inp.pv_w[t], phys) >= 0
        for zone in inp.zones:
            if zone.priority is P.CRITICAL and soc[t] >= inp.emergency_pct and crit_fits:
                assert result.zone_on[zone.zone_id][t], (t, soc[t])
            if result.zone_on[zone.zone_id][t] and inp.zone_demand_w(zone)[t] > 0:
                reserve = inp.battery.reserve.pct_for(zone.priority)
                assert soc[t + 1] >= reserve - 1e-6
    served = sum(result.served_wh.values())
    unserved = sum(result.unserved_wh.values())
    wanted = sum(sum(inp.zone_demand_w(z)) for z in inp.zones) * inp.slot_h
    assert served + unserved == pytest.approx(wanted, rel=1e-9, abs=1e-6)


highspy = pytest.importorskip("highspy")


@st.composite
def job_instances(draw) -> PlanInput:
    slots = draw(st.integers(4, 12))
    pv = draw(
        st.lists(st.sampled_from([0.0, 200.0, 600.0, 1200.0]), min_size=slots, max_size=slots)
    )
    zones = (
        _zone("c", P.CRITICAL, draw(st.floats(0, 150))),
        _zone("p", P.DEFERRABLE, draw(st.floats(100, 800))),
    )
    start = draw(st.integers(0, slots - 2))
    end = draw(st.integers(start + 1, slots))
    job = DeferrableJob(
        zone_id="p",
        energy_wh=draw(st.floats(50, 1500)),
        earliest=NOW + timedelta(hours=start),
        deadline=NOW + timedelta(hours=end),
        splittable=draw(st.booleans()),
        job_id="j",
    )
    return _input(
        soc=draw(st.floats(0, 100)),
        cap=1500,
        pv=pv,
        zones=zones,
        jobs=[job],
        slots=slots,
        max_w=1000,
        end_reserve=EndReserve(hours=0),  # the MILP drains to the reserve bands too
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(job_instances())
# The job DP judged feasibility by interpolated values: the grid point just under the energy a
# run needs was infeasible, which dragged the value of the (feasible) state at 713 Wh towards
# "infeasible", so the 802 Wh job waited and was dropped; the MILP runs it in slots 1-3.
@example(
    _input(
        soc=0.0,
        cap=1500,
        pv=[600.0, 600.0, 200.0, 0.0],
        zones=(_zone("c", P.CRITICAL, 51.0), _zone("p", P.DEFERRABLE, 347.0)),
        jobs=[
            DeferrableJob(
                zone_id="p",
                energy_wh=802.0,
                earliest=NOW,
                deadline=NOW + timedelta(hours=4),
                job_id="j",
            )
        ],
        slots=4,
        max_w=1000,
        end_reserve=EndReserve(hours=0),
    )
)
def test_property_job_delivered_whenever_milp_can(inp: PlanInput) -> None:
    from bench.optimizer.milp import solve_milp

    exact = solve_milp(inp, time_limit_s=20)
    result = plan(inp)
    assert result.served_wh[P.CRITICAL] <= exact.served_wh[P.CRITICAL] + 1e-3
    if exact.served_wh[P.DEFERRABLE] >= inp.jobs[0].energy_wh - 1e-6:
        assert result.jobs[0].complete, (exact.served_wh, result.served_wh)


# --- dusk: serve now rather than later (time preference) ---------------------------------------

DUSK = datetime(2025, 10, 1, 18, tzinfo=UTC)


def _dusk_input(*, homes_relay_on: bool) -> PlanInput:
    """Dusk, battery 80 % of 5 kWh; clinic 150 W, street lights 200 W until midnight, homes
    400 W, pump 300 W (one 2 h job next day); PV zero for 14 h, then a clear-sky day."""
    slots = 288
    hours = np.arange(slots) * 5 / 60
    day = np.clip(hours - 14, 0, 10)
    pv = np.where(hours >= 14, 2500.0 * np.sin(np.pi * day / 10), 0.0)
    zones = (
        _zone("Clinic", P.CRITICAL, 150),
        _zone("Lights", P.SEMI_CRITICAL, 200),
        _zone("Homes", P.NON_CRITICAL, 400),
        _zone("Pump", P.DEFERRABLE, 300),
    )
    return PlanInput(
        now=DUSK,
        battery=Battery(capacity_wh=5000, soc_pct=80, max_charge_w=2000, max_discharge_w=2000),
        inverter_limit_w=2000,
        zones=zones,
        pv_w=tuple(pv),
        demand_w={"Lights": tuple(np.where(hours < 6, 200.0, 0.0))},
        jobs=(
            DeferrableJob(
                zone_id="Pump",
                energy_wh=600,
                earliest=DUSK + timedelta(hours=15),
                deadline=DUSK + timedelta(hours=23),
                job_id="pump",
            ),
        ),
        relay_on={"Clinic": True, "Lights": True, "Homes": homes_relay_on},
        horizon_slots=slots,
    )


@pytest.mark.parametrize("homes_relay_on", [True, False])
def test_dusk_serves_homes_now_not_later(homes_relay_on: bool, monkeypatch) -> None:
    import optimizer.planner as planner_module

    inp = _dusk_input(homes_relay_on=homes_relay_on)
    result = plan(inp)
    monkeypatch.setattr(
        planner_module, "service_weight", lambda index, slot_h: np.ones(np.shape(index))
    )
    untimed = plan(inp)  # the same planner without the time preference
    homes = np.array(result.zone_on["Homes"])
    night = homes[: 14 * 12]
    assert night.any(), "the energy allows homes for the first hours of the night"
    # Served from now, in one run, then shed (not shed now and served later in the night).
    n_on = int(night.sum())
    assert night[:n_on].all() and not night[n_on:].any()
    # The lights' reserve holds nothing back once they draw nothing: it was used for homes.
    assert result.soc_pct[14 * 12] < inp.battery.reserve.semi_critical_pct
    # Only the timing moved: the energy of every class is unchanged (non-critical within 0.5 %).
    assert result.served_wh[P.NON_CRITICAL] == pytest.approx(
        untimed.served_wh[P.NON_CRITICAL], rel=5e-3
    )
    for cls in (P.CRITICAL, P.SEMI_CRITICAL, P.DEFERRABLE):
        assert result.served_wh[cls] == pytest.approx(untimed.served_wh[cls], abs=1e-6)
    assert result.switches <= untimed.switches
    assert np.allclose(np.array(result.soc_pct) / 100 * 5000, _replay_soc(inp, result))


def test_time_preference_only_breaks_ties() -> None:
    # No battery to speak of and PV only in slot 3: the non-critical zone can only run there.
    zones = (_zone("n", P.NON_CRITICAL, 100),)
    result = plan(_input(soc=0, cap=100, pv=[0, 0, 0, 500, 0, 0], zones=zones, slots=6))
    assert result.zone_on["n"] == (False, False, False, True, False, False)


# --- the end reserve: what the horizon's end must keep for the night after it -----------------


def _evening_input(end_reserve: EndReserve) -> PlanInput:
    """24 h from 18:00 at 1 h slots: a clinic, night lights, homes that would drain the battery."""
    hours = (18 + np.arange(24)) % 24
    pv = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None) * 400.0
    night = np.where((hours >= 18) | (hours < 6), 100.0, 0.0)
    return _input(
        soc=60,
        cap=4000,
        pv=pv.tolist(),
        zones=(
            _zone("c", P.CRITICAL, 50),
            _zone("s", P.SEMI_CRITICAL, 100),
            _zone("n", P.NON_CRITICAL, 300),
        ),
        demand={"s": tuple(night)},
        end_reserve=end_reserve,
    )


def test_end_reserve_carries_the_next_night_at_a_pessimistic_forecast() -> None:
    inp = _evening_input(EndReserve())
    phys = physics_of(inp)
    pv = np.asarray(inp.pv_w)
    demand = {z.zone_id: np.asarray(inp.zone_demand_w(z)) for z in inp.zones}
    end_wh = end_reserve_wh(inp, demand, pv)
    # by hand: the night after the horizon (12 h of 1.2 x 150 W at PV zero, the 10 % band under
    # the lights' last hour) needs about 12 * 180 / 0.95 + 400 Wh
    assert end_wh == pytest.approx(12 * 180 / 0.95 + 400, rel=0.05)
    kept = plan(inp)
    drained = plan(_evening_input(EndReserve(hours=0)))
    assert kept.soc_pct[-1] / 100 * phys.capacity_wh >= end_wh - 1e-6
    assert drained.soc_pct[-1] < kept.soc_pct[-1]
    assert kept.served_wh[P.NON_CRITICAL] < drained.served_wh[P.NON_CRITICAL]
    # a fixed target replaces the rule; more PV pessimism asks for more
    assert end_reserve_wh(_evening_input(EndReserve(fixed_wh=123.0)), demand, pv) == 123.0
    gloomy = end_reserve_wh(_evening_input(EndReserve(pv_share=0.0)), demand, pv)
    assert gloomy >= end_wh


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan_inputs(), st.floats(0, 48), st.floats(0, 1))
def test_property_end_reserve_never_costs_critical_or_semi(
    inp: PlanInput, hours: float, pv_share: float
) -> None:
    """The end reserve only holds the lower classes back: critical and semi-critical are served
    exactly as when draining, and the lower classes never get more."""
    drained = plan(replace(inp, end_reserve=EndReserve(hours=0)))
    kept = plan(replace(inp, end_reserve=EndReserve(hours=hours, pv_share=pv_share)))
    for cls in (P.CRITICAL, P.SEMI_CRITICAL):
        assert kept.served_wh[cls] == pytest.approx(drained.served_wh[cls], abs=1e-6)
    assert kept.served_wh[P.NON_CRITICAL] <= drained.served_wh[P.NON_CRITICAL] * 1.01 + 1e-6


# --- the forecast's pessimistic side holds the lower classes back, never critical -------------


def _replay_wh(inp: PlanInput, result, *, pv, demand, with_jobs: bool) -> np.ndarray:
    """Stored energy re-simulated from the plan's states on other forecasts (jobs optional)."""
    phys = physics_of(inp)
    energy = [inp.battery.energy_wh]
    for t in range(inp.horizon_slots):
        load = sum(
            demand[z.zone_id][t]
            for z in inp.zones
            if z.priority is not P.DEFERRABLE and result.zone_on[z.zone_id][t]
        )
        for job in result.jobs if with_jobs else ():
            if t in job.slots:
                k = job.slots.index(t)
                slot_wh = next(z for z in inp.zones if z.zone_id == job.zone_id).rated_w
                slot_wh *= inp.slot_h
                load += min(slot_wh, job.energy_wh - k * slot_wh) / inp.slot_h
        energy.append(float(step_energy_wh(energy[-1], load, pv[t], phys)))
    return np.array(energy)


@st.composite
def spread_instances(draw) -> tuple[PlanInput, PlanInput]:
    """A site with every class and a pump job; the same with a pessimistic side."""
    slots = draw(st.integers(4, 12))
    pv = draw(
        st.lists(st.sampled_from([0.0, 200.0, 600.0, 1200.0]), min_size=slots, max_size=slots)
    )
    zones = (
        _zone("c", P.CRITICAL, draw(st.floats(0, 150))),
        _zone("s", P.SEMI_CRITICAL, draw(st.floats(0, 300))),
        _zone("n", P.NON_CRITICAL, draw(st.floats(50, 600))),
        _zone("p", P.DEFERRABLE, draw(st.floats(100, 800))),
    )
    demand = {
        z.zone_id: tuple(draw(st.lists(st.floats(0, z.rated_w), min_size=slots, max_size=slots)))
        for z in zones[:3]
    }
    start = draw(st.integers(0, slots - 2))
    job = DeferrableJob(
        zone_id="p",
        energy_wh=draw(st.floats(50, 1500)),
        earliest=NOW + timedelta(hours=start),
        deadline=NOW + timedelta(hours=draw(st.integers(start + 1, slots))),
        splittable=draw(st.booleans()),
        job_id="j",
    )
    inp = _input(
        soc=draw(st.floats(0, 100)),
        cap=1500,
        pv=pv,
        zones=zones,
        demand=demand,
        jobs=[job],
        slots=slots,
        max_w=1000,
        end_reserve=EndReserve(hours=0),
    )
    share, factor = draw(st.floats(0, 1)), draw(st.floats(1, 2))
    low = replace(
        inp,
        pv_low_w=tuple(w * share for w in pv),
        demand_high_w={z: tuple(w * factor for w in row) for z, row in demand.items()},
    )
    return inp, low


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spread_instances())
def test_property_spread_holds_only_lower_classes_back(pair: tuple[PlanInput, PlanInput]) -> None:
    """With a pessimistic side (low PV, high demand) critical and semi-critical get the very
    same plan, the non-critical zones never more, and the job never takes stored energy the
    non-critical zones planned on would need if the pessimistic side came true: replayed on it,
    wherever the job lowered the stored energy, it stays at or above the non-critical reserve
    band after every slot where they draw."""
    inp, low = pair
    base, held = plan(inp), plan(low)
    for zone_id in ("c", "s"):
        assert held.zone_on[zone_id] == base.zone_on[zone_id]
    for cls in (P.CRITICAL, P.SEMI_CRITICAL):
        assert held.served_wh[cls] == base.served_wh[cls]
    assert held.served_wh[P.NON_CRITICAL] <= base.served_wh[P.NON_CRITICAL] + 1e-6
    pv = low.pv_low_w
    demand = {z: np.maximum(low.demand_high_w[z], inp.demand_w[z]) for z in inp.demand_w}
    without = _replay_wh(inp, held, pv=pv, demand=demand, with_jobs=False)
    with_jobs = _replay_wh(inp, held, pv=pv, demand=demand, with_jobs=True)
    band = inp.battery.reserve.non_critical_pct / 100 * inp.battery.capacity_wh
    for t in range(inp.horizon_slots):
        if held.zone_on["n"][t] and demand["n"][t] > 0:
            assert with_jobs[t + 1] >= min(band, without[t + 1]) - 1e-6, t
