"""The simulated site's physics: bounds, energy balance, voltage, sun and load shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
import itertools

from hypothesis import given, settings, strategies as st
import pytest

from sim.physics import (
    BatterySpec,
    SiteModel,
    SiteSpec,
    SolarSpec,
    ZoneSpec,
    advance,
    battery_step,
    clear_sky_w,
    initial_state,
    ocv_v,
    profile_factor,
    solar_w,
    terminal_voltage_v,
    zone_load_w,
)
from sim.site import DEMO_SITE

BATTERY = BatterySpec(capacity_wh=5000, charge_efficiency=0.95, discharge_efficiency=0.9)
NOON = datetime(2025, 1, 27, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2025, 1, 27, 0, 0, tzinfo=UTC)

socs = st.floats(0, 100)
powers = st.floats(-5000, 5000)
dts = st.floats(0, 6 * 3600)


@settings(max_examples=100, deadline=None)
@given(soc=socs, net_w=powers, dt_s=dts)
def test_soc_stays_within_bounds(soc: float, net_w: float, dt_s: float) -> None:
    """Whatever flows for however long, SoC stays in [0, 100]."""
    new_soc, absorbed_w, delivered_w = battery_step(soc, net_w, dt_s, BATTERY)
    assert 0.0 <= new_soc <= 100.0
    assert 0.0 <= absorbed_w <= max(net_w, 0.0) + 1e-9
    assert 0.0 <= delivered_w <= max(-net_w, 0.0) + 1e-9


@settings(max_examples=100, deadline=None)
@given(soc=socs, net_w=powers, dt_s=st.floats(1, 6 * 3600))
def test_energy_balance_within_efficiency_bounds(soc: float, net_w: float, dt_s: float) -> None:
    """Stored energy changes by the flow times its efficiency, never more."""
    new_soc, absorbed_w, delivered_w = battery_step(soc, net_w, dt_s, BATTERY)
    hours = dt_s / 3600
    delta_wh = (new_soc - soc) / 100 * BATTERY.capacity_wh
    if net_w >= 0:
        assert delta_wh == pytest.approx(absorbed_w * hours * 0.95, abs=1e-6)
        assert delta_wh <= net_w * hours + 1e-6  # losses never create energy
    else:
        assert delta_wh == pytest.approx(-delivered_w * hours / 0.9, abs=1e-6)
        assert delta_wh <= -delivered_w * hours + 1e-6
    interior = 1e-6 < new_soc < 100 - 1e-6
    if interior:  # nothing clamped: the whole flow went through the battery
        assert absorbed_w + delivered_w == pytest.approx(abs(net_w), rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(a=socs, b=socs, battery_w=st.floats(-3000, 3000))
def test_voltage_monotone_in_soc(a: float, b: float, battery_w: float) -> None:
    """At a given current, more charge never means a lower voltage."""
    low, high = sorted((a, b))
    assert terminal_voltage_v(low, battery_w, BATTERY) <= terminal_voltage_v(
        high, battery_w, BATTERY
    )


def test_voltage_curve_and_sag() -> None:
    """12 V bank: ~11.5 V empty, ~12.9 V full, strictly rising; discharge sags, charge lifts."""
    volts = [ocv_v(s) for s in range(101)]
    assert all(b > a for a, b in itertools.pairwise(volts))
    assert 11.0 < volts[0] < 12.0 < volts[100] < 13.5
    assert terminal_voltage_v(50, -1200, BATTERY) < ocv_v(50) < terminal_voltage_v(50, 600, BATTERY)
    assert ocv_v(50, nominal_voltage_v=24) == pytest.approx(2 * ocv_v(50))


@settings(max_examples=100, deadline=None)
@given(hour=st.floats(0, 24))
def test_solar_bell(hour: float) -> None:
    """Zero at night, bounded by peak, symmetric about solar noon."""
    spec = SolarSpec(peak_w=1200, sunrise_h=6, sunset_h=18)
    w = clear_sky_w(hour, spec)
    assert 0 <= w <= 1200
    if hour <= 6 or hour >= 18:
        assert w == 0
    assert w == pytest.approx(clear_sky_w(24 - hour, spec), abs=1e-6)


def test_solar_peak_and_clouds_are_seeded() -> None:
    """Clear sky peaks at noon; clouds only reduce, the same seed gives the same sky."""
    clear = SolarSpec(peak_w=1200)
    assert solar_w(NOON, clear) == pytest.approx(1200)
    cloudy = SolarSpec(peak_w=1200, cloudiness=0.8, seed=3)
    day = [NOON + timedelta(minutes=7 * i) for i in range(40)]
    first = [solar_w(t, cloudy) for t in day]
    assert first == [solar_w(t, cloudy) for t in day]
    assert all(c <= solar_w(t, clear) + 1e-9 for c, t in zip(first, day))
    assert first != [solar_w(t, SolarSpec(peak_w=1200, cloudiness=0.8, seed=4)) for t in day]


def test_site_time_zone_moves_the_sun() -> None:
    """Local noon in UTC+3 is 09:00 UTC."""
    plus3 = timezone(timedelta(hours=3))
    spec = SolarSpec(peak_w=1000)
    assert solar_w(datetime(2025, 1, 1, 9, tzinfo=UTC), spec, plus3) == pytest.approx(1000)


def test_load_profiles() -> None:
    """Street lights burn at night, the pump runs by day, homes peak in the evening."""
    assert profile_factor("night", 22) == 1 and profile_factor("night", 12) == 0
    assert profile_factor("day", 12) == 1 and profile_factor("day", 22) == 0
    assert profile_factor("residential", 20) > profile_factor("residential", 3)
    with pytest.raises(ValueError):
        ZoneSpec(zone_id="Z", name="z", priority="critical", rated_w=1, profile="weird")


def test_relays_gate_the_load() -> None:
    """Only zones whose relay is on draw power; at night it all comes from the battery."""
    state = initial_state(DEMO_SITE, MIDNIGHT, 80)
    on = advance(DEMO_SITE, state, MIDNIGHT, 3600, {"Zone1": True, "Zone2": True})
    assert set(on.zone_load_w) == {"Zone1", "Zone2", "Zone3", "Zone4"}
    assert on.zone_load_w["Zone3"] == 0
    assert on.zone_load_w["Zone2"] == 200
    assert on.load_w == pytest.approx(on.zone_load_w["Zone1"] + 200)
    assert on.solar_w == 0
    assert on.battery_power_w == pytest.approx(-on.load_w)
    assert on.soc_pct < 80
    assert on.battery_voltage_v < ocv_v(on.soc_pct)
    off = advance(DEMO_SITE, state, MIDNIGHT, 3600, {})
    assert off.load_w == 0 and off.soc_pct == 80


def test_empty_battery_leaves_demand_unserved() -> None:
    """At night with an empty battery, loads are not served and SoC stays at 0."""
    state = initial_state(DEMO_SITE, MIDNIGHT, 0.0)
    after = advance(DEMO_SITE, state, MIDNIGHT, 600, {"Zone1": True})
    assert after.soc_pct == 0
    assert after.load_w == 0
    assert after.unserved_w == pytest.approx(90)


def test_full_battery_curtails_solar() -> None:
    """At noon with a full battery only the load is taken from the panels."""
    spec = SiteSpec(solar=SolarSpec(peak_w=1200), zones=DEMO_SITE.zones)
    state = initial_state(spec, NOON, 100.0)
    after = advance(spec, state, NOON, 600, {"Zone1": True})
    assert after.soc_pct == 100
    assert after.solar_w == pytest.approx(1200)
    assert after.solar_used_w == pytest.approx(after.load_w)


def test_site_model_steps_and_set_soc() -> None:
    """SiteModel keeps the state; set_soc validates."""
    model = SiteModel(DEMO_SITE, now=NOON, soc_pct=50)
    state = model.step(NOON + timedelta(minutes=10), 600, {"Zone4": True})
    assert model.state is state and state.at == NOON + timedelta(minutes=10)
    assert model.set_soc(8).soc_pct == 8
    with pytest.raises(ValueError):
        model.set_soc(101)
    with pytest.raises(ValueError):
        model.step(NOON, -1, {})


def test_site_model_counts_served_and_unserved_energy_per_zone() -> None:
    """An hour with the pump on and the homes off: the pump's draw is served, the homes' demand
    (their profile at that hour) is unserved; the counters are the physics' own numbers."""
    model = SiteModel(DEMO_SITE, now=NOON, soc_pct=80)
    relays = {"Zone3": False, "Zone4": True}
    for minute in range(1, 61):
        model.step(NOON + timedelta(minutes=minute), 60, relays)
    pump = next(z for z in DEMO_SITE.zones if z.zone_id == "Zone4")
    homes = next(z for z in DEMO_SITE.zones if z.zone_id == "Zone3")
    expected_pump = sum(zone_load_w(pump, NOON + timedelta(minutes=m)) for m in range(1, 61)) / 60
    expected_homes = sum(zone_load_w(homes, NOON + timedelta(minutes=m)) for m in range(1, 61)) / 60
    assert model.served_wh["Zone4"] == pytest.approx(expected_pump)
    assert model.unserved_wh["Zone4"] == pytest.approx(0.0)
    assert model.served_wh["Zone3"] == 0.0
    assert model.unserved_wh["Zone3"] == pytest.approx(expected_homes)
    assert expected_homes > 0


def test_demo_site() -> None:
    """The demo site: four zones, one per class, 5 kWh at 12 V, 1.2 kW of PV."""
    assert [z.zone_id for z in DEMO_SITE.zones] == ["Zone1", "Zone2", "Zone3", "Zone4"]
    assert [z.priority for z in DEMO_SITE.zones] == [
        "critical",
        "semi_critical",
        "non_critical",
        "deferrable",
    ]
    assert [z.rated_w for z in DEMO_SITE.zones] == [150, 200, 400, 300]
    assert DEMO_SITE.battery.capacity_wh == 5000 and DEMO_SITE.solar.peak_w == 1200


@pytest.mark.parametrize(
    "kwargs",
    [{"capacity_wh": 0}, {"charge_efficiency": 1.2}, {"internal_resistance_ohm": -1}],
)
def test_battery_spec_validation(kwargs) -> None:
    """Impossible batteries are refused."""
    with pytest.raises(ValueError):
        BatterySpec(**kwargs)


steps = st.lists(
    st.tuples(
        st.floats(0, 3 * 3600),  # dt_s
        st.fixed_dictionaries({z.zone_id: st.booleans() for z in DEMO_SITE.zones}),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(soc=socs, hour=st.integers(0, 23), sequence=steps)
def test_site_balance_and_bounds_over_any_run(soc: float, hour: int, sequence) -> None:
    """Over any run: SoC in bounds, loads within ratings, and the site's powers balance."""
    now = MIDNIGHT + timedelta(hours=hour)
    model = SiteModel(DEMO_SITE, now=now, soc_pct=soc)
    rated = {z.zone_id: z.rated_w for z in DEMO_SITE.zones}
    for dt_s, relays in sequence:
        now += timedelta(seconds=dt_s)
        st_ = model.step(now, dt_s, relays)
        assert 0 <= st_.soc_pct <= 100
        assert 0 <= st_.solar_used_w <= st_.solar_w + 1e-9 <= DEMO_SITE.solar.peak_w + 1e-9
        for zone_id, w in st_.zone_load_w.items():
            assert 0 <= w <= rated[zone_id] + 1e-9
            if not relays[zone_id]:
                assert w == 0
        # PV taken = load served + battery charge (battery_power_w < 0 when discharging).
        assert st_.solar_used_w == pytest.approx(
            st_.load_w + st_.battery_power_w, rel=1e-9, abs=1e-6
        )
