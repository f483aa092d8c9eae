"""The day plan inside Home Assistant: re-plan on a schedule and on big changes, in the executor.

The planner and its input are pure (`optimizer.controller.plan_input`, `optimizer.planner.plan`,
the same the simulator runs); this module gathers the inputs through a narrow `PlanSource`, runs
the planner off the event loop, keeps the last good plan and says when it is stale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
import time
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from ..const import LOGGER
from ..optimizer.controller import Forecast, plan_input
from ..optimizer.forecast import persistence_forecast, pv_low_share
from ..optimizer.model import Zone
from ..optimizer.plan_model import Plan, PlanInput
from ..optimizer.planner import plan
from ..site import SiteConfig
from ..snapshot import SiteSnapshot
from .history import SLOT_MINUTES, SlotHistory
from .inputs import controller_site, daily_jobs

HORIZON_SLOTS = 288  # 24 h
PLAN_INTERVAL = timedelta(minutes=5)
# A plan older than this is not trusted: dispatch falls back on policy + greedy alone.
PLAN_STALE_AFTER = timedelta(minutes=15)
REPLAN_COOLDOWN_S = 30.0
SIGNIFICANT_SOC_CHANGE_PCT = 5.0

STATUS_PENDING = "pending"
STATUS_OK = "ok"
STATUS_STALE = "stale"
STATUS_FAILED = "failed"
STATUS_PINNED = "pinned"
PLAN_STATUSES = (STATUS_PENDING, STATUS_OK, STATUS_STALE, STATUS_FAILED, STATUS_PINNED)


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanSource:
    """What the plan manager reads from the site and tells it (the coordinator provides it)."""

    site: SiteConfig  # fixed for the entry's lifetime (a change reloads the entry)
    snapshot: Callable[[], SiteSnapshot | None]  # the latest: SoC and relays
    # The trained model's per-zone draw while on for `slots` slots from now (None: none fresh).
    learned_demand: Callable[
        [datetime, int, tuple[Zone, ...]], Mapping[str, tuple[float, ...]] | None
    ]
    energy_today_wh: Callable[[str, datetime], float]  # a zone's energy since local midnight
    plan_updated: Callable[[], None]  # a new plan is in: decide again with it
    on_unload: Callable[[CALLBACK_TYPE], None]  # the entry's async_on_unload


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

    def __init__(self, hass: HomeAssistant, source: PlanSource) -> None:
        """Nothing planned yet."""
        self.hass = hass
        self._source = source
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
        self._source.on_unload(
            async_track_time_interval(self.hass, self._async_periodic, PLAN_INTERVAL)
        )
        self._source.on_unload(self._debouncer.async_shutdown)

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
        source = self._source
        data = source.snapshot()
        soc = what_if.soc_pct if what_if.soc_pct is not None else (data.soc_pct if data else None)
        if soc is None:
            return None
        zones = tuple(
            replace(z, rated_w=what_if.rated_w.get(z.zone_id, z.rated_w))
            for z in source.site.zones
            if z.zone_id not in what_if.zones_off
        )
        site = controller_site(source.site, self.hass.config, zones)
        slots = what_if.horizon_slots
        observed = self.history.observed(now)
        first = SlotHistory.slot_of(now)
        pv, demand = persistence_forecast(
            observed,
            first=first,
            horizon_slots=slots,
            zones=zones,
            latitude_deg=site.latitude_deg,
            longitude_deg=site.longitude_deg,
            pv_peak_prior_w=site.plan_limit_w,
        )
        # A trained demand model, when there is one, replaces persistence zone by zone.
        demand = {**demand, **(source.learned_demand(now, slots, zones) or {})}
        share = pv_low_share(observed, first=first, pv_share=site.end_reserve.pv_share)
        return plan_input(
            site,
            now=now,
            soc_pct=soc,
            forecast=Forecast(
                pv_w=tuple(max(0.0, p * what_if.pv_scale) for p in pv),
                demand_w={z: tuple(w * what_if.demand_scale for w in v) for z, v in demand.items()},
                pv_low_share=share,
            ),
            jobs=daily_jobs(now, zones, slots, source.energy_today_wh),
            relay_on={
                z.zone_id: bool(s.relay_on)
                for z in zones
                if data and (s := data.zones.get(z.zone_id)) is not None
            },
            slot_minutes=SLOT_MINUTES,
            horizon_slots=slots,
        )

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
        self._source.plan_updated()
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
        self._source.plan_updated()

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
