"""The day planner's inputs and output: battery, deferrable jobs, PlanInput and Plan.

Frozen, keyword-only dataclasses; units live in the names; the clock is always an argument.
Bad input raises ValueError with a message naming the field (never a crash further down).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import math

from .model import PriorityClass, Zone

MAX_HORIZON_SLOTS = 576
CLASS_ORDER = (
    PriorityClass.CRITICAL,
    PriorityClass.SEMI_CRITICAL,
    PriorityClass.NON_CRITICAL,
    PriorityClass.DEFERRABLE,
)
# Objective weight per Wh served: each class dwarfs everything the classes below it can add.
CLASS_WEIGHT_PER_WH = {
    PriorityClass.CRITICAL: 1e6,
    PriorityClass.SEMI_CRITICAL: 1e4,
    PriorityClass.NON_CRITICAL: 1e2,
    PriorityClass.DEFERRABLE: 1.0,
}
# Time preference within a class: a Wh served h hours from now counts (1 - this * h) Wh, so
# among plans serving the same energy of a class the earlier service wins (the plan is redone
# every few minutes with fresher data; later slots are less certain). Over a 48 h horizon that is
# at most 4.8e-4 of a Wh: it can make a plan serve at most that share less of a class in order to
# serve it earlier, and it is far too small to move energy between classes (weights 1e2 apart).
EARLY_SERVICE_DISCOUNT_PER_H = 1e-5
# A zone forecast to draw at most this (W) in a slot draws nothing: the plan does not shed it.
NO_DRAW_W = 1.0


def service_weight(slot_index, slot_h: float):
    """The time-preference weight of energy served in a slot (1 now, slightly less later)."""
    return 1.0 - EARLY_SERVICE_DISCOUNT_PER_H * slot_index * slot_h


def _require(ok: bool, message: str) -> None:
    """Raise ValueError(message) unless ok."""
    if not ok:
        raise ValueError(message)


def _finite_nonneg(value: float, name: str) -> None:
    """Reject NaN, infinity and negative numbers for a physical quantity."""
    _require(
        isinstance(value, int | float) and math.isfinite(value) and value >= 0,
        f"{name} must be a finite number >= 0, got {value!r}",
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ReserveBands:
    """The SoC (percent) below which each class may no longer draw on the battery."""

    critical_pct: float = 0.0
    semi_critical_pct: float = 10.0
    non_critical_pct: float = 20.0
    deferrable_pct: float = 20.0

    def __post_init__(self) -> None:
        """Check each band is a percentage and lower classes stop no lower than higher ones."""
        values = (
            self.critical_pct,
            self.semi_critical_pct,
            self.non_critical_pct,
            self.deferrable_pct,
        )
        for name, value in zip(("critical", "semi_critical", "non_critical", "deferrable"), values):
            _finite_nonneg(value, f"reserve {name}_pct")
            _require(value <= 100, f"reserve {name}_pct must be <= 100, got {value}")
        _require(
            list(values) == sorted(values),
            "reserve bands must not decrease from critical to deferrable",
        )

    def pct_for(self, priority: PriorityClass) -> float:
        """The reserve band of one class."""
        return {
            PriorityClass.CRITICAL: self.critical_pct,
            PriorityClass.SEMI_CRITICAL: self.semi_critical_pct,
            PriorityClass.NON_CRITICAL: self.non_critical_pct,
            PriorityClass.DEFERRABLE: self.deferrable_pct,
        }[priority]


@dataclass(frozen=True, kw_only=True, slots=True)
class Battery:
    """The site battery: size, state now, reserves and power/efficiency ratings."""

    capacity_wh: float
    soc_pct: float
    max_charge_w: float
    max_discharge_w: float
    charge_eff: float = 0.95
    discharge_eff: float = 0.95
    reserve: ReserveBands = field(default_factory=ReserveBands)

    def __post_init__(self) -> None:
        """Reject impossible batteries."""
        _finite_nonneg(self.capacity_wh, "battery capacity_wh")
        _require(self.capacity_wh > 0, "battery capacity_wh must be > 0")
        _finite_nonneg(self.soc_pct, "battery soc_pct")
        _require(self.soc_pct <= 100, f"battery soc_pct must be <= 100, got {self.soc_pct}")
        _finite_nonneg(self.max_charge_w, "battery max_charge_w")
        _finite_nonneg(self.max_discharge_w, "battery max_discharge_w")
        for name, eff in (("charge_eff", self.charge_eff), ("discharge_eff", self.discharge_eff)):
            _require(
                isinstance(eff, int | float) and 0 < eff <= 1,
                f"battery {name} must be in (0, 1], got {eff!r}",
            )

    @property
    def energy_wh(self) -> float:
        """Stored energy now."""
        return self.capacity_wh * self.soc_pct / 100.0


@dataclass(frozen=True, kw_only=True, slots=True)
class DeferrableJob:
    """A run a deferrable zone must deliver: energy between earliest start and deadline."""

    zone_id: str
    energy_wh: float
    earliest: datetime
    deadline: datetime
    splittable: bool = False
    job_id: str = ""  # empty: "<zone_id>@<earliest isoformat>"
    started: bool = False  # a non-splittable job already running must continue from slot 0

    def __post_init__(self) -> None:
        """Reject empty or backwards jobs."""
        _finite_nonneg(self.energy_wh, f"job {self.zone_id} energy_wh")
        _require(self.energy_wh > 0, f"job {self.zone_id} energy_wh must be > 0")
        _require(
            self.earliest.tzinfo is not None and self.deadline.tzinfo is not None,
            f"job {self.zone_id} earliest/deadline must be timezone-aware",
        )
        _require(
            self.deadline > self.earliest, f"job {self.zone_id} deadline must be after earliest"
        )

    @property
    def name(self) -> str:
        """A stable name for reports."""
        return self.job_id or f"{self.zone_id}@{self.earliest.isoformat()}"


@dataclass(frozen=True, kw_only=True, slots=True)
class EndReserve:
    """What the plan leaves in the battery at the horizon's end, and why.

    Energy left at the end is worth what the hours past the horizon need: enough to carry the
    critical and semi-critical zones through them (the next night) at a pessimistic forecast,
    no more. Past the horizon the forecast is its own last day again; pessimistic means PV at
    `pv_share` of it and those zones drawing `demand_factor` times it (the forecast's spread:
    a cloudy day's PV is about half the expected, a cold night's load a fifth above it). The
    energy is a floor on the horizon's last slot for the non-critical and deferrable tiers only:
    critical and semi-critical zones may always use it (serving them now beats keeping it for
    them later), the lower classes may not take it from them. `fixed_wh` replaces the rule with
    a number; `hours=0` turns it off (drain to the reserve bands).
    """

    hours: float = 24.0
    pv_share: float = 0.5
    demand_factor: float = 1.2
    fixed_wh: float | None = None

    def __post_init__(self) -> None:
        """Check the factors are physical."""
        _finite_nonneg(self.hours, "end_reserve hours")
        _require(self.hours <= 48, f"end_reserve hours must be <= 48, got {self.hours}")
        _finite_nonneg(self.pv_share, "end_reserve pv_share")
        _require(self.pv_share <= 1, f"end_reserve pv_share must be <= 1, got {self.pv_share}")
        _finite_nonneg(self.demand_factor, "end_reserve demand_factor")
        if self.fixed_wh is not None:
            _finite_nonneg(self.fixed_wh, "end_reserve fixed_wh")


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanInput:
    """Everything the day planner needs; forecasts are per slot from `now` (slot 0)."""

    now: datetime
    battery: Battery
    inverter_limit_w: float
    zones: tuple[Zone, ...]
    pv_w: tuple[float, ...]
    # Per zone, the power it draws when on, per slot. Missing zone: its rated_w every slot.
    # Deferrable zones draw their rated_w only while running a job; their rows are ignored.
    demand_w: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    jobs: tuple[DeferrableJob, ...] = ()
    relay_on: Mapping[str, bool] = field(default_factory=dict)
    slot_minutes: int = 5
    horizon_slots: int = 288
    switch_cost: float = 0.5  # objective units per relay switch (1 unit = 1 deferrable Wh)
    emergency_pct: float = 10.0  # at or above it the plan keeps critical zones on
    # what the lower classes must leave at the horizon's end for the higher ones after it
    end_reserve: EndReserve = field(default_factory=EndReserve)
    # The forecast's pessimistic side (README): non-critical keeps what critical and semi-critical
    # need at pv_low_w; jobs run only where every class above holds at low PV and high demand.
    # None: pv_w / demand_w (critical and semi-critical never see these).
    pv_low_w: tuple[float, ...] | None = None
    demand_high_w: Mapping[str, tuple[float, ...]] | None = None

    def __post_init__(self) -> None:
        """Validate shapes and numbers once, so the planner never meets bad data."""
        _require(self.now.tzinfo is not None, "now must be timezone-aware")
        _require(
            isinstance(self.slot_minutes, int) and 1 <= self.slot_minutes <= 60,
            f"slot_minutes must be an integer in 1..60, got {self.slot_minutes!r}",
        )
        _require(
            isinstance(self.horizon_slots, int) and 1 <= self.horizon_slots <= MAX_HORIZON_SLOTS,
            f"horizon_slots must be in 1..{MAX_HORIZON_SLOTS}, got {self.horizon_slots!r}",
        )
        _finite_nonneg(self.inverter_limit_w, "inverter_limit_w")
        _finite_nonneg(self.switch_cost, "switch_cost")
        _finite_nonneg(self.emergency_pct, "emergency_pct")
        _require(
            len(self.pv_w) == self.horizon_slots,
            f"pv_w has {len(self.pv_w)} slots, horizon_slots is {self.horizon_slots}",
        )
        for i, value in enumerate(self.pv_w):
            _finite_nonneg(value, f"pv_w[{i}]")
        ids = [z.zone_id for z in self.zones]
        _require(len(set(ids)) == len(ids), "zone ids must be unique")
        for zone in self.zones:
            _finite_nonneg(zone.rated_w, f"zone {zone.zone_id} rated_w")
        known = set(ids)
        for zone_id, row in self.demand_w.items():
            _require(zone_id in known, f"demand_w names unknown zone {zone_id!r}")
            _require(
                len(row) == self.horizon_slots,
                f"demand_w[{zone_id}] has {len(row)} slots, horizon_slots is {self.horizon_slots}",
            )
            for i, value in enumerate(row):
                _finite_nonneg(value, f"demand_w[{zone_id}][{i}]")
        if self.pv_low_w is not None:
            _require(
                len(self.pv_low_w) == self.horizon_slots,
                f"pv_low_w has {len(self.pv_low_w)} slots, horizon_slots is {self.horizon_slots}",
            )
            for i, value in enumerate(self.pv_low_w):
                _finite_nonneg(value, f"pv_low_w[{i}]")
        for zone_id, row in (self.demand_high_w or {}).items():
            _require(zone_id in known, f"demand_high_w names unknown zone {zone_id!r}")
            _require(
                len(row) == self.horizon_slots,
                f"demand_high_w[{zone_id}] has {len(row)} slots, "
                f"horizon_slots is {self.horizon_slots}",
            )
            for i, value in enumerate(row):
                _finite_nonneg(value, f"demand_high_w[{zone_id}][{i}]")
        by_id = {z.zone_id: z for z in self.zones}
        for job in self.jobs:
            _require(job.zone_id in known, f"job names unknown zone {job.zone_id!r}")
            _require(
                by_id[job.zone_id].rated_w > 0,
                f"job zone {job.zone_id} needs rated_w > 0 to deliver energy",
            )

    @property
    def slot(self) -> timedelta:
        """The slot length."""
        return timedelta(minutes=self.slot_minutes)

    @property
    def slot_h(self) -> float:
        """The slot length in hours (W * slot_h = Wh)."""
        return self.slot_minutes / 60.0

    def zone_demand_w(self, zone: Zone) -> tuple[float, ...]:
        """The forecast power of a zone per slot (its rating when no forecast is given)."""
        row = self.demand_w.get(zone.zone_id)
        return tuple(row) if row is not None else (zone.rated_w,) * self.horizon_slots


@dataclass(frozen=True, kw_only=True, slots=True)
class JobPlan:
    """Where the plan puts one deferrable job."""

    job_id: str
    zone_id: str
    start: datetime | None  # first slot it runs; None: not scheduled
    slots: tuple[int, ...]  # slot indices it runs in
    planned_wh: float
    energy_wh: float

    @property
    def complete(self) -> bool:
        """Whether the planned runs deliver the whole job."""
        return self.planned_wh >= self.energy_wh - 1e-6


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """The day plan: per-slot zone states, SoC trajectory, energy per class, job starts."""

    slot_start: tuple[datetime, ...]
    zone_on: Mapping[str, tuple[bool, ...]]
    soc_pct: tuple[float, ...]  # len(slot_start) + 1: at each slot start and the horizon end
    served_wh: Mapping[PriorityClass, float]
    unserved_wh: Mapping[PriorityClass, float]
    job_starts: Mapping[str, datetime | None]  # per deferrable zone: its first planned job start
    jobs: tuple[JobPlan, ...]
    unmet: tuple[str, ...]
    objective: float
    switches: int
    slot_minutes: int
    # per zone the power the plan expects it to draw in each slot (its demand forecast)
    demand_w: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def slot_index(self, now: datetime) -> int | None:
        """The slot `now` falls in, or None when it is outside the horizon."""
        if not self.slot_start:
            return None
        index = math.floor((now - self.slot_start[0]) / timedelta(minutes=self.slot_minutes))
        return index if 0 <= index < len(self.slot_start) else None

    def planned_on_at(self, now: datetime) -> dict[str, bool] | None:
        """The planned zone states for the slot holding `now`; None past the horizon.

        A zone planned off while the plan expects it to draw nothing in the slot is left out:
        shedding it saves no energy, so the plan has no reason to hold it off, and the rules
        (a street light's schedule, a household's request) decide. Without this, street
        lights seen drawing 0 W at dawn were planned off for the whole next night. Deferrable
        zones with a job keep the plan's word: their energy is the job's, not `demand_w`'s.
        """
        index = self.slot_index(now)
        if index is None:
            return None
        job_zones = {job.zone_id for job in self.jobs}
        return {
            zone_id: states[index]
            for zone_id, states in self.zone_on.items()
            if states[index] or zone_id in job_zones or self._expects_draw(zone_id, index)
        }

    def _expects_draw(self, zone_id: str, index: int) -> bool:
        """True unless the plan's demand forecast for the zone in this slot is (about) zero."""
        row = self.demand_w.get(zone_id)
        if row is None or index >= len(row):
            return True  # no forecast kept: trust the plan's state
        return row[index] > NO_DRAW_W

    def planned_w_at(self, now: datetime) -> dict[str, float] | None:
        """What each zone planned on in the slot holding `now` is expected to draw."""
        index = self.slot_index(now)
        if index is None:
            return None
        return {
            zone_id: row[index]
            for zone_id, row in self.demand_w.items()
            if index < len(row) and self.zone_on.get(zone_id, ())[index : index + 1] == (True,)
        }
