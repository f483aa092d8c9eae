"""Command line: `python -m optimizer simulate SCENARIO.json [--forecast ...] [--policy ...]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from .simulate import FORECASTS, POLICIES, scenario_from_dict, simulate


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; prints one JSON object, or an error line and exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m optimizer")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="closed-loop simulation of a scenario file")
    sim.add_argument("scenario", type=Path)
    sim.add_argument("--forecast", choices=FORECASTS, default="persistence")
    sim.add_argument("--policy", choices=POLICIES, default="planner")
    sim.add_argument(
        "--replan-every",
        type=int,
        default=1,
        metavar="SLOTS",
        help="re-plan every N slots (default 1: every slot)",
    )
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.scenario.read_text(encoding="utf-8"))
        scenario = scenario_from_dict(data)
        if args.replan_every < 1:
            raise ValueError("--replan-every must be >= 1")
        result = simulate(
            scenario,
            forecast_kind=args.forecast,
            policy=args.policy,
            replan_every=args.replan_every,
        )
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
