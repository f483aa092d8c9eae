"""A board verifies commands, echoes its relay, and falls back when left alone (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
from unittest.mock import MagicMock

from hypothesis import given, settings, strategies as st
import jwt
import pytest

from custom_components.microgrid.device import build_command, parse_board_record
from sim.fleet import (
    MODE_FALLBACK,
    MODE_REMOTE,
    SEQ_SKEW_MS,
    SEQ_WINDOW_MS,
    Board,
    DatabaseTarget,
    Reject,
    fallback_relay,
    sensors_record,
)
from sim.physics import SiteState, ZoneSpec
from sim.site import DEMO_SITE

SECRET = "site-secret"
NOW_S = 1_706_356_200.0
ZONES = {z.zone_id: z for z in DEMO_SITE.zones}


def command(
    *,
    node: str = "Zone3",
    cmd: str = "OFF",
    seq: int = 1,
    expires: float = NOW_S + 120,
    secret: str = SECRET,
    **overrides,
) -> dict:
    """A signed command record as the integration writes it."""
    sig = jwt.encode(
        {"node": node, "command": cmd, "seq": seq, "exp": int(expires)}, secret, algorithm="HS256"
    )
    record = {
        "command": cmd,
        "timestamp": int(NOW_S),
        "seq": seq,
        "expires": int(expires),
        "reason": "optimizer",
        "sig": sig,
    }
    record.update(overrides)
    return record


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(soc_pct: float = 80.0) -> SiteState:
    """A site state at the given SoC."""
    return SiteState(
        at=datetime.fromtimestamp(NOW_S, UTC),
        soc_pct=soc_pct,
        battery_voltage_v=12.5,
        solar_w=300.0,
        solar_used_w=300.0,
        load_w=500.0,
        battery_power_w=-200.0,
        zone_load_w={"Zone3": 400.0},
    )


def board(
    zone: str = "Zone3",
    *,
    secret: str | None = SECRET,
    soc: list[float] | None = None,
    wall_s: float = NOW_S,
):
    """A board with fake clocks and a mock session (no I/O happens in these tests)."""
    soc_box = soc if soc is not None else [80.0]
    clock = FakeClock()
    b = Board(
        zone=ZONES[zone],
        site_state=lambda: state(soc_box[0]),
        session=MagicMock(),
        database_url="http://127.0.0.1:9000/?ns=demo",
        secret=secret,
        fallback_after_s=180,
        monotonic=clock,
        wall_time=lambda: wall_s,
    )
    return b, clock


def test_valid_command_is_applied() -> None:
    """A correctly signed command switches the relay and is counted."""
    b, _ = board()
    assert b.relay_on is True
    verdict = b.handle_command(command(cmd="OFF", seq=5))
    assert verdict.accepted and verdict.on is False
    assert b.relay_on is False and b.last_seq == 5 and b.accepted == 1
    assert b.record()["relayState"] is False
    assert b.record()["outputPower"] == 0.0


def test_integration_commands_verify() -> None:
    """What the integration's build_command writes, a board accepts."""
    b, _ = board()
    now = datetime.fromtimestamp(NOW_S, UTC)
    record = build_command(
        zone_id="Zone3",
        on=False,
        seq=1706356200000,
        now=now,
        ttl=timedelta(seconds=120),
        reason="optimizer",
        secret=SECRET,
    )
    assert b.handle_command(record).accepted
    assert b.relay_on is False


def test_board_clock_decides_expiry_not_iat() -> None:
    """An iat ahead of the board's clock (skew) is fine; only `expires` counts."""
    b, _ = board()
    record = build_command(
        zone_id="Zone3",
        on=False,
        seq=2,
        now=datetime.now(UTC) + timedelta(hours=1),  # iat ahead of every clock here
        ttl=timedelta(seconds=120),
        reason="optimizer",
        secret=SECRET,
    )
    assert b.handle_command(record).accepted


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (command(secret="forged"), Reject.BAD_SIGNATURE),
        (command(sig="not-a-jwt"), Reject.BAD_SIGNATURE),
        ({**command(), "sig": None}, Reject.BAD_SIGNATURE),
        (command(node="Zone1"), Reject.WRONG_NODE),
        ({**command(cmd="OFF"), "command": "ON"}, Reject.MISMATCH),
        ({**command(seq=3), "seq": 4}, Reject.MISMATCH),
        (
            {**command(), "expires": int(NOW_S) + 999},
            Reject.MISMATCH,
        ),
        (command(expires=NOW_S - 1), Reject.EXPIRED),
        ({"command": "TOGGLE"}, Reject.MALFORMED),
        ("ON", Reject.MALFORMED),
    ],
)
def test_bad_commands_are_rejected(record, reason: Reject) -> None:
    """Forged, foreign, tampered, expired and malformed commands change nothing."""
    b, _ = board()
    verdict = b.handle_command(record)
    assert verdict.reject is reason
    assert b.relay_on is True
    assert b.rejected[reason] == 1
    assert b.accepted == 0


def test_unsigned_jwt_alg_none_is_rejected() -> None:
    """A token with alg=none (no signature) is not accepted."""
    unsigned = jwt.encode(
        {"node": "Zone3", "command": "OFF", "seq": 1, "exp": int(NOW_S) + 60},
        key=None,
        algorithm="none",
    )
    b, _ = board()
    assert b.handle_command(command(sig=unsigned)).reject is Reject.BAD_SIGNATURE


def test_replay_rejected_duplicate_ignored() -> None:
    """An older or equal seq is a replay; the very same record again is a harmless duplicate."""
    b, _ = board()
    first = command(cmd="OFF", seq=10)
    assert b.handle_command(first).accepted
    assert b.handle_command(first).accepted  # duplicate (e.g. stream reconnect)
    assert b.duplicates == 1
    assert b.handle_command(command(cmd="ON", seq=9)).reject is Reject.REPLAY
    assert b.handle_command(command(cmd="ON", seq=10)).reject is Reject.REPLAY
    assert b.relay_on is False
    assert b.handle_command(command(cmd="ON", seq=11)).accepted
    assert b.relay_on is True


def integration_command(on: bool, seq: int) -> dict:
    """A command exactly as the integration writes it at NOW_S."""
    return build_command(
        zone_id="Zone3",
        on=on,
        seq=seq,
        now=datetime.fromtimestamp(NOW_S, UTC),
        ttl=timedelta(minutes=5),
        reason="optimizer",
        secret=SECRET,
    )


def test_far_future_seq_cannot_lock_out_the_integration() -> None:
    """A signed seq a month ahead is refused and counted without moving last_seq, so the
    integration's next command (seq = its clock in ms) is still accepted, not a replay."""
    b, _ = board()
    now_ms = int(NOW_S * 1000)
    assert b.handle_command(integration_command(False, now_ms)).accepted
    far = command(cmd="ON", seq=now_ms + 30 * 86_400_000)
    assert b.handle_command(far).reject is Reject.SEQ_WINDOW
    assert (b.last_seq, b.relay_on, b.rejected[Reject.SEQ_WINDOW]) == (now_ms, False, 1)
    assert b.handle_command(integration_command(True, now_ms + 5_000)).accepted
    assert b.relay_on is True


def test_seq_window_edges() -> None:
    """Up to the board's clock + skew is accepted, one more is not, and accepting the edge
    does not move it: seqs cannot climb a window at a time."""
    b, _ = board()
    ceiling = int(NOW_S * 1000) + SEQ_SKEW_MS
    assert b.handle_command(command(seq=ceiling + 1)).reject is Reject.SEQ_WINDOW
    assert b.last_seq is None  # refused before anything was accepted: still no last seq
    assert b.handle_command(command(seq=ceiling)).accepted
    assert b.handle_command(command(seq=ceiling + 1, cmd="ON")).reject is Reject.SEQ_WINDOW
    assert b.rejected[Reject.SEQ_WINDOW] == 2 and b.relay_on is False


def test_board_without_a_set_clock_bounds_seq_by_the_last_one() -> None:
    """Before SNTP (wall clock near 1970) only the last accepted seq bounds the window."""
    b, _ = board(wall_s=60.0)
    seq = int(NOW_S * 1000)
    assert b.handle_command(command(seq=seq)).accepted
    assert b.handle_command(command(seq=seq + SEQ_WINDOW_MS + 1)).reject is Reject.SEQ_WINDOW
    assert b.handle_command(command(seq=seq + SEQ_WINDOW_MS, cmd="ON")).accepted


def test_legacy_board_accepts_unsigned() -> None:
    """With no secret the board only reads `command`."""
    b, _ = board(secret=None)
    assert b.handle_command({"command": "OFF"}).accepted
    assert b.relay_on is False
    assert b.handle_command({"command": "ON", "sig": "garbage"}).accepted
    assert b.relay_on is True


@pytest.mark.parametrize(
    ("zone", "soc", "expected"),
    [
        ("Zone1", 2.0, True),
        ("Zone2", 12.0, True),
        ("Zone2", 9.0, False),
        ("Zone3", 25.0, True),
        ("Zone3", 15.0, False),
        ("Zone4", 19.9, False),
    ],
)
def test_fallback_after_silence(zone: str, soc: float, expected: bool) -> None:
    """No valid command for fallback_after_s: local safe state by class and SoC, reported."""
    soc_box = [soc]
    b, clock = board(zone, soc=soc_box)
    b.handle_command(command(node=zone, cmd="OFF" if expected else "ON", seq=1))
    clock.now += 179
    assert b.check_fallback() is False
    assert b.mode == MODE_REMOTE
    clock.now += 1
    assert b.check_fallback() is True
    assert b.relay_on is expected
    assert b.record()["mode"] == MODE_FALLBACK


def test_fallback_follows_soc_and_ends_on_command() -> None:
    """In fallback the relay tracks SoC; a valid command restores remote control."""
    soc_box = [30.0]
    b, clock = board("Zone3", soc=soc_box)
    clock.now += 500
    assert b.check_fallback() and b.relay_on is True
    soc_box[0] = 19.0
    b.check_fallback()
    assert b.relay_on is False
    rejected = b.handle_command(command(secret="forged"))
    assert not rejected.accepted and b.mode == MODE_FALLBACK
    assert b.handle_command(command(cmd="ON", seq=2)).accepted
    assert (b.mode, b.relay_on) == (MODE_REMOTE, True)
    assert b.check_fallback() is False


@settings(max_examples=50, deadline=None)
@given(soc=st.floats(0, 100), priority=st.sampled_from(list(ZONES[z].priority for z in ZONES)))
def test_fallback_rule_properties(soc: float, priority: str) -> None:
    """Critical is always on; for the others, more charge never turns a relay off."""
    if priority == "critical":
        assert fallback_relay(priority, soc)
    if fallback_relay(priority, soc):
        assert fallback_relay(priority, min(100.0, soc + 1))


def test_record_format_parses_in_the_integration() -> None:
    """The sensors record has the original fields and passes the integration's parser."""
    record = sensors_record(
        state(85.2),
        zone_id="Zone3",
        relay_on=True,
        mode=MODE_REMOTE,
        at=datetime(2025, 1, 27, 10, 30, tzinfo=UTC),
    )
    assert set(record) == {
        "batteryVoltage",
        "inputPower",
        "outputPower",
        "solarGeneration",
        "batteryPercentage",
        "relayState",
        "timestamp",
        "mode",
    }
    assert record["timestamp"] == "2025-01-27T10:30:00Z"
    assert record["outputPower"] == 400.0
    reading = parse_board_record("Zone3", record, datetime(2025, 1, 27, 10, 30, 1, tzinfo=UTC))
    assert reading.relay_on is True and reading.soc_pct == pytest.approx(85.2)


def test_database_target() -> None:
    """Emulator URLs keep ns; the token goes in ?auth=; junk URLs are refused."""
    target = DatabaseTarget.parse("http://127.0.0.1:9000/?ns=demo", "owner")
    assert target.url("/sensors/Zone1") == "http://127.0.0.1:9000/sensors/Zone1.json"
    assert dict(target.params) == {"ns": "demo", "auth": "owner"}
    assert dict(DatabaseTarget.parse("https://x.firebaseio.com", None).params) == {}
    with pytest.raises(ValueError):
        DatabaseTarget.parse("ftp://nope", None)


def test_board_validation() -> None:
    """Unknown classes and non-positive intervals are refused."""
    bad = ZoneSpec(zone_id="Z", name="z", priority="vip", rated_w=1)
    with pytest.raises(ValueError):
        Board(zone=bad, site_state=state, session=MagicMock(), database_url="http://127.0.0.1:1")
    with pytest.raises(ValueError):
        Board(
            zone=ZONES["Zone1"],
            site_state=state,
            session=MagicMock(),
            database_url="http://127.0.0.1:1",
            report_interval_s=0,
        )


async def test_stuck_relay_acks_but_never_switches() -> None:
    """A welded relay: commands verify and are counted, the relay (and fallback) stay put."""
    b, clock = board()
    b.set_fault("stuck")
    assert b.handle_command(command(cmd="OFF", seq=1)).accepted
    assert b.relay_on is True and b.accepted == 1
    clock.now += 1000
    b.check_fallback()
    assert b.relay_on is True


async def test_offline_board_is_silent_and_catches_up() -> None:
    """Offline: no report leaves the board; back online it applies the pending command."""
    b, _ = board()
    b.set_fault("offline")
    assert await b.report() is False
    b._on_data_event("put", json.dumps({"path": "/", "data": command(cmd="OFF", seq=3)}))
    assert b.relay_on is True and b.accepted == 0
    b.set_fault(None)
    assert b.relay_on is False and b.last_seq == 3
    with pytest.raises(ValueError):
        b.set_fault("melted")
