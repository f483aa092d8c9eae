"""The priority policy's hard rules: bands with hysteresis, household permissions, forced zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import math

from hypothesis import given, settings, strategies as st
import pytest

from optimizer.model import (
    Band,
    Override,
    PriorityClass,
    Schedule,
    SiteReading,
    Thresholds,
    Zone,
    ZoneState,
)
from optimizer.policy import (
    Reason,
    ZoneRule,
    band_for,
    elapsed_s,
    evaluate_policy,
    expected_w,
    household_may_set,
    min_times_s,
    override_active,
    sane_thresholds,
    timer_hold,
)

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
T = Thresholds()
CRIT, SEMI, NON, DEFER = (
    PriorityClass.CRITICAL,
    PriorityClass.SEMI_CRITICAL,
    PriorityClass.NON_CRITICAL,
    PriorityClass.DEFERRABLE,
)
E, C, N = Band.EMERGENCY, Band.CONSERVATION, Band.NORMAL


def zone(zone_id: str, priority: PriorityClass, rated_w: float = 100.0, **kw) -> Zone:
    return Zone(zone_id=zone_id, name=zone_id, priority=priority, rated_w=rated_w, **kw)


SITE = (
    zone("crit", CRIT),
    zone("semi", SEMI, schedule=Schedule.NIGHT),
    zone("non", NON),
    zone("defer", DEFER),
)


def rules_at(
    soc_pct: float,
    band: Band,
    states: dict[str, ZoneState] | None = None,
    thresholds: Thresholds = T,
    now: datetime = NOW,
) -> dict[str, ZoneRule]:
    return evaluate_policy(
        now=now,
        reading=SiteReading(soc_pct=soc_pct),
        band=band,
        thresholds=thresholds,
        zones=SITE,
        states=states or {},
    )


# ---- bands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soc", "expected"),
    [
        (100.0, N),
        (20.0, N),
        (19.999, C),
        (10.0, C),
        (9.999, E),
        (0.0, E),
    ],
)
def test_band_boundaries_without_history(soc: float, expected: Band) -> None:
    assert band_for(soc, None, T) == expected


@pytest.mark.parametrize("previous", [N, C, E, None])
def test_entering_a_lower_band_is_immediate(previous: Band | None) -> None:
    assert band_for(9.99, previous, T) == E
    if previous != E:
        assert band_for(19.99, previous, T) == C


@pytest.mark.parametrize(
    ("previous", "soc", "expected"),
    [
        (E, 10.0, E),
        (E, 11.99, E),
        (E, 12.0, C),
        (E, 21.99, C),
        (E, 22.0, N),
        (E, 80.0, N),
        (C, 20.0, C),
        (C, 21.99, C),
        (C, 22.0, N),
        (N, 20.0, N),
        (N, 15.0, C),
    ],
)
def test_leaving_a_lower_band_needs_the_hysteresis(
    previous: Band, soc: float, expected: Band
) -> None:
    assert band_for(soc, previous, T) == expected


def test_hysteresis_follows_the_thresholds() -> None:
    custom = Thresholds(conservation_pct=30.0, emergency_pct=15.0, hysteresis_pct=5.0)
    assert band_for(29.0, N, custom) == C
    assert band_for(34.9, C, custom) == C
    assert band_for(35.0, C, custom) == N
    assert band_for(19.9, E, custom) == E
    assert band_for(20.0, E, custom) == C


@pytest.mark.parametrize("soc", [math.nan, None, math.inf, -math.inf, -3.0])
@pytest.mark.parametrize("previous", [N, C, E])
def test_unknown_soc_keeps_the_previous_band(soc: float | None, previous: Band) -> None:
    assert band_for(soc, previous, T) == previous


@pytest.mark.parametrize("soc", [math.nan, None, math.inf, -1.0])
def test_unknown_soc_without_history_is_conservation(soc: float | None) -> None:
    assert band_for(soc, None, T) == C


def test_unusable_thresholds_fall_back_to_defaults_and_stay_ordered() -> None:
    bad = Thresholds(conservation_pct=math.nan, emergency_pct=-5.0, hysteresis_pct=math.inf)
    assert sane_thresholds(bad) == Thresholds()
    swapped = sane_thresholds(Thresholds(conservation_pct=5.0, emergency_pct=12.0))
    assert swapped.conservation_pct == 12.0 and swapped.emergency_pct == 12.0
    assert band_for(11.0, None, Thresholds(conservation_pct=5.0, emergency_pct=12.0)) == E
    assert (
        sane_thresholds(Thresholds(deep_discharge_cutoff_pct=math.nan)).deep_discharge_cutoff_pct
        is None
    )


# ---- households ----------------------------------------------------------------------------


@pytest.mark.parametrize("band", [N, C, E])
@pytest.mark.parametrize("on", [True, False])
def test_households_can_never_switch_a_critical_zone(band: Band, on: bool) -> None:
    assert household_may_set(zone("z", CRIT), band, on) == (False, Reason.CRITICAL_ZONE)


@pytest.mark.parametrize("priority", [SEMI, NON, DEFER])
@pytest.mark.parametrize("band", [N, C, E])
def test_households_may_always_switch_other_zones_off(priority: PriorityClass, band: Band) -> None:
    assert household_may_set(zone("z", priority), band, False) == (True, Reason.ALLOWED)


@pytest.mark.parametrize("priority", [SEMI, NON, DEFER])
@pytest.mark.parametrize(
    ("band", "expected"),
    [
        (N, (True, Reason.ALLOWED)),
        (C, (False, Reason.BATTERY_CONSERVATION)),
        (E, (False, Reason.BATTERY_EMERGENCY)),
    ],
)
def test_households_may_switch_on_only_in_normal(
    priority: PriorityClass, band: Band, expected: tuple[bool, str]
) -> None:
    assert household_may_set(zone("z", priority), band, True) == expected


# ---- forced rules --------------------------------------------------------------------------


@pytest.mark.parametrize(("soc", "band"), [(80.0, N), (15.0, C), (3.0, E), (0.0, E)])
def test_critical_is_forced_on_in_every_band(soc: float, band: Band) -> None:
    off_request = {"crit": ZoneState(zone_id="crit", relay_on=True, request_on=False)}
    rule = rules_at(soc, band, off_request)["crit"]
    assert rule.force is True
    assert rule.reason == Reason.CRITICAL_ALWAYS_ON


def test_emergency_forces_every_other_zone_off() -> None:
    states = {z.zone_id: ZoneState(zone_id=z.zone_id, relay_on=True, request_on=True) for z in SITE}
    rules = rules_at(5.0, E, states)
    for zone_id in ("semi", "non", "defer"):
        assert rules[zone_id].force is False
        assert rules[zone_id].reason == Reason.BATTERY_EMERGENCY


def test_conservation_sheds_deferrable_and_stops_non_critical_starting() -> None:
    rules = rules_at(15.0, C)
    assert (rules["defer"].force, rules["defer"].reason) == (False, Reason.BATTERY_CONSERVATION)
    assert rules["non"].force is None and rules["non"].may_start is False
    assert rules["semi"].force is None and rules["semi"].may_start is True


def test_normal_leaves_every_non_critical_zone_free() -> None:
    rules = rules_at(60.0, N)
    for zone_id in ("semi", "non", "defer"):
        assert rules[zone_id].force is None and rules[zone_id].may_start


def _override(on: bool, expires: datetime) -> Override:
    return Override(on=on, reason="maintenance", expires=expires, user_id="admin")


def test_admin_override_off_wins_over_critical() -> None:
    states = {
        "crit": ZoneState(
            zone_id="crit", relay_on=True, override=_override(False, NOW + timedelta(hours=1))
        )
    }
    rule = rules_at(80.0, N, states)["crit"]
    assert (rule.force, rule.reason) == (False, Reason.ADMIN_OVERRIDE)


def test_admin_override_on_wins_over_emergency() -> None:
    states = {
        "non": ZoneState(
            zone_id="non", relay_on=False, override=_override(True, NOW + timedelta(minutes=5))
        )
    }
    rule = rules_at(2.0, E, states)["non"]
    assert (rule.force, rule.reason) == (True, Reason.ADMIN_OVERRIDE)


def test_expired_override_no_longer_applies() -> None:
    states = {"crit": ZoneState(zone_id="crit", relay_on=True, override=_override(False, NOW))}
    assert rules_at(80.0, N, states)["crit"].force is True
    states = {
        "non": ZoneState(
            zone_id="non", relay_on=False, override=_override(True, NOW - timedelta(seconds=1))
        )
    }
    assert rules_at(2.0, E, states)["non"].force is False


def test_override_with_naive_expiry_is_read_as_utc() -> None:
    naive = (NOW + timedelta(minutes=1)).replace(tzinfo=None)
    assert override_active(_override(True, naive), NOW)
    assert not override_active(_override(True, naive), NOW + timedelta(minutes=2))


def test_deep_discharge_cutoff_turns_critical_off_only_when_set() -> None:
    on = {"crit": ZoneState(zone_id="crit", relay_on=True)}
    assert rules_at(2.0, E, on)["crit"].force is True
    cutoff = Thresholds(deep_discharge_cutoff_pct=5.0)
    assert rules_at(5.0, E, on, cutoff)["crit"].force is True
    rule = rules_at(4.9, E, on, cutoff)["crit"]
    assert (rule.force, rule.reason) == (False, Reason.DEEP_DISCHARGE_CUTOFF)


def test_deep_discharge_cutoff_resumes_only_past_the_hysteresis() -> None:
    cutoff = Thresholds(deep_discharge_cutoff_pct=5.0, hysteresis_pct=2.0)
    off = {"crit": ZoneState(zone_id="crit", relay_on=False)}
    assert rules_at(6.9, E, off, cutoff)["crit"].force is False
    assert rules_at(7.0, E, off, cutoff)["crit"].force is True


def test_in_the_cutoff_gap_the_site_resumes_or_stays_cut_as_one() -> None:
    cutoff = Thresholds(deep_discharge_cutoff_pct=5.0, hysteresis_pct=2.0)
    two = (zone("crit", CRIT), zone("crit2", CRIT), zone("non", NON))
    on_, cut_ = Reason.CRITICAL_ALWAYS_ON, Reason.DEEP_DISCHARGE_CUTOFF
    ON, CUT, SHED = (True, on_), (False, cut_), (False, Reason.BATTERY_EMERGENCY)
    ADMIN = (True, Reason.ADMIN_OVERRIDE)

    def forces(
        states: dict[str, ZoneState], soc: float = 5.0
    ) -> dict[str, tuple[bool | None, str]]:
        rules = evaluate_policy(
            now=NOW,
            reading=SiteReading(soc_pct=soc),
            band=E,
            thresholds=cutoff,
            zones=two,
            states=states,
        )
        return {z: (r.force, r.reason) for z, r in rules.items()}

    off = {z.zone_id: ZoneState(zone_id=z.zone_id, relay_on=False) for z in two}
    # One critical relay still on (its admin override just expired): the site was not cut, so
    # every critical zone is on, not only the one whose relay happens to be on.
    expired = _override(True, NOW)
    left_on = {**off, "crit": ZoneState(zone_id="crit", relay_on=True, override=expired)}
    assert forces(left_on) == {"crit": ON, "crit2": ON, "non": SHED}
    # Every relay off but a live admin ON override: the site stays cut until the hysteresis.
    live = _override(True, NOW + timedelta(minutes=5))
    held = {**off, "crit": ZoneState(zone_id="crit", relay_on=True, override=live)}
    assert forces(held) == {"crit": ADMIN, "crit2": CUT, "non": CUT}
    assert forces(held, soc=7.0) == {"crit": ADMIN, "crit2": ON, "non": SHED}
    # Below the cutoff every zone is off, whatever was on.
    on = {z.zone_id: ZoneState(zone_id=z.zone_id, relay_on=True) for z in two}
    assert forces(on, soc=4.9) == {"crit": CUT, "crit2": CUT, "non": CUT}


@pytest.mark.parametrize("soc", [math.nan, math.inf, -1.0])
def test_unknown_soc_never_cuts_critical(soc: float) -> None:
    off = {"crit": ZoneState(zone_id="crit", relay_on=False)}
    assert rules_at(soc, E, off, Thresholds(deep_discharge_cutoff_pct=50.0))["crit"].force is True


def test_rules_carry_the_zones_own_min_times_else_the_sites() -> None:
    own = zone("own", NON, min_on_s=60.0, min_off_s=math.nan)
    assert min_times_s(own, Thresholds(min_on_s=10.0, min_off_s=20.0)) == (60.0, 20.0)
    rule = evaluate_policy(
        now=NOW,
        reading=SiteReading(soc_pct=50.0),
        band=N,
        thresholds=Thresholds(min_off_s=42.0),
        zones=(own,),
        states={},
    )["own"]
    assert (rule.min_on_s, rule.min_off_s) == (60.0, 42.0)


# ---- helpers -------------------------------------------------------------------------------


def test_timer_hold_on_and_off() -> None:
    on = ZoneState(zone_id="z", relay_on=True, last_change=NOW - timedelta(seconds=299))
    assert timer_hold(now=NOW, state=on, min_on_s=300, min_off_s=0) == Reason.MIN_ON_TIME
    assert timer_hold(now=NOW + timedelta(seconds=1), state=on, min_on_s=300, min_off_s=0) is None
    off = ZoneState(zone_id="z", relay_on=False, last_change=NOW - timedelta(seconds=10))
    assert timer_hold(now=NOW, state=off, min_on_s=0, min_off_s=60) == Reason.MIN_OFF_TIME
    assert timer_hold(now=NOW, state=off, min_on_s=600, min_off_s=10) is None
    unknown = ZoneState(zone_id="z", relay_on=True)
    assert timer_hold(now=NOW, state=unknown, min_on_s=300, min_off_s=300) is None


def test_elapsed_handles_naive_future_and_missing_times() -> None:
    assert elapsed_s(NOW, NOW.replace(tzinfo=None) - timedelta(seconds=5)) == 5.0
    assert elapsed_s(NOW, NOW + timedelta(seconds=5)) is None
    assert elapsed_s(NOW, None) is None


def test_expected_power_is_measured_while_on_else_rated() -> None:
    z = zone("z", NON, rated_w=500.0)
    assert expected_w(z, ZoneState(zone_id="z", relay_on=True, power_w=120.0)) == 120.0
    assert expected_w(z, ZoneState(zone_id="z", relay_on=False, power_w=120.0)) == 500.0
    assert expected_w(z, ZoneState(zone_id="z", relay_on=True, power_w=math.nan)) == 500.0
    assert expected_w(z, ZoneState(zone_id="z", relay_on=True, power_w=-4.0)) == 500.0
    assert (
        expected_w(zone("bad", NON, rated_w=math.nan), ZoneState(zone_id="bad", relay_on=False))
        == math.inf
    )


def test_below_the_cutoff_every_zone_is_off_but_admin_overrides() -> None:
    cutoff = Thresholds(conservation_pct=20.0, emergency_pct=10.0, deep_discharge_cutoff_pct=15.0)
    states = {z.zone_id: ZoneState(zone_id=z.zone_id, relay_on=True) for z in SITE}
    states["non"] = ZoneState(
        zone_id="non", relay_on=True, override=_override(True, NOW + timedelta(minutes=5))
    )
    rules = rules_at(14.0, C, states, cutoff)
    assert {z: (r.force, r.reason) for z, r in rules.items()} == {
        "crit": (False, Reason.DEEP_DISCHARGE_CUTOFF),
        "semi": (False, Reason.DEEP_DISCHARGE_CUTOFF),
        "non": (True, Reason.ADMIN_OVERRIDE),
        "defer": (False, Reason.DEEP_DISCHARGE_CUTOFF),
    }


_ORDER = [E, C, N]


def _plain_band(soc: float, t: Thresholds) -> Band:
    return E if soc < t.emergency_pct else C if soc < t.conservation_pct else N


@settings(max_examples=200, deadline=None)
@given(
    soc=st.floats(0.0, 100.0),
    previous=st.sampled_from([E, C, N]),
    hysteresis=st.sampled_from([0.0, 1.0, 2.0, 5.0]),
)
def test_band_is_the_previous_one_clamped_between_the_plain_bands(
    soc: float, previous: Band, hysteresis: float
) -> None:
    t = Thresholds(hysteresis_pct=hysteresis)
    low = _ORDER.index(_plain_band(soc - hysteresis, t))
    high = _ORDER.index(_plain_band(soc, t))
    expected = _ORDER[min(max(_ORDER.index(previous), low), high)]
    assert band_for(soc, previous, t) == expected


def test_a_stored_band_string_works_as_previous() -> None:
    assert band_for(21.0, "conservation", T) is Band.CONSERVATION  # type: ignore[arg-type]
    assert band_for(math.nan, "normal", T) is Band.NORMAL  # type: ignore[arg-type]
    assert band_for(math.nan, "bogus", T) is Band.CONSERVATION  # type: ignore[arg-type]
