"""Command line: `python -m sim serve|fleet|run` (loopback only)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
import logging
import signal
import sys
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .fleet import FALLBACK_AFTER_S, Fleet
from .rtdb import RTDBServer, is_loopback
from .site import DEMO_NAMESPACE, DEMO_SITE, DEMO_SOC_PCT

_LOGGER = logging.getLogger(__name__)


def _loopback_host(value: str) -> str:
    """argparse type: a loopback host."""
    if not is_loopback(value):
        raise argparse.ArgumentTypeError(f"only loopback hosts are allowed, not {value!r}")
    return value


def _loopback_url(value: str) -> str:
    """argparse type: a database URL on a loopback host."""
    host = urlsplit(value).hostname or ""
    if urlsplit(value).scheme not in ("http", "https") or not is_loopback(host):
        raise argparse.ArgumentTypeError(f"need an http URL on a loopback host, not {value!r}")
    return value


def _soc(value: str) -> float:
    """argparse type: a state of charge in [0, 100]."""
    soc = float(value)
    if not 0 <= soc <= 100:
        raise argparse.ArgumentTypeError("SoC must be within [0, 100]")
    return soc


def _positive(value: str) -> float:
    """argparse type: a positive number."""
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def _instant(value: str) -> datetime:
    """argparse type: an ISO-8601 instant (naive means UTC)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="the RTDB-compatible server only")
    serve.add_argument("--host", type=_loopback_host, default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9000)

    def fleet_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--secret", default=None, help="site command secret (none: legacy boards)")
        p.add_argument("--speed", type=_positive, default=1.0, help="simulated clock speed-up")
        p.add_argument("--soc", type=_soc, default=DEMO_SOC_PCT, help="initial SoC %%")
        p.add_argument("--report-interval", type=_positive, default=5.0, help="seconds")
        p.add_argument("--fallback-after", type=_positive, default=FALLBACK_AFTER_S, help="seconds")
        p.add_argument("--sim-start", type=_instant, default=None, help="simulated start instant")
        p.add_argument(
            "--tz", type=_time_zone, default=UTC, help="the site's time zone (sun and load shapes)"
        )

    fleet = sub.add_parser("fleet", help="the demo fleet against an RTDB URL")
    fleet.add_argument("--database-url", type=_loopback_url, required=True)
    fleet.add_argument("--token", default="owner")
    fleet_options(fleet)

    run = sub.add_parser("run", help="server and demo fleet in one process")
    run.add_argument("--host", type=_loopback_host, default="127.0.0.1")
    run.add_argument("--port", type=int, default=9000)
    fleet_options(run)
    return parser


def _time_zone(value: str) -> tzinfo:
    """An IANA time zone name."""
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"unknown time zone {value!r}") from err


def _fleet_from(args: argparse.Namespace, database_url: str, token: str) -> Fleet:
    """A Fleet configured from the parsed options."""
    return Fleet(
        database_url=database_url,
        token=token,
        secret=args.secret,
        speed=args.speed,
        soc_pct=args.soc,
        report_interval_s=args.report_interval,
        fallback_after_s=args.fallback_after,
        sim_start=args.sim_start,
        spec=replace(DEMO_SITE, tz=args.tz),
    )


def add_site_controls(server: RTDBServer, fleet: Fleet) -> None:
    """POST /.sim/site/{soc,fault,time,state} on the server (owner token)."""

    def set_soc(args: dict[str, Any]) -> dict[str, Any]:
        fleet.set_soc(float(args["soc_pct"]))
        return fleet.summary()

    def set_fault(args: dict[str, Any]) -> dict[str, Any]:
        fault = args.get("fault")
        fleet.set_fault(str(args["zone_id"]), None if fault is None else str(fault))
        return fleet.summary()

    def set_time(args: dict[str, Any]) -> dict[str, Any]:
        fleet.set_sim_time(_instant(str(args["sim_time"])))
        return fleet.summary()

    server.add_control("site/soc", set_soc)
    server.add_control("site/fault", set_fault)
    server.add_control("site/time", set_time)
    server.add_control("site/state", lambda args: fleet.summary())


async def _wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run(args: argparse.Namespace) -> None:
    """Start what the sub-command asks for, print the ready line, run until a signal."""
    server: RTDBServer | None = None
    fleet: Fleet | None = None
    try:
        if args.cmd in ("serve", "run"):
            server = RTDBServer(args.host, args.port)
            await server.start()
        if args.cmd == "fleet":
            fleet = _fleet_from(args, args.database_url, args.token)
            await fleet.start()
            if not await fleet.wait_reported():
                _LOGGER.warning("not every board could report yet; carrying on")
            print(f"SIM FLEET READY {args.database_url}", flush=True)
        elif server is not None:
            if args.cmd == "run":
                fleet = _fleet_from(args, server.database_url(DEMO_NAMESPACE), "owner")
                add_site_controls(server, fleet)
                await fleet.start()
                # Ready means the site is visible: every board's first record is in.
                await fleet.wait_reported()
            print(f"SIM READY {server.database_url(DEMO_NAMESPACE)}", flush=True)
        await _wait_for_signal()
    finally:
        if fleet is not None:
            await fleet.stop()
        if server is not None:
            await server.stop()
        _LOGGER.info("simulator stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(run(args))
    except OSError as err:
        print(f"sim: {err}", file=sys.stderr)
        return 1
    return 0
