"""`python -m bench.optimizer`: the DP planner against the exact MILP (HiGHS) on real data.

Prints, per scenario: DP objective / MILP objective, per-class served energy of each (ratio),
relay switches, DP time / MILP time (same run), DP peak memory (tracemalloc), and the command to
reproduce it. Then the closed loop on the 24 h cases: planner with persistence forecasts vs the
threshold baseline, against the perfect-foresight MILP's critical service. Figures, not verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc

from bench.optimizer.milp import solve_milp
from bench.optimizer.scenarios import SUITE, SuiteCase, build_case
from optimizer.plan_model import CLASS_ORDER
from optimizer.planner import plan
from optimizer.simulate import scenario_to_dict, simulate

_SHORT = {"critical": "crit", "semi_critical": "semi", "non_critical": "non", "deferrable": "def"}


def _ratio(a: float, b: float) -> str:
    """a / b as text, '-' when b is zero."""
    if abs(b) < 1e-9:
        return "=" if abs(a) < 1e-9 else "inf"
    return f"{a / b:.4f}"


def _time_dp(case: SuiteCase, repeats: int) -> tuple[object, float, float]:
    """The plan, its median wall time (s) and its peak traced memory (MiB, separate run)."""
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = plan(case.plan_input)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    plan(case.plan_input)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, statistics.median(times), peak / 2**20


def run_case(case: SuiteCase, *, milp_seconds: float, repeats: int, with_milp: bool) -> dict:
    """Plan one case with the DP and the MILP and print the comparison."""
    dp, dp_s, dp_mib = _time_dp(case, repeats)
    print(
        f"\n== {case.name}: {case.n_zones} zones x {case.horizon_slots} slots, "
        f"battery {case.plan_input.battery.capacity_wh:.0f} Wh, "
        f"inverter {case.plan_input.inverter_limit_w:.0f} W"
    )
    print(
        f"   DP   : {dp_s * 1000:9.1f} ms (median of {repeats}), peak {dp_mib:.2f} MiB "
        f"(tracemalloc), switches {dp.switches}"
    )
    row = {"case": case.name, "dp_s": dp_s, "dp": dp}
    if with_milp:
        milp = solve_milp(case.plan_input, time_limit_s=milp_seconds)
        print(
            f"   MILP : {milp.seconds * 1000:9.1f} ms incl. {milp.build_seconds:.1f} s model "
            f"build ({milp.status}, worst stage gap {milp.mip_gap:.2g}, "
            f"{milp.stages_solved}/4 stages solved; limit {milp_seconds:.0f} s after the build), "
            f"switches {milp.switches}"
        )
        print(
            f"   objective DP/MILP {_ratio(dp.objective, milp.objective)}   "
            f"time DP/MILP {dp_s / milp.seconds * 100:.3f} %"
        )
        for cls in CLASS_ORDER:
            d, m = dp.served_wh[cls], milp.served_wh[cls]
            ub = milp.bound_wh[cls]
            proven = f"  bound {ub:10.1f}  DP/bound {_ratio(d, ub)}" if ub == ub else ""
            print(
                f"   {_SHORT[cls.value]:>4} served Wh  DP {d:10.1f}  MILP {m:10.1f}  "
                f"DP/MILP {_ratio(d, m)}{proven}"
            )
        row["milp"] = milp
    print(
        f"   reproduce: python -m bench.optimizer --case {case.name} "
        f"--milp-seconds {milp_seconds:g}"
    )
    return row


def _class_ordered_ceiling_wh(case: SuiteCase, milp_row: dict | None) -> float | None:
    """Most non-critical + deferrable energy any plan can serve without giving up critical or
    semi-critical energy: HiGHS's proven non-critical bound (conditional on the first two classes
    at their optimum) plus all the jobs' energy. None without a MILP run or a proven bound."""
    if milp_row is None or "milp" not in milp_row:
        return None
    bound = milp_row["milp"].bound_wh.get(CLASS_ORDER[2], float("nan"))
    if bound != bound:
        return None
    return bound + sum(job.energy_wh for job in case.plan_input.jobs)


def run_loop(case: SuiteCase, milp_row: dict | None, dump_dir: Path) -> None:
    """Closed loop over the case's simulated day: planner (persistence) vs threshold."""
    started = time.perf_counter()
    planner = simulate(case.scenario, forecast_kind="persistence", policy="planner")
    baseline = simulate(case.scenario, forecast_kind="persistence", policy="threshold")
    elapsed = time.perf_counter() - started

    def low(res: dict) -> float:
        return (
            res["classes"]["non_critical"]["served_wh"] + res["classes"]["deferrable"]["served_wh"]
        )

    milp_crit = "n/a"
    if milp_row is not None and "milp" in milp_row:
        want = milp_row["dp"].served_wh[CLASS_ORDER[0]] + milp_row["dp"].unserved_wh[CLASS_ORDER[0]]
        got = milp_row["milp"].served_wh[CLASS_ORDER[0]]
        milp_crit = f"{100 * got / want:.2f}" if want else "-"
    print(f"\n-- closed loop {case.name} (re-plan every slot, {elapsed:.0f} s for both runs)")
    for name, res in (("planner/persistence", planner), ("threshold", baseline)):
        print(
            f"   {name:20s} critical {res['critical_served_pct']}%  "
            f"semi {res['classes']['semi_critical']['served_pct']}%  "
            f"non+def {low(res):9.1f} Wh  jobs {res['deferrable_completed']}  "
            f"min/end SoC {res['min_soc_pct']:.1f}/{res['final_soc_pct']:.1f}%  switches "
            f"{sum(z['switches'] for z in res['zones'].values())}"
            + (
                f"  plan ms median {res['plan_ms']['median']} max {res['plan_ms']['max']}"
                if res["plan_ms"]
                else ""
            )
        )
    print(
        f"   perfect-foresight MILP critical served: {milp_crit}%   "
        f"non+def planner/threshold: {_ratio(low(planner), low(baseline))}"
    )
    ceiling = _class_ordered_ceiling_wh(case, milp_row)
    if ceiling is not None:
        print(
            f"   ceiling for any policy serving critical + semi-critical as the optimum does "
            f"(MILP proven non-critical bound + every job's energy): {ceiling:.1f} Wh = "
            f"{_ratio(ceiling, low(baseline))} x threshold's non+def"
        )
    dump_dir.mkdir(parents=True, exist_ok=True)
    path = dump_dir / f"{case.name}.json"
    path.write_text(json.dumps(scenario_to_dict(case.scenario)), encoding="utf-8")
    print(
        f"   reproduce: python -m optimizer simulate {path} --forecast persistence "
        "[--policy threshold]"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the suite."""
    parser = argparse.ArgumentParser(prog="python -m bench.optimizer")
    parser.add_argument("--case", default="", help="only cases whose name contains this")
    parser.add_argument(
        "--milp-seconds",
        type=float,
        default=30.0,
        help="HiGHS time limit per scenario, all stages (default 30)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="DP timing repeats (median)")
    parser.add_argument("--no-milp", action="store_true")
    parser.add_argument(
        "--loop", action="store_true", help="closed-loop runs (default: on when no --case is given)"
    )
    parser.add_argument("--no-loop", action="store_true")
    parser.add_argument(
        "--dump-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "microgrid-bench-optimizer",
        help="where the closed-loop scenarios are written as JSON",
    )
    args = parser.parse_args(argv)
    print(f"python -m bench.optimizer {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(
        f"cpus {os.cpu_count()}; HiGHS threads 1; MILP time limit {args.milp_seconds:g} s per "
        "scenario (a scenario that hits it reports the best plan found and its gap)"
    )
    started = time.perf_counter()
    rows = []
    for n_zones, horizon, day, sizing, in_loop in SUITE:
        case = build_case(n_zones=n_zones, horizon_slots=horizon, start_day=day, sizing=sizing)
        if args.case not in case.name:
            continue
        rows.append(
            (
                case,
                in_loop,
                run_case(
                    case,
                    milp_seconds=args.milp_seconds,
                    repeats=args.repeats,
                    with_milp=not args.no_milp,
                ),
            )
        )
    loop = (args.loop or not args.case) and not args.no_loop
    if loop:
        for case, in_loop, row in rows:
            if in_loop or args.loop:
                run_loop(case, row, args.dump_dir)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s, process peak RSS {peak_rss_mib:.0f} MiB "
        "(HiGHS's memory is native: only the process peak RSS covers it)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
