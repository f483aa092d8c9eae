"""The controller's inputs, built once: the rules, and the integration and the simulator getting
the same PlanInput and DispatchInput for the same site state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from homeassistant.core import HomeAssistant
import numpy as np
import pytest

# The integration's copy of the package throughout (the same files as optimizer/): dataclasses
# and enums of two module copies never compare equal.
from custom_components.microgrid.optimizer import simulate as sim
from custom_components.microgrid.optimizer.controller import (
    Forecast,
    Site,
    dispatch_input,
    dispatch_power_limit_w,
    plan_input,
    reserve_bands,
    scheduled_demand,
)
from custom_components.microgrid.optimizer.dispatch import DispatchInput
from custom_components.microgrid.optimizer.model import (
    PriorityClass,
    Schedule,
    Thresholds,
    Zone,
    ZoneState,
)
from custom_components.microgrid.optimizer.plan_model import Battery, PlanInput, ReserveBands
from custom_components.microgrid.optimizer.sun import sun_up
from custom_components.microgrid.planning.history import SlotHistory
from custom_components.microgrid.planning.inputs import controller_site, daily_jobs
from custom_components.microgrid.planning.manager import HORIZON_SLOTS, PlanManager, PlanSource
from custom_components.microgrid.site import SiteConfig

ZONES = (
    Zone(zone_id="C", name="clinic", priority=PriorityClass.CRITICAL, rated_w=150),
    Zone(
        zone_id="L",
        name="lights",
        priority=PriorityClass.SEMI_CRITICAL,
        rated_w=200,
        schedule=Schedule.NIGHT,
    ),
    Zone(zone_id="H", name="homes", priority=PriorityClass.NON_CRITICAL, rated_w=400),
    Zone(zone_id="P", name="pump", priority=PriorityClass.DEFERRABLE, rated_w=300),
)


def _site(**changes: Any) -> Site:
    return replace(
        Site(zones=ZONES, capacity_wh=4000, inverter_limit_w=1000, latitude_deg=12.0), **changes
    )


def test_reserve_bands_follow_the_thresholds() -> None:
    """Critical drains to the admin's cutoff (0 without), semi-critical stops at emergency,
    non-critical and deferrable at conservation; unusable thresholds are made sane first."""
    assert reserve_bands(Thresholds()) == ReserveBands(
        critical_pct=0, semi_critical_pct=10, non_critical_pct=20, deferrable_pct=20
    )
    assert reserve_bands(
        Thresholds(conservation_pct=30, emergency_pct=15, deep_discharge_cutoff_pct=5)
    ) == ReserveBands(critical_pct=5, semi_critical_pct=15, non_critical_pct=30, deferrable_pct=30)
    # A cutoff above the emergency band cannot put critical above semi-critical.
    assert reserve_bands(Thresholds(deep_discharge_cutoff_pct=15)).critical_pct == 10
    # Conservation below emergency reads as the stricter: both at emergency.
    assert reserve_bands(Thresholds(conservation_pct=5, emergency_pct=10)).non_critical_pct == 10


def test_power_limit_rule() -> None:
    """min(inverter, battery discharge + PV now); one limit configured (the integration): the
    inverter's; none configured: no limit (0)."""
    battery_rated = _site(max_discharge_w=600)
    assert dispatch_power_limit_w(battery_rated, 0.0) == 600
    assert dispatch_power_limit_w(battery_rated, 300.0) == 900
    assert dispatch_power_limit_w(battery_rated, 800.0) == 1000
    assert dispatch_power_limit_w(_site(), 0.0) == 1000
    assert dispatch_power_limit_w(_site(inverter_limit_w=0), 500.0) == 0.0
    # The plan then keeps the summed ratings.
    assert _site(inverter_limit_w=0).plan_limit_w == 1050


def test_sun_rule_is_the_sites_sunrise_and_sunset() -> None:
    """Dispatch's sun_up is the sun at the site, whatever the PV reads (a covered array, a
    tripped PV breaker or a noisy sensor at night no longer decides the street lights)."""
    site = _site()
    noon, midnight = datetime(2025, 3, 1, 12, tzinfo=UTC), datetime(2025, 3, 1, 0, tzinfo=UTC)
    for now, solar_w, up in ((noon, 0.0, True), (midnight, 25.0, False)):
        inp = dispatch_input(
            site,
            now=now,
            soc_pct=50.0,
            solar_w=solar_w,
            load_w=0.0,
            states={},
            previous_band=None,
            planned_on=None,
            planned_w=None,
        )
        assert inp.reading.sun_up is up is sun_up(now, 12.0, 0.0)
        assert inp.thresholds is site.thresholds and inp.zones is site.zones


def test_scheduled_zones_plan_no_demand_outside_their_schedule() -> None:
    """Night-only street lights draw nothing by day in the plan; day-only zones nothing at night."""
    times = [datetime(2025, 3, 1, 0, 0, tzinfo=UTC), datetime(2025, 3, 1, 12, 0, tzinfo=UTC)]
    zones = (
        ZONES[1],
        replace(ZONES[3], schedule=Schedule.DAY),
        ZONES[0],
    )
    demand = {"L": (200.0, 200.0), "P": (300.0, 300.0), "C": (150.0, 150.0)}
    out = scheduled_demand(_site(zones=zones), demand, times)
    assert out == {"L": (200.0, 0.0), "P": (0.0, 300.0), "C": (150.0, 150.0)}


def test_plan_input_from_the_site() -> None:
    """Battery from the site (one power limit: charge and discharge at it), reserve from the
    thresholds, deferrable rows dropped, the pessimistic side from the next slot on."""
    now = datetime(2025, 3, 1, 18, 2, tzinfo=UTC)
    forecast = Forecast(
        pv_w=(100.0, 100.0, 100.0),
        demand_w={z.zone_id: (50.0, 60.0, 70.0) for z in ZONES},
        pv_low_share=0.5,
    )
    inp = plan_input(
        _site(),
        now=now,
        soc_pct=104.0,
        forecast=forecast,
        relay_on={"C": True},
        slot_minutes=5,
        horizon_slots=3,
    )
    assert inp.now == now and inp.battery.soc_pct == 100.0
    assert inp.battery.max_charge_w == inp.battery.max_discharge_w == inp.inverter_limit_w == 1000
    assert inp.battery.reserve == reserve_bands(Thresholds())
    assert set(inp.demand_w) == {"C", "L", "H"}
    assert inp.pv_low_w == (100.0, 50.0, 50.0)
    assert inp.demand_high_w is not None and inp.demand_high_w["H"] == pytest.approx((50, 72, 84))
    exact = plan_input(
        _site(),
        now=now,
        soc_pct=50.0,
        forecast=replace(forecast, pv_low_share=None),
        relay_on={},
        slot_minutes=5,
        horizon_slots=3,
    )
    assert exact.pv_low_w is None and exact.demand_high_w is None


class _Captured(Exception):
    """Stop the simulation once the first slot's inputs are seen."""


def _scenario(hass: HomeAssistant, now: datetime) -> sim.Scenario:
    """One day of history at 5-minute slots, then the simulated day; the site as the
    integration would be configured (one power limit), at Home Assistant's location; the
    pump's job the integration's daily one."""
    per_day = 288
    hours = (np.arange(2 * per_day) % per_day) / 12.0
    pv = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None) * 900.0
    rng = np.random.default_rng(7)
    thresholds = Thresholds(conservation_pct=25, emergency_pct=12)
    return sim.Scenario(
        start=now - timedelta(days=1),
        slot_minutes=5,
        history_days=1,
        horizon_slots=HORIZON_SLOTS,
        battery=Battery(
            capacity_wh=4000,
            soc_pct=50,
            max_charge_w=1000,
            max_discharge_w=1000,
            reserve=reserve_bands(thresholds),
        ),
        inverter_limit_w=1000,
        zones=ZONES,
        pv_w=tuple(np.round(pv, 1).tolist()),
        demand_w={
            z.zone_id: tuple(np.round(rng.uniform(0.3, 1.0, 2 * per_day) * z.rated_w, 1))
            for z in ZONES
            if z.priority is not PriorityClass.DEFERRABLE
        },
        jobs=daily_jobs(now, ZONES, HORIZON_SLOTS, lambda _zone, _now: 0.0),
        thresholds=thresholds,
        latitude_deg=hass.config.latitude,
        longitude_deg=hass.config.longitude,
        elevation_m=hass.config.elevation,
    )


async def test_the_integration_and_the_simulator_build_the_same_inputs(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same site, history and state: Home Assistant's PlanManager and coordinator path and
    the closed-loop simulator hand the planner and dispatch identical inputs (so the benchmark
    measures the controller that runs)."""
    now = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)
    hass.config.elevation = 350
    scenario = _scenario(hass, now)
    seen: dict[str, Any] = {}
    real_plan = sim.plan

    def capture_plan(inp: PlanInput) -> Any:
        seen["plan_input"] = inp
        seen["plan"] = real_plan(inp)
        return seen["plan"]

    def capture_dispatch(inp: DispatchInput) -> Any:
        seen["dispatch_input"] = inp
        raise _Captured

    monkeypatch.setattr(sim, "plan", capture_plan)
    monkeypatch.setattr(sim, "dispatch", capture_dispatch)
    with pytest.raises(_Captured):
        sim.simulate(scenario, forecast_kind="persistence")

    # Home Assistant: the same site configured, the same day measured (one reading a slot).
    site = SiteConfig(
        site_name="test",
        capacity_wh=4000,
        nominal_voltage_v=12,
        power_limit_w=1000,
        thresholds=scenario.thresholds,
        control_auto=True,
        zones=ZONES,
        zone_subentry={},
        households={},
    )
    history = SlotHistory()
    for t in range(scenario.first_slot):
        at = scenario.start + timedelta(minutes=5 * t)
        history.add(at, scenario.pv_w[t], {z: row[t] for z, row in scenario.demand_w.items()})
    snapshot = SimpleNamespace(
        soc_pct=50.0, zones={z.zone_id: SimpleNamespace(relay_on=False) for z in ZONES}
    )
    manager = PlanManager(
        hass,
        PlanSource(
            site=site,
            snapshot=lambda: snapshot,  # type: ignore[arg-type,return-value]
            learned_demand=lambda *_: None,
            energy_today_wh=lambda _zone, _now: 0.0,
            plan_updated=lambda: None,
            on_unload=lambda _undo: None,
        ),
    )
    manager.history = history
    mine = manager.build_input(now)
    assert mine is not None
    # Not a trivial input: persistence from yesterday, the pessimistic side, the street
    # lights masked by day, the pump's daily job.
    assert mine.pv_w == scenario.pv_w[: scenario.first_slot] and max(mine.pv_w) > 0
    assert mine.pv_low_w is not None and mine.demand_high_w is not None
    assert mine.demand_w["L"][0] == 0.0 and "P" not in mine.demand_w
    assert [j.zone_id for j in mine.jobs] == ["P"]
    assert mine == seen["plan_input"]

    # The coordinator's DispatchInput: the same builder on the same site and reading.
    captured: DispatchInput = seen["dispatch_input"]
    states = {
        z.zone_id: ZoneState(
            zone_id=z.zone_id, relay_on=False, power_w=captured.states[z.zone_id].power_w
        )
        for z in ZONES
    }
    ha = dispatch_input(
        controller_site(site, hass.config),
        now=now,
        soc_pct=50.0,
        solar_w=scenario.pv_w[scenario.first_slot],
        load_w=0.0,
        states=states,
        previous_band=None,
        planned_on=seen["plan"].planned_on_at(now),
        planned_w=seen["plan"].planned_w_at(now),
    )
    assert ha == captured
