"""Run inside `unshare -n`: the demo stack, a power cut of Home Assistant (SIGKILL, no clean
stop) while the boards report, a restart, and what survived it; prints JSON last.

The pytest side (test_unclean_restart.py) runs this in a loopback-only namespace and asserts on
the JSON. It drives the same stack as `python -m bench.faults` (bench/faults/stack.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
import sys
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from demo_lib.netns import setup_loopback  # noqa: E402
from demo_lib.procs import log_tail  # noqa: E402

from bench.faults.stack import Stack, start_stack  # noqa: E402

# Longer than the coordinator's save delay (STATE_SAVE_DELAY_S, 30 s): everything known before
# this wait must be on disk when the power goes.
REPORTING_S = 40.0
OVERRIDE_ZONE = "Zone4"
HOUSEHOLD_ZONE = "Zone3"  # the demo's "Homes", whose household the demo user belongs to


async def action(stack: Stack, service: str, data: dict[str, Any]) -> Any:
    """A microgrid action with its response, as the admin."""
    result = await stack.ha(
        "POST",
        f"/api/services/microgrid/{service}?return_response",
        data | {"config_entry": stack.ent.entry_id},
    )
    return (result or {}).get("service_response")


async def kept(stack: Stack) -> dict[str, Any]:
    """What the site holds: the persisted coordinator state and the audit trail."""
    diag = await stack.diagnostics() or {}
    state = diag.get("state") or {}
    audit = await action(stack, "get_audit_log", {"limit": 5000}) or {}
    return {
        "energy_kwh": state.get("energy_kwh"),
        "requests": state.get("requests"),
        "overrides": sorted((state.get("overrides") or {}).keys()),
        "audit": [
            e.get("hash") or f"{e.get('at')} {e.get('action')}" for e in audit.get("entries", [])
        ],
    }


async def main_async(work: Path, integration_dir: Path) -> dict[str, Any]:
    """Start, cut the power, restart, compare; always return a result."""
    result: dict[str, Any] = {"ok": False, "error": None}
    state_dir = work / "stack"
    async with aiohttp.ClientSession() as session:
        stack: Stack | None = None
        try:
            stack = await start_stack(session, state_dir=state_dir, integration_dir=integration_dir)
            await stack.login()
            ent = stack.ent
            await action(
                stack,
                "override_zone",
                {
                    "zone": OVERRIDE_ZONE,
                    "state": "off",
                    "reason": "e2e: power cut",
                    "duration": "02:00:00",
                },
            )
            await stack.service(
                "switch",
                "turn_off",
                {"entity_id": ent.switches[HOUSEHOLD_ZONE]},
                token=stack.household_token,
            )
            before = await kept(stack)
            await asyncio.sleep(REPORTING_S)  # the fleet keeps reporting every few seconds
            result["before_kill"] = await kept(stack)
            times = await stack.kill_and_restart(timeout_s=180)
            result["restart"] = {k: v for k, v in times.items() if k != "killed_at"}
            await stack.login()
            await stack.watch.wait(ent.battery, bool, since=0, until=time.monotonic() + 60)
            result["before"] = before
            result["after"] = await kept(stack)
            result["verify"] = await action(stack, "verify_audit_log", {})
            result["ok"] = True
        except Exception as err:  # every failure must reach the JSON report
            result["error"] = f"{type(err).__name__}: {err}"
        finally:
            if stack is not None:
                if stack.watcher is not None:
                    await stack.watcher.stop()
                stack.sup.stop_all()
    result["logs"] = {
        p.name: log_tail(p, lines=60) for p in sorted((state_dir / "logs").glob("*.log"))
    }
    return result


def main() -> int:
    """Parse args, set up the namespace's loopback, run, print the JSON result last."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True, help="scratch dir (logs, config)")
    parser.add_argument("--integration-dir", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    setup_loopback()
    result = asyncio.run(main_async(args.work, args.integration_dir))
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
