"""The benchmark's scenario suite, built from real data (bench.datasets).

A village site with N zones. Every zone's demand is a real measured household day (EMHASS,
30-min, upsampled) — zone i takes the day i*7 days after the scenario's first day, so zones
differ — scaled to the zone's size. PV is pvlib's TMY3 model per kWp on the same days, scaled
to the site. Classes per 8 zones: 1 critical, 2 semi-critical, 3 non-critical, 2 deferrable
(deferrable zones get one pump/washer-like job per day: 2 h at rated power between 05:00 and
21:00, every other one splittable). Two site sizings: "short" (daily PV ~ 75 %
of the daily demand, battery ~ 40 % of it: energy is short, the classes compete) and "sunny"
(PV ~ 120 %, battery ~ 25 %: midday surplus, short nights); battery 40 % full at the start,
inverter ~ 70 % of the summed zone peaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from bench.datasets import aligned_days, household_load_resampled, pv_station_info
from optimizer.model import PriorityClass, Zone
from optimizer.plan_model import Battery, DeferrableJob, PlanInput
from optimizer.simulate import Scenario

SLOT_MINUTES = 5
_CLASS_PATTERN = (
    PriorityClass.CRITICAL,
    PriorityClass.SEMI_CRITICAL,
    PriorityClass.NON_CRITICAL,
    PriorityClass.DEFERRABLE,
    PriorityClass.NON_CRITICAL,
    PriorityClass.SEMI_CRITICAL,
    PriorityClass.NON_CRITICAL,
    PriorityClass.DEFERRABLE,
)
# Zone sizes (peak W) cycle through these, a clinic fridge to a workshop.
_SIZES_W = (120.0, 300.0, 800.0, 600.0, 450.0, 200.0, 1000.0, 1500.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class SuiteCase:
    """One benchmark case: its name, the plan input at its start, and the site for the loop."""

    name: str
    n_zones: int
    horizon_slots: int
    start_day: str
    plan_input: PlanInput
    scenario: Scenario  # one history day, then the simulated days (for closed-loop runs)


def _zone_days(start_day: str, n_days: int, n_zones: int) -> list[np.ndarray]:
    """Per zone, n_days of real load (W), zone i shifted by 7*i days (wrapping in the series)."""
    load = household_load_resampled(SLOT_MINUTES)
    per_day = 24 * 60 // SLOT_MINUTES
    counts = load.groupby(load.index.normalize()).size()
    whole = [d for d in counts.index[counts == per_day]]
    first = whole.index(pd.Timestamp(start_day, tz="UTC"))
    rows = []
    for i in range(n_zones):
        days = [whole[(first + 7 * i + k) % len(whole)] for k in range(n_days)]
        rows.append(
            np.concatenate(
                [
                    load.loc[d : d + pd.Timedelta(days=1) - pd.Timedelta(minutes=1)].to_numpy()
                    for d in days
                ]
            )
        )
    return rows


# Site sizing presets: (daily PV / daily demand, battery capacity / daily demand).
SIZINGS = {"short": (0.75, 0.4), "sunny": (1.2, 0.25)}


def build_case(
    *, n_zones: int, horizon_slots: int, start_day: str, sizing: str = "short"
) -> SuiteCase:
    """One suite case on real data starting at UTC midnight of `start_day` (one history day)."""
    pv_ratio, battery_ratio = SIZINGS[sizing]
    per_day = 24 * 60 // SLOT_MINUTES
    sim_days = -(-horizon_slots // per_day)
    history_start = (pd.Timestamp(start_day, tz="UTC") - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    days = aligned_days(sim_days + 1, SLOT_MINUTES, history_start)
    pv_per_kwp = np.concatenate([pv.to_numpy() for _, pv in days])
    raw = _zone_days(history_start, sim_days + 1, n_zones)
    zones: list[Zone] = []
    demand: dict[str, np.ndarray] = {}
    jobs: list[DeferrableJob] = []
    start = datetime.fromisoformat(f"{start_day}T00:00:00+00:00")
    history = start - timedelta(days=1)
    for i in range(n_zones):
        priority = _CLASS_PATTERN[i % len(_CLASS_PATTERN)]
        size_w = _SIZES_W[i % len(_SIZES_W)] * (1.0 + 0.1 * (i // len(_SIZES_W)))
        zone = Zone(zone_id=f"Zone{i + 1}", name=f"Zone {i + 1}", priority=priority, rated_w=size_w)
        zones.append(zone)
        if priority is PriorityClass.DEFERRABLE:
            for day in range(1, sim_days + 1):
                base = history + timedelta(days=day)
                jobs.append(
                    DeferrableJob(
                        zone_id=zone.zone_id,
                        energy_wh=2.0 * size_w,
                        earliest=base + timedelta(hours=5),
                        deadline=base + timedelta(hours=21),
                        splittable=bool(i % 2),
                        job_id=f"{zone.zone_id}-d{day}",
                    )
                )
        else:
            row = raw[i]
            demand[zone.zone_id] = row / max(np.percentile(row, 99), 1.0) * size_w
            demand[zone.zone_id] = np.minimum(demand[zone.zone_id], size_w)
    daily_demand_wh = (
        sum(d.sum() for d in demand.values()) * SLOT_MINUTES / 60
        + sum(j.energy_wh for j in jobs) * (sim_days + 1) / sim_days
    ) / (sim_days + 1)
    pv_kwh_per_kwp_day = pv_per_kwp.sum() * SLOT_MINUTES / 60 / 1000 / (sim_days + 1)
    kwp = pv_ratio * daily_demand_wh / 1000 / max(pv_kwh_per_kwp_day, 0.5)
    pv_w = pv_per_kwp * kwp
    capacity_wh = battery_ratio * daily_demand_wh
    peak_sum = sum(z.rated_w for z in zones)
    inverter_w = 0.7 * peak_sum
    battery = Battery(
        capacity_wh=round(capacity_wh, 1),
        soc_pct=40.0,
        max_charge_w=round(0.5 * capacity_wh, 1),
        max_discharge_w=round(0.6 * peak_sum, 1),
    )
    scenario = Scenario(
        start=history,
        slot_minutes=SLOT_MINUTES,
        battery=battery,
        inverter_limit_w=round(inverter_w, 1),
        zones=tuple(zones),
        pv_w=tuple(np.round(pv_w, 2).tolist()),
        demand_w={z: tuple(np.round(v, 2).tolist()) for z, v in demand.items()},
        jobs=tuple(jobs),
        horizon_slots=min(horizon_slots, 288),
        history_days=1,
        # The PV day is the station's, laid on mean solar time: solar noon at 12:00 UTC.
        latitude_deg=float(pv_station_info()["latitude"]),
        longitude_deg=0.0,
    )
    first = per_day
    plan_input = PlanInput(
        now=start,
        battery=battery,
        inverter_limit_w=scenario.inverter_limit_w,
        zones=tuple(zones),
        pv_w=tuple(pv_w[first : first + horizon_slots].tolist()),
        demand_w={z: tuple(v[first : first + horizon_slots].tolist()) for z, v in demand.items()},
        jobs=tuple(j for j in jobs if j.deadline > start),
        slot_minutes=SLOT_MINUTES,
        horizon_slots=horizon_slots,
    )
    name = f"{n_zones}z-{horizon_slots * SLOT_MINUTES // 60}h-{start_day}-{sizing}"
    return SuiteCase(
        name=name,
        n_zones=n_zones,
        horizon_slots=horizon_slots,
        start_day=start_day,
        plan_input=plan_input,
        scenario=scenario,
    )


# (zones, horizon slots, first day, sizing, closed-loop run too). The closed loop covers the
# case's days, so the 48 h cases compare it with a perfect-foresight MILP over the same 48 h.
SUITE = (
    (4, 288, "2022-07-05", "short", False),
    (4, 288, "2022-11-15", "short", False),
    (4, 288, "2022-07-05", "sunny", False),
    (4, 288, "2022-11-15", "sunny", False),
    (4, 576, "2022-07-05", "short", True),
    (4, 576, "2022-11-15", "sunny", True),
    (16, 288, "2022-07-05", "short", False),
    (16, 576, "2022-11-15", "short", False),
    (64, 288, "2022-07-05", "short", False),
    (64, 576, "2022-11-15", "short", False),
)
