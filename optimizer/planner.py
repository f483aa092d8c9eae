"""The day planner: a SoC-discretised dynamic programme over slots, one class tier at a time.

Structure instead of enumeration: classes are planned strictly in priority order (critical,
semi-critical, non-critical, then deferrable jobs by deadline). Within a class the zones form one
aggregate whose levels switch zones on in a fixed fill order (smallest first, so the menu is
fine-grained and relays do not shuffle). Each tier is a backward DP over a grid of stored energy
(values interpolated between grid points), then an exact forward pass picks the best level per
slot from the real state of charge. Every later tier sees an energy floor per slot that keeps the
plans of the tiers above it feasible, so a lower class can never starve a higher one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
import math

import numpy as np

from .model import PriorityClass, Zone
from .plan_model import (
    CLASS_ORDER,
    CLASS_WEIGHT_PER_WH,
    Battery,
    DeferrableJob,
    JobPlan,
    Plan,
    PlanInput,
    service_weight,
)

GRID_POINTS = 64
_EPS_WH = 1e-6
_NEG = -1e18
_TIE = 1e-9  # prefers the higher level when values tie exactly


@dataclass(frozen=True, kw_only=True, slots=True)
class Physics:
    """The battery and inverter limits the plan must respect, in Wh, W and hours."""

    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float
    charge_eff: float
    discharge_eff: float
    inverter_limit_w: float
    slot_h: float

    @classmethod
    def of(cls, bat: Battery, *, inverter_limit_w: float, slot_h: float) -> Physics:
        """The physics of a battery behind an inverter, on slots of `slot_h` hours."""
        return cls(
            capacity_wh=bat.capacity_wh,
            max_charge_w=bat.max_charge_w,
            max_discharge_w=bat.max_discharge_w,
            charge_eff=bat.charge_eff,
            discharge_eff=bat.discharge_eff,
            inverter_limit_w=inverter_limit_w,
            slot_h=slot_h,
        )


def physics_of(inp: PlanInput) -> Physics:
    """The physics of a plan input."""
    return Physics.of(inp.battery, inverter_limit_w=inp.inverter_limit_w, slot_h=inp.slot_h)


def step_energy_wh(energy_wh, load_w, pv_w, phys: Physics):
    """Stored energy after one slot with this load and PV (surplus charges, capped; no limits)."""
    if np.ndim(load_w) == 0 and np.ndim(pv_w) == 0:  # one load: one branch (the DP's hot path)
        net = float(load_w) - float(pv_w)
        if net >= 0.0:
            return energy_wh - net * phys.slot_h / phys.discharge_eff
        gain_wh = min(-net, phys.max_charge_w) * phys.charge_eff * phys.slot_h
        return np.minimum(phys.capacity_wh, energy_wh + gain_wh)
    net_w = np.asarray(load_w, dtype=float) - pv_w
    discharged = energy_wh - np.maximum(net_w, 0.0) * phys.slot_h / phys.discharge_eff
    charge_w = np.minimum(np.maximum(-net_w, 0.0), phys.max_charge_w)
    charged = np.minimum(phys.capacity_wh, energy_wh + charge_w * phys.charge_eff * phys.slot_h)
    return np.where(net_w >= 0.0, discharged, charged)


def power_ok(load_w, pv_w, phys: Physics):
    """Whether a load fits the inverter and the battery's discharge rating."""
    load = np.asarray(load_w, dtype=float)
    return (load <= phys.inverter_limit_w + 1e-9) & (load - pv_w <= phys.max_discharge_w + 1e-9)


def min_end_energy_wh(
    load_w: np.ndarray, floor_end_wh: np.ndarray, pv_w: np.ndarray, phys: Physics
) -> np.ndarray:
    """Per slot, the least energy at its end that keeps the fixed load feasible to the horizon."""
    n_slots = len(load_w)
    required = 0.0  # needed at the start of slot t+1
    target = np.zeros(n_slots)
    for t in range(n_slots - 1, -1, -1):
        target[t] = max(required, floor_end_wh[t])
        net_w = load_w[t] - pv_w[t]
        if net_w >= 0:
            required = target[t] + net_w * phys.slot_h / phys.discharge_eff
        else:
            charge_wh = min(-net_w, phys.max_charge_w) * phys.charge_eff * phys.slot_h
            required = max(0.0, target[t] - charge_wh)
    return np.minimum(target, phys.capacity_wh)


def carry_wh(load_w: np.ndarray, floor_wh: np.ndarray, pv_w: np.ndarray, phys: Physics) -> float:
    """The least stored energy now that carries a load profile while keeping a floor per slot."""
    if len(load_w) == 0:
        return 0.0
    target = min_end_energy_wh(load_w, floor_wh, pv_w, phys)
    return float(np.max(need_start_wh(target[0], float(load_w[0]), float(pv_w[0]), phys)))


def end_reserve_wh(inp: PlanInput, demand: Mapping[str, np.ndarray], pv: np.ndarray) -> float:
    """The stored energy the lower tiers must leave at the horizon's end (see EndReserve)."""
    rule = inp.end_reserve
    phys = physics_of(inp)
    if rule.fixed_wh is not None:
        return min(rule.fixed_wh, phys.capacity_wh)
    n_after = round(rule.hours * 60 / inp.slot_minutes)
    if n_after <= 0:
        return 0.0
    n_slots = inp.horizon_slots
    per_day = 24 * 60 // inp.slot_minutes
    day = min(per_day, n_slots)  # past the horizon, its last day repeats
    src = n_slots - day + np.arange(n_after) % day
    reserve = inp.battery.reserve
    load = np.zeros(n_after)
    floor = np.full(n_after, reserve.critical_pct / 100.0 * phys.capacity_wh)
    for zone in inp.zones:
        if zone.priority not in (PriorityClass.CRITICAL, PriorityClass.SEMI_CRITICAL):
            continue
        row = demand[zone.zone_id][src] * rule.demand_factor
        load += row
        band_wh = reserve.pct_for(zone.priority) / 100.0 * phys.capacity_wh
        floor = np.where(row > 0, np.maximum(floor, band_wh), floor)
    return min(carry_wh(load, floor, pv[src] * rule.pv_share, phys), phys.capacity_wh)


def _grids(target: np.ndarray, energy0_wh: float, phys: Physics, points: int) -> list[np.ndarray]:
    """The energy grid per slot start: slot 0 is the state now, slot t >= 1 spans [floor, full]."""
    lo = np.minimum(np.asarray(target, dtype=float), phys.capacity_wh)[:, None]
    rows = lo + (phys.capacity_wh - lo) * np.linspace(0.0, 1.0, points)[None, :]
    rows[:, -1] = phys.capacity_wh
    return [np.array([energy0_wh]), *rows]


def plan_levels(
    *,
    levels_w: np.ndarray,
    reserve_wh: float,
    fixed_load_w: np.ndarray,
    target_wh: np.ndarray,
    pv_w: np.ndarray,
    energy0_wh: float,
    phys: Physics,
    switch_penalty: float,
    level0: int,
    force_full_above_wh: float | None = None,
    points: int = GRID_POINTS,
) -> np.ndarray:
    """Best level per slot for one class aggregate (levels_w: (T, K+1), reward = energy served)."""
    n_slots, n_levels = levels_w.shape
    grids = _grids(target_wh, energy0_wh, phys, points)
    values: list[np.ndarray] = [np.zeros(0)] * (n_slots + 1)
    values[n_slots] = np.zeros(points)
    reward = levels_w * phys.slot_h * service_weight(np.arange(n_slots), phys.slot_h)[:, None]
    # The reserve binds only where the class draws power: a zone "on" at 0 W takes nothing.
    has_load = levels_w > 0
    for t in range(n_slots - 1, 0, -1):
        total = fixed_load_w[t] + levels_w[t]
        nxt = step_energy_wh(grids[t][None, :], total[:, None], pv_w[t], phys)
        ok = (
            power_ok(total, pv_w[t], phys)[:, None]
            & (nxt >= target_wh[t] - _EPS_WH)
            & (~has_load[t][:, None] | (nxt >= reserve_wh - _EPS_WH))
        )
        cont = _at(values[t + 1][None], *_weights(nxt, grids[t + 1]))[0]
        q = np.where(ok, reward[t][:, None] + cont, _NEG)
        values[t] = q.max(axis=0)
    chosen = np.zeros(n_slots, dtype=int)
    energy = energy0_wh
    prev = level0
    ranks = np.arange(n_levels)
    for t in range(n_slots):
        total = fixed_load_w[t] + levels_w[t]
        nxt = step_energy_wh(energy, total, pv_w[t], phys)
        ok = (
            power_ok(total, pv_w[t], phys)
            & (nxt >= target_wh[t] - _EPS_WH)
            & (~has_load[t] | (nxt >= reserve_wh - _EPS_WH))
        )
        ok[0] = True  # the fixed load alone is feasible by construction of target_wh
        if force_full_above_wh is not None and energy >= force_full_above_wh:
            best = int(np.flatnonzero(ok).max())
        else:
            cont = _at(values[t + 1][None], *_weights(nxt, grids[t + 1]))[0]
            q = reward[t] + cont - switch_penalty * np.abs(ranks - prev) + _TIE * ranks
            best = int(np.argmax(np.where(ok, q, _NEG)))
        chosen[t] = best
        energy = float(nxt[best])
        prev = best
    return chosen


@dataclass(frozen=True, kw_only=True, slots=True)
class JobShape:
    """A deferrable job cut into slots: energy per run slot and the slots it may run in."""

    run_wh: np.ndarray  # energy delivered in the k-th run slot
    allowed: np.ndarray  # bool per slot
    splittable: bool
    start_slots: np.ndarray  # bool per slot: a non-splittable run may start here


def job_shape(job: DeferrableJob, zone: Zone, inp: PlanInput, busy: np.ndarray) -> JobShape:
    """The slots and per-slot energy of one job on its zone's rating."""
    slot_wh = zone.rated_w * inp.slot_h
    n_runs = max(1, math.ceil(job.energy_wh / slot_wh - 1e-9))
    run_wh = np.array([min(slot_wh, job.energy_wh - k * slot_wh) for k in range(n_runs)])
    starts = np.array([inp.now + k * inp.slot for k in range(inp.horizon_slots)])
    allowed = (
        np.array([s >= job.earliest and s + inp.slot <= job.deadline for s in starts], dtype=bool)
        & ~busy
    )
    start_ok = np.zeros(inp.horizon_slots, dtype=bool)
    for t in range(inp.horizon_slots - n_runs + 1):
        start_ok[t] = bool(allowed[t : t + n_runs].all())
    if job.started and not job.splittable:
        start_ok[1:] = False
    return JobShape(run_wh=run_wh, allowed=allowed, splittable=job.splittable, start_slots=start_ok)


def _weights(x: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left grid index and fraction of each x on an evenly spaced grid (clamped to its ends)."""
    n = len(grid)
    span = grid[-1] - grid[0]
    if span <= _EPS_WH:
        return np.zeros(x.shape, dtype=int), np.zeros(x.shape)
    pos = np.minimum(np.maximum((x - grid[0]) * ((n - 1) / span), 0.0), n - 1.0)
    idx = np.minimum(pos.astype(int), n - 2)
    return idx, pos - idx


def _at(values: np.ndarray, idx: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Rows of `values` (modes, N) interpolated at the same points for every row."""
    left = values[:, idx]
    return left + (values[:, idx + 1] - left) * frac


def need_start_wh(required_end_wh, load_w, pv_w, phys: Physics):
    """The least stored energy at a slot's start that leaves `required_end_wh` at its end
    (inf when even a full battery cannot: a surplus slot ends at most full)."""
    required = np.asarray(required_end_wh, dtype=float)
    net_w = load_w - pv_w
    if net_w >= 0:
        return required + net_w * phys.slot_h / phys.discharge_eff
    charge_wh = min(-net_w, phys.max_charge_w) * phys.charge_eff * phys.slot_h
    return np.where(
        required <= phys.capacity_wh + _EPS_WH, np.maximum(0.0, required - charge_wh), np.inf
    )


def _extend_below(values: np.ndarray, grid: np.ndarray, least_wh: np.ndarray) -> np.ndarray:
    """Rows of values with the grid points under each row's least feasible energy set to the
    row's value at its first feasible point, so interpolation near the threshold is never
    poisoned by an infeasible neighbour (feasibility is then the exact `least_wh` test)."""
    feasible = (grid[None, :] >= least_wh[:, None] - _EPS_WH) & (values > _NEG / 2)
    first = np.argmax(feasible, axis=1)
    fill = values[np.arange(len(values)), first]
    out = np.where(feasible, values, fill[:, None])
    out[~feasible.any(axis=1)] = _NEG
    return out


def plan_job(
    *,
    shape: JobShape,
    reserve_wh: float,
    fixed_load_w: np.ndarray,
    target_wh: np.ndarray,
    pv_w: np.ndarray,
    energy0_wh: float,
    phys: Physics,
    points: int = GRID_POINTS,
) -> np.ndarray:
    """The slots one job runs in (a DP over stored energy x run slots done, within its window).

    Next to each value row the DP keeps the exact least energy from which that mode can still
    go on (`least`): a state is feasible by that test, not by interpolated values, because a
    grid point just under the threshold would drag the interpolated value of a feasible state
    towards "infeasible" (hypothesis found a job left out that way).
    """
    n_runs = len(shape.run_wh)
    window = np.flatnonzero(shape.allowed)
    if len(window) == 0 or (not shape.splittable and not shape.start_slots.any()):
        return np.array([], dtype=int)
    first, end = int(window[0]), int(window[-1]) + 1
    run_w = shape.run_wh / phys.slot_h
    mode_w = np.concatenate((np.full(n_runs - 1, run_w[0]), [run_w[-1]]))  # power of next run
    grids = _grids(target_wh, energy0_wh, phys, points)
    # After the window nothing more can run and the envelope keeps the rest feasible: value 0.
    values: dict[int, np.ndarray] = {end: np.zeros((n_runs + 1, points))}
    least: dict[int, np.ndarray] = {end: np.zeros(n_runs + 1)}
    gain = np.concatenate((shape.run_wh, [0.0]))[:, None]  # energy of the next run, per mode

    modes = np.arange(n_runs + 1)
    # a running non-splittable job cannot pause
    may_wait = shape.splittable | (modes == 0) | (modes == n_runs)
    running = modes < n_runs
    started = running & (modes > 0)

    def may_run(t: int) -> np.ndarray:
        if not shape.allowed[t]:
            return np.zeros(n_runs + 1, dtype=bool)
        return running if shape.splittable or shape.start_slots[t] else started

    for t in range(end - 1, max(first, 1) - 1, -1):
        grid, v_next, l_next = grids[t], values[t + 1], least[t + 1]
        wait_need = np.where(
            may_wait,
            need_start_wh(np.maximum(target_wh[t], l_next), fixed_load_w[t], pv_w[t], phys),
            np.inf,
        )
        wait_e = step_energy_wh(grid, fixed_load_w[t], pv_w[t], phys)
        idx, frac = _weights(wait_e, grids[t + 1])
        wait_ok = grid[None, :] >= wait_need[:, None] - _EPS_WH
        wait_v = np.where(wait_ok, _at(v_next, idx, frac), _NEG)
        run_need = np.full(n_runs + 1, np.inf)
        run_v = np.full_like(wait_v, _NEG)
        runnable = may_run(t)
        # modes 0..n-2 run at full power, the last run at what is left: one step per power
        for span in (modes[:-2], modes[-2:-1]):
            group = span[runnable[span]]
            if len(group) == 0:
                continue
            total = fixed_load_w[t] + mode_w[group[0]]
            if not bool(power_ok(total, pv_w[t], phys)):
                continue
            end_need = np.maximum(max(target_wh[t], reserve_wh), l_next[group + 1])
            run_need[group] = need_start_wh(end_need, total, pv_w[t], phys)
            run_e = step_energy_wh(grid, total, pv_w[t], phys)
            r_idx, r_frac = _weights(run_e, grids[t + 1])
            cont = _at(v_next[group + 1], r_idx, r_frac)
            run_v[group] = np.where(
                grid[None, :] >= run_need[group][:, None] - _EPS_WH, gain[group] + cont, _NEG
            )
        least[t] = np.minimum(wait_need, run_need)
        values[t] = _extend_below(np.maximum(wait_v, run_v), grid, least[t])
    runs: list[int] = []
    energy = energy0_wh
    for t in range(first):
        energy = float(step_energy_wh(energy, fixed_load_w[t], pv_w[t], phys))
    mode = 0
    for t in range(first, end):
        if mode >= n_runs:
            break
        grid, l_next = grids[t + 1], least[t + 1]
        wait_e = float(step_energy_wh(energy, fixed_load_w[t], pv_w[t], phys))
        wait_q = (
            float(np.interp(wait_e, grid, values[t + 1][mode]))
            if may_wait[mode] and wait_e >= max(target_wh[t], l_next[mode]) - _EPS_WH
            else _NEG
        )
        run_q = _NEG
        if may_run(t)[mode]:
            total = fixed_load_w[t] + mode_w[mode]
            run_e = float(step_energy_wh(energy, total, pv_w[t], phys))
            if (
                bool(power_ok(total, pv_w[t], phys))
                and run_e >= max(target_wh[t], reserve_wh, l_next[mode + 1]) - _EPS_WH
            ):
                run_q = shape.run_wh[mode] + float(np.interp(run_e, grid, values[t + 1][mode + 1]))
        if run_q > _NEG / 2 and run_q >= wait_q - _TIE:
            runs.append(t)
            mode += 1
            energy = run_e
        elif wait_q <= _NEG / 2:
            break  # nothing feasible keeps this job going: stop it here
        else:
            energy = wait_e
    if not shape.splittable and len(runs) < n_runs:
        return np.array([], dtype=int)  # an unfinished run of a non-splittable job is no run
    return np.array(runs, dtype=int)


def trajectory_wh(
    load_w: np.ndarray, pv_w: np.ndarray, energy0_wh: float, phys: Physics
) -> np.ndarray:
    """Stored energy at every slot boundary (T+1), in closed form (charging clamps at full)."""
    net = load_w - pv_w
    inc = np.where(
        net >= 0,
        -net * phys.slot_h / phys.discharge_eff,
        np.minimum(-net, phys.max_charge_w) * phys.charge_eff * phys.slot_h,
    )
    acc = np.concatenate(([0.0], np.cumsum(inc)))
    # x(t+1) = min(full, x(t) + inc(t))  =>  x(t) = acc(t) + min(x0, min_k<=t (full - acc(k)))
    head = np.minimum.accumulate(np.concatenate(([energy0_wh], phys.capacity_wh - acc[1:])))
    return acc + head


def fill_tier(
    *,
    on: np.ndarray,
    demand_w: np.ndarray,
    reserve_wh: float,
    fixed_load_w: np.ndarray,
    target_wh: np.ndarray,
    pv_w: np.ndarray,
    energy0_wh: float,
    phys: Physics,
) -> np.ndarray:
    """Round up after the DP: switch on any further zone (not only the next in fill order)
    where the exact trajectory still keeps every floor, most PV surplus first."""
    on = on.copy()
    load = fixed_load_w + (on * demand_w).sum(axis=0)
    for t in np.argsort(-(pv_w - load), kind="stable"):
        candidates = [
            k
            for k in np.argsort(demand_w[:, t], kind="stable")
            if not on[k, t] and demand_w[k, t] > 0
        ]
        for k in candidates:  # smallest first: once one fails, larger ones fail too
            new_w = load[t] + demand_w[k, t]
            if not bool(power_ok(new_w, pv_w[t], phys)):
                break
            trial = load.copy()
            trial[t] = new_w
            energy = trajectory_wh(trial, pv_w, energy0_wh, phys)
            tier_on = (on * demand_w).sum(axis=0) > 0
            tier_on[t] = True
            floor = np.where(tier_on, np.maximum(target_wh, reserve_wh), target_wh)
            if np.any(energy[1:] < floor - _EPS_WH):
                break
            on[k, t] = True
            load = trial
    return on


def _row_switches(row: np.ndarray, was_on: bool) -> int:
    """Relay changes along one zone's row, the first slot counted against the relay now."""
    seq = np.concatenate(([was_on], row))
    return int(np.count_nonzero(seq[1:] != seq[:-1]))


def advance_tier(
    *,
    on: np.ndarray,
    demand_w: np.ndarray,
    reserve_wh: float,
    fixed_load_w: np.ndarray,
    target_wh: np.ndarray,
    pv_w: np.ndarray,
    energy0_wh: float,
    phys: Physics,
    was_on: np.ndarray,
) -> np.ndarray:
    """Serve now rather than later: move a zone's later on-slots into earlier off-slots (exact)."""
    # A move needs: more time-weighted energy, no added relay switch, every floor kept on the
    # exact trajectory, and stored energy after the vacated slot nowhere lower (nothing after it
    # pays). Exact moves, because the DP's interpolation noise dwarfs the time preference.
    on = on.copy()
    n_slots = on.shape[1]
    weight = service_weight(np.arange(n_slots), phys.slot_h)
    load = fixed_load_w + (on * demand_w).sum(axis=0)
    energy = trajectory_wh(load, pv_w, energy0_wh, phys)

    def try_move(k: int, t: int, src: int) -> bool:
        nonlocal load, energy
        if weight[t] * demand_w[k, t] <= weight[src] * demand_w[k, src]:
            return False
        if not bool(power_ok(load[t] + demand_w[k, t], pv_w[t], phys)):
            return False
        row = on[k].copy()
        row[t], row[src] = True, False
        if _row_switches(row, bool(was_on[k])) > _row_switches(on[k], bool(was_on[k])):
            return False
        trial = load.copy()
        trial[t] += demand_w[k, t]
        trial[src] -= demand_w[k, src]
        new_energy = trajectory_wh(trial, pv_w, energy0_wh, phys)
        trial_on = on.copy()
        trial_on[k] = row
        drawing = (trial_on * demand_w).sum(axis=0) > 0
        floor = np.where(drawing, np.maximum(target_wh, reserve_wh), target_wh)
        if np.any(new_energy[1:] < floor - _EPS_WH) or np.any(
            new_energy[src + 1 :] < energy[src + 1 :] - _EPS_WH
        ):
            return False
        on[k] = row
        load, energy = trial, new_energy
        return True

    for k in range(on.shape[0]):
        t = 0
        while t < n_slots - 1:
            if on[k, t] or demand_w[k, t] <= 0:
                t += 1
                continue
            later = np.flatnonzero(on[k, t + 1 :])
            if len(later) == 0:
                break
            first = t + 1 + int(later[0])  # the next on-slot ...
            last = first  # ... and the end of its run (moving that one slides the run earlier)
            while last + 1 < n_slots and on[k, last + 1]:
                last += 1
            moved = try_move(k, t, first) or (last != first and try_move(k, t, last))
            # after a move, retry one slot earlier so a whole run can slide toward now
            t = t - 1 if moved and t > 0 and not on[k, t - 1] else t + 1
    return on


def _fill_order(zones: list[Zone], demand: dict[str, np.ndarray]) -> list[Zone]:
    """Zones of one class in fill order: smallest mean demand first, then by id."""
    return sorted(zones, key=lambda z: (float(demand[z.zone_id].mean()), z.zone_id))


def _levels(zones: list[Zone], demand: dict[str, np.ndarray], n_slots: int) -> np.ndarray:
    """Cumulative load (T, K+1) of switching on the first k zones in fill order."""
    levels = np.zeros((n_slots, len(zones) + 1))
    for k, zone in enumerate(zones):
        levels[:, k + 1] = levels[:, k] + demand[zone.zone_id]
    return levels


def _level_now(zones: list[Zone], relay_on: dict[str, bool]) -> int:
    """The level closest to the relays now (the length of the on-prefix)."""
    level = 0
    for zone in zones:
        if not relay_on.get(zone.zone_id, False):
            break
        level += 1
    return level


def simulate_energy_wh(
    load_w: np.ndarray, pv_w: np.ndarray, energy0_wh: float, phys: Physics
) -> np.ndarray:
    """Stored energy at each slot boundary for a load profile (T+1 values)."""
    energy = np.empty(len(load_w) + 1)
    energy[0] = energy0_wh
    for t in range(len(load_w)):
        energy[t + 1] = float(step_energy_wh(energy[t], load_w[t], pv_w[t], phys))
    return energy


def count_switches(zone_on: Mapping[str, np.ndarray], relay_on: Mapping[str, bool]) -> int:
    """Relay changes over the plan, counting the first slot against the relays now."""
    return sum(
        _row_switches(states.astype(bool), bool(relay_on.get(zone_id, False)))
        for zone_id, states in zone_on.items()
    )


def _end_floor_wh(
    floor_wh: float,
    end_wh: float,
    *,
    fixed_load_w: np.ndarray,
    pv_w: np.ndarray,
    energy0_wh: float,
    phys: Physics,
) -> float:
    """The last slot's floor with the end reserve, as far as the tiers above leave it reachable
    (a floor their own plan cannot keep would leave the lower tier no feasible state)."""
    reachable = float(trajectory_wh(fixed_load_w, pv_w, energy0_wh, phys)[-1])
    return max(floor_wh, min(end_wh, reachable))


def _pessimistic_target(
    inp: PlanInput,
    *,
    demand: Mapping[str, np.ndarray],
    zone_on: Mapping[str, np.ndarray],
    floor_end: np.ndarray,
    end_wh: float,
    pv: np.ndarray,
    energy0: float,
    phys: Physics,
) -> np.ndarray:
    """Per slot, the least stored energy that keeps the zones planned so far on their floors if
    the PV came in at `pv_low_w` (their demand as forecast), capped at what they leave there
    themselves (a floor out of reach: the tier below may not lower the stored energy)."""
    low = np.minimum(pv, np.asarray(inp.pv_low_w, dtype=float))
    load = np.zeros(inp.horizon_slots)
    for zone in inp.zones:
        if zone.priority is not PriorityClass.DEFERRABLE:
            load += zone_on[zone.zone_id] * demand[zone.zone_id]
    floor = floor_end.copy()
    floor[-1] = _end_floor_wh(
        floor[-1], end_wh, fixed_load_w=load, pv_w=low, energy0_wh=energy0, phys=phys
    )
    return np.minimum(
        min_end_energy_wh(load, floor, low, phys), trajectory_wh(load, low, energy0, phys)[1:]
    )


def plan(inp: PlanInput) -> Plan:
    """The best day plan for the input; never "infeasible": what cannot be met is in `unmet`."""
    phys = physics_of(inp)
    n_slots = inp.horizon_slots
    pv = np.asarray(inp.pv_w, dtype=float)
    relay_on = dict(inp.relay_on)
    energy0 = min(inp.battery.energy_wh, phys.capacity_wh)
    demand = {z.zone_id: np.asarray(inp.zone_demand_w(z), dtype=float) for z in inp.zones}
    fixed_load = np.zeros(n_slots)
    floor_end = np.zeros(n_slots)
    zone_on: dict[str, np.ndarray] = {z.zone_id: np.zeros(n_slots, dtype=bool) for z in inp.zones}
    served = dict.fromkeys(CLASS_ORDER, 0.0)
    wanted = dict.fromkeys(CLASS_ORDER, 0.0)
    unmet: list[str] = []
    end_wh = end_reserve_wh(inp, demand, pv)

    for priority in CLASS_ORDER[:3]:
        zones = _fill_order([z for z in inp.zones if z.priority is priority], demand)
        if not zones:
            continue
        reserve_wh = inp.battery.reserve.pct_for(priority) / 100.0 * phys.capacity_wh
        levels = _levels(zones, demand, n_slots)
        if priority is PriorityClass.NON_CRITICAL:  # the lower tiers leave the end reserve
            floor_end[-1] = _end_floor_wh(
                floor_end[-1],
                end_wh,
                fixed_load_w=fixed_load,
                pv_w=pv,
                energy0_wh=energy0,
                phys=phys,
            )
        target = min_end_energy_wh(fixed_load, floor_end, pv, phys)
        if priority is PriorityClass.NON_CRITICAL and inp.pv_low_w is not None:
            # keep what critical and semi-critical need should the PV come in low
            target = np.maximum(
                target,
                _pessimistic_target(
                    inp,
                    demand=demand,
                    zone_on=zone_on,
                    floor_end=floor_end,
                    end_wh=end_wh,
                    pv=pv,
                    energy0=energy0,
                    phys=phys,
                ),
            )
        force = (
            inp.emergency_pct / 100.0 * phys.capacity_wh
            if priority is PriorityClass.CRITICAL
            else None
        )
        chosen = plan_levels(
            levels_w=levels,
            reserve_wh=reserve_wh,
            fixed_load_w=fixed_load,
            target_wh=target,
            pv_w=pv,
            energy0_wh=energy0,
            phys=phys,
            switch_penalty=inp.switch_cost / CLASS_WEIGHT_PER_WH[priority],
            level0=_level_now(zones, relay_on),
            force_full_above_wh=force,
        )
        tier_demand = np.stack([demand[z.zone_id] for z in zones])
        tier_on = fill_tier(
            on=np.arange(len(zones))[:, None] < chosen[None, :],
            demand_w=tier_demand,
            reserve_wh=reserve_wh,
            fixed_load_w=fixed_load,
            target_wh=target,
            pv_w=pv,
            energy0_wh=energy0,
            phys=phys,
        )
        if force is None:  # critical zones already follow the emergency rule slot by slot
            tier_on = advance_tier(
                on=tier_on,
                demand_w=tier_demand,
                reserve_wh=reserve_wh,
                fixed_load_w=fixed_load,
                target_wh=target,
                pv_w=pv,
                energy0_wh=energy0,
                phys=phys,
                was_on=np.array([relay_on.get(z.zone_id, False) for z in zones], dtype=bool),
            )
        load = (tier_on * tier_demand).sum(axis=0)
        fixed_load = fixed_load + load
        floor_end = np.where(load > 0, np.maximum(floor_end, reserve_wh), floor_end)
        for rank, zone in enumerate(zones):
            zone_on[zone.zone_id] = tier_on[rank].copy()
        served[priority] = float(load.sum() * phys.slot_h)
        wanted[priority] = float(levels[:, -1].sum() * phys.slot_h)
        if priority is PriorityClass.CRITICAL:
            for zone in zones:
                short = float((demand[zone.zone_id] * ~zone_on[zone.zone_id]).sum() * phys.slot_h)
                if short > 0.5:
                    unmet.append(f"critical {zone.zone_id}: {short:.0f} Wh unserved")

    # The jobs are planned against the forecast's pessimistic side (pv_low_w, demand_high_w;
    # the forecast itself when not given): the higher tiers' on-slots at high demand and low PV.
    job_pv = pv if inp.pv_low_w is None else np.minimum(pv, np.asarray(inp.pv_low_w, float))
    job_fixed = fixed_load
    if inp.demand_high_w:
        job_fixed = np.zeros(n_slots)
        for zone in inp.zones:
            if zone.priority is PriorityClass.DEFERRABLE:
                continue
            row = np.asarray(inp.demand_high_w.get(zone.zone_id, demand[zone.zone_id]), float)
            job_fixed += zone_on[zone.zone_id] * np.maximum(row, demand[zone.zone_id])
    job_floor_end = floor_end.copy()
    job_floor_end[-1] = _end_floor_wh(
        floor_end[-1], end_wh, fixed_load_w=job_fixed, pv_w=job_pv, energy0_wh=energy0, phys=phys
    )
    floor_end[-1] = _end_floor_wh(
        floor_end[-1], end_wh, fixed_load_w=fixed_load, pv_w=pv, energy0_wh=energy0, phys=phys
    )
    job_plans, job_load, job_floor = _plan_jobs(
        inp,
        phys=phys,
        pv=job_pv,
        energy0=energy0,
        fixed_load=job_fixed,
        floor_end=job_floor_end,
        zone_on=zone_on,
    )
    fixed_load = fixed_load + job_load
    floor_end = np.maximum(floor_end, job_floor)
    served[PriorityClass.DEFERRABLE] = sum(j.planned_wh for j in job_plans)
    wanted[PriorityClass.DEFERRABLE] = sum(j.energy_wh for j in job_plans)
    unmet.extend(
        f"job {j.job_id}: {j.planned_wh:.0f}/{j.energy_wh:.0f} Wh planned"
        for j in job_plans
        if not j.complete
    )
    energy = simulate_energy_wh(fixed_load, pv, energy0, phys)
    switches = count_switches(zone_on, relay_on)
    objective = sum(CLASS_WEIGHT_PER_WH[c] * served[c] for c in CLASS_ORDER)
    slot_start = tuple(inp.now + k * inp.slot for k in range(n_slots))
    job_starts: dict[str, datetime | None] = {}
    for job in job_plans:
        if job_starts.get(job.zone_id) is None:
            job_starts[job.zone_id] = job.start
    return Plan(
        slot_start=slot_start,
        zone_on={zone_id: tuple(bool(x) for x in states) for zone_id, states in zone_on.items()},
        soc_pct=tuple(float(x) for x in np.clip(energy / phys.capacity_wh * 100.0, 0.0, 100.0)),
        served_wh=served,
        unserved_wh={c: max(0.0, wanted[c] - served[c]) for c in CLASS_ORDER},
        job_starts=job_starts,
        jobs=tuple(job_plans),
        unmet=tuple(unmet),
        objective=objective - inp.switch_cost * switches,
        switches=switches,
        slot_minutes=inp.slot_minutes,
        demand_w={
            zone.zone_id: tuple(float(w) for w in inp.zone_demand_w(zone)[:n_slots])
            for zone in inp.zones
            if zone.priority is not PriorityClass.DEFERRABLE
        },
    )


def _plan_jobs(
    inp: PlanInput,
    *,
    phys: Physics,
    pv: np.ndarray,
    energy0: float,
    fixed_load: np.ndarray,
    floor_end: np.ndarray,
    zone_on: dict[str, np.ndarray],
) -> tuple[list[JobPlan], np.ndarray, np.ndarray]:
    """Deferrable jobs one at a time, earliest deadline first, each on what the others left."""
    n_slots = inp.horizon_slots
    by_id = {z.zone_id: z for z in inp.zones}
    job_load = np.zeros(n_slots)
    job_floor = np.zeros(n_slots)
    plans: list[JobPlan] = []
    for job in sorted(inp.jobs, key=lambda j: (j.deadline, j.earliest, j.name)):
        zone = by_id[job.zone_id]
        reserve_wh = inp.battery.reserve.pct_for(zone.priority) / 100.0 * phys.capacity_wh
        shape = job_shape(job, zone, inp, zone_on[zone.zone_id])
        load = fixed_load + job_load
        floor = np.maximum(floor_end, job_floor)
        # A job never takes energy the tiers above need: where their floor is out of reach
        # (at a pessimistic forecast it may be), it may not lower the stored energy at all.
        target = np.minimum(
            min_end_energy_wh(load, floor, pv, phys), trajectory_wh(load, pv, energy0, phys)[1:]
        )
        runs = plan_job(
            shape=shape,
            reserve_wh=reserve_wh,
            fixed_load_w=load,
            target_wh=target,
            pv_w=pv,
            energy0_wh=energy0,
            phys=phys,
        )
        run_wh = shape.run_wh[: len(runs)]
        job_load[runs] += run_wh / phys.slot_h
        job_floor[runs] = np.maximum(job_floor[runs], reserve_wh)
        zone_on[zone.zone_id][runs] = True
        plans.append(
            JobPlan(
                job_id=job.name,
                zone_id=job.zone_id,
                start=inp.now + int(runs[0]) * inp.slot if len(runs) else None,
                slots=tuple(int(r) for r in runs),
                planned_wh=float(run_wh.sum()),
                energy_wh=job.energy_wh,
            )
        )
    return plans, job_load, job_floor
