"""The daily ledger: served from the counters, unserved while shed, bands, the day's turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.microgrid.control.ledger import DayLedger, DayReport, ZoneSample
from custom_components.microgrid.optimizer.model import Band, PriorityClass

T0 = datetime(2026, 6, 1, 22, 0, tzinfo=UTC)


def _zones(*, homes_on: bool, homes_reason: str) -> dict[str, ZoneSample]:
    return {
        "Zone1": ZoneSample(
            priority=PriorityClass.CRITICAL,
            household=None,
            relay_on=True,
            decided_on=True,
            reason="critical_always_on",
            expected_w=150.0,
        ),
        "Zone3": ZoneSample(
            priority=PriorityClass.NON_CRITICAL,
            household="Okafor",
            relay_on=homes_on,
            decided_on=homes_on,
            reason=homes_reason,
            expected_w=400.0,
        ),
        "Zone4": ZoneSample(
            priority=PriorityClass.DEFERRABLE,
            household=None,
            relay_on=False,
            decided_on=False,
            reason="battery_emergency",
            expected_w=300.0,
        ),
    }


def test_an_hour_shed_in_emergency_is_accounted() -> None:
    """Homes shed for an hour in the emergency band: 400 Wh unserved, 1 h shed; the clinic
    served what its counter says; the pump (deferrable) is not counted as unserved."""
    ledger = DayLedger(UTC)
    shed = _zones(homes_on=False, homes_reason="battery_emergency")
    counters = {"Zone1": 1000.0, "Zone3": 500.0}
    for minute in range(0, 61, 5):
        now = T0 + timedelta(minutes=minute)
        counters = {"Zone1": 1000.0 + 150.0 * minute / 60, "Zone3": 500.0}
        ledger.observe(
            now, soc_pct=9.0 - minute / 60, band=Band.EMERGENCY, zones=shed, served_wh=counters
        )
    today = ledger.report(T0.date())
    assert today is not None
    assert today.zones["Zone3"].unserved_wh == pytest.approx(400.0)
    assert today.zones["Zone3"].shed_h == pytest.approx(1.0)
    assert today.zones["Zone1"].served_wh == pytest.approx(150.0)
    assert today.zones["Zone1"].unserved_wh == 0.0
    assert today.zones["Zone4"].unserved_wh == 0.0
    assert today.band_h == {"emergency": pytest.approx(1.0)}
    assert today.min_soc_pct == pytest.approx(8.0)
    assert today.by_class()["non_critical"] == {"served_wh": 0.0, "unserved_wh": 400.0}
    assert today.by_household() == {"Okafor": {"served_wh": 0.0, "unserved_wh": 400.0}}
    assert set(today.for_household("Okafor").zones) == {"Zone3"}


def test_a_households_own_off_is_no_shortfall_and_gaps_are_not_counted() -> None:
    """Off by its own request: nothing unserved. A 20-minute silence is not accounted."""
    ledger = DayLedger(UTC)
    off = _zones(homes_on=False, homes_reason="household_request")
    for minutes in (0, 5, 25):
        ledger.observe(
            T0 + timedelta(minutes=minutes), soc_pct=50.0, band=Band.NORMAL, zones=off, served_wh={}
        )
    today = ledger.report(T0.date())
    assert today is not None
    assert today.zones["Zone3"].unserved_wh == 0.0
    assert today.observed_h == pytest.approx(5 / 60)


def test_the_local_day_turns_and_the_closed_report_survives_storage() -> None:
    """At local midnight the day is closed (the interval up to it included) and a new one starts."""
    ledger = DayLedger(UTC)
    shed = _zones(homes_on=False, homes_reason="power_budget")
    closed = None
    for minute in range(0, 130, 5):  # 22:00 .. 00:05
        now = T0 + timedelta(minutes=minute)
        closed = (
            ledger.observe(now, soc_pct=30.0, band=Band.NORMAL, zones=shed, served_wh={}) or closed
        )
    assert closed is not None and closed.day == T0.date()
    assert closed.zones["Zone3"].shed_h == pytest.approx(2.0)
    assert ledger.report() == closed
    assert ledger.today is not None and ledger.today.day == (T0 + timedelta(days=1)).date()
    assert DayReport.from_dict(closed.as_dict()).as_dict() == closed.as_dict()
