"""Tests for the fusion of the shared battery across boards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import math

from hypothesis import given, strategies as st

from optimizer.fusion import BoardBattery, FusedBattery, FusionLimits, fuse, max_change_pct

NOW = datetime(2025, 1, 27, 20, 0, tzinfo=UTC)
LIMITS = FusionLimits(capacity_wh=5000.0, max_power_w=1200.0)


def boards(*socs: float, volts: float | None = 12.6) -> list[BoardBattery]:
    """Boards Zone1.. reporting these states of charge."""
    return [
        BoardBattery(board=f"Zone{i + 1}", soc_pct=soc, voltage_v=volts)
        for i, soc in enumerate(socs)
    ]


def previous(soc: float, *, ago_s: float = 5.0) -> FusedBattery:
    """A fused value from a few seconds ago."""
    return FusedBattery(
        soc_pct=soc, voltage_v=12.6, at=NOW - timedelta(seconds=ago_s), boards=("Zone1",)
    )


def test_no_board_no_value() -> None:
    """Nothing fresh (or only NaN): unknown, not a guess."""
    assert fuse([], previous(80), LIMITS, NOW) is None
    assert fuse(boards(math.nan), None, LIMITS, NOW) is None


def test_agreeing_boards_give_their_lower_median() -> None:
    """Boards within the agreement band: the lower median, every board used."""
    fused = fuse(boards(80.0, 81.0, 79.5, 80.5), previous(80), LIMITS, NOW)
    assert fused is not None
    assert fused.soc_pct == 80.0
    assert fused.boards == ("Zone1", "Zone2", "Zone3", "Zone4")
    assert fused.outliers == {}


def test_one_lying_board_is_outvoted_and_flagged() -> None:
    """5 % (or 1e-7 %) while three boards say 80 %: 80 %, the liar is an outlier."""
    for lie in (5.0, 1e-7, 100.0):
        fused = fuse(boards(lie, 80.0, 80.0, 80.0), previous(80), LIMITS, NOW)
        assert fused is not None
        assert fused.soc_pct == 80.0
        assert fused.outliers == {"Zone1": "soc_disagrees"}


def test_a_drop_the_boards_agree_on_passes_at_once() -> None:
    """The battery really fell (the boards agree): believed at once, however fast it fell."""
    fused = fuse(boards(8.0, 8.0, 8.0, 80.0), previous(80, ago_s=1.0), LIMITS, NOW)
    assert fused is not None
    assert fused.soc_pct == 8.0
    assert fused.outliers == {"Zone4": "soc_disagrees"}


def test_a_tie_goes_to_physics() -> None:
    """Two boards against two: the value the battery can have reached wins."""
    fused = fuse(boards(8.0, 8.0, 80.0, 80.0), previous(80, ago_s=5.0), LIMITS, NOW)
    assert fused is not None and fused.soc_pct == 80.0
    fused = fuse(boards(8.0, 80.0), previous(8, ago_s=5.0), LIMITS, NOW)
    assert fused is not None and fused.soc_pct == 8.0


def test_a_tie_without_history_takes_the_lower_value() -> None:
    """Nothing to judge by: the lower state of charge (shedding early is the safe side)."""
    fused = fuse(boards(30.0, 70.0), None, LIMITS, NOW)
    assert fused is not None and fused.soc_pct == 30.0


def test_a_lone_implausible_jump_is_believed_only_when_it_persists() -> None:
    """A single board jumping 80 -> 5 % is held at 80 % for confirm_s, then believed."""
    first = fuse(boards(5.0), previous(80), LIMITS, NOW)
    assert first is not None
    assert first.soc_pct == 80.0
    assert first.outliers == {"Zone1": "soc_implausible"}
    assert first.doubted_since == NOW
    later = NOW + timedelta(seconds=LIMITS.confirm_s - 1)
    held = fuse(boards(5.0), first, LIMITS, later)
    assert held is not None and held.soc_pct == 80.0 and held.doubted_since == NOW
    confirmed = fuse(boards(5.0), held, LIMITS, NOW + timedelta(seconds=LIMITS.confirm_s))
    assert confirmed is not None
    assert confirmed.soc_pct == 5.0
    assert confirmed.outliers == {}
    assert confirmed.doubted_since is None


def test_a_lone_plausible_change_passes() -> None:
    """A single board drifting within the physical rate is believed at once."""
    fused = fuse(boards(79.0), previous(80), LIMITS, NOW)
    assert fused is not None and fused.soc_pct == 79.0


def test_odd_voltage_is_flagged() -> None:
    """A board agreeing on SoC but 30 % off on voltage is flagged; the median voltage stands."""
    group = boards(80.0, 80.0, 80.0)
    group.append(BoardBattery(board="Zone4", soc_pct=80.0, voltage_v=8.0))
    fused = fuse(group, previous(80), LIMITS, NOW)
    assert fused is not None
    assert fused.voltage_v == 12.6
    assert fused.outliers == {"Zone4": "voltage_disagrees"}


def test_max_change_grows_with_time_and_power() -> None:
    """1,200 W on 5 kWh is 24 %/h: 0.4 points a minute, plus the slack."""
    assert math.isclose(max_change_pct(LIMITS, 60.0), 0.4 + LIMITS.slack_pct)
    assert max_change_pct(LIMITS, 0.0) == LIMITS.slack_pct
    assert max_change_pct(FusionLimits(capacity_wh=0.0, max_power_w=1.0), 1.0) == math.inf


socs = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


@given(honest=st.lists(socs, min_size=3, max_size=8), spread=st.floats(0, 4), lie=socs)
def test_property_one_liar_never_moves_the_value(
    honest: list[float], spread: float, lie: float
) -> None:
    """Three or more boards within the agreement band fix the value whatever one other says."""
    base = honest[0]
    agreed = [min(100.0, base + spread * (i % 2)) for i in range(len(honest))]
    with_liar = fuse(boards(*agreed, lie), None, LIMITS, NOW)
    without = fuse(boards(*agreed), None, LIMITS, NOW)
    assert with_liar is not None and without is not None
    if abs(lie - base) > LIMITS.agree_pct + spread:
        assert with_liar.soc_pct == without.soc_pct
        assert f"Zone{len(agreed) + 1}" in with_liar.outliers


@given(values=st.lists(socs, min_size=1, max_size=8), prev=st.none() | socs)
def test_property_value_is_one_a_board_reported_or_the_last(
    values: list[float], prev: float | None
) -> None:
    """The fused value is always a board's value or the held previous one, within 0-100 %."""
    last = previous(prev) if prev is not None else None
    fused = fuse(boards(*values), last, LIMITS, NOW)
    assert fused is not None
    assert fused.soc_pct in values or (last is not None and fused.soc_pct == last.soc_pct)
    assert 0.0 <= fused.soc_pct <= 100.0
