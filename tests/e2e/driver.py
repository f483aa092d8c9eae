"""Run inside `unshare -n`: start scripts/demo, check it over HA's websocket API, print JSON.

The pytest side (test_demo_e2e.py) runs this under a loopback-only namespace and asserts on the
JSON it prints last. Every check records what it saw, so a failure reads without re-running.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
import importlib.metadata
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
import jwt
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from demo_lib.ha_api import HAClient, HAError, HAWebSocket  # noqa: E402
from demo_lib.netns import setup_loopback  # noqa: E402
from demo_lib.procs import die_with_parent, log_tail  # noqa: E402
from demo_lib.site_setup import zone_switch_map as zone_switches  # noqa: E402

HA_PORT = 8123
SIM_PORT = 9000
NS = "demo"
ADMIN = ("e2e-admin", "e2e-admin-pass-123")
HOUSEHOLD = ("e2e-villager", "e2e-villager-pass-123")
OUTSIDER = ("e2e-outsider", "e2e-outsider-pass-123")  # non-admin, in no household
SECRET = "e2e-command-secret-0123456789abcdef"
LOW_SOC_PCT = 8.0
SHED_TIMEOUT_S = 60.0
ONLINE_TIMEOUT_S = 45.0
UNWANTED = ("met", "radio_browser", "google_translate", "shopping_list")


def now_iso() -> str:
    """A board-style timestamp (UTC, seconds, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_demo(state_dir: Path, integration_dir: Path) -> subprocess.Popen[str]:
    """Start the demo as scripts/demo does (this venv is already bootstrapped), in this netns."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'scripts'}:{ROOT}",
        "DEMO_ADMIN_USER": ADMIN[0],
        "DEMO_ADMIN_PASSWORD": ADMIN[1],
        "DEMO_HOUSEHOLD_USER": HOUSEHOLD[0],
        "DEMO_HOUSEHOLD_PASSWORD": HOUSEHOLD[1],
        "DEMO_COMMAND_SECRET": SECRET,
    }
    return subprocess.Popen(
        # --isolated nests the demo's own namespace; we reach it through its host-side forwards.
        [
            sys.executable,
            "-m",
            "demo_lib",
            "--isolated",
            "--dir",
            str(state_dir),
            "--integration-dir",
            str(integration_dir),
            "--port",
            str(HA_PORT),
            "--sim-port",
            str(SIM_PORT),
        ],
        stdout=subprocess.PIPE,
        stderr=open(state_dir.parent / "demo.stderr", "w"),
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
        # A killed driver (pytest timeout) still tears the demo down; no threads exist yet.
        preexec_fn=die_with_parent,  # noqa: PLW1509
    )


async def read_ready(proc: subprocess.Popen[str], *, timeout_s: float) -> list[str]:
    """Read the demo's stdout up to READY and the credential lines after it."""
    assert proc.stdout is not None
    lines: list[str] = []
    loop = asyncio.get_running_loop()

    async def _read() -> None:
        while True:
            line = await loop.run_in_executor(None, proc.stdout.readline)
            if not line:
                raise RuntimeError(f"demo exited ({proc.wait()}) before READY")
            lines.append(line.rstrip("\n"))
            if lines[0].startswith("READY") and any(x.startswith("command secret") for x in lines):
                return

    await asyncio.wait_for(_read(), timeout_s)
    return lines


async def rtdb(session: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> Any:
    """Call the simulated RTDB's REST API as the emulator admin (`owner`)."""
    url = f"http://127.0.0.1:{SIM_PORT}/{path}.json"
    async with session.request(method, url, params={"ns": NS, "auth": "owner"}, json=body) as resp:
        resp.raise_for_status()
        return await resp.json(content_type=None)


async def switch_states(ws: HAWebSocket, switches: dict[str, str]) -> dict[str, str | None]:
    """Current state of each zone switch as `ws`'s user sees it."""
    states = {s["entity_id"]: s["state"] for s in await ws.call("get_states")}
    return {zone: states.get(entity) for zone, entity in switches.items()}


async def wait_until(predicate, *, timeout_s: float, poll_s: float = 0.5) -> tuple[bool, float]:
    """Poll an async predicate; return (met, seconds waited)."""
    started = time.monotonic()
    while True:
        if await predicate():
            return True, time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            return False, time.monotonic() - started
        await asyncio.sleep(poll_s)


async def checks(result: dict[str, Any], integration_dir: Path) -> None:
    """Every check against the running demo; fills `result`."""
    base = f"http://127.0.0.1:{HA_PORT}"
    async with aiohttp.ClientSession() as session:
        client = HAClient(session, base)
        admin_token = await client.login(username=ADMIN[0], password=ADMIN[1])
        household_token = await client.login(username=HOUSEHOLD[0], password=HOUSEHOLD[1])
        async with client.websocket(admin_token) as admin, client.websocket(household_token) as hh:
            # the demo confirmed its http: settings, so HA will not revert and restart in 5 min
            http_config = await admin.call("http/config")
            result["http_pending"] = http_config.get("pending")
            result["http_revert_at"] = http_config.get("revert_at")
            me = await hh.call("auth/current_user")
            result["household_is_admin"] = me["is_admin"]
            entries = await admin.call("config_entries/get")
            result["entries"] = sorted({(e["domain"], e["state"]) for e in entries})
            result["unwanted_entries"] = [e["domain"] for e in entries if e["domain"] in UNWANTED]
            manifest = await admin.call("manifest/get", integration="microgrid")
            result["loaded_version"] = manifest.get("version")
            result["loaded_is_built_in"] = manifest.get("is_built_in")
            result["zip_version"] = json.loads((integration_dir / "manifest.json").read_text())[
                "version"
            ]

            # The release proof: the integration from the unpacked zip offers its config flow.
            flow = await client.rest(
                "POST",
                "/api/config/config_entries/flow",
                token=admin_token,
                json={"handler": "microgrid"},
            )
            result["new_flow"] = {"type": flow.get("type"), "step_id": flow.get("step_id")}
            if flow.get("flow_id"):
                await client.rest(
                    "DELETE",
                    f"/api/config/config_entries/flow/{flow['flow_id']}",
                    token=admin_token,
                )

            energy = await admin.call("energy/get_prefs")
            result["energy_sources"] = [src["type"] for src in energy.get("energy_sources", [])]
            result["energy_devices"] = len(energy.get("device_consumption", []))

            switches = await zone_switches(admin)
            result["switches"] = switches
            hh_registry = await hh.call("config/entity_registry/list")
            result["household_switches"] = sorted(
                e["entity_id"]
                for e in hh_registry
                if e["platform"] == "microgrid" and e["entity_id"].startswith("switch.")
            )
            result["household_states_initial"] = await switch_states(hh, switches)

            async def zone1_on() -> bool:
                return (await switch_states(hh, switches)).get("Zone1") == "on"

            ok, _ = await wait_until(zone1_on, timeout_s=ONLINE_TIMEOUT_S)
            result["zone1_on_before"] = ok

            # A household may not switch the critical zone off.
            try:
                await hh.call(
                    "call_service",
                    domain="switch",
                    service="turn_off",
                    target={"entity_id": switches.get("Zone1", "switch.missing")},
                    return_response=False,
                )
                result["critical_off_error"] = None
            except HAError as err:
                result["critical_off_error"] = str(err)
            await asyncio.sleep(1)
            result["zone1_after_household_off"] = (await switch_states(hh, switches)).get("Zone1")
            cmd1 = await rtdb(session, "GET", "commands/Zone1")
            result["zone1_command_after_household_off"] = (cmd1 or {}).get("command")

            # Household wiring: a member may switch Zone3 (already on: a no-op), an outsider not.
            outsider = (
                await admin.call("config/auth/create", name="Outsider", group_ids=["system-users"])
            )["user"]
            await admin.call(
                "config/auth_provider/homeassistant/create",
                user_id=outsider["id"],
                username=OUTSIDER[0],
                password=OUTSIDER[1],
            )
            outsider_token = await client.login(username=OUTSIDER[0], password=OUTSIDER[1])
            for who, token in (("member", household_token), ("outsider", outsider_token)):
                async with client.websocket(token) as ws:
                    try:
                        await ws.call(
                            "call_service",
                            domain="switch",
                            service="turn_on",
                            target={"entity_id": switches.get("Zone3", "switch.missing")},
                            return_response=False,
                        )
                        result[f"zone3_on_by_{who}_error"] = None
                    except HAError as err:
                        result[f"zone3_on_by_{who}_error"] = str(err)

            # Low battery: the fleet reports 8 % from now on, and a reading lands right away.
            result["states_before_low"] = await switch_states(hh, switches)
            low_at = time.monotonic()
            try:
                async with session.post(
                    f"http://127.0.0.1:{SIM_PORT}/.sim/site/soc",
                    params={"ns": NS, "auth": "owner"},
                    json={"soc_pct": LOW_SOC_PCT},
                ) as resp:
                    result["soc_hook_status"] = resp.status
            except aiohttp.ClientError as err:
                result["soc_hook_status"] = str(err)
            for zone in switches:
                reading = await rtdb(session, "GET", f"sensors/{zone}") or {}
                reading.update(batteryPercentage=LOW_SOC_PCT, timestamp=now_iso())
                await rtdb(session, "PUT", f"sensors/{zone}", reading)

            async def shed() -> bool:
                states = await switch_states(hh, switches)
                commands = await rtdb(session, "GET", "commands") or {}
                result["states_after_low"] = states
                result["commands_after_low"] = {
                    z: (c or {}).get("command") for z, c in commands.items()
                }
                return (
                    states.get("Zone1") == "on"
                    and all(states.get(z) == "off" for z in ("Zone2", "Zone3", "Zone4"))
                    and all(
                        result["commands_after_low"].get(z) == "OFF"
                        for z in ("Zone2", "Zone3", "Zone4")
                    )
                    and result["commands_after_low"].get("Zone1") != "OFF"
                )

            result["shed"], _ = await wait_until(shed, timeout_s=SHED_TIMEOUT_S)
            result["shed_s"] = round(time.monotonic() - low_at, 3)  # from the first low write

            # In the emergency band the household cannot bring its own zone back.
            try:
                await hh.call(
                    "call_service",
                    domain="switch",
                    service="turn_on",
                    target={"entity_id": switches.get("Zone3", "switch.missing")},
                    return_response=False,
                )
                result["emergency_on_error"] = None
            except HAError as err:
                result["emergency_on_error"] = str(err)
            await asyncio.sleep(1)
            result["zone3_after_emergency_on"] = (await switch_states(hh, switches)).get("Zone3")
            cmd3 = await rtdb(session, "GET", "commands/Zone3")
            result["zone3_command_after_emergency_on"] = (cmd3 or {}).get("command")
            commands = await rtdb(session, "GET", "commands") or {}
            result["sig_valid"] = {}
            for zone, command in commands.items():
                try:
                    jwt.decode(
                        (command or {}).get("sig", ""),
                        SECRET,
                        algorithms=["HS256"],
                        options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
                    )
                    result["sig_valid"][zone] = True
                except jwt.PyJWTError as err:
                    result["sig_valid"][zone] = f"{type(err).__name__}: {err}"


def missing_requirements(integration_dir: Path) -> list[str]:
    """The manifest requirements the installed packages do not satisfy (HA must not pip)."""
    missing = []
    for req in json.loads((integration_dir / "manifest.json").read_text())["requirements"]:
        parsed = Requirement(req)
        try:
            installed = importlib.metadata.version(parsed.name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or not parsed.specifier.contains(installed, prereleases=True):
            missing.append(f"{req} (installed {installed})")
    return missing


def stop_demo(proc: subprocess.Popen[str], state_dir: Path, result: dict[str, Any]) -> None:
    """SIGTERM the demo; record its exit and whether any process it started survived."""
    started = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result["demo_exit"] = proc.returncode
    result["stop_s"] = round(time.monotonic() - started, 1)
    pids = (
        json.loads((state_dir / "pids.json").read_text())
        if (state_dir / "pids.json").exists()
        else {}
    )
    result["children"] = pids
    result["survivors"] = {name: pid for name, pid in pids.items() if _alive(pid)}


def log_lines(log_path: Path) -> list[str]:
    """Home Assistant's log, line by line ([] when it is missing)."""
    try:
        return log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def integration_errors(lines: list[str]) -> list[str]:
    """ERROR/CRITICAL lines the integration itself logged (refused service calls are HA's)."""
    return [
        line[:300]
        for line in lines
        if "[custom_components.microgrid" in line and (" ERROR " in line or " CRITICAL " in line)
    ]


def core_errors(lines: list[str]) -> list[str]:
    """ERROR/CRITICAL lines of Home Assistant itself and the libraries under it (a core
    integration that fails to set up, a missing binary); the integration's own are above."""
    return [
        line[:300]
        for line in lines
        if (" ERROR (" in line or " CRITICAL (" in line)
        and "[custom_components.microgrid" not in line
        # a websocket client's failed call is answered to it and logged here: the checks
        # provoke those on purpose (the household's refused switch calls)
        and "[homeassistant.components.websocket_api.http.connection]" not in line
    ]


def deprecation_reports(lines: list[str]) -> list[str]:
    """Home Assistant's reports that the integration uses something deprecated."""
    return [
        line[:400]
        for line in lines
        if re.search(r"will stop working|deprecated|will be removed", line, re.I)
        and re.search(r"\bmicrogrid\b", line)
    ]


def _alive(pid: int) -> bool:
    """Whether pid runs (zombies of reaped children do not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Start, check, stop; always return a result."""
    result: dict[str, Any] = {"ok": False, "error": None}
    state_dir = args.work / "demo"
    result["missing_requirements"] = missing_requirements(args.integration_dir)
    started = time.monotonic()
    proc = start_demo(state_dir, args.integration_dir)
    try:
        lines = await read_ready(proc, timeout_s=args.ready_timeout)
        result["ready_s"] = round(time.monotonic() - started, 1)
        result["stdout"] = lines
        await checks(result, args.integration_dir)
        result["ok"] = True
    except Exception as err:  # every failure must reach the JSON report
        result["error"] = f"{type(err).__name__}: {err}"
    finally:
        stop_demo(proc, state_dir, result)
        ha_log = state_dir / "config" / "home-assistant.log"
        lines = log_lines(ha_log)
        result["integration_errors"] = integration_errors(lines)
        result["core_errors"] = core_errors(lines)
        result["deprecations"] = deprecation_reports(lines)
        result["logs"] = {
            "demo.stderr": log_tail(args.work / "demo.stderr", lines=60),
            **{p.name: log_tail(p, lines=80) for p in sorted((state_dir / "logs").glob("*.log"))},
        }
    return result


def main() -> int:
    """Parse args, set up the namespace's loopback, run, print the JSON result last."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True, help="scratch dir (logs, config)")
    parser.add_argument("--integration-dir", type=Path, required=True)
    parser.add_argument("--ready-timeout", type=float, default=240.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    setup_loopback()
    result = asyncio.run(main_async(args))
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
