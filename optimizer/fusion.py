"""One battery, many boards: fuse the shared battery's state of charge and voltage.

Every board measures the same battery, so a board whose state of charge disagrees with the
others (a bad ADC, a lost calibration, a liar) must not set the site's band, while a change that
the boards agree on passes at once. The rules, in order:

1. consensus: the value most boards agree on (within `agree_pct`) wins, whatever the jump;
2. physics breaks ties: a value the battery cannot have reached since the last fused one, at
   its power limit, loses to one it can;
3. then the value nearest the last fused one, then the lower one (shedding early is the safe
   side);
4. a lone board that jumps implausibly is believed only after it kept saying so for
   `confirm_s` (a single-board site has no one to cross-check it with).

Boards that disagree with the fused value are outliers: their state of charge is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
import math
import statistics

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, kw_only=True, slots=True)
class BoardBattery:
    """What one board says of the shared battery."""

    board: str  # the zone id of the board
    soc_pct: float
    voltage_v: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class FusionLimits:
    """The physics and tolerances the fusion judges the boards with."""

    capacity_wh: float
    max_power_w: float  # the largest charge or discharge power the battery can see
    agree_pct: float = 5.0  # boards within this many points of each other agree
    slack_pct: float = 3.0  # measurement noise allowed on top of the physical rate
    voltage_tolerance: float = 0.1  # a voltage this far (relative) from the fused one disagrees
    confirm_s: float = 30.0  # a lone implausible jump is believed after this long


@dataclass(frozen=True, kw_only=True, slots=True)
class FusedBattery:
    """The site battery as the boards, taken together, see it."""

    soc_pct: float
    voltage_v: float | None
    at: datetime
    boards: tuple[str, ...]  # the boards whose state of charge was used
    outliers: dict[str, str] = field(default_factory=dict)  # board -> why it was ignored
    doubted_since: datetime | None = None  # a lone implausible value first seen then


def max_change_pct(limits: FusionLimits, dt_s: float) -> float:
    """The largest state-of-charge change the battery can make in dt_s, plus the noise slack."""
    if limits.capacity_wh <= 0 or not math.isfinite(limits.capacity_wh):
        return math.inf
    rate_pct_per_s = max(limits.max_power_w, 0.0) / limits.capacity_wh * 100 / SECONDS_PER_HOUR
    return rate_pct_per_s * max(dt_s, 0.0) + limits.slack_pct


def _plausible(
    soc: float, previous: FusedBattery | None, limits: FusionLimits, now: datetime
) -> bool:
    """True when the battery can have reached soc since the previous fused value."""
    if previous is None:
        return True
    dt_s = (now - previous.at).total_seconds()
    return abs(soc - previous.soc_pct) <= max_change_pct(limits, dt_s)


def _agreeing(
    boards: Sequence[BoardBattery], soc: float, limits: FusionLimits
) -> list[BoardBattery]:
    """The boards within agree_pct of soc."""
    return [b for b in boards if abs(b.soc_pct - soc) <= limits.agree_pct]


def _lower_median(values: Sequence[float]) -> float:
    """The median, the lower middle value when there are two (the safe side)."""
    return statistics.median_low(values)


def _pick(
    boards: Sequence[BoardBattery],
    previous: FusedBattery | None,
    limits: FusionLimits,
    now: datetime,
) -> list[BoardBattery]:
    """The largest group of agreeing boards, ties broken by physics, nearness, then lower."""

    def rank(board: BoardBattery) -> tuple[int, bool, float, float]:
        group = _agreeing(boards, board.soc_pct, limits)
        nearness = -abs(board.soc_pct - previous.soc_pct) if previous else 0.0
        return (
            len(group),
            _plausible(board.soc_pct, previous, limits, now),
            nearness,
            -board.soc_pct,
        )

    best = max(boards, key=rank)
    return _agreeing(boards, best.soc_pct, limits)


def _voltage(group: Sequence[BoardBattery]) -> float | None:
    """The median voltage of the agreeing boards that report one."""
    volts = [b.voltage_v for b in group if b.voltage_v is not None and math.isfinite(b.voltage_v)]
    return statistics.median(volts) if volts else None


def _outliers(
    boards: Sequence[BoardBattery],
    used: Sequence[BoardBattery],
    voltage_v: float | None,
    limits: FusionLimits,
) -> dict[str, str]:
    """Why each board not used, or used with an odd voltage, disagrees."""
    used_ids = {b.board for b in used}
    out: dict[str, str] = {}
    for board in boards:
        if board.board not in used_ids:
            out[board.board] = "soc_disagrees"
        elif (
            voltage_v is not None
            and board.voltage_v is not None
            and abs(board.voltage_v - voltage_v) > limits.voltage_tolerance * voltage_v
        ):
            out[board.board] = "voltage_disagrees"
    return out


def fuse(
    boards: Sequence[BoardBattery],
    previous: FusedBattery | None,
    limits: FusionLimits,
    now: datetime,
) -> FusedBattery | None:
    """The fused battery from the fresh boards' records; None when no board is fresh."""
    valid = [b for b in boards if math.isfinite(b.soc_pct)]
    if not valid:
        return None
    group = _pick(valid, previous, limits, now)
    soc = _lower_median([b.soc_pct for b in group])
    doubted_since = None
    if len(group) == 1 and previous is not None and not _plausible(soc, previous, limits, now):
        # One voice and an impossible jump: hold the last value until it persists.
        doubted_since = previous.doubted_since or now
        if (now - doubted_since).total_seconds() < limits.confirm_s:
            return FusedBattery(
                soc_pct=previous.soc_pct,
                voltage_v=previous.voltage_v,
                at=previous.at,
                boards=(),
                outliers={b.board: "soc_implausible" for b in valid},
                doubted_since=doubted_since,
            )
        doubted_since = None
    voltage = _voltage(group)
    return FusedBattery(
        soc_pct=soc,
        voltage_v=voltage,
        at=now,
        boards=tuple(sorted(b.board for b in group)),
        outliers=_outliers(valid, group, voltage, limits),
        doubted_since=doubted_since,
    )
