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
