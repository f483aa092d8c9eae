"""Closed-loop simulation: plan (or threshold), dispatch, apply physics, slot after slot.

A scenario holds the site and the *actual* per-slot PV and per-zone demand. The first
`history_days` days are history only (persistence forecasts read them); the rest is simulated.
Each slot: forecast, plan, `dispatch()` with the plan's state for the slot, then the physics:
zones that are on draw their actual demand, surplus charges the battery, and if the battery
cannot carry the load (energy or power) zones trip lowest priority first, largest first.
The planner's and dispatch's inputs come from `controller.py` and the persistence forecast from
`forecast.py`, as in Home Assistant: the loop runs the controller the integration runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
import statistics
import time
from typing import Any

import numpy as np

from .controller import (
    Forecast,
    Site,
    dispatch_input,
    dispatch_power_limit_w,
    plan_input,
    reserve_bands,
)
from .dispatch import dispatch
from .forecast import HISTORY_DAYS, Observed, persistence_forecast, pv_low_share, same_slot_before
from .model import Band, PriorityClass, Schedule, Thresholds, Zone, ZoneState
from .plan_model import (
    CLASS_ORDER,
    MAX_HORIZON_SLOTS,
    Battery,
    DeferrableJob,
    EndReserve,
    PlanInput,
    ReserveBands,
)
from .planner import Physics, plan, power_ok, step_energy_wh
from .threshold import ThresholdState, threshold_decide

FORECASTS = ("perfect", "persistence")
POLICIES = ("planner", "threshold")


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    """A site and what actually happens there, per slot from `start`."""

    start: datetime
    slot_minutes: int
    battery: Battery
    inverter_limit_w: float
    zones: tuple[Zone, ...]
    pv_w: tuple[float, ...]
    demand_w: Mapping[str, tuple[float, ...]]
    jobs: tuple[DeferrableJob, ...] = ()
    horizon_slots: int = 288
    history_days: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)
    switch_cost: float = 0.5
    end_reserve: EndReserve = field(default_factory=EndReserve)
    # Where the site is: the sun rule (scheduled zones) and the clear-sky PV fallback.
    latitude_deg: float = 0.0
    longitude_deg: float = 0.0
    elevation_m: float = 0.0

    @property
    def site(self) -> Site:
        """The site as the controller sees it (the integration builds the same from its entry)."""
        bat = self.battery
        return Site(
            zones=self.zones,
            capacity_wh=bat.capacity_wh,
            inverter_limit_w=self.inverter_limit_w,
            thresholds=self.thresholds,
            latitude_deg=self.latitude_deg,
            longitude_deg=self.longitude_deg,
            elevation_m=self.elevation_m,
            max_charge_w=bat.max_charge_w,
            max_discharge_w=bat.max_discharge_w,
            charge_eff=bat.charge_eff,
            discharge_eff=bat.discharge_eff,
            switch_cost=self.switch_cost,
            end_reserve=self.end_reserve,
        )

    @property
    def slots_per_day(self) -> int:
        """Slots in 24 h."""
        return 24 * 60 // self.slot_minutes

    @property
    def first_slot(self) -> int:
        """The first simulated slot (after the history)."""
        return self.history_days * self.slots_per_day


def _time(value: Any, name: str) -> datetime:
    """An ISO-8601, timezone-aware instant."""
    try:
        result = datetime.fromisoformat(str(value))
    except ValueError as err:
        raise ValueError(f"{name} must be an ISO-8601 time, got {value!r}") from err
    if result.tzinfo is None:
        raise ValueError(f"{name} must carry a UTC offset, got {value!r}")
    return result


def _floats(values: Any, name: str) -> tuple[float, ...]:
    """A list of numbers."""
    if not isinstance(values, list | tuple):
        raise ValueError(f"{name} must be a list of numbers")
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a list of numbers") from err


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    """Build a Scenario from its JSON form (see optimizer/README.md); ValueError when invalid."""
    try:
        thresholds = Thresholds(**data.get("thresholds", {}))
        bat = dict(data["battery"])
        reserve = reserve_bands(thresholds)
        # The reserve bands follow from the thresholds, as in Home Assistant; a scenario may
        # still state them, if it states the same.
        if "reserve" in bat and ReserveBands(**bat.pop("reserve")) != reserve:
            raise ValueError(
                "battery reserve must match the thresholds (critical: deep_discharge_cutoff_pct "
                "or 0, semi_critical: emergency_pct, non_critical and deferrable: "
                f"conservation_pct), here {reserve}"
            )
        battery = Battery(reserve=reserve, **bat)
        zones = tuple(
            Zone(
                zone_id=str(z["zone_id"]),
                name=str(z.get("name", z["zone_id"])),
                priority=PriorityClass(z["priority"]),
                rated_w=float(z["rated_w"]),
                household=z.get("household"),
                schedule=Schedule(z.get("schedule", Schedule.ALWAYS)),
                min_on_s=z.get("min_on_s"),
                min_off_s=z.get("min_off_s"),
            )
            for z in data["zones"]
        )
        jobs = tuple(
            DeferrableJob(
                zone_id=str(j["zone_id"]),
                energy_wh=float(j["energy_wh"]),
                earliest=_time(j["earliest"], "job earliest"),
                deadline=_time(j["deadline"], "job deadline"),
                splittable=bool(j.get("splittable", False)),
                job_id=str(j.get("job_id", "")),
            )
            for j in data.get("jobs", [])
        )
        scenario = Scenario(
            start=_time(data["start"], "start"),
            slot_minutes=int(data.get("slot_minutes", 5)),
            battery=battery,
            inverter_limit_w=float(data["inverter_limit_w"]),
            zones=zones,
            pv_w=_floats(data["pv_w"], "pv_w"),
            demand_w={
                str(k): _floats(v, f"demand_w[{k}]") for k, v in data.get("demand_w", {}).items()
            },
            jobs=jobs,
            horizon_slots=int(data.get("horizon_slots", 288)),
            history_days=int(data.get("history_days", 0)),
            thresholds=thresholds,
            switch_cost=float(data.get("switch_cost", 0.5)),
            end_reserve=EndReserve(**data.get("end_reserve", {})),
            latitude_deg=float(data.get("latitude_deg", 0.0)),
            longitude_deg=float(data.get("longitude_deg", 0.0)),
            elevation_m=float(data.get("elevation_m", 0.0)),
        )
    except KeyError as err:
        raise ValueError(f"scenario is missing {err.args[0]!r}") from err
    except TypeError as err:
        raise ValueError(f"scenario has an unexpected field: {err}") from err
    _check(scenario)
    return scenario


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """The JSON form of a scenario (what scenario_from_dict reads back)."""
    bat = s.battery
    return {
        "start": s.start.isoformat(),
        "slot_minutes": s.slot_minutes,
        "history_days": s.history_days,
        "horizon_slots": s.horizon_slots,
        "battery": {
            "capacity_wh": bat.capacity_wh,
            "soc_pct": bat.soc_pct,
            "max_charge_w": bat.max_charge_w,
            "max_discharge_w": bat.max_discharge_w,
            "charge_eff": bat.charge_eff,
            "discharge_eff": bat.discharge_eff,
        },
        "inverter_limit_w": s.inverter_limit_w,
        "zones": [
            {
                "zone_id": z.zone_id,
                "name": z.name,
                "priority": z.priority.value,
                "rated_w": z.rated_w,
                "household": z.household,
                "schedule": z.schedule.value,
                "min_on_s": z.min_on_s,
                "min_off_s": z.min_off_s,
            }
            for z in s.zones
        ],
        "pv_w": list(s.pv_w),
        "demand_w": {z: list(v) for z, v in s.demand_w.items()},
        "jobs": [
            {
                "job_id": j.job_id,
                "zone_id": j.zone_id,
                "energy_wh": j.energy_wh,
                "earliest": j.earliest.isoformat(),
                "deadline": j.deadline.isoformat(),
                "splittable": j.splittable,
            }
            for j in s.jobs
        ],
        "thresholds": {
            "conservation_pct": s.thresholds.conservation_pct,
            "emergency_pct": s.thresholds.emergency_pct,
            "critical_alert_pct": s.thresholds.critical_alert_pct,
            "hysteresis_pct": s.thresholds.hysteresis_pct,
            "min_on_s": s.thresholds.min_on_s,
            "min_off_s": s.thresholds.min_off_s,
            "deep_discharge_cutoff_pct": s.thresholds.deep_discharge_cutoff_pct,
        },
        "switch_cost": s.switch_cost,
        "end_reserve": {
            "hours": s.end_reserve.hours,
            "pv_share": s.end_reserve.pv_share,
            "demand_factor": s.end_reserve.demand_factor,
            "fixed_wh": s.end_reserve.fixed_wh,
        },
        "latitude_deg": s.latitude_deg,
        "longitude_deg": s.longitude_deg,
        "elevation_m": s.elevation_m,
    }


def _check(s: Scenario) -> None:
    """Reject scenarios whose arrays do not line up."""
    n = len(s.pv_w)
    if n <= s.first_slot:
        raise ValueError(f"pv_w has {n} slots, not more than the {s.first_slot} of history")
    ids = {z.zone_id for z in s.zones}
    for zone_id, row in s.demand_w.items():
        if zone_id not in ids:
            raise ValueError(f"demand_w names unknown zone {zone_id!r}")
        if len(row) != n:
            raise ValueError(f"demand_w[{zone_id}] has {len(row)} slots, pv_w has {n}")
    for job in s.jobs:
        if job.zone_id not in ids:
            raise ValueError(f"job names unknown zone {job.zone_id!r}")
    if not 1 <= s.horizon_slots <= MAX_HORIZON_SLOTS:
        raise ValueError(f"horizon_slots must be in 1..{MAX_HORIZON_SLOTS}")
    if s.battery.reserve != reserve_bands(s.thresholds):
        raise ValueError(
            f"battery reserve {s.battery.reserve} must be the thresholds' "
            f"{reserve_bands(s.thresholds)} (the controller derives it from them)"
        )


def _actual_demand(s: Scenario) -> dict[str, np.ndarray]:
    """Actual power each non-deferrable zone draws when on, per slot (rating if not given)."""
    n = len(s.pv_w)
    return {
        z.zone_id: np.asarray(s.demand_w.get(z.zone_id, (z.rated_w,) * n), dtype=float)
        for z in s.zones
        if z.priority is not PriorityClass.DEFERRABLE
    }


def forecast(series: np.ndarray, t: int, horizon: int, kind: str, per_day: int) -> np.ndarray:
    """The forecast of `series` for slots t..t+horizon-1 made at slot t (persistence: NaN where
    no earlier day has the slot)."""
    if kind == "perfect":
        n = len(series)
        idx = np.arange(t, t + horizon)
        # Past the data's end the last day repeats.
        over = idx >= n
        idx[over] = n - per_day + (idx[over] - n) % per_day
        return series[np.clip(idx, 0, n - 1)]
    return same_slot_before(series, t, horizon, per_day)


@dataclass(kw_only=True, slots=True)
class _JobRun:
    """A job's progress in the loop."""

    job: DeferrableJob
    delivered_wh: float = 0.0

    @property
    def remaining_wh(self) -> float:
        """Energy still to deliver."""
        return max(0.0, self.job.energy_wh - self.delivered_wh)


def _active_job(
    runs: list[_JobRun], zone_id: str, now: datetime, slot: timedelta
) -> _JobRun | None:
    """The job a deferrable zone would run in this slot, if any (earliest deadline first)."""
    live = [
        r
        for r in runs
        if r.job.zone_id == zone_id
        and r.remaining_wh > 1e-9
        and r.job.earliest <= now
        and now + slot <= r.job.deadline
    ]
    return min(live, key=lambda r: r.job.deadline) if live else None


@dataclass(kw_only=True, slots=True)
class _Measured:
    """What the site's history holds as the loop runs: PV, and each zone's draw while on (the
    history days count as seen on; in the loop a zone shed in a slot is not seen drawing)."""

    pv_w: np.ndarray
    zone_on_w: dict[str, np.ndarray]

    @classmethod
    def of(cls, s: Scenario, demand: dict[str, np.ndarray]) -> _Measured:
        """The history days measured; nothing of the simulated days yet."""
        zone_on_w = {}
        for zone_id, row in demand.items():
            seen = np.full(len(row), np.nan)
            seen[: s.first_slot] = row[: s.first_slot]
            zone_on_w[zone_id] = seen
        return cls(pv_w=np.asarray(s.pv_w, dtype=float), zone_on_w=zone_on_w)

    def observed(self, s: Scenario, t: int) -> Observed:
        """What Home Assistant would hold at slot t: the slots of the last HISTORY_DAYS."""
        lo = max(0, t - HISTORY_DAYS * s.slots_per_day)
        return Observed(
            start=s.start + lo * timedelta(minutes=s.slot_minutes),
            slot_minutes=s.slot_minutes,
            pv_w=self.pv_w[lo:t],
            zone_on_w={z: row[lo:t] for z, row in self.zone_on_w.items()},
        )


def _forecast(
    s: Scenario, *, t: int, now: datetime, kind: str, demand: dict[str, np.ndarray], seen: _Measured
) -> Forecast:
    """What the planner is told of the slots ahead: the actual future (perfect), or the
    persistence forecast Home Assistant makes from what it measured, with its pessimistic side."""
    if kind == "perfect":
        per_day, horizon = s.slots_per_day, s.horizon_slots
        return Forecast(
            pv_w=tuple(forecast(np.asarray(s.pv_w), t, horizon, kind, per_day).tolist()),
            demand_w={
                z: tuple(forecast(row, t, horizon, kind, per_day).tolist())
                for z, row in demand.items()
            },
        )
    observed = seen.observed(s, t)
    site = s.site
    pv, dem = persistence_forecast(
        observed,
        first=now,
        horizon_slots=s.horizon_slots,
        zones=s.zones,
        latitude_deg=site.latitude_deg,
        longitude_deg=site.longitude_deg,
        pv_peak_prior_w=site.plan_limit_w,
    )
    share = pv_low_share(observed, first=now, pv_share=s.end_reserve.pv_share)
    return Forecast(pv_w=pv, demand_w=dem, pv_low_share=share)


def _plan_input(
    s: Scenario,
    *,
    now: datetime,
    energy_wh: float,
    relay_on: dict[str, bool],
    runs: list[_JobRun],
    forecast_now: Forecast,
) -> PlanInput:
    """What the planner is told at slot t (built as Home Assistant builds it)."""
    jobs = []
    for run in runs:
        if run.remaining_wh <= 1e-9 or run.job.deadline <= now:
            continue
        started = run.delivered_wh > 0
        jobs.append(
            replace(
                run.job,
                energy_wh=run.remaining_wh,
                earliest=max(run.job.earliest, now),
                started=started,
            )
        )
    return plan_input(
        s.site,
        now=now,
        soc_pct=energy_wh / s.battery.capacity_wh * 100.0,
        forecast=forecast_now,
        jobs=tuple(jobs),
        relay_on=relay_on,
        slot_minutes=s.slot_minutes,
        horizon_slots=s.horizon_slots,
    )


def _trip(
    on: dict[str, bool],
    *,
    load: dict[str, float],
    zones: tuple[Zone, ...],
    energy: float,
    pv: float,
    phys: Physics,
) -> dict[str, bool]:
    """Zones the physics can carry: trip lowest priority first, largest first, until it holds."""
    on = dict(on)
    order = sorted(zones, key=lambda z: (-z.priority.rank, -load.get(z.zone_id, 0.0), z.zone_id))
    for zone in [None, *order]:
        if zone is not None:
            on[zone.zone_id] = False
        total = sum(load[z] for z, v in on.items() if v)
        if bool(power_ok(total, pv, phys)) and float(step_energy_wh(energy, total, pv, phys)) >= 0:
            break
    return on


def simulate(
    scenario: Scenario,
    *,
    forecast_kind: str = "persistence",
    policy: str = "planner",
    replan_every: int = 1,
) -> dict[str, Any]:
    """Run the closed loop over the scenario; the figures the CLI prints."""
    if forecast_kind not in FORECASTS:
        raise ValueError(f"forecast must be one of {FORECASTS}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}")
    s = scenario
    site = s.site
    slot = timedelta(minutes=s.slot_minutes)
    slot_h = s.slot_minutes / 60.0
    phys = Physics.of(s.battery, inverter_limit_w=s.inverter_limit_w, slot_h=slot_h)
    demand = _actual_demand(s)
    seen = _Measured.of(s, demand)
    pv_all = np.asarray(s.pv_w, dtype=float)
    runs = [_JobRun(job=j) for j in s.jobs]
    energy = s.battery.energy_wh
    relay_on = {z.zone_id: False for z in s.zones}
    last_change: dict[str, datetime | None] = dict.fromkeys(relay_on)
    demand_wh = dict.fromkeys(relay_on, 0.0)
    served_wh = dict.fromkeys(relay_on, 0.0)
    switches = dict.fromkeys(relay_on, 0)
    plan_ms: list[float] = []
    min_soc = energy / s.battery.capacity_wh * 100.0
    band: Band | None = None
    current_plan = None
    th_state = ThresholdState()
    critical_short_at_high_soc = 0
    for t in range(s.first_slot, len(pv_all)):
        now = s.start + t * slot
        pv = float(pv_all[t])
        load_w: dict[str, float] = {}
        for zone in s.zones:
            if zone.priority is PriorityClass.DEFERRABLE:
                run = _active_job(runs, zone.zone_id, now, slot)
                load_w[zone.zone_id] = min(zone.rated_w, run.remaining_wh / slot_h) if run else 0.0
            else:
                load_w[zone.zone_id] = float(demand[zone.zone_id][t])
                demand_wh[zone.zone_id] += load_w[zone.zone_id] * slot_h
        soc = energy / s.battery.capacity_wh * 100.0
        if policy == "planner":
            if current_plan is None or (t - s.first_slot) % replan_every == 0:
                inp = _plan_input(
                    s,
                    now=now,
                    energy_wh=energy,
                    relay_on=relay_on,
                    runs=runs,
                    forecast_now=_forecast(
                        s, t=t, now=now, kind=forecast_kind, demand=demand, seen=seen
                    ),
                )
                started = time.perf_counter()
                current_plan = plan(inp)
                plan_ms.append((time.perf_counter() - started) * 1000.0)
            planned = current_plan.planned_on_at(now)
            planned_w = current_plan.planned_w_at(now)
            states = {
                z: ZoneState(
                    zone_id=z, relay_on=relay_on[z], power_w=load_w[z], last_change=last_change[z]
                )
                for z in relay_on
            }
            decision = dispatch(
                dispatch_input(
                    site,
                    now=now,
                    soc_pct=soc,
                    solar_w=pv,
                    load_w=sum(load_w[z] for z, v in relay_on.items() if v),
                    states=states,
                    previous_band=band,
                    planned_on=planned,
                    planned_w=planned_w,
                )
            )
            band = decision.band
            wanted = {z: bool(d.on) for z, d in decision.zones.items()}
        else:
            wants = {z.zone_id: (load_w[z.zone_id] > 0) for z in s.zones}
            wanted, th_state = threshold_decide(
                now=now,
                zones=s.zones,
                wants_on=wants,
                power_w=load_w,
                soc_pct=soc,
                capacity_w=dispatch_power_limit_w(site, pv),
                state=th_state,
                conservation_pct=s.thresholds.conservation_pct,
                emergency_pct=s.thresholds.emergency_pct,
            )
        on = {z: wanted.get(z, False) for z in relay_on}
        on = _trip(on, load=load_w, zones=s.zones, energy=energy, pv=pv, phys=phys)
        for zone in s.zones:
            zid = zone.zone_id
            if on[zid] != relay_on[zid]:
                switches[zid] += 1
                last_change[zid] = now
            if (
                zone.priority is PriorityClass.CRITICAL
                and not on[zid]
                and load_w[zid] > 0
                and soc >= s.thresholds.emergency_pct
            ):
                critical_short_at_high_soc += 1
        relay_on = on
        for zid, row in seen.zone_on_w.items():
            row[t] = load_w[zid] if on[zid] else np.nan
        total = sum(load_w[z] for z, v in on.items() if v)
        for zone in s.zones:
            zid = zone.zone_id
            if not on[zid]:
                continue
            served_wh[zid] += load_w[zid] * slot_h
            if zone.priority is PriorityClass.DEFERRABLE:
                run = _active_job(runs, zid, now, slot)
                if run is not None:
                    run.delivered_wh += load_w[zid] * slot_h
        energy = float(step_energy_wh(energy, total, pv, phys))
        min_soc = min(min_soc, energy / s.battery.capacity_wh * 100.0)
    return _report(
        s,
        demand_wh=demand_wh,
        served_wh=served_wh,
        switches=switches,
        runs=runs,
        min_soc=min_soc,
        final_soc=energy / s.battery.capacity_wh * 100.0,
        plan_ms=plan_ms,
        critical_short_at_high_soc=critical_short_at_high_soc,
    )


def _report(
    s: Scenario,
    *,
    demand_wh: dict[str, float],
    served_wh: dict[str, float],
    switches: dict[str, int],
    runs: list[_JobRun],
    min_soc: float,
    final_soc: float,
    plan_ms: list[float],
    critical_short_at_high_soc: int,
) -> dict[str, Any]:
    """The JSON figures of one run."""
    for zone in s.zones:
        if zone.priority is PriorityClass.DEFERRABLE:
            demand_wh[zone.zone_id] = sum(
                r.job.energy_wh for r in runs if r.job.zone_id == zone.zone_id
            )
    by_class: dict[str, float | None] = {}
    served_by_class: dict[str, float] = {}
    for cls in CLASS_ORDER:
        ids = [z.zone_id for z in s.zones if z.priority is cls]
        want = sum(demand_wh[z] for z in ids)
        got = sum(min(served_wh[z], demand_wh[z]) for z in ids)
        served_by_class[cls.value] = round(got, 3)
        by_class[cls.value] = round(100.0 * got / want, 3) if want > 0 else None
    done = sum(1 for r in runs if r.remaining_wh <= 1e-6)
    return {
        "zones": {
            z.zone_id: {
                "demand_wh": round(demand_wh[z.zone_id], 3),
                "served_wh": round(served_wh[z.zone_id], 3),
                "switches": switches[z.zone_id],
            }
            for z in s.zones
        },
        "classes": {
            cls: {"served_pct": pct, "served_wh": served_by_class[cls]}
            for cls, pct in by_class.items()
        },
        "min_soc_pct": round(min_soc, 3),
        "final_soc_pct": round(final_soc, 3),
        "critical_served_pct": by_class[PriorityClass.CRITICAL.value],
        "critical_off_slots_above_emergency": critical_short_at_high_soc,
        "deferrable_completed": f"{done}/{len(runs)}",
        "plan_ms": (
            {
                "median": round(statistics.median(plan_ms), 2),
                "max": round(max(plan_ms), 2),
                "count": len(plan_ms),
            }
            if plan_ms
            else None
        ),
    }
