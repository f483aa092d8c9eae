"""The planner's problem as an exact MILP solved by HiGHS (highspy): the benchmark's reference.

Same physics and rules as optimizer.planner: a zone on draws its forecast demand for the slot,
surplus PV charges the battery (capped by capacity and max charge), a class may be on only while
the SoC at the end of the slot stays at or above its reserve band, total load within the inverter
limit and the battery's discharge rating. The MILP is freer than the DP in two ways (it may
curtail PV at will and pick any subset of zones), so it is an upper bound for the DP.
Lexicographic: maximise critical Wh, then semi-critical, then non-critical, then deferrable Wh
minus the switching cost, each stage keeping the earlier optima.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import time

import highspy
import numpy as np
from scipy import sparse

from optimizer.model import PriorityClass
from optimizer.plan_model import CLASS_ORDER, CLASS_WEIGHT_PER_WH, PlanInput
from optimizer.planner import count_switches, job_shape

_KEEP_REL = 1e-6


@dataclass(frozen=True, kw_only=True, slots=True)
class MilpResult:
    """The MILP's plan and how the solve went."""

    zone_on: dict[str, np.ndarray]
    served_wh: dict[PriorityClass, float]
    switches: int
    objective: float
    seconds: float
    status: str  # "optimal" or what stopped a stage (e.g. "time limit")
    stages_solved: int  # lexicographic stages with a solution (4 when complete)
    # HiGHS's proven upper bound on each class's served Wh given the stages before it
    # (deferrable: none, its stage also carries the switching cost).
    bound_wh: dict[PriorityClass, float]
    build_seconds: float
    mip_gap: float
    soc_pct: np.ndarray


class _Builder:
    """Columns and rows collected as COO triplets."""

    def __init__(self) -> None:
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[bool] = []
        self.n_rows = 0
        self.rows_lo: list[np.ndarray] = []
        self.rows_hi: list[np.ndarray] = []
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def cols(self, n: int, lo, hi, integer: bool) -> np.ndarray:
        """Add n columns; returns their indices."""
        start = len(self.lower)
        self.lower.extend(np.broadcast_to(np.asarray(lo, dtype=float), (n,)).tolist())
        self.upper.extend(np.broadcast_to(np.asarray(hi, dtype=float), (n,)).tolist())
        self.integer.extend([integer] * n)
        return np.arange(start, start + n)

    def row(self, cols, vals, lo: float, hi: float) -> int:
        """Add one row lo <= sum(vals * x[cols]) <= hi."""
        cols = np.asarray(cols, dtype=np.int64).reshape(1, -1)
        vals = np.asarray(vals, dtype=float).reshape(1, -1)
        return int(self.rows(cols, vals, lo, hi)[0])

    def rows(self, cols: np.ndarray, vals: np.ndarray, lo, hi) -> np.ndarray:
        """Add m rows at once: cols and vals are (m, k); lo and hi scalars or (m,)."""
        m, k = cols.shape
        index = np.arange(self.n_rows, self.n_rows + m)
        self.n_rows += m
        self.rows_lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (m,)))
        self.rows_hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (m,)))
        self.r.append(np.repeat(index, k))
        self.c.append(cols.reshape(-1).astype(np.int64))
        self.v.append(vals.reshape(-1).astype(float))
        return index


def solve_milp(
    inp: PlanInput,
    *,
    time_limit_s: float = 60.0,
    threads: int = 1,
    end_energy_min_wh: float | None = None,
) -> MilpResult:
    """Solve the plan exactly (lexicographic by class) within a time limit for all stages.

    `end_energy_min_wh`: the stored energy the plan must leave at the horizon's end (None: free,
    so the plan drains to whatever the reserve bands allow).
    """
    started = time.perf_counter()
    bat = inp.battery
    n_slots, dt = inp.horizon_slots, inp.slot_h
    cap = bat.capacity_wh
    pv = np.asarray(inp.pv_w, dtype=float)
    b = _Builder()
    charge = b.cols(n_slots, 0.0, bat.max_charge_w, False)
    discharge = b.cols(n_slots, 0.0, bat.max_discharge_w, False)
    pv_used = b.cols(n_slots, 0.0, pv, False)
    energy = b.cols(n_slots, 0.0, cap, False)  # at the end of each slot
    load_terms: list[list[tuple[int, float]]] = [[] for _ in range(n_slots)]
    reserve_terms: list[tuple[int, int, float]] = []  # (slot, col, reserve Wh)
    served_terms: dict[PriorityClass, list[tuple[int, float]]] = {c: [] for c in CLASS_ORDER}
    switch_cols: list[int] = []
    on_cols: dict[str, np.ndarray] = {}
    for zone in inp.zones:
        if zone.priority is PriorityClass.DEFERRABLE:
            continue
        demand = np.asarray(inp.zone_demand_w(zone), dtype=float)
        on = b.cols(n_slots, 0.0, 1.0, True)
        on_cols[zone.zone_id] = on
        reserve_wh = bat.reserve.pct_for(zone.priority) / 100.0 * cap
        sw = b.cols(n_slots, 0.0, 1.0, False)
        switch_cols.extend(sw.tolist())
        was_on = 1.0 if inp.relay_on.get(zone.zone_id, False) else 0.0
        for t in range(n_slots):
            load_terms[t].append((int(on[t]), demand[t]))
            served_terms[zone.priority].append((int(on[t]), demand[t] * dt))
        if reserve_wh > 0:
            # E_end(t) >= reserve * on(t)
            b.rows(
                np.stack([energy, on], axis=1),
                np.tile([1.0, -reserve_wh], (n_slots, 1)),
                0.0,
                math.inf,
            )
        # sw(t) >= |on(t) - on(t-1)|, on(-1) = the relay now
        b.row([sw[0], on[0]], [1.0, -1.0], -was_on, math.inf)
        b.row([sw[0], on[0]], [1.0, 1.0], was_on, math.inf)
        if n_slots > 1:
            trio = np.stack([sw[1:], on[1:], on[:-1]], axis=1)
            b.rows(trio, np.tile([1.0, -1.0, 1.0], (n_slots - 1, 1)), 0.0, math.inf)
            b.rows(trio, np.tile([1.0, 1.0, -1.0], (n_slots - 1, 1)), 0.0, math.inf)
    by_id = {z.zone_id: z for z in inp.zones}
    running_by_zone: dict[str, list[list[int]]] = {}
    busy = np.zeros(n_slots, dtype=bool)
    for job in inp.jobs:
        zone = by_id[job.zone_id]
        shape = job_shape(job, zone, inp, busy)
        reserve_wh = bat.reserve.pct_for(zone.priority) / 100.0 * cap
        per_slot: list[list[tuple[int, float]]] = [[] for _ in range(n_slots)]  # (col, W)
        if job.splittable:
            allowed = np.flatnonzero(shape.allowed)
            x = b.cols(len(allowed), 0.0, 1.0, True)
            delivered = b.cols(1, 0.0, job.energy_wh, False)[0]
            served_terms[PriorityClass.DEFERRABLE].append((int(delivered), 1.0))
            b.row([delivered, *x], [1.0] + [-zone.rated_w * dt] * len(x), -math.inf, 0.0)
            for col, t in zip(x, allowed):
                per_slot[t].append((int(col), zone.rated_w))
        else:
            starts = np.flatnonzero(shape.start_slots)
            y = b.cols(len(starts), 0.0, 1.0, True)
            if len(y):
                b.row(y, [1.0] * len(y), -math.inf, 1.0)
            run_w = shape.run_wh / dt
            for col, s in zip(y, starts):
                served_terms[PriorityClass.DEFERRABLE].append((int(col), job.energy_wh))
                for k, power in enumerate(run_w):
                    per_slot[s + k].append((int(col), power))
        for t in range(n_slots):
            for col, power in per_slot[t]:
                load_terms[t].append((col, power))
                if reserve_wh > 0:
                    reserve_terms.append((t, col, reserve_wh))
            running_by_zone.setdefault(job.zone_id, [[] for _ in range(n_slots)])[t].extend(
                col for col, _ in per_slot[t]
            )
    for slots in running_by_zone.values():
        for cols in slots:
            if len(cols) > 1:
                b.row(cols, [1.0] * len(cols), -math.inf, 1.0)
    energy0 = bat.energy_wh
    for t in range(n_slots):
        loads = load_terms[t]
        b.row(
            [pv_used[t], discharge[t], charge[t], *(c for c, _ in loads)],
            [1.0, 1.0, -1.0, *(-w for _, w in loads)],
            0.0,
            0.0,
        )
        if loads:
            b.row([c for c, _ in loads], [w for _, w in loads], -math.inf, inp.inverter_limit_w)
        cols = [energy[t], charge[t], discharge[t]]
        vals = [1.0, -bat.charge_eff * dt, dt / bat.discharge_eff]
        if t == 0:
            b.row(cols, vals, energy0, energy0)
        else:
            b.row([*cols, energy[t - 1]], [*vals, -1.0], 0.0, 0.0)
    if end_energy_min_wh is not None:
        b.row([energy[n_slots - 1]], [1.0], min(end_energy_min_wh, cap), math.inf)
    for t, col, reserve_wh in reserve_terms:
        b.row([energy[t], col], [1.0, -reserve_wh], 0.0, math.inf)
    _force_critical(inp, b, on_cols, energy, pv)

    n_cols = len(b.lower)
    a = sparse.csc_matrix(
        (np.concatenate(b.v), (np.concatenate(b.r), np.concatenate(b.c))),
        shape=(b.n_rows, n_cols),
    )
    lp = highspy.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = b.n_rows
    lp.col_cost_ = np.zeros(n_cols)
    lp.col_lower_ = np.array(b.lower)
    lp.col_upper_ = np.array(b.upper)
    lp.row_lower_ = np.concatenate(b.rows_lo)
    lp.row_upper_ = np.concatenate(b.rows_hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in b.integer
    ]
    lp.sense_ = highspy.ObjSense.kMaximize
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", threads)
    h.setOptionValue("random_seed", 1)
    h.passModel(lp)
    build_seconds = time.perf_counter() - started

    stages: list[list[tuple[int, float]]] = [served_terms[c] for c in CLASS_ORDER]
    status = "optimal"
    gap = 0.0
    solution = np.zeros(n_cols)
    deadline = time.perf_counter() + time_limit_s  # the build does not count
    live = [i for i, terms in enumerate(stages) if terms or i == len(stages) - 1]
    bound: dict[PriorityClass, float] = {c: math.nan for c in CLASS_ORDER}
    solved_stages = 0
    for index, terms in enumerate(stages):
        if index not in live:
            continue
        cost = np.zeros(n_cols)
        for col, weight in terms:
            cost[col] += weight
        if index == len(stages) - 1:
            cost[switch_cols] -= inp.switch_cost
        h.changeColsCost(n_cols, np.arange(n_cols, dtype=np.int32), cost)
        # Each remaining stage gets an equal share of what is left of the time limit.
        stages_left = len([i for i in live if i >= index])
        share = (deadline - time.perf_counter()) / stages_left
        h.setOptionValue("time_limit", max(1.0, share))
        if solution.any():
            h.setSolution(_solution(solution))
        h.run()
        model_status = h.getModelStatus()
        info = h.getInfo()
        if model_status != highspy.HighsModelStatus.kOptimal:
            status = h.modelStatusToString(model_status).lower()
        if info.primal_solution_status != 2:  # no feasible point: keep the previous stage's
            status = f"{status}; no solution in stage {index + 1}"
            break
        solved_stages += 1
        solution = np.array(h.getSolution().col_value)
        if index < len(stages) - 1:
            proven = float(info.mip_dual_bound)
            bound[CLASS_ORDER[index]] = proven if math.isfinite(proven) else math.nan
        gap = max(gap, float(info.mip_gap) if math.isfinite(info.mip_gap) else 0.0)
        if index < len(stages) - 1 and terms:
            achieved = float(sum(solution[c] * w for c, w in terms))
            keep = achieved - max(1e-6, abs(achieved) * _KEEP_REL)
            cols_w: dict[int, float] = {}
            for col, weight in terms:
                cols_w[col] = cols_w.get(col, 0.0) + weight
            h.addRow(
                keep,
                math.inf,
                len(cols_w),
                np.array(list(cols_w), dtype=np.int32),
                np.array(list(cols_w.values())),
            )
    seconds = time.perf_counter() - started
    served = {c: float(sum(solution[col] * w for col, w in served_terms[c])) for c in CLASS_ORDER}
    zone_on = {zid: solution[cols] > 0.5 for zid, cols in on_cols.items()}
    for zone_id, slots in running_by_zone.items():
        zone_on[zone_id] = np.array([sum(solution[c] for c in cols) > 0.5 for cols in slots])
    switches = count_switches(zone_on, inp.relay_on)
    objective = sum(CLASS_WEIGHT_PER_WH[c] * served[c] for c in CLASS_ORDER)
    soc = np.concatenate(([energy0], solution[energy])) / cap * 100.0
    return MilpResult(
        zone_on=zone_on,
        served_wh=served,
        switches=switches,
        objective=objective - inp.switch_cost * switches,
        seconds=seconds,
        status=status,
        mip_gap=gap,
        soc_pct=soc,
        stages_solved=solved_stages if solution.any() else 0,
        build_seconds=build_seconds,
        bound_wh=bound,
    )


def _force_critical(
    inp: PlanInput, b: _Builder, on_cols, energy: np.ndarray, pv: np.ndarray
) -> None:
    """The policy's rule, as in the DP: at or above the emergency SoC every critical zone is on.

    on >= (E_start - E_emergency) / (capacity - E_emergency): any energy above the emergency
    level forces the binary to 1. Slots whose critical load alone breaks a power limit are exempt.
    """
    cap = inp.battery.capacity_wh
    emergency_wh = inp.emergency_pct / 100.0 * cap
    if emergency_wh >= cap:
        return
    critical = [z for z in inp.zones if z.priority is PriorityClass.CRITICAL]
    if not critical:
        return
    total = sum(np.asarray(inp.zone_demand_w(z), dtype=float) for z in critical)
    span = cap - emergency_wh
    fits = (total <= inp.inverter_limit_w) & (total - pv <= inp.battery.max_discharge_w)
    slots = np.flatnonzero(fits[1:]) + 1
    for zone in critical:
        on = on_cols[zone.zone_id]
        if fits[0] and inp.battery.energy_wh >= emergency_wh + 1e-9:
            b.row([on[0]], [1.0], 1.0, 1.0)
        if len(slots):
            # span * on(t) - E_end(t-1) >= -E_emergency
            b.rows(
                np.stack([on[slots], energy[slots - 1]], axis=1),
                np.tile([span, -1.0], (len(slots), 1)),
                -emergency_wh,
                math.inf,
            )


def _solution(values: np.ndarray) -> highspy.HighsSolution:
    """A HiGHS warm start from column values."""
    sol = highspy.HighsSolution()
    sol.col_value = values.tolist()
    sol.value_valid = True
    return sol
