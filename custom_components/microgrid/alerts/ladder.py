"""The escalation ladder, pure: its rungs, when each fires, and where a failed delivery goes next.

A critical alert nobody acknowledges climbs the ladder: the members of the affected zone's
household, then the admins, then the duty phone by SMS, then the authorities (only when a clinic
or hospital is affected). Each rung fires at its delay after the alert was raised; the clock is
an argument everywhere (`now`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class Rung(StrEnum):
    """One rung of the ladder, lowest first."""

    HOUSEHOLD = "household"  # members of the affected zone's household (their phones)
    ADMINS = "admins"  # the escalation targets: the old single escalation
    DUTY = "duty"  # the duty phone, by SMS
    AUTHORITIES = "authorities"  # only when an essential service (clinic, hospital) is affected


# The first delivery of an alert, before any rung (the `rung` of its delivery attempts).
FIRST_DELIVERY: Final = "alert"


class RungStatus(StrEnum):
    """Where a rung of one alert's ladder stands."""

    FIRED = "fired"
    PENDING = "pending"  # due later, the alert still open
    STOPPED = "stopped"  # never fired: acknowledged or resolved first
    SKIPPED = "skipped"  # not on this alert's ladder (nobody to reach there, or not essential)


@dataclass(frozen=True, kw_only=True, slots=True)
class LadderStep:
    """A rung and how long after the alert it fires."""

    rung: Rung
    delay: timedelta


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedRung:
    """One rung of one alert: when it is (or was) due, and whether it fired."""

    rung: Rung
    due_at: datetime
    fired_at: datetime | None
    status: RungStatus


def ladder_steps(delays: Mapping[Rung, timedelta]) -> tuple[LadderStep, ...]:
    """Every rung in order with its delay (none below zero); a rung set earlier than the one
    before it waits for that one, so the ladder is climbed in order."""
    steps: list[LadderStep] = []
    floor = timedelta(0)
    for rung in Rung:
        floor = max(floor, delays.get(rung, floor))
        steps.append(LadderStep(rung=rung, delay=floor))
    return tuple(steps)


def plan_rungs(
    created_at: datetime,
    steps: Iterable[LadderStep],
    reachable: frozenset[Rung],
    fired: Mapping[Rung, datetime],
    *,
    climbing: bool,
) -> tuple[PlannedRung, ...]:
    """Each rung of an alert's ladder with its due time and status (`climbing`: the alert is
    critical and neither acknowledged nor resolved)."""
    out: list[PlannedRung] = []
    for step in steps:
        if step.rung in fired:
            status = RungStatus.FIRED
        elif step.rung not in reachable:
            status = RungStatus.SKIPPED
        else:
            status = RungStatus.PENDING if climbing else RungStatus.STOPPED
        out.append(
            PlannedRung(
                rung=step.rung,
                due_at=created_at + step.delay,
                fired_at=fired.get(step.rung),
                status=status,
            )
        )
    return tuple(out)


def due_rungs(plan: Iterable[PlannedRung], now: datetime) -> tuple[Rung, ...]:
    """The pending rungs due at `now`, in ladder order (several after a restart)."""
    return tuple(p.rung for p in plan if p.status is RungStatus.PENDING and p.due_at <= now)


def next_due(plan: Iterable[PlannedRung]) -> datetime | None:
    """When the next pending rung is due, or None when the ladder has nothing left."""
    return min((p.due_at for p in plan if p.status is RungStatus.PENDING), default=None)


# Where a delivery goes when its channel fails: notify -> SMS -> push. A kind that is not
# configured is passed over (a failed notify goes to push when there is no SMS).
BACKUP_ORDER: Final = ("notify", "sms", "push")


def channel_kind(channel_name: str) -> str | None:
    """ "notify", "sms" or "push" from a channel's name; None for the others (persistent
    notification, event), which have no backup."""
    if channel_name.startswith("notify."):
        return "notify"
    if channel_name.startswith("sms:"):
        return "sms"
    if channel_name.startswith("fcm:"):
        return "push"
    return None


def backup_kind(channel_name: str, configured: frozenset[str]) -> str | None:
    """The kind of channel that takes over when this one fails, or None."""
    kind = channel_kind(channel_name)
    if kind is None:
        return None
    later = BACKUP_ORDER[BACKUP_ORDER.index(kind) + 1 :]
    return next((k for k in later if k in configured), None)
