"""The boards' records, energy counters and outlier flags, without Home Assistant running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.microgrid.const import STALE_AFTER
from custom_components.microgrid.control.energy import (
    MAX_INTEGRATION_GAP_S,
    SITE_CONSUMPTION,
    SITE_SOLAR,
    EnergyCounters,
    zone_key,
)
from custom_components.microgrid.control.outliers import OUTLIER_AFTER, OutlierTracker
from custom_components.microgrid.control.readings import BoardReadings, site_power
from custom_components.microgrid.device import parse_board_record
from custom_components.microgrid.optimizer.fusion import FusedBattery
from custom_components.microgrid.optimizer.model import PriorityClass, Thresholds, Zone
from custom_components.microgrid.site import SiteConfig
from tests.components.microgrid.conftest import board_record

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SITE = SiteConfig(
    site_name="Test",
    capacity_wh=5000,
    nominal_voltage_v=12,
    power_limit_w=1000,
    thresholds=Thresholds(),
    control_auto=True,
    zones=(
        Zone(zone_id="Zone1", name="Clinic", priority=PriorityClass.CRITICAL, rated_w=100),
        Zone(zone_id="Zone2", name="Homes", priority=PriorityClass.NON_CRITICAL, rated_w=300),
    ),
    zone_subentry={},
    households={},
)


def _boards() -> tuple[BoardReadings, EnergyCounters, list[int]]:
    saves: list[int] = []
    energy = EnergyCounters(lambda: saves.append(1))
    return BoardReadings(SITE, energy), energy, saves


def _feed(boards: BoardReadings, at: datetime, zone: str = "Zone1", **record: object) -> list:
    mirror = {zone: board_record(at=at, **record)}  # type: ignore[arg-type]
    return boards.ingest(at, mirror, {zone})


def test_zone_energy_is_the_trapezoid_between_records() -> None:
    """100 W then 300 W ten minutes apart is 200 W over 600 s = 33.3 Wh, saved."""
    boards, energy, saves = _boards()
    _feed(boards, T0, power=100.0)
    _feed(boards, T0 + timedelta(seconds=600), power=300.0)
    assert energy.total(zone_key("Zone1")) == pytest.approx(200 * 600 / 3_600_000)
    assert saves


def test_a_gap_longer_than_the_limit_adds_no_energy() -> None:
    """Across a gap the board's consumption is unknown, not the average of its ends."""
    boards, energy, _ = _boards()
    _feed(boards, T0, power=100.0)
    _feed(boards, T0 + timedelta(seconds=MAX_INTEGRATION_GAP_S + 1), power=100.0)
    assert energy.total(zone_key("Zone1")) == 0.0


def test_repeats_older_records_and_unknown_boards_are_not_taken() -> None:
    """The same record again, one older than the last, and a board without a zone change
    nothing; the unknown board is remembered once."""
    boards, _, _ = _boards()
    assert len(_feed(boards, T0 + timedelta(seconds=20), soc=70.0)) == 1
    assert _feed(boards, T0 + timedelta(seconds=20), soc=70.0) == []  # replayed
    assert _feed(boards, T0 + timedelta(seconds=10), soc=60.0) == []  # older
    assert boards.latest["Zone1"].soc_pct == 70.0
    assert _feed(boards, T0, zone="Ghost") == []
    assert _feed(boards, T0 + timedelta(seconds=1), zone="Ghost") == []
    assert boards.unknown_zones == {"Ghost"}


def test_bad_records_are_counted_and_kept_for_diagnostics() -> None:
    """A malformed record is rejected with its reason; the last good one stays."""
    boards, _, _ = _boards()
    _feed(boards, T0, soc=50.0)
    changed = boards.ingest(T0, {"Zone1": {"batteryPercentage": "low"}}, {"Zone1"})
    assert changed == []
    assert boards.latest["Zone1"].soc_pct == 50.0
    assert sum(boards.rejections.values()) == 1
    assert boards.recent_rejections[-1]["zone_id"] == "Zone1"


def test_a_board_goes_offline_when_its_record_is_stale() -> None:
    """Online within STALE_AFTER of its last record, offline after."""
    boards, _, _ = _boards()
    _feed(boards, T0)
    assert boards.is_online("Zone1", T0 + STALE_AFTER)
    assert not boards.is_online("Zone1", T0 + STALE_AFTER + timedelta(seconds=1))
    assert boards.live(T0 + STALE_AFTER + timedelta(seconds=1)) == {}
    assert not boards.is_online("Zone2", T0)


def test_site_power_skips_flagged_boards_for_pv() -> None:
    """PV comes from the freshest trusted board; the load sums every online board."""
    a = parse_board_record("Zone1", board_record(at=T0, solar=900.0, power=100.0), T0)
    later = T0 + timedelta(seconds=5)
    b = parse_board_record("Zone2", board_record(at=later, solar=50.0, power=200.0), later)
    live = {"Zone1": a, "Zone2": b}
    assert site_power(live, {}) == (50.0, 300.0)
    assert site_power(live, {"Zone2": "soc_disagrees"}) == (900.0, 300.0)
    assert site_power({}, {}) == (None, None)


def test_site_energy_integrates_solar_and_consumption() -> None:
    """Two site samples a minute apart; an unknown power breaks the integration."""
    energy = EnergyCounters(lambda: None)
    energy.integrate_site(T0, 600.0, 300.0)
    energy.integrate_site(T0 + timedelta(seconds=60), 600.0, 300.0)
    assert energy.total(SITE_SOLAR) == pytest.approx(0.01)
    assert energy.total(SITE_CONSUMPTION) == pytest.approx(0.005)
    energy.integrate_site(T0 + timedelta(seconds=120), None, 300.0)
    energy.integrate_site(T0 + timedelta(seconds=180), 600.0, 300.0)
    assert energy.total(SITE_SOLAR) == pytest.approx(0.01)


def test_restore_drops_non_finite_counters() -> None:
    """A corrupted saved counter does not come back."""
    energy = EnergyCounters(lambda: None)
    energy.restore({"zone:Zone1": 1.5, "zone:Zone2": float("nan")})
    assert energy.kwh == {"zone:Zone1": 1.5}


def test_an_outlier_needs_two_records_over_thirty_seconds() -> None:
    """One disagreeing record is no fault; two over OUTLIER_AFTER flag the board once;
    agreeing again unflags it."""
    tracker = OutlierTracker()
    disagree = FusedBattery(
        soc_pct=60.0, voltage_v=12.4, at=T0, boards=("Zone1",), outliers={"Zone2": "soc"}
    )
    first = parse_board_record("Zone2", board_record(at=T0, soc=5.0), T0)
    assert tracker.track(T0, disagree, {"Zone2": first}) == []
    assert tracker.track(T0 + timedelta(seconds=5), disagree, {"Zone2": first}) == []
    late = T0 + OUTLIER_AFTER
    second = parse_board_record("Zone2", board_record(at=late, soc=5.0), late)
    assert tracker.track(late, disagree, {"Zone2": second}) == [("Zone2", "soc", second)]
    assert tracker.track(late, disagree, {"Zone2": second}) == []  # flagged once
    assert tracker.flagged == {"Zone2": "soc"}
    agree = FusedBattery(soc_pct=60.0, voltage_v=12.4, at=late, boards=("Zone1", "Zone2"))
    tracker.track(late, agree, {"Zone2": second})
    assert tracker.flagged == {}
