"""The fleet end to end against the in-process RTDB server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import jwt
import pytest

from custom_components.microgrid.device import parse_board_record
from sim.fleet import MODE_FALLBACK, Fleet, Reject
from sim.rtdb import RTDBServer

SECRET = "fleet-secret"
NOON = datetime(2025, 1, 27, 12, 0, tzinfo=UTC)


async def until(predicate: Callable[[], bool], wait_s: float = 5.0) -> None:
    """Wait for a condition the system under test makes true (fails the test on timeout)."""
    async with asyncio.timeout(wait_s):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


def signed(node: str, cmd: str, seq: int, ttl_s: int = 120, secret: str = SECRET) -> dict:
    """A command record signed like the integration signs it."""
    expires = int(datetime.now(UTC).timestamp()) + ttl_s
    sig = jwt.encode(
        {"node": node, "command": cmd, "seq": seq, "exp": expires}, secret, algorithm="HS256"
    )
    return {
        "command": cmd,
        "timestamp": expires - ttl_s,
        "seq": seq,
        "expires": expires,
        "reason": "test",
        "sig": sig,
    }


@pytest.fixture
async def server(socket_enabled: None) -> AsyncIterator[RTDBServer]:
    """A started server."""
    srv = RTDBServer()
    srv.keepalive_interval_s = 0.1
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def make_fleet(server: RTDBServer) -> AsyncIterator[Callable[..., Fleet]]:
    """Factory for started fleets; all are stopped after the test."""
    fleets: list[Fleet] = []

    async def _make(**kwargs) -> Fleet:
        options = {
            "database_url": server.database_url(),
            "secret": SECRET,
            "report_interval_s": 0.05,
            "tick_s": 0.05,
            "sim_start": NOON,
        } | kwargs
        fleet = Fleet(**options)
        fleets.append(fleet)
        await fleet.start()
        return fleet

    yield _make
    for fleet in fleets:
        await fleet.stop()


def relay(server: RTDBServer, node: str) -> bool | None:
    """The relayState a board last reported."""
    return server.get_value(f"sensors/{node}/relayState")


async def test_every_board_reports_the_original_format(server: RTDBServer, make_fleet) -> None:
    """Each zone's record appears, parses in the integration and carries the shared site."""
    fleet = await make_fleet(soc_pct=85.0)
    assert await fleet.wait_reported()
    assert set(server.get_value("sensors")) == {"Zone1", "Zone2", "Zone3", "Zone4"}
    records = server.get_value("sensors")
    for node, record in records.items():
        reading = parse_board_record(node, record, datetime.now(UTC))
        assert reading.relay_on is True
        assert record["mode"] == "remote"
        assert record["timestamp"].endswith("Z")
        assert abs(record["batteryPercentage"] - fleet.site.state.soc_pct) < 1.0
    # Noon: the sun shines; the pump (day load) draws, the street lights (night load) do not.
    assert records["Zone1"]["solarGeneration"] > 0
    assert records["Zone4"]["outputPower"] > 0
    assert records["Zone2"]["outputPower"] == 0


async def test_signed_command_applied_and_acknowledged(server: RTDBServer, make_fleet) -> None:
    """A valid command flips the relay and the board acks at once (no periodic report)."""
    fleet = await make_fleet(report_interval_s=60)
    await until(lambda: relay(server, "Zone3") is True)
    await until(lambda: fleet.boards["Zone3"].stream_connects == 1)
    server.set_value("commands/Zone3", signed("Zone3", "OFF", 1))
    await until(lambda: relay(server, "Zone3") is False)
    board = fleet.boards["Zone3"]
    await until(lambda: board.reports == 2)  # the server may see the PUT before the board's count
    assert board.accepted == 1
    assert server.get_value("sensors/Zone3/outputPower") == 0
    # The physics follows the relay at once: Zone3 no longer loads the site.
    assert fleet.site.state.zone_load_w["Zone3"] == 0
    # Switching back on: the ack already carries the zone's load (homes at noon: 30 % of 400 W).
    server.set_value("commands/Zone3", signed("Zone3", "ON", 2))
    await until(lambda: relay(server, "Zone3") is True)
    assert server.get_value("sensors/Zone3/outputPower") == pytest.approx(120.0)
    await until(lambda: board.reports == 3)


async def test_forged_and_foreign_commands_rejected(server: RTDBServer, make_fleet) -> None:
    """A forged signature and a command signed for another node change nothing."""
    fleet = await make_fleet()
    board = fleet.boards["Zone3"]
    await until(lambda: board.stream_connects == 1)
    server.set_value("commands/Zone3", signed("Zone3", "OFF", 1, secret="attacker"))
    await until(lambda: board.rejected[Reject.BAD_SIGNATURE] == 1)
    server.set_value("commands/Zone3", signed("Zone1", "OFF", 2))
    await until(lambda: board.rejected[Reject.WRONG_NODE] == 1)
    server.set_value("commands/Zone3", signed("Zone3", "OFF", 3, ttl_s=-10))
    await until(lambda: board.rejected[Reject.EXPIRED] == 1)
    assert board.relay_on is True and relay(server, "Zone3") is True


async def test_reconnects_after_drop_cancel_and_revoke(server: RTDBServer, make_fleet) -> None:
    """Dropped, cancelled and revoked streams are reopened and commands still land."""
    fleet = await make_fleet()
    board = fleet.boards["Zone2"]
    await until(lambda: board.stream_connects == 1)
    server.drop_streams()
    await until(lambda: board.stream_connects == 2)
    server.cancel_streams("commands/Zone2")
    await until(lambda: board.stream_connects == 3)
    server.revoke_token("owner")
    await until(lambda: board.stream_connects == 4)
    server.set_value("commands/Zone2", signed("Zone2", "OFF", 7))
    await until(lambda: relay(server, "Zone2") is False)
    # The reconnect snapshots re-delivered nothing new: no rejections, no double apply.
    assert board.accepted == 1 and not board.rejected


async def test_stalled_stream_is_abandoned(server: RTDBServer, make_fleet) -> None:
    """A stream that goes silent (no keep-alive) is dropped by the board's watchdog."""
    fleet = await make_fleet(stream_timeout_s=0.3)
    board = fleet.boards["Zone1"]
    await until(lambda: board.stream_connects == 1)
    server.stall_streams(30)
    await until(lambda: board.stream_connects == 2)


async def test_fallback_when_commands_stop(server: RTDBServer, make_fleet) -> None:
    """No valid command: boards report fallback and follow the local SoC thresholds."""
    fleet = await make_fleet(fallback_after_s=0.2, soc_pct=50.0)
    await until(
        lambda: all(
            server.get_value(f"sensors/Zone{i}/mode") == MODE_FALLBACK for i in (1, 2, 3, 4)
        )
    )
    assert all(relay(server, f"Zone{i}") for i in (1, 2, 3, 4))
    fleet.set_soc(15.0)
    await until(lambda: relay(server, "Zone3") is False and relay(server, "Zone4") is False)
    assert relay(server, "Zone1") is True and relay(server, "Zone2") is True
    fleet.set_soc(5.0)
    await until(lambda: relay(server, "Zone2") is False)
    assert relay(server, "Zone1") is True


async def test_write_failures_do_not_stop_the_board(server: RTDBServer, make_fleet) -> None:
    """Failed reports are counted and reporting carries on."""
    server.fail_next(6, 503)
    fleet = await make_fleet()
    board = fleet.boards["Zone1"]
    await until(lambda: board.report_errors >= 1 and board.reports >= 2)


async def test_legacy_fleet_accepts_unsigned(server: RTDBServer, make_fleet) -> None:
    """Without a secret boards obey the bare `command` field."""
    fleet = await make_fleet(secret=None)
    await until(lambda: fleet.boards["Zone4"].stream_connects == 1)
    server.set_value("commands/Zone4", {"command": "OFF"})
    await until(lambda: relay(server, "Zone4") is False)


async def test_speed_runs_the_physics_faster(server: RTDBServer, make_fleet) -> None:
    """At speed N the site's clock moves N times the wall time; SoC responds to the load."""
    fleet = await make_fleet(speed=36000.0, sim_start=datetime(2025, 1, 27, 0, 0, tzinfo=UTC))
    await until(lambda: fleet.site.state.at.hour >= 1)
    assert fleet.site.state.soc_pct < 80.0  # a night hour of load drained the battery
    summary = fleet.summary()
    assert set(summary["boards"]) == {"Zone1", "Zone2", "Zone3", "Zone4"}


def test_fleet_validation() -> None:
    """Bad speed, SoC or URL are refused before anything starts."""
    with pytest.raises(ValueError):
        Fleet(database_url="http://127.0.0.1:9/?ns=demo", speed=0)
    with pytest.raises(ValueError):
        Fleet(database_url="http://127.0.0.1:9/?ns=demo", soc_pct=120)
    with pytest.raises(ValueError):
        Fleet(database_url="not a url")


async def test_faults_offline_overload_and_time_jump(server: RTDBServer, make_fleet) -> None:
    """Site controls: a silent board, a doubled load, a jump to the evening."""
    fleet = await make_fleet(report_interval_s=0.05)
    await until(lambda: relay(server, "Zone4") is True)
    pump_w = server.get_value("sensors/Zone4/outputPower")
    assert pump_w > 0
    fleet.set_fault("Zone4", "overload")
    await until(lambda: server.get_value("sensors/Zone4/outputPower") == pytest.approx(2 * pump_w))
    fleet.set_fault("Zone4", None)
    fleet.set_fault("Zone3", "offline")
    zone1 = fleet.boards["Zone1"]
    reports = zone1.reports
    await until(lambda: zone1.reports >= reports + 2)  # a Zone3 PUT in flight has landed by now
    frozen = server.get_value("sensors/Zone3")
    reports = zone1.reports
    await until(lambda: zone1.reports >= reports + 3)  # the others carry on
    assert server.get_value("sensors/Zone3") == frozen
    fleet.set_sim_time(datetime(2025, 1, 27, 20, 0, tzinfo=UTC))
    await until(lambda: (server.get_value("sensors/Zone2/outputPower") or 0) > 0)
    assert server.get_value("sensors/Zone2/solarGeneration") == 0
    with pytest.raises(ValueError):
        fleet.set_fault("Zone9", "stuck")
