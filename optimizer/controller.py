"""The controller's inputs, built in one place: the site as configured and as it is now →
`PlanInput` (the day plan) and `DispatchInput` (every reading).

Home Assistant (`planning/manager.py`, `control/coordinator.py`) and the closed-loop simulator
(`simulate.py`) both build their inputs here, so `python -m optimizer simulate` and
`python -m bench.optimizer` measure the controller that runs. Each rule is its own function:
the power limit dispatch keeps the load under, when the sun is up, the reserve bands the
thresholds give the plan, and the forecast's pessimistic side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .dispatch import DispatchInput
from .forecast import slot_start
from .model import Band, PriorityClass, Schedule, SiteReading, Thresholds, Zone, ZoneState
from .plan_model import Battery, DeferrableJob, EndReserve, PlanInput, ReserveBands
from .policy import sane_thresholds
from .sun import sun_up, sun_up_at


@dataclass(frozen=True, kw_only=True, slots=True)
class Site:
    """The site as configured: zones, battery, thresholds, limits and where it is."""

    zones: tuple[Zone, ...]
    capacity_wh: float
    # The inverter's AC load limit as configured; 0: none configured (the plan then takes the
    # summed zone ratings, dispatch no limit).
    inverter_limit_w: float
    thresholds: Thresholds = field(default_factory=Thresholds)
    latitude_deg: float = 0.0
    longitude_deg: float = 0.0
    elevation_m: float = 0.0
    # The battery's own power ratings; None: the plan's power limit (the integration is
    # configured with one power limit for inverter and battery alike).
    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    charge_eff: float = 0.95
    discharge_eff: float = 0.95
    switch_cost: float = 0.5
    end_reserve: EndReserve = field(default_factory=EndReserve)

    @property
    def plan_limit_w(self) -> float:
        """The load limit the plan keeps: the configured one, else the summed zone ratings."""
        if self.inverter_limit_w > 0:
            return self.inverter_limit_w
        return sum(z.rated_w for z in self.zones)

    @property
    def max_discharge_or_limit_w(self) -> float:
        """The battery's discharge rating (the plan's limit when none is configured)."""
        return self.plan_limit_w if self.max_discharge_w is None else self.max_discharge_w

    def sun_up(self, now: datetime) -> bool:
        """Whether the sun is up at the site."""
        return sun_up(now, self.latitude_deg, self.longitude_deg, self.elevation_m)


@dataclass(frozen=True, kw_only=True, slots=True)
class Forecast:
    """What the plan is told of the slots ahead, per slot from the slot holding `now`."""

    pv_w: tuple[float, ...]
    demand_w: Mapping[str, tuple[float, ...]]  # a zone's draw while on; missing: its rating
    # The share of `pv_w` the lower tiers are planned against (`forecast.pv_low_share`);
    # None: the forecast is exact (the simulator's perfect foresight), no pessimistic side.
    pv_low_share: float | None = None


def reserve_bands(thresholds: Thresholds) -> ReserveBands:
    """The plan's reserve per class from the policy's thresholds: critical may drain to the
    admin's deep-discharge cutoff (0 without one), semi-critical stops at the emergency band,
    non-critical and deferrable at the conservation band."""
    sane = sane_thresholds(thresholds)
    return ReserveBands(
        critical_pct=min(sane.deep_discharge_cutoff_pct or 0.0, sane.emergency_pct),
        semi_critical_pct=sane.emergency_pct,
        non_critical_pct=sane.conservation_pct,
        deferrable_pct=sane.conservation_pct,
    )


def battery(site: Site, soc_pct: float) -> Battery:
    """The battery now (SoC clamped to 0..100 %)."""
    limit_w = site.plan_limit_w
    return Battery(
        capacity_wh=site.capacity_wh,
        soc_pct=min(max(soc_pct, 0.0), 100.0),
        max_charge_w=limit_w if site.max_charge_w is None else site.max_charge_w,
        max_discharge_w=site.max_discharge_or_limit_w,
        charge_eff=site.charge_eff,
        discharge_eff=site.discharge_eff,
        reserve=reserve_bands(site.thresholds),
    )


def dispatch_power_limit_w(site: Site, solar_w: float) -> float:
    """The load the site can carry now: the inverter's limit, or the battery's discharge rating
    plus the PV now when that is lower; 0 (no limit) when no inverter limit is configured."""
    if site.inverter_limit_w <= 0:
        return 0.0
    return min(site.inverter_limit_w, site.max_discharge_or_limit_w + max(solar_w, 0.0))


def scheduled_demand(
    site: Site, demand_w: Mapping[str, tuple[float, ...]], times: Sequence[datetime]
) -> dict[str, tuple[float, ...]]:
    """Zero a zone's demand outside its schedule (street lights draw nothing by day), by the
    sun rule dispatch uses."""
    out = dict(demand_w)
    if not any(z.schedule is not Schedule.ALWAYS and z.zone_id in out for z in site.zones):
        return out
    up = sun_up_at(times, site.latitude_deg, site.longitude_deg, site.elevation_m)
    for zone in site.zones:
        if zone.schedule is Schedule.ALWAYS or zone.zone_id not in out:
            continue
        wanted = up if zone.schedule is Schedule.DAY else [not u for u in up]
        out[zone.zone_id] = tuple(w if on else 0.0 for w, on in zip(out[zone.zone_id], wanted))
    return out


def pessimistic_side(
    site: Site, pv_w: tuple[float, ...], demand_w: Mapping[str, tuple[float, ...]], share: float
) -> dict[str, object]:
    """`PlanInput.pv_low_w` and `demand_high_w`: PV x `share` and demand x
    `EndReserve.demand_factor`, both from the next slot on (the slot now is close to what is
    measured)."""
    factor = site.end_reserve.demand_factor
    return {
        "pv_low_w": (*pv_w[:1], *(w * share for w in pv_w[1:])),
        "demand_high_w": {
            z: (row[0], *(w * factor for w in row[1:])) for z, row in demand_w.items() if row
        },
    }


def plan_input(
    site: Site,
    *,
    now: datetime,
    soc_pct: float,
    forecast: Forecast,
    jobs: tuple[DeferrableJob, ...] = (),
    relay_on: Mapping[str, bool],
    slot_minutes: int,
    horizon_slots: int,
) -> PlanInput:
    """What the planner is told: the battery now, the forecast masked by the zones' schedules
    (rows of deferrable zones dropped: they draw what their jobs need), the jobs, the relays."""
    first = slot_start(now, slot_minutes)
    times = [first + timedelta(minutes=slot_minutes * k) for k in range(horizon_slots)]
    deferrable = {z.zone_id for z in site.zones if z.priority is PriorityClass.DEFERRABLE}
    demand = scheduled_demand(
        site, {z: row for z, row in forecast.demand_w.items() if z not in deferrable}, times
    )
    spread = (
        {}
        if forecast.pv_low_share is None
        else pessimistic_side(site, forecast.pv_w, demand, forecast.pv_low_share)
    )
    return PlanInput(
        now=now,
        battery=battery(site, soc_pct),
        inverter_limit_w=site.plan_limit_w,
        zones=site.zones,
        pv_w=forecast.pv_w,
        demand_w=demand,
        jobs=jobs,
        relay_on=dict(relay_on),
        slot_minutes=slot_minutes,
        horizon_slots=horizon_slots,
        switch_cost=site.switch_cost,
        emergency_pct=sane_thresholds(site.thresholds).emergency_pct,
        end_reserve=site.end_reserve,
        **spread,
    )


def dispatch_input(
    site: Site,
    *,
    now: datetime,
    soc_pct: float,
    solar_w: float,
    load_w: float,
    states: Mapping[str, ZoneState],
    previous_band: Band | None,
    planned_on: Mapping[str, bool] | None,
    planned_w: Mapping[str, float] | None,
) -> DispatchInput:
    """What dispatch is told on a reading: the measurements, the power limit and sun rules,
    the zones' states and the fresh plan's word for the slot (None: no fresh plan)."""
    return DispatchInput(
        now=now,
        reading=SiteReading(
            soc_pct=soc_pct,
            solar_w=solar_w,
            load_w=load_w,
            power_limit_w=dispatch_power_limit_w(site, solar_w),
            sun_up=site.sun_up(now),
        ),
        previous_band=previous_band,
        thresholds=site.thresholds,
        zones=site.zones,
        states=states,
        planned_on=planned_on,
        planned_w=planned_w,
    )
