"""The escalation ladder's pure timing: rung order, due times, what a restart resumes, and where a
failed delivery goes next. The clock is an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings, strategies as st

from custom_components.microgrid.alerts.ladder import (
    PlannedRung,
    Rung,
    RungStatus,
    backup_kind,
    channel_kind,
    due_rungs,
    ladder_steps,
    next_due,
    plan_rungs,
)
from custom_components.microgrid.alerts.options import default_ladder

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
EVERY = frozenset(Rung)
MIN = timedelta(minutes=1)


def test_default_ladder_is_0_10_20_30_minutes() -> None:
    """Household at once, admins at the escalation delay, duty and authorities 10 min apart."""
    steps = default_ladder(10 * MIN)
    assert [(s.rung, s.delay) for s in steps] == [
        (Rung.HOUSEHOLD, 0 * MIN),
        (Rung.ADMINS, 10 * MIN),
        (Rung.DUTY, 20 * MIN),
        (Rung.AUTHORITIES, 30 * MIN),
    ]
    # An old site with escalation after 45 min keeps it; the new rungs follow it.
    assert [s.delay for s in default_ladder(45 * MIN)] == [0 * MIN, 45 * MIN, 55 * MIN, 65 * MIN]


def test_a_rung_set_earlier_than_the_one_before_waits_for_it() -> None:
    """Duty at 5 min after admins at 10 min: both at 10; unset rungs take the previous one's."""
    steps = ladder_steps({Rung.ADMINS: 10 * MIN, Rung.DUTY: 5 * MIN, Rung.HOUSEHOLD: -MIN})
    assert [s.delay for s in steps] == [0 * MIN, 10 * MIN, 10 * MIN, 10 * MIN]


def climb(
    delays: dict[Rung, timedelta], reachable: frozenset[Rung], stop_at: datetime | None = None
) -> dict[Rung, datetime]:
    """Run the ladder as the manager does: wake at each next due time, fire what is due."""
    steps = ladder_steps(delays)
    fired: dict[Rung, datetime] = {}
    while True:
        plan = plan_rungs(T0, steps, reachable, fired, climbing=True)
        due = next_due(plan)
        if due is None or (stop_at is not None and due > stop_at):
            return fired
        for rung in due_rungs(plan, due):
            fired[rung] = due


def test_rungs_fire_at_their_times_in_order() -> None:
    """Each reachable rung fires once, at the alert + its delay; unreachable ones never."""
    delays = {r: s.delay for r, s in zip(Rung, default_ladder(10 * MIN), strict=True)}
    assert climb(delays, EVERY) == {
        Rung.HOUSEHOLD: T0,
        Rung.ADMINS: T0 + 10 * MIN,
        Rung.DUTY: T0 + 20 * MIN,
        Rung.AUTHORITIES: T0 + 30 * MIN,
    }
    # No essential service affected, no duty phone: admins only.
    assert climb(delays, frozenset({Rung.ADMINS})) == {Rung.ADMINS: T0 + 10 * MIN}
    # Acknowledged at 15 min: what fired before stays, nothing after.
    assert set(climb(delays, EVERY, stop_at=T0 + 15 * MIN)) == {Rung.HOUSEHOLD, Rung.ADMINS}


def test_plan_statuses_and_resume_after_a_restart() -> None:
    """Fired, pending, stopped (no longer climbing), skipped (unreachable); after a restart at
    25 min the overdue duty rung is due at once, the authorities at 30 min."""
    steps = default_ladder(10 * MIN)
    fired = {Rung.ADMINS: T0 + 10 * MIN}
    reachable = frozenset({Rung.ADMINS, Rung.DUTY, Rung.AUTHORITIES})
    plan = plan_rungs(T0, steps, reachable, fired, climbing=True)
    assert [(p.rung, p.status) for p in plan] == [
        (Rung.HOUSEHOLD, RungStatus.SKIPPED),
        (Rung.ADMINS, RungStatus.FIRED),
        (Rung.DUTY, RungStatus.PENDING),
        (Rung.AUTHORITIES, RungStatus.PENDING),
    ]
    assert plan[1] == PlannedRung(
        rung=Rung.ADMINS, due_at=T0 + 10 * MIN, fired_at=T0 + 10 * MIN, status=RungStatus.FIRED
    )
    assert due_rungs(plan, T0 + 25 * MIN) == (Rung.DUTY,)
    assert next_due(plan) == T0 + 20 * MIN  # in the past at 25 min: fires at once
    assert due_rungs(plan, T0 + 31 * MIN) == (Rung.DUTY, Rung.AUTHORITIES)
    stopped = plan_rungs(T0, steps, reachable, fired, climbing=False)
    assert [p.status for p in stopped][2:] == [RungStatus.STOPPED, RungStatus.STOPPED]
    assert next_due(stopped) is None and due_rungs(stopped, T0 + 60 * MIN) == ()


minutes = st.floats(min_value=0, max_value=120, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(
    st.fixed_dictionaries({r: minutes for r in Rung}),
    st.sets(st.sampled_from(list(Rung))),
    st.one_of(st.none(), minutes),
)
def test_ladder_properties(
    raw: dict[Rung, float], reachable: set[Rung], ack_after: float | None
) -> None:
    """Whatever the delays: rungs fire in ladder order, never before they are due, each at most
    once, only reachable ones, and none after the acknowledgement."""
    delays = {r: timedelta(minutes=m) for r, m in raw.items()}
    stop_at = None if ack_after is None else T0 + timedelta(minutes=ack_after)
    fired = climb(delays, frozenset(reachable), stop_at)
    steps = {s.rung: s.delay for s in ladder_steps(delays)}
    assert set(fired) <= reachable
    order = [r for r in Rung if r in fired]
    assert [fired[r] for r in order] == sorted(fired[r] for r in order)
    for rung, at in fired.items():
        assert at == T0 + steps[rung]
        assert stop_at is None or at <= stop_at
    if stop_at is None:
        assert set(fired) == reachable


def test_backup_order_notify_sms_push() -> None:
    """A failed notify goes to SMS (or push without SMS); a failed SMS to push; push, the
    notification and the event have none."""
    both = frozenset({"sms", "push"})
    assert channel_kind("notify.mobile_app_x") == "notify"
    assert backup_kind("notify.mobile_app_x", both) == "sms"
    assert backup_kind("notify.mobile_app_x", frozenset({"push"})) == "push"
    assert backup_kind("sms:+254712345678", both) == "push"
    assert backup_kind("sms:+254712345678", frozenset({"sms"})) is None
    assert backup_kind("fcm:topic:village", both) is None
    assert backup_kind("persistent_notification", both) is None
    assert backup_kind("event", both) is None
