"""The day plan inside Home Assistant: re-plan on a schedule and on big changes, in the executor.

The planner itself is pure (`optimizer.planner.plan`); this module gathers its inputs from the
coordinator, runs it off the event loop, keeps the last good plan and says when it is stale.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
import math
import time
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from ..const import LOGGER
from ..optimizer.model import PriorityClass, Schedule, Zone
from ..optimizer.plan_model import Battery, DeferrableJob, Plan, PlanInput, ReserveBands
from ..optimizer.planner import plan

if TYPE_CHECKING:
    from ..control.coordinator import MicrogridCoordinator

SLOT_MINUTES = 5
HORIZON_SLOTS = 288  # 24 h
PLAN_INTERVAL = timedelta(minutes=5)
# A plan older than this is not trusted: dispatch falls back on policy + greedy alone.
PLAN_STALE_AFTER = timedelta(minutes=15)
REPLAN_COOLDOWN_S = 30.0
SIGNIFICANT_SOC_CHANGE_PCT = 5.0
# A deferrable zone with no job given runs this long a day (a pump, a washer) by default.
DEFAULT_DEFERRABLE_HOURS = 4.0
DEFERRABLE_DEADLINE_HOUR = 20  # local time by which the day's deferrable energy should be in
HISTORY_SLOTS = 2 * 288  # two days of 5-minute averages for persistence forecasts

STATUS_PENDING = "pending"
STATUS_OK = "ok"
STATUS_STALE = "stale"
STATUS_FAILED = "failed"
STATUS_PINNED = "pinned"
PLAN_STATUSES = (STATUS_PENDING, STATUS_OK, STATUS_STALE, STATUS_FAILED, STATUS_PINNED)


@dataclass(kw_only=True)
class _SlotAverage:
    """A running average of one 5-minute slot."""

    slot_start: datetime
    solar_sum: float = 0.0
    zone_sum: dict[str, float] = field(default_factory=dict)  # power while the relay was on
    zone_count: dict[str, int] = field(default_factory=dict)
    count: int = 0


def clear_sky_shape(times: list[datetime], latitude: float, longitude: float) -> list[float]:
    """Sine of the sun's elevation (0 at night) per time: the shape of a clear-sky PV day."""
    out = []
    lat = math.radians(latitude)
    for t in times:
        utc = dt_util.as_utc(t)
        day = utc.timetuple().tm_yday
        declination = math.radians(23.44) * math.sin(2 * math.pi * (284 + day) / 365)
        solar_hours = utc.hour + utc.minute / 60 + longitude / 15.0
        hour_angle = math.radians(15.0 * (solar_hours - 12.0))
        sine = math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(
            declination
        ) * math.cos(hour_angle)
        out.append(max(0.0, sine))
    return out


def scheduled_demand(
    demand: dict[str, tuple[float, ...]],
    zones: tuple[Zone, ...],
    times: list[datetime],
    *,
    latitude: float,
    longitude: float,
) -> dict[str, tuple[float, ...]]:
    """Zero a zone's demand outside its schedule (street lights draw nothing by day)."""
    sun_up = [shape > 0.0 for shape in clear_sky_shape(times, latitude, longitude)]
    out = dict(demand)
    for zone in zones:
        if zone.schedule is Schedule.ALWAYS or zone.zone_id not in out:
            continue
        wanted = sun_up if zone.schedule is Schedule.DAY else [not up for up in sun_up]
        out[zone.zone_id] = tuple(w if on else 0.0 for w, on in zip(out[zone.zone_id], wanted))
    return out


class SlotHistory:
    """5-minute averages of solar and zone power: the persistence forecast until ML takes over."""

    def __init__(self) -> None:
        """Keep two days."""
        self._slots: deque[_SlotAverage] = deque(maxlen=HISTORY_SLOTS)

    @staticmethod
    def slot_of(now: datetime) -> datetime:
        """The start of the slot holding `now`."""
        return now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % SLOT_MINUTES)

    def add(self, now: datetime, solar_w: float | None, zone_w: dict[str, float]) -> None:
        """Add one sample to the current slot (`zone_w`: zones whose relay is on)."""
        start = self.slot_of(now)
        if not self._slots or self._slots[-1].slot_start != start:
            self._slots.append(_SlotAverage(slot_start=start))
        slot = self._slots[-1]
        slot.count += 1
        slot.solar_sum += solar_w if solar_w is not None and math.isfinite(solar_w) else 0.0
        for zone_id, watts in zone_w.items():
            slot.zone_sum[zone_id] = slot.zone_sum.get(zone_id, 0.0) + watts
            slot.zone_count[zone_id] = slot.zone_count.get(zone_id, 0) + 1

    def mean_on_w(self, zone_id: str, *, default: float) -> float:
        """The zone's average draw while its relay was on, over the history kept."""
        total = sum(s.zone_sum.get(zone_id, 0.0) for s in self._slots)
        samples = sum(s.zone_count.get(zone_id, 0) for s in self._slots)
        return total / samples if samples else default

    def pv_peak_w(self, latitude: float, longitude: float) -> float | None:
        """The array's clear-sky peak as seen so far (None until the sun was well up)."""
        seen = [s for s in self._slots if s.count]
        shapes = clear_sky_shape([s.slot_start for s in seen], latitude, longitude)
        ratios = [s.solar_sum / s.count / shape for s, shape in zip(seen, shapes) if shape >= 0.3]
        return max(ratios) if ratios else None

    def forecast(
        self,
        now: datetime,
        slots: int,
        *,
        zones: tuple[Zone, ...],
        latitude: float,
        longitude: float,
        pv_peak_prior_w: float,
    ) -> tuple[tuple[float, ...], dict[str, tuple[float, ...]]]:
        """Seasonal persistence (same slot yesterday), else a clear-sky day; demand >= 0."""
        by_start = {s.slot_start: s for s in self._slots if s.count}
        start = self.slot_of(now)
        times = [start + timedelta(minutes=SLOT_MINUTES * k) for k in range(slots)]
        # Until the array has been seen in good sun, assume one about the size of the inverter.
        peak = self.pv_peak_w(latitude, longitude) or pv_peak_prior_w
        shape = clear_sky_shape(times, latitude, longitude)
        pv: list[float] = []
        demand: dict[str, list[float]] = {z.zone_id: [] for z in zones}
        # Where yesterday's slot is unknown (a fresh install): what the zone has drawn while on
        # so far, its rating only before it was ever seen on.
        level = {z.zone_id: self.mean_on_w(z.zone_id, default=z.rated_w) for z in zones}
        for k in range(slots):
            yesterday = by_start.get(times[k] - timedelta(days=1))
            pv.append(yesterday.solar_sum / yesterday.count if yesterday else peak * shape[k])
            for zone in zones:
                # What the zone drew while on in this slot yesterday, else its level so far.
                on_samples = yesterday.zone_count.get(zone.zone_id, 0) if yesterday else 0
                demand[zone.zone_id].append(
                    yesterday.zone_sum[zone.zone_id] / on_samples
                    if on_samples
                    else level[zone.zone_id]
                )
        return tuple(pv), {z: tuple(v) for z, v in demand.items()}


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatIf:
    """Changes a what-if simulation applies to the current site before planning."""

    soc_pct: float | None = None
    pv_scale: float = 1.0
    demand_scale: float = 1.0
    zones_off: frozenset[str] = frozenset()
    rated_w: dict[str, float] = field(default_factory=dict)
    horizon_slots: int = HORIZON_SLOTS


class PlanManager:
    """Owns the current plan of one site."""

    def __init__(self, hass: HomeAssistant, coordinator: MicrogridCoordinator) -> None:
        """Nothing planned yet."""
        self.hass = hass
        self.coordinator = coordinator
        self.history = SlotHistory()
        self.plan: Plan | None = None
        self.planned_at: datetime | None = None
        self.pinned_until: datetime | None = None
        self.last_error: str | None = None
        self.last_duration_ms: float | None = None
        self.runs = 0
        self._planned_soc: float | None = None
        self._busy = False  # a plan is being computed
        self._debouncer = Debouncer(
            hass,
            LOGGER,
            cooldown=REPLAN_COOLDOWN_S,
            immediate=True,
            function=self._async_replan_debounced,
        )

    @callback
    def async_start(self) -> None:
        """Plan periodically; both the timer and the debouncer stop with the entry."""
        entry = self.coordinator.config_entry
        entry.async_on_unload(
            async_track_time_interval(self.hass, self._async_periodic, PLAN_INTERVAL)
        )
        entry.async_on_unload(self._debouncer.async_shutdown)

    async def _async_periodic(self, _now: datetime) -> None:
        """The 5-minute re-plan."""
        await self.async_replan("schedule")

    async def _async_replan_debounced(self) -> None:
        """A re-plan asked for by a significant change."""
        await self.async_replan("change")

    @callback
    def note_change(self, now: datetime, soc_pct: float | None, band_changed: bool) -> None:
        """Re-plan soon when the band changed or SoC moved far from what the plan assumed."""
        if self._busy:
            return
        if (
            self.plan is None
            or band_changed
            or (
                soc_pct is not None
                and self._planned_soc is not None
                and abs(soc_pct - self._planned_soc) >= SIGNIFICANT_SOC_CHANGE_PCT
            )
        ):
            self.hass.async_create_task(self._debouncer.async_call(), eager_start=False)

    @property
    def status(self) -> str:
        """pending, ok, stale, failed or pinned."""
        now = dt_util.utcnow()
        if self.plan is None:
            return STATUS_FAILED if self.last_error else STATUS_PENDING
        if self.pinned_until and now < self.pinned_until:
            return STATUS_PINNED
        if self.planned_at is None or now - self.planned_at > PLAN_STALE_AFTER:
            return STATUS_STALE
        return STATUS_FAILED if self.last_error else STATUS_OK

    def planned_on(self, now: datetime) -> dict[str, bool] | None:
        """The plan's zone states for now; None when there is no fresh plan (greedy decides)."""
        if self.plan is None or self.status == STATUS_STALE:
            return None
        return self.plan.planned_on_at(now)

    def planned_w(self, now: datetime) -> dict[str, float] | None:
        """What the zones the fresh plan puts on now are expected to draw (W), else None."""
        if self.plan is None or self.status == STATUS_STALE:
            return None
        return self.plan.planned_w_at(now)

    def build_input(self, now: datetime, what_if: WhatIf | None = None) -> PlanInput | None:
        """The planner's input from the site as it is now (None until the SoC is known)."""
        what_if = what_if or WhatIf()
        coordinator = self.coordinator
        site = coordinator.site
        data = coordinator.data
        soc = what_if.soc_pct if what_if.soc_pct is not None else (data.soc_pct if data else None)
        if soc is None:
            return None
        zones = tuple(
            replace(z, rated_w=what_if.rated_w.get(z.zone_id, z.rated_w))
            for z in site.zones
            if z.zone_id not in what_if.zones_off
        )
        slots = what_if.horizon_slots
        thresholds = site.thresholds
        limit = site.limit_w(zones)
        pv, demand = self.history.forecast(
            now,
            slots,
            zones=zones,
            latitude=self.hass.config.latitude,
            longitude=self.hass.config.longitude,
            pv_peak_prior_w=limit,
        )
        # A trained demand model, when there is one, replaces persistence zone by zone.
        demand = {**demand, **(coordinator.ml.planner_demand(now, slots, zones) or {})}
        demand = scheduled_demand(
            demand,
            zones,
            [SlotHistory.slot_of(now) + timedelta(minutes=SLOT_MINUTES * k) for k in range(slots)],
            latitude=self.hass.config.latitude,
            longitude=self.hass.config.longitude,
        )
        return PlanInput(
            now=now,
            battery=Battery(
                capacity_wh=site.capacity_wh,
                soc_pct=min(max(soc, 0.0), 100.0),
                max_charge_w=limit,
                max_discharge_w=limit,
                reserve=ReserveBands(
                    critical_pct=thresholds.deep_discharge_cutoff_pct or 0.0,
                    semi_critical_pct=thresholds.emergency_pct,
                    non_critical_pct=thresholds.conservation_pct,
                    deferrable_pct=thresholds.conservation_pct,
                ),
            ),
            inverter_limit_w=limit,
            zones=zones,
            pv_w=tuple(max(0.0, p * what_if.pv_scale) for p in pv),
            demand_w={z: tuple(w * what_if.demand_scale for w in v) for z, v in demand.items()},
            jobs=self._default_jobs(now, zones, slots),
            relay_on={
                z.zone_id: bool(s.relay_on)
                for z in zones
                if data and (s := data.zones.get(z.zone_id)) is not None
            },
            slot_minutes=SLOT_MINUTES,
            horizon_slots=slots,
            emergency_pct=thresholds.emergency_pct,
        )

    def _default_jobs(
        self, now: datetime, zones: tuple[Zone, ...], slots: int
    ) -> tuple[DeferrableJob, ...]:
        """Each deferrable zone's remaining energy for today, due by the evening."""
        local = dt_util.as_local(now)
        deadline = local.replace(hour=DEFERRABLE_DEADLINE_HOUR, minute=0, second=0, microsecond=0)
        if deadline <= local:
            deadline += timedelta(days=1)
        horizon_end = now + timedelta(minutes=SLOT_MINUTES * slots)
        deadline_utc = min(dt_util.as_utc(deadline), horizon_end)
        jobs = []
        for zone in zones:
            if zone.priority is not PriorityClass.DEFERRABLE or zone.rated_w <= 0:
                continue
            done = self.coordinator.energy_today_wh(zone.zone_id, now)
            remaining = zone.rated_w * DEFAULT_DEFERRABLE_HOURS - done
            if remaining <= 1.0 or deadline_utc <= now:
                continue
            jobs.append(
                DeferrableJob(
                    zone_id=zone.zone_id,
                    energy_wh=remaining,
                    earliest=now,
                    deadline=deadline_utc,
                    splittable=True,
                    job_id=f"{zone.zone_id} daily",
                )
            )
        return tuple(jobs)

    async def async_replan(self, trigger: str) -> Plan | None:
        """Plan now in the executor; keep the last good plan when planning fails."""
        if trigger == "start" and (self.plan is not None or self._busy):
            return self.plan  # the first refresh already asked for the first plan
        if self.pinned_until and dt_util.utcnow() < self.pinned_until:
            return self.plan
        now = dt_util.utcnow()
        inp = self.build_input(now)
        if inp is None:
            return self.plan
        self._busy = True
        try:
            result, duration_ms = await self.hass.async_add_executor_job(_timed_plan, inp)
        except (ValueError, ArithmeticError) as err:
            self.last_error = str(err)
            LOGGER.warning("Planning failed (%s); keeping the last plan: %s", trigger, err)
            return self.plan
        finally:
            self._busy = False
        self.plan = result
        self.planned_at = now
        self._planned_soc = inp.battery.soc_pct
        self.last_error = None
        self.last_duration_ms = duration_ms
        self.runs += 1
        LOGGER.debug("Planned (%s) in %.1f ms: unmet %s", trigger, duration_ms, result.unmet)
        self.coordinator.async_plan_updated()
        return result

    async def async_simulate(self, what_if: WhatIf) -> tuple[PlanInput, Plan] | None:
        """A what-if plan: computed like the real one, never installed, never touches a relay."""
        inp = self.build_input(dt_util.utcnow(), what_if)
        if inp is None:
            return None
        result, _ = await self.hass.async_add_executor_job(_timed_plan, inp)
        return inp, result

    @callback
    def install(self, result: Plan, *, until: datetime) -> None:
        """An admin applies a plan: it drives the zones until `until` (safety rules still hold)."""
        self.plan = result
        self.planned_at = dt_util.utcnow()
        self.pinned_until = until
        self.last_error = None
        self.coordinator.async_plan_updated()

    def summary(self, result: Plan | None = None, *, runs_limit: int = 200) -> dict[str, Any]:
        """A JSON-friendly view of a plan: runs per zone, SoC, energy per class, unmet."""
        result = result or self.plan
        if result is None:
            return {"status": self.status, "plan": None}
        return {
            "status": self.status,
            "planned_at": self.planned_at.isoformat() if self.planned_at else None,
            "pinned_until": self.pinned_until.isoformat() if self.pinned_until else None,
            "slot_minutes": result.slot_minutes,
            "start": result.slot_start[0].isoformat() if result.slot_start else None,
            "zones": {
                zone_id: [
                    {"start": s.isoformat(), "end": e.isoformat()}
                    for s, e in plan_runs(result, zone_id)[:runs_limit]
                ]
                for zone_id in result.zone_on
            },
            "soc_pct_hourly": [
                round(v, 1) for v in result.soc_pct[:: max(1, 60 // result.slot_minutes)]
            ],
            "served_wh": {c.value: round(v, 1) for c, v in result.served_wh.items()},
            "unserved_wh": {c.value: round(v, 1) for c, v in result.unserved_wh.items()},
            "jobs": [
                {
                    "job_id": j.job_id,
                    "zone_id": j.zone_id,
                    "start": j.start.isoformat() if j.start else None,
                    "planned_wh": round(j.planned_wh, 1),
                    "energy_wh": round(j.energy_wh, 1),
                }
                for j in result.jobs
            ],
            "unmet": list(result.unmet),
            "switches": result.switches,
        }


def plan_runs(result: Plan, zone_id: str) -> list[tuple[datetime, datetime]]:
    """A zone's planned on-periods as (start, end) pairs."""
    states = result.zone_on.get(zone_id, ())
    slot = timedelta(minutes=result.slot_minutes)
    runs: list[tuple[datetime, datetime]] = []
    start: int | None = None
    for index, on in enumerate((*states, False)):
        if on and start is None:
            start = index
        elif not on and start is not None:
            runs.append(
                (result.slot_start[start], result.slot_start[start] + slot * (index - start))
            )
            start = None
    return runs


def _timed_plan(inp: PlanInput) -> tuple[Plan, float]:
    """Run the planner and time it (executor side)."""
    started = time.perf_counter()
    result = plan(inp)
    return result, (time.perf_counter() - started) * 1000.0
