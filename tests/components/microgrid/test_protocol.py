"""The device protocol: record validation and command signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import math

import jwt
import pytest

from custom_components.microgrid.protocol import (
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
