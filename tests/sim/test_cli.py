"""`python -m sim`: ready line, site control, clean stop on SIGTERM, loopback only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import signal
import sys

import aiohttp
import pytest

from sim.cli import build_parser, main

OWNER = {"Authorization": "Bearer owner"}


async def _start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start the CLI and return it with the URL from its ready line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sim",
        "--log-level",
        "WARNING",
        *args,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        line = (await proc.stdout.readline()).decode().strip()
    assert line.startswith("SIM "), line
    return proc, line.rsplit(" ", 1)[1]


async def _stop(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM and wait for the exit status."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        return await proc.wait()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session."""
    async with aiohttp.ClientSession() as sess:
        yield sess


async def _sensors(session: aiohttp.ClientSession, base: str) -> dict:
    """Poll sensors.json until all four demo boards reported."""
    async with asyncio.timeout(20):
        while True:
            async with session.get(f"{base}/sensors.json?ns=demo", headers=OWNER) as resp:
                data = await resp.json()
            if data and len(data) == 4:
                return data
            await asyncio.sleep(0.05)


async def test_run_serves_the_demo_site(session: aiohttp.ClientSession) -> None:
    """`run` prints SIM READY once boards reported; site controls work; SIGTERM exits 0."""
    proc, db_url = await _start("run", "--port", "0", "--report-interval", "30", "--secret", "s")
    try:
        assert db_url.endswith("/?ns=demo")
        base = db_url.split("/?")[0]
        # READY means every board's first record is already in.
        async with session.get(f"{base}/sensors.json?ns=demo", headers=OWNER) as resp:
            assert set(await resp.json()) == {"Zone1", "Zone2", "Zone3", "Zone4"}
        async with session.post(
            f"{base}/.sim/site/soc", json={"soc_pct": 8}, headers=OWNER
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["result"]["soc_pct"] == 8
        async with session.post(f"{base}/.sim/site/soc", json={"soc_pct": 8}) as resp:
            assert resp.status == 401
        async with session.post(
            f"{base}/.sim/site/fault", json={"zone_id": "Zone3", "fault": "stuck"}, headers=OWNER
        ) as resp:
            assert (await resp.json())["result"]["boards"]["Zone3"]["fault"] == "stuck"
        async with session.post(
            f"{base}/.sim/site/time", json={"sim_time": "2025-01-27T20:00:00Z"}, headers=OWNER
        ) as resp:
            assert (await resp.json())["result"]["sim_time"].startswith("2025-01-27T20:00")
        async with session.post(
            f"{base}/.sim/site/time", json={"sim_time": "tea time"}, headers=OWNER
        ) as resp:
            assert resp.status == 400
        async with session.post(
            f"{base}/.sim/site/soc", json={"soc_pct": 300}, headers=OWNER
        ) as resp:
            assert resp.status == 400
    finally:
        assert await _stop(proc) == 0


async def test_serve_and_fleet_as_two_processes(session: aiohttp.ClientSession) -> None:
    """`fleet` drives any RTDB URL, here a separate `serve`."""
    server, db_url = await _start("serve", "--port", "0")
    fleet = None
    try:
        fleet, _ = await _start("fleet", "--database-url", db_url, "--report-interval", "0.1")
        data = await _sensors(session, db_url.split("/?")[0])
        assert all(record["mode"] == "remote" for record in data.values())
    finally:
        if fleet is not None:
            assert await _stop(fleet) == 0
        assert await _stop(server) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--host", "0.0.0.0"],
        ["run", "--host", "192.168.1.2"],
        ["fleet", "--database-url", "https://prod.firebaseio.com"],
        ["run", "--soc", "120"],
        ["run", "--speed", "0"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    """Non-loopback hosts and impossible numbers are refused by the parser."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_defaults() -> None:
    """Defaults match the demo: port 9000, speed 1, SoC 80 %."""
    args = build_parser().parse_args(["run"])
    assert (args.port, args.speed, args.soc, args.host) == (9000, 1.0, 80.0, "127.0.0.1")


def test_time_zone_option_drives_the_sites_local_time() -> None:
    """`--tz` gives the fleet's site model the demo's time zone; an unknown zone is refused."""
    import argparse
    from zoneinfo import ZoneInfo

    from sim.cli import _time_zone

    assert _time_zone("Africa/Nairobi") == ZoneInfo("Africa/Nairobi")
    with pytest.raises(argparse.ArgumentTypeError):
        _time_zone("Mars/Olympus_Mons")
