"""`python -m bench.faults`: the demo stack under link, load, data and process faults."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import aiohttp

from .figures import FAULTS, FaultReport, format_table, parse_only
from .scenarios import (
    EMERGENCY_PCT,
    LATER_AFTER_S,
    LATER_SOC,
    LOW_SOC,
    NORMAL_SOC,
    RUNNERS,
    Settings,
)
from .stack import ROOT, HAError, start_stack

PROG = "./scripts/py -m bench.faults"

METHOD = """\
How the figures are obtained (a benchmark: it prints figures, it never passes or fails):
- The stack is scripts/demo's own (demo_lib.cli.bring_up): `python -m sim run` (loopback RTDB +
  four simulated ESP32 boards reporting every 5 s) and a real Home Assistant, onboarded, the
  Microgrid entry added through its config flow. All of it runs in a loopback-only network
  namespace (this process re-executes itself under `unshare -n`; lo up, multicast route).
- The bench sets the entry's min on/off times to {relay_min:g} s through the options flow so a
  shed zone is back on within seconds between faults (the defaults are 300 s).
- Before each fault the site is restored: board faults cleared, SoC {normal:g} % (sim hook and
  one PATCH of every board's record), the stream sensor on (else the entry is reloaded), a new
  day plan (microgrid.optimize: a plan made during the last emergency would keep zones off), and
  every switch's desired_state equal to its board's relayState, no relay moving, for the min
  on/off time + 3 s.
- Then the fault is injected through the sim's hooks (POST /.sim/faults/...) and at once (t0) the
  emergency: POST /.sim/site/soc {{"soc_pct": {low:g}}} plus one PATCH setting every board's
  batteryPercentage to {low:g} with a fresh timestamp.
- "HA reflects": t0 until HA's battery sensor state is below {emergency:g}, stamped on arrival
  of the websocket `subscribe_entities` event (admin user). "A later reading": at
  t0+{later_after:g} s the same again with {later:g} %: does HA still get new readings once the
  fault has played out? "OFF commands": t0 until every non-critical zone that was on has
  command OFF at commands/<zone>, read with GET every 0.25 s over the RTDB REST API (token
  owner). "Clinic": sensors/<critical>.relayState and commands/<critical> on the same samples,
  and the switch states HA pushed over the websocket.
- Losses: the audit trail (microgrid.get_audit_log, limit 5000, over REST) and the energy
  sensors' states before the fault vs after it; the restart fault also compares the entry's
  diagnostics (HA's diagnostics REST API): energy_kwh, requests, overrides.
- burst: PATCH writes paced at the asked rate by 32 concurrent writers; every (rate/10)-th write
  is timed until HA first shows its value (or a later one); HTTP latency is a GET
  /api/states/<battery> sent every 0.5 s without waiting for the previous one; hass RSS is
  VmRSS of the hass process from /proc, sampled every second.
- fail_next: the one 503 goes to whichever data request reaches the server first (HA's resync
  read after the drop, or a board's); the bench's own polls start 2 s later. "Entities
  unavailable" (over the websocket) tells whether HA met it.
- outlier: band flips = changes of the band sensor's state; alerts = new states of the alert
  event entity (critical = its severity attribute); commands = new (zone, seq) in commands/.
- restart: SIGKILL to HA's process group, then HA started again on the same config dir.
- Times are monotonic seconds in this process; a 2-core machine shared with other work makes
  them noisy: run it twice before comparing figures.
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(FAULTS)}")
    parser.add_argument("--stall-seconds", type=float, default=100.0, dest="stall_s")
    parser.add_argument("--burst-seconds", type=float, default=60.0, dest="burst_s")
    parser.add_argument("--burst-rate", type=float, default=1000.0, help="writes per second")
    parser.add_argument(
        "--after-seconds",
        type=float,
        default=60.0,
        dest="after_s",
        help="burst: how long after the burst to wait for HA and read its memory",
    )
    parser.add_argument("--outlier-seconds", type=float, default=40.0, dest="outlier_s")
    parser.add_argument(
        "--timeout", type=float, default=120.0, dest="timeout_s", help="per-fault wait for HA"
    )
    parser.add_argument(
        "--relay-min-seconds",
        type=float,
        default=10.0,
        dest="relay_min_s",
        help="min on/off time set through the options flow",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--dir", type=Path, default=None, help="state dir (config, logs); default a new temp dir"
    )
    parser.add_argument(
        "--integration-dir", type=Path, default=ROOT / "custom_components" / "microgrid"
    )
    args = parser.parse_args(argv)
    try:
        args.faults = parse_only(args.only)
    except ValueError as err:
        parser.error(str(err))
    for name in ("stall_s", "burst_s", "burst_rate", "after_s", "outlier_s", "timeout_s"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_s', '-seconds').replace('_', '-')} must be > 0")
    return args


def say(message: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(f"bench.faults: {message}", file=sys.stderr, flush=True)


def header(argv: list[str], args: argparse.Namespace, state_dir: Path) -> str:
    """The command, the tree it ran on, and how the figures are obtained."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "custom_components"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    lines = [
        f"command: {PROG} {shlex.join(argv)}".rstrip(),
        f"run at: {datetime.now(UTC).isoformat(timespec='seconds')}; tree: {ROOT} @ {head[:90]}"
        + (" (integration has uncommitted changes)" if dirty else ""),
        f"integration: {args.integration_dir}; logs: {state_dir / 'logs'}",
        "",
        METHOD.format(
            relay_min=args.relay_min_s,
            normal=NORMAL_SOC,
            low=LOW_SOC,
            emergency=EMERGENCY_PCT,
            later=LATER_SOC,
            later_after=LATER_AFTER_S,
        ),
    ]
    return "\n".join(lines)


async def run(argv: list[str], args: argparse.Namespace) -> int:
    """Start the stack, run each fault, print each table as it completes, stop everything."""
    state_dir = args.dir or Path(tempfile.mkdtemp(prefix="bench-faults-"))
    print(header(argv, args, state_dir), flush=True)
    settings = Settings(
        stall_s=args.stall_s,
        burst_s=args.burst_s,
        burst_rate=args.burst_rate,
        after_s=args.after_s,
        outlier_s=args.outlier_s,
        timeout_s=args.timeout_s,
        report_s=5.0,
        relay_min_s=args.relay_min_s,
    )
    results: dict[str, object] = {"command": f"{PROG} {shlex.join(argv)}", "faults": {}}
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        say(f"starting the demo stack in {state_dir}")
        stack = await start_stack(
            session, state_dir=state_dir, integration_dir=args.integration_dir
        )
        try:
            await stack.login()
            options = await stack.set_options(min_on_s=args.relay_min_s, min_off_s=args.relay_min_s)
            say(f"stack up after {time.monotonic() - started:.0f} s; options {options}")
            await asyncio.sleep(3)  # the entry reloads after an options change
            await stack.login()
            ent = stack.ent
            print(
                f"entities: battery {ent.battery}, band {ent.band}, stream {ent.stream}, "
                f"alerts {ent.alerts}; zones {ent.priority}\n",
                flush=True,
            )
            budget = 600 + args.stall_s + args.burst_s + args.after_s + 2 * args.outlier_s
            for name in args.faults:
                say(f"fault {name}")
                t = time.monotonic()
                try:
                    report = await asyncio.wait_for(RUNNERS[name](stack, settings), budget)
                except (TimeoutError, HAError, aiohttp.ClientError, OSError) as err:
                    report = FaultReport(name, "did not complete")
                    report.add("error", f"{type(err).__name__}: {err}", "error", str(err))
                report.add(
                    "fault took", f"{time.monotonic() - t:.0f} s", "took_s", time.monotonic() - t
                )
                print(format_table(report) + "\n", flush=True)
                results["faults"][name] = {
                    "what": report.what,
                    **report.data,
                    "notes": report.notes,
                }  # type: ignore[index]
                if not stack.hass.alive():
                    say("Home Assistant died; stopping")
                    break
        finally:
            if stack.watcher is not None:
                await stack.watcher.stop()
            stack.sup.stop_all()
    total = time.monotonic() - started
    print(f"total: {total:.0f} s", flush=True)
    if args.json:
        results["total_s"] = total
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Re-exec inside a loopback-only namespace, then run."""
    from demo_lib import netns  # stack put scripts/ on the path

    args_list = sys.argv[1:] if argv is None else argv
    args = parse_args(args_list)
    if not netns.in_namespace():
        if shutil.which("unshare") is None or shutil.which("ip") is None:
            say("needs unshare (util-linux) and ip (iproute2)")
            return 1
        os.chdir(ROOT)  # `-m bench.faults` must import from the tree after the exec
        netns.reexec_isolated(["-m", "bench.faults", *args_list])
    netns.setup_loopback()
    try:
        return asyncio.run(run(args_list, args))
    except (HAError, RuntimeError, OSError) as err:
        say(f"failed: {err}")
        return 1
