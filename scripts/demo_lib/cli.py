"""scripts/demo: the simulated site and a real Home Assistant, configured, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
import json
import os
from pathlib import Path
import re
import secrets
import signal
import socket
import sys
import time

import aiohttp

from . import forward, netns
from .configdir import TIME_ZONE, reset_dir, write_config_dir
from .ha_api import HAClient, HAError
from .procs import Child, Supervisor, log_tail
from .site_setup import (
    Credentials,
    add_household,
    add_microgrid_entry,
    configure_energy_dashboard,
    confirm_http_config,
    create_household_user,
    demo_site_spec,
    wait_for_zone_switches,
)

ROOT = Path(__file__).resolve().parents[2]
SIM_READY = re.compile(r"SIM READY (\S+)")
MIN_SECRET_LEN = 16  # the config flow refuses shorter HS256 secrets
DEFAULT_ADMIN = Credentials(username="admin", password="admin-demo-pass")
DEFAULT_HOUSEHOLD = Credentials(username="household", password="household-demo-pass")


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the command line asked for."""

    isolated: bool
    speed: float
    port: int
    sim_port: int
    soc_pct: float | None
    state_dir: Path
    integration_dir: Path
    database_url: str | None
    ready_timeout_s: float


class DemoError(Exception):
    """The demo could not come up; the message says why."""


def parse_args(argv: list[str]) -> Options:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Run the simulated microgrid site and a real Home Assistant on loopback.",
    )
    parser.add_argument(
        "--isolated",
        action="store_true",
        help="run everything in a loopback-only network namespace (unshare -n)",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated clock speed (N times real time)"
    )
    parser.add_argument("--port", type=int, default=8123, help="Home Assistant HTTP port")
    parser.add_argument("--sim-port", type=int, default=9000, help="simulated RTDB port")
    parser.add_argument(
        "--soc",
        type=float,
        default=None,
        dest="soc_pct",
        help="initial battery state of charge of the simulated site (%%); default: the sim's own",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=ROOT / ".demo",
        dest="state_dir",
        help="generated config and logs (wiped on every run)",
    )
    parser.add_argument(
        "--integration-dir",
        type=Path,
        default=ROOT / "custom_components" / "microgrid",
        help="integration to install (e.g. an unpacked release zip)",
    )
    parser.add_argument(
        "--database-url", default=None, help="use this RTDB instead of starting the simulated site"
    )
    parser.add_argument("--ready-timeout", type=float, default=180.0, dest="ready_timeout_s")
    ns = parser.parse_args(argv)
    if ns.isolated and ns.database_url:
        parser.error("--database-url cannot be reached from inside --isolated")
    if ns.speed <= 0:
        parser.error("--speed must be > 0")
    if ns.soc_pct is not None and not 0 <= ns.soc_pct <= 100:
        parser.error("--soc must be within 0..100")
    return Options(**{k: v for k, v in vars(ns).items()})


def credentials_from_env(env: dict[str, str]) -> tuple[Credentials, Credentials]:
    """Return (admin, household) logins from DEMO_* variables, defaults otherwise."""
    admin = Credentials(
        username=env.get("DEMO_ADMIN_USER") or DEFAULT_ADMIN.username,
        password=env.get("DEMO_ADMIN_PASSWORD") or DEFAULT_ADMIN.password,
    )
    household = Credentials(
        username=env.get("DEMO_HOUSEHOLD_USER") or DEFAULT_HOUSEHOLD.username,
        password=env.get("DEMO_HOUSEHOLD_PASSWORD") or DEFAULT_HOUSEHOLD.password,
    )
    if admin.username == household.username:
        raise DemoError("DEMO_ADMIN_USER and DEMO_HOUSEHOLD_USER must differ")
    return admin, household


def say(message: str) -> None:
    """Progress goes to stderr; stdout carries only READY and the credentials."""
    print(f"demo: {message}", file=sys.stderr, flush=True)


def port_free(port: int) -> bool:
    """Return whether 127.0.0.1:port can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def child_env(*, repo_importable: bool) -> dict[str, str]:
    """Environment for a child: nothing pointing at a real Firebase, no inherited PYTHONPATH."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FIREBASE_") and k != "PYTHONPATH"
    }
    # Home Assistant must import custom_components from its config dir, never from the repo.
    if repo_importable:
        env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def wait_for_sim(child: Child, *, timeout_s: float) -> str:
    """Wait for the sim's `SIM READY <url>` line; return the database URL."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (match := SIM_READY.search(child.log_path.read_text(errors="replace"))) is not None:
            return match.group(1)
        if not child.alive():
            raise DemoError(f"the simulated site exited:\n{log_tail(child.log_path)}")
        await asyncio.sleep(0.2)
    raise DemoError(f"the simulated site did not print SIM READY in {timeout_s:.0f} s")


def spawn_hass(opts: Options, sup: Supervisor, *, name: str = "hass") -> Child:
    """Start Home Assistant on the demo's config dir (again, after a kill, with another name)."""
    return sup.spawn(
        name,
        # --skip-pip: everything is pre-installed; HA must never reach for the network.
        [sys.executable, "-m", "homeassistant", "-c", str(opts.state_dir / "config"), "--skip-pip"],
        env=child_env(repo_importable=False),
        cwd=opts.state_dir,
    )


async def bring_up(
    opts: Options, sup: Supervisor, *, admin: Credentials, household: Credentials, secret: str
) -> None:
    """Start the site and Home Assistant, onboard, configure; return when READY."""
    started = time.monotonic()
    site = demo_site_spec()
    config_dir = opts.state_dir / "config"
    write_config_dir(config_dir, integration_src=opts.integration_dir, port=opts.port)
    py = sys.executable
    pids: dict[str, int] = {}
    database_url = opts.database_url
    if database_url is None:
        sim = sup.spawn(
            "sim",
            [
                py,
                "-m",
                "sim",
                "run",
                "--port",
                str(opts.sim_port),
                # one token: a random secret may start with "-" (token_urlsafe), which
                # argparse would take for an option
                f"--secret={secret}",
                "--speed",
                f"{opts.speed:g}",
                "--tz",
                TIME_ZONE,
                *(["--soc", f"{opts.soc_pct:g}"] if opts.soc_pct is not None else []),
            ],
            env=child_env(repo_importable=True),
            cwd=ROOT,
        )
        pids["sim"] = sim.pid
    hass = spawn_hass(opts, sup)
    pids["hass"] = hass.pid
    (opts.state_dir / "pids.json").write_text(json.dumps(pids))
    if database_url is None:
        database_url = await wait_for_sim(sim, timeout_s=60)
        say(f"simulated site up at {database_url}")

    base_url = f"http://127.0.0.1:{opts.port}"
    async with aiohttp.ClientSession() as session:
        client = HAClient(session, base_url)
        try:
            await client.wait_ready(timeout_s=opts.ready_timeout_s, alive=hass.alive)
        except HAError as err:
            raise DemoError(f"{err}:\n{log_tail(hass.log_path)}") from err
        say(f"Home Assistant answering after {time.monotonic() - started:.1f} s; onboarding")
        token = await client.onboard(name="Admin", username=admin.username, password=admin.password)
        async with client.websocket(token) as ws:
            await confirm_http_config(ws)
            household_id = await create_household_user(ws, name="Household", creds=household)
            say("adding the microgrid config entry")
            entry_id = await add_microgrid_entry(
                client, token, site=site, database_url=database_url, command_secret=secret
            )
            await add_household(
                client,
                token,
                entry_id=entry_id,
                name=site.household_name,
                member_ids=[household_id],
            )
            found = await wait_for_zone_switches(ws, count=len(site.zones), timeout_s=30)
            if found < len(site.zones):
                say(f"warning: only {found} of {len(site.zones)} zone switches report a state")
            try:
                await configure_energy_dashboard(ws)
            except HAError as err:
                say(f"warning: Energy dashboard not configured: {err}")
    say(f"ready after {time.monotonic() - started:.1f} s; logs in {sup.log_dir}")


def _error_lines(sup: Supervisor) -> str:
    """The ERROR lines of every child's log, for a failed bring-up."""
    out = []
    for child in sup.children:
        errors = [
            line for line in log_tail(child.log_path, lines=400).splitlines() if " ERROR " in line
        ]
        out += [f"[{child.name}] {line}" for line in errors[-8:]]
    return "\n".join(out)


def print_ready(opts: Options, *, admin: Credentials, household: Credentials, secret: str) -> None:
    """Print the READY line and the credentials on stdout."""
    lines = [
        f"READY http://127.0.0.1:{opts.port}",
        f"admin user: {admin.username}",
        f"admin password: {admin.password}",
        f"household user: {household.username}",
        f"household password: {household.password}",
        f"command secret: {secret}",
    ]
    if netns.in_namespace():
        lines.append(f"isolated: loopback-only network namespace of pid {os.getpid()}")
    print("\n".join(lines), flush=True)


async def run(opts: Options, *, listeners: dict[int, socket.socket] | None = None) -> int:
    """Bring the demo up, serve until a signal or a child's death, always tear down."""
    admin, household = credentials_from_env(dict(os.environ))
    secret = os.environ.get("DEMO_COMMAND_SECRET") or secrets.token_urlsafe(24)
    if len(secret) < MIN_SECRET_LEN:
        raise DemoError(f"DEMO_COMMAND_SECRET must have at least {MIN_SECRET_LEN} characters")
    busy = [
        p
        for p in (opts.port, None if opts.database_url else opts.sim_port)
        if p is not None and not port_free(p)
    ]
    if busy:
        raise DemoError(f"port(s) {busy} on 127.0.0.1 are in use (another demo running?)")
    reset_dir(opts.state_dir)
    sup = Supervisor(log_dir=opts.state_dir / "logs")
    # Host-side listeners (--isolated) piped to the same ports inside the namespace.
    servers = [await forward.serve_forward(sock, port) for port, sock in (listeners or {}).items()]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        up = asyncio.create_task(
            bring_up(opts, sup, admin=admin, household=household, secret=secret)
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({up, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not up.done():
            up.cancel()
            say("stopping")
            return 0
        try:
            up.result()
        except (HAError, aiohttp.ClientError) as err:
            raise DemoError(f"{err}\nlogs: {sup.log_dir}\n{_error_lines(sup)}") from err
        print_ready(opts, admin=admin, household=household, secret=secret)
        died = asyncio.create_task(sup.wait_any_exit())
        await asyncio.wait({died, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if died.done():
            child = died.result()
            say(f"{child.name} exited ({child.proc.returncode}):\n{log_tail(child.log_path)}")
            return 1
        died.cancel()
        say("stopping")
        return 0
    finally:
        for server in servers:
            server.close()
        sup.stop_all()
        say("all processes stopped")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; with --isolated first re-exec inside a loopback-only namespace."""
    args = sys.argv[1:] if argv is None else argv
    opts = parse_args(args)
    try:
        if opts.isolated and not netns.in_namespace():
            ports = [opts.port] + ([] if opts.database_url else [opts.sim_port])
            try:
                bound = forward.bind_listeners(ports)
            except OSError as err:
                raise DemoError(f"cannot listen on 127.0.0.1 port(s) {ports}: {err}") from err
            os.environ[forward.FORWARD_ENV] = forward.export_listeners(bound)
            netns.reexec_isolated(["-m", "demo_lib", *args])
        listeners = forward.import_listeners(os.environ.pop(forward.FORWARD_ENV, ""))
        if netns.in_namespace():
            netns.setup_loopback()
        return asyncio.run(run(opts, listeners=listeners))
    except (DemoError, HAError, RuntimeError, OSError) as err:
        say(f"failed: {err}")
        return 1
    except Exception as err:  # the children are already stopped; say what broke, briefly
        say(f"failed unexpectedly: {type(err).__name__}: {err}")
        return 1
