"""The device protocol: record validation and command signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import math

import jwt
import pytest

from custom_components.microgrid.device import (
    InvalidReading,
    build_command,
    parse_board_record,
)

NOW = datetime(2025, 1, 27, 10, 30, tzinfo=UTC)
SEED = {
    "batteryVoltage": 12.5,
    "inputPower": 45.2,
    "outputPower": 38.7,
    "solarGeneration": 25.3,
    "batteryPercentage": 85.2,
    "relayState": True,
    "timestamp": "2025-01-27T10:30:00Z",
}


def test_the_seed_record_parses() -> None:
    """The original README's example record is valid as it stands."""
    reading = parse_board_record("Zone1", SEED, NOW)
    assert reading.soc_pct == 85.2
    assert reading.output_power_w == 38.7
    assert reading.solar_w == 25.3
    assert reading.relay_on is True
    assert reading.measured_at == datetime(2025, 1, 27, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"batteryPercentage": None}, "missing_field"),
        ({"batteryPercentage": "85"}, "wrong_type"),
        ({"batteryPercentage": True}, "wrong_type"),
        ({"batteryPercentage": math.nan}, "not_finite"),
        ({"batteryPercentage": math.inf}, "not_finite"),
        ({"batteryPercentage": 100.5}, "out_of_range"),
        ({"outputPower": -1}, "out_of_range"),
        ({"batteryVoltage": 1e6}, "out_of_range"),
        ({"relayState": None}, "missing_field"),
        ({"relayState": "on"}, "wrong_type"),
        ({"relayState": 2}, "wrong_type"),
        ({"timestamp": "not a time"}, "bad_timestamp"),
        ({"timestamp": [2025]}, "wrong_type"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(change: dict, reason: str) -> None:
    """Each kind of bad field has its own reason key."""
    record = {k: v for k, v in {**SEED, **change}.items() if v is not None}
    with pytest.raises(InvalidReading) as err:
        parse_board_record("Zone1", record, NOW)
    assert err.value.reason == reason


HUGE = "x" * 200_000


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"mode": "REMOTE"}, "unknown_mode"),
        ({"mode": 1}, "unknown_mode"),
        ({"mode": HUGE}, "unknown_mode"),
        ({"timestamp": HUGE}, "too_long"),
        ({"timestamp": "2025-01-27T10:30:00Z" + " " * 30}, "too_long"),
        ({"timestamp": "9999-12-31T23:59:59Z"}, "future_timestamp"),
        ({"timestamp": 253402300799000}, "future_timestamp"),  # 9999-12-31 in ms
    ],
)
def test_untrusted_text_and_future_stamps_are_rejected(change: dict, reason: str) -> None:
    """Mode is enumerated, text is capped, and no stamp leads our clock by over 10 minutes;
    the rejection itself stays short enough for a log line and diagnostics."""
    with pytest.raises(InvalidReading) as err:
        parse_board_record("Zone1", {**SEED, **change}, NOW)
    assert err.value.reason == reason
    assert len(str(err.value)) < 250 and len(err.value.detail) < 250


def test_mode_is_one_of_the_two_board_modes() -> None:
    """`remote` and `fallback` parse, seed firmware sends none; any other mode is refused."""
    for mode in ("remote", "fallback"):
        assert parse_board_record("Zone1", {**SEED, "mode": mode}, NOW).mode == mode
    assert parse_board_record("Zone1", SEED, NOW).mode is None
    with pytest.raises(InvalidReading, match="unknown_mode"):
        parse_board_record("Zone1", {**SEED, "mode": "manual"}, NOW)


def test_clock_skew_tolerance_is_the_boundary() -> None:
    """A stamp 10 minutes ahead is kept as sent (a fast board clock); one second more is not."""
    ahead = parse_board_record("Zone1", {**SEED, "timestamp": "2025-01-27T10:40:00Z"}, NOW)
    assert ahead.measured_at == NOW + timedelta(minutes=10)
    with pytest.raises(InvalidReading, match="future_timestamp"):
        parse_board_record("Zone1", {**SEED, "timestamp": "2025-01-27T10:40:01Z"}, NOW)


def test_tolerated_variants() -> None:
    """0/1 relay states, epoch (ms) timestamps and absent optional fields are accepted."""
    record = {**SEED, "relayState": 0, "timestamp": 1737973800000}
    del record["batteryVoltage"]
    reading = parse_board_record("Zone1", record, NOW)
    assert reading.relay_on is False
    assert reading.battery_voltage_v is None
    assert reading.measured_at == datetime(2025, 1, 27, 10, 30, tzinfo=UTC)
    no_clock = {k: v for k, v in SEED.items() if k != "timestamp"}
    assert parse_board_record("Zone1", no_clock, NOW).measured_at == NOW


def test_command_signature_binds_every_field() -> None:
    """A board verifying `sig` sees node, command, seq and expiry; a changed field breaks it."""
    record = build_command(
        zone_id="Zone2",
        on=False,
        seq=42,
        now=NOW,
        ttl=timedelta(seconds=60),
        reason="battery_emergency",
        secret="s" * 32,
    )
    assert record["command"] == "OFF"
    assert record["expires"] - record["timestamp"] == 60
    claims = jwt.decode(
        record["sig"], "s" * 32, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert (claims["node"], claims["command"], claims["seq"], claims["exp"]) == (
        "Zone2",
        "OFF",
        42,
        record["expires"],
    )
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(record["sig"], "t" * 32, algorithms=["HS256"], options={"verify_exp": False})
