"""The measured history the persistence forecast reads: slot averages, two days kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import math

from custom_components.microgrid.optimizer.model import PriorityClass, Zone
from custom_components.microgrid.optimizer.sun import clear_sky_shape
from custom_components.microgrid.planning.history import HISTORY_SLOTS, SlotHistory


def test_clear_sky_fallback_and_persistence() -> None:
    """Without history the PV forecast is a clear-sky day; with yesterday's slot it persists."""
    lat, lon = 12.0, 0.0  # tropical, solar noon at 12:00 UTC
    night, noon = datetime(2025, 3, 1, 0, 0, tzinfo=UTC), datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert clear_sky_shape([night], lat, lon) == [0.0]
    assert clear_sky_shape([noon], lat, lon)[0] > 0.9
    zone = Zone(zone_id="Z", name="z", priority=PriorityClass.NON_CRITICAL, rated_w=100)
    history = SlotHistory()
    pv, demand = history.forecast(
        night, 288, zones=(zone,), latitude=lat, longitude=lon, pv_peak_prior_w=1000
    )
    assert pv[0] == 0.0 and 900 < pv[144] <= 1000  # slot 144 is noon
    assert set(demand["Z"]) == {100.0}
    # Yesterday at noon the array gave 420 W and the zone drew 150 W: that is the forecast now.
    history.add(noon, 420.0, {"Z": 150.0})
    pv, demand = history.forecast(
        noon + timedelta(days=1),
        2,
        zones=(zone,),
        latitude=lat,
        longitude=lon,
        pv_peak_prior_w=1000,
    )
    assert pv[0] == 420.0 and demand["Z"][0] == 150.0
    # and the peak learnt from it replaces the prior for slots without history
    assert 420.0 <= pv[1] < 1000
    # A slot where the zone was seen only while off takes its average draw while on so far
    # ((150 + 60) / 2 W), not its rating; one seen on at 60 W forecasts 60 W.
    later = noon + timedelta(minutes=5)
    history.add(later, 400.0, {})
    history.add(later + timedelta(minutes=5), 400.0, {"Z": 60.0})
    _, demand = history.forecast(
        later + timedelta(days=1),
        2,
        zones=(zone,),
        latitude=lat,
        longitude=lon,
        pv_peak_prior_w=1000,
    )
    assert demand["Z"] == (105.0, 60.0)
    # A fresh install: the zone has drawn 40 W for an hour, so slots with no yesterday forecast
    # 40 W rather than its 100 W rating (which would make a site look short of energy).
    fresh = SlotHistory()
    for minute in range(0, 60, 5):
        fresh.add(noon + timedelta(minutes=minute), 400.0, {"Z": 40.0})
    _, demand = fresh.forecast(
        noon + timedelta(hours=1),
        3,
        zones=(zone,),
        latitude=lat,
        longitude=lon,
        pv_peak_prior_w=1000,
    )
    assert demand["Z"] == (40.0, 40.0, 40.0)


def test_observed_series_have_gaps_where_nothing_was_heard() -> None:
    """One mean per slot from the oldest kept to the slot now; NaN where no reading came; a
    zone's draw only where its relay was seen on."""
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    history = SlotHistory()
    history.add(t0 + timedelta(minutes=1), 100.0, {"Z": 50.0})
    history.add(t0 + timedelta(minutes=2), None, {})  # no solar reading counts as 0 W
    history.add(t0 + timedelta(minutes=15), 300.0, {})
    observed = history.observed(t0 + timedelta(minutes=21))
    assert observed.start == t0 and observed.slot_minutes == 5
    nan_at = [i for i, v in enumerate(observed.pv_w) if math.isnan(v)]
    assert len(observed.pv_w) == 5 and nan_at == [1, 2, 4]
    assert observed.pv_w[0] == 50.0 and observed.pv_w[3] == 300.0
    assert observed.zone_on_w["Z"][0] == 50.0
    assert all(math.isnan(v) for v in observed.zone_on_w["Z"][1:])


def test_a_day_missing_in_the_history_falls_back_on_the_day_before() -> None:
    """Yesterday's slot was not heard (an outage): the day before's persists, not the level."""
    zone = Zone(zone_id="Z", name="z", priority=PriorityClass.NON_CRITICAL, rated_w=100)
    noon = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    history = SlotHistory()
    history.add(noon, 420.0, {"Z": 150.0})
    history.add(noon + timedelta(days=1, minutes=5), 380.0, {"Z": 30.0})
    pv, demand = history.forecast(
        noon + timedelta(days=2),
        1,
        zones=(zone,),
        latitude=12.0,
        longitude=0.0,
        pv_peak_prior_w=1000,
    )
    assert pv == (420.0,) and demand == {"Z": (150.0,)}


def test_two_days_are_kept() -> None:
    """The oldest slots go once two days of slots are held."""
    history = SlotHistory()
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    for k in range(HISTORY_SLOTS + 10):
        history.add(t0 + timedelta(minutes=5 * k), 1.0, {})
    observed = history.observed(t0 + timedelta(minutes=5 * (HISTORY_SLOTS + 9)))
    assert observed.start == t0 + timedelta(minutes=50)
    assert len(observed.pv_w) == HISTORY_SLOTS


def test_a_clock_stepping_back_never_breaks_the_history() -> None:
    """Samples at 10:20, then the clock steps back to 10:05 (NTP): the slots after 10:05 are
    dropped, the series stays in time order, and reading it at either time works."""
    history = SlotHistory()
    base = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    for minutes in (0, 5, 10, 15, 20):
        history.add(base + timedelta(minutes=minutes), 100.0 + minutes, {"Zone1": 50.0})
    history.add(base + timedelta(minutes=5, seconds=30), 999.0, {"Zone1": 50.0})
    observed = history.observed(base + timedelta(minutes=5, seconds=30))
    assert len(observed.pv_w) == 2
    assert observed.pv_w[0] == 100.0
    assert observed.pv_w[1] == (105.0 + 999.0) / 2
    assert len(history.observed(base + timedelta(minutes=20)).pv_w) == 5  # reading ahead works
    assert history.mean_on_w("Zone1", default=0.0) == 50.0
