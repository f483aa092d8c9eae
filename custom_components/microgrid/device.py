"""The device protocol: parse `sensors/<zone>` records, build signed `commands/<zone>`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import math
import reprlib
from typing import Any

import jwt

from .const import CLOCK_SKEW_TOLERANCE

# Physical plausibility bounds: a record outside them is rejected, not clamped.
MAX_VOLTAGE_V = 100.0
MAX_POWER_W = 100_000.0
# What a board may say it is doing (= sim.fleet MODE_REMOTE, MODE_FALLBACK).
BOARD_MODES = frozenset({"remote", "fallback"})
# An ISO-8601 timestamp is at most 32 characters; anything longer is not one.
MAX_TIMESTAMP_CHARS = 40
# Board text reaches logs and diagnostics only through this: a 200,000-character field must not.
_SHORT = reprlib.Repr(maxstring=40, maxother=40, maxlist=4, maxdict=4, maxlevel=2)
MAX_DETAIL_CHARS = 200


class InvalidReading(ValueError):
    """A board record that cannot be trusted; `reason` is a short machine key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        """Keep the reason key and a human detail for the log."""
        detail = detail[:MAX_DETAIL_CHARS]
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, kw_only=True, slots=True)
class BoardReading:
    """One parsed, validated record of one board (one zone)."""

    zone_id: str
    soc_pct: float
    battery_voltage_v: float | None
    input_power_w: float | None
    output_power_w: float
    solar_w: float | None
    relay_on: bool
    measured_at: datetime  # the board's own timestamp
    received_at: datetime  # when Home Assistant got it
    mode: str | None = None  # "remote" or "fallback" when the board says so


def _number(
    raw: dict[str, Any], key: str, *, required: bool, low: float, high: float
) -> float | None:
    """A finite number within [low, high] from the record, or None when optional and absent."""
    value = raw.get(key)
    if value is None:
        if required:
            raise InvalidReading("missing_field", key)
        return None
    # bool is an int subclass: `true` is not a voltage.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidReading("wrong_type", f"{key}={_SHORT.repr(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidReading("not_finite", f"{key}={value!r}")
    if not low <= number <= high:
        raise InvalidReading("out_of_range", f"{key}={number}")
    return number


def _timestamp(value: Any, received_at: datetime) -> datetime:
    """The record's timestamp, not ahead of `received_at` beyond the clock-skew tolerance."""
    measured_at = _parse_timestamp(value, received_at)
    if measured_at - received_at > CLOCK_SKEW_TOLERANCE:
        # A future stamp would keep a dead board looking fresh until that day.
        raise InvalidReading("future_timestamp", measured_at.isoformat())
    return measured_at


def _parse_timestamp(value: Any, received_at: datetime) -> datetime:
    """ISO-8601 text or epoch seconds (or milliseconds); absent means 'now'."""
    if value is None:
        return received_at
    if isinstance(value, bool):
        raise InvalidReading("wrong_type", f"timestamp={value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidReading("not_finite", "timestamp")
        # Boards without a clock source send milliseconds; both are accepted.
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as err:
            raise InvalidReading("bad_timestamp", repr(value)) from err
    if isinstance(value, str):
        if len(value) > MAX_TIMESTAMP_CHARS:
            raise InvalidReading("too_long", f"timestamp: {len(value)} characters")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise InvalidReading("bad_timestamp", _SHORT.repr(value)) from err
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise InvalidReading("wrong_type", f"timestamp={_SHORT.repr(value)}")


def _mode(value: Any) -> str | None:
    """The board's mode: absent (older firmware) or one of BOARD_MODES."""
    if value is None or (isinstance(value, str) and value in BOARD_MODES):
        return value
    raise InvalidReading("unknown_mode", _SHORT.repr(value))


def parse_board_record(zone_id: str, raw: Any, received_at: datetime) -> BoardReading:
    """Validate one `sensors/<zone>` record in the original ESP32 format."""
    if not isinstance(raw, dict):
        raise InvalidReading("not_an_object", type(raw).__name__)
    relay = raw.get("relayState")
    if relay is None:
        raise InvalidReading("missing_field", "relayState")
    if not isinstance(relay, bool):
        # Some firmwares send 0/1; anything else is rejected.
        if isinstance(relay, int) and relay in (0, 1):
            relay = bool(relay)
        else:
            raise InvalidReading("wrong_type", f"relayState={_SHORT.repr(relay)}")
    soc = _number(raw, "batteryPercentage", required=True, low=0.0, high=100.0)
    output = _number(raw, "outputPower", required=True, low=0.0, high=MAX_POWER_W)
    return BoardReading(
        zone_id=zone_id,
        soc_pct=soc,  # type: ignore[arg-type]
        battery_voltage_v=_number(
            raw, "batteryVoltage", required=False, low=0.0, high=MAX_VOLTAGE_V
        ),
        input_power_w=_number(raw, "inputPower", required=False, low=0.0, high=MAX_POWER_W),
        output_power_w=output,  # type: ignore[arg-type]
        solar_w=_number(raw, "solarGeneration", required=False, low=0.0, high=MAX_POWER_W),
        relay_on=relay,
        measured_at=_timestamp(raw.get("timestamp"), received_at),
        received_at=received_at,
        mode=_mode(raw.get("mode")),
    )


def build_command(
    *,
    zone_id: str,
    on: bool,
    seq: int,
    now: datetime,
    ttl: timedelta,
    reason: str,
    secret: str,
) -> dict[str, Any]:
    """A `commands/<zone>` record signed with HS256 over node, command, seq and expiry."""
    command = "ON" if on else "OFF"
    issued = int(now.timestamp())
    expires = int((now + ttl).timestamp())
    sig = jwt.encode(
        {"node": zone_id, "command": command, "seq": seq, "exp": expires, "iat": issued},
        secret,
        algorithm="HS256",
    )
    return {
        "command": command,
        "timestamp": issued,
        "seq": seq,
        "expires": expires,
        "reason": reason,
        "sig": sig,
    }
