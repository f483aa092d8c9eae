"""The one persistence forecast: the same slot on the latest day that has it, else clear sky
and the draw seen so far; and the PV share the lower tiers are planned against."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import math

import numpy as np
import pytest

from optimizer.forecast import (
    Observed,
    persistence_forecast,
    pv_low_share,
    pv_peak_w,
    same_slot_before,
)
from optimizer.model import PriorityClass, Zone
from optimizer.sun import clear_sky_shape

NAN = math.nan
START = datetime(2025, 3, 1, tzinfo=UTC)  # midnight
ZONE = Zone(zone_id="Z", name="z", priority=PriorityClass.NON_CRITICAL, rated_w=100)
PUMP = Zone(zone_id="P", name="pump", priority=PriorityClass.DEFERRABLE, rated_w=500)


def test_same_slot_on_the_latest_day_that_has_it() -> None:
    """Yesterday's slot; where yesterday has a gap the day before; never the slot now or
    later (not measured yet); NaN where no day has it."""
    per_day = 4
    values = [10.0, 11.0, 12.0, 13.0, 20.0, NAN, 22.0, 23.0, 99.0]  # index 8: the slot now
    out = same_slot_before(values, 8, 6, per_day)
    assert out.tolist()[:4] == [20.0, 11.0, 22.0, 23.0]
    # A day ahead: still only what was measured before the slot now.
    assert out.tolist()[4:] == [20.0, 11.0]
    assert np.isnan(same_slot_before([1.0, 2.0], 2, 2, 4)).all()
    assert same_slot_before([1.0, 2.0], 2, 3, 4).tolist()[2] == 1.0  # a day after slot 0


def test_fallbacks_clear_sky_and_the_draw_seen_so_far() -> None:
    """Without history: PV is a clear-sky day at the prior peak, a zone draws its rating;
    deferrable zones get no row (their jobs say what they draw)."""
    observed = Observed(start=START, slot_minutes=60, pv_w=[NAN] * 12)
    pv, demand = persistence_forecast(
        observed,
        first=START + timedelta(hours=12),
        horizon_slots=24,
        zones=(ZONE, PUMP),
        latitude_deg=12.0,
        longitude_deg=0.0,
        pv_peak_prior_w=1000.0,
    )
    times = [START + timedelta(hours=12 + k) for k in range(24)]
    assert pv == pytest.approx([1000.0 * s for s in clear_sky_shape(times, 12.0, 0.0)])
    assert demand == {"Z": (100.0,) * 24}
    # Seen in good sun at 420 W and drawing 40 W while on: that is the level now.
    pv_w = [NAN] * 12 + [420.0, 400.0]
    observed = Observed(
        start=START, slot_minutes=60, pv_w=pv_w, zone_on_w={"Z": [NAN] * 12 + [40.0, NAN]}
    )
    peak = pv_peak_w(observed, 12.0, 0.0)
    assert peak is not None and 420.0 <= peak < 1000.0
    pv, demand = persistence_forecast(
        observed,
        first=START + timedelta(hours=14),
        horizon_slots=3,
        zones=(ZONE,),
        latitude_deg=12.0,
        longitude_deg=0.0,
        pv_peak_prior_w=1000.0,
    )
    shape = clear_sky_shape([START + timedelta(hours=14 + k) for k in range(3)], 12.0, 0.0)
    assert pv == pytest.approx([peak * s for s in shape])
    assert demand == {"Z": (40.0, 40.0, 40.0)}


def test_the_pv_share_the_lower_tiers_plan_on() -> None:
    """Today gave half of what yesterday's same hours did: the share is 0.5 x 0.9; more than
    promised counts as 1 (x 0.9); with too little PV to judge, EndReserve's pv_share."""
    per_day = 24
    yesterday = [0.0] * 9 + [400.0] * 6 + [0.0] * 9
    today = [0.0] * 9 + [200.0] * 3
    observed = Observed(start=START, slot_minutes=60, pv_w=yesterday + today)
    first = START + timedelta(days=1, hours=12)
    assert pv_low_share(observed, first=first, pv_share=0.5) == pytest.approx(0.45)
    brighter = Observed(start=START, slot_minutes=60, pv_w=yesterday + [0.0] * 9 + [800.0] * 3)
    assert pv_low_share(brighter, first=first, pv_share=0.5) == pytest.approx(0.9)
    dawn = START + timedelta(days=1, hours=6)
    assert pv_low_share(observed, first=dawn, pv_share=0.5) == 0.5
    # No earlier day kept: nothing to judge by.
    one_day = Observed(start=START, slot_minutes=60, pv_w=today)
    assert pv_low_share(one_day, first=START + timedelta(hours=12), pv_share=0.5) == 0.5
    assert len(yesterday) == per_day
