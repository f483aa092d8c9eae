"""The pure rules: when a reading raises or clears an alert, when one escalates, and who may
acknowledge it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from ..optimizer.model import PriorityClass, Thresholds
from .model import Alert, AlertType, Severity

if TYPE_CHECKING:
    from ..people.permissions import Actor
    from ..snapshot import ZoneSnapshot

# A critical zone must stay unpowered this long before it alerts: a command in flight or one
# missed reading is not a failure.
ZONE_FAILURE_GRACE: Final = timedelta(minutes=1)

# Site-wide emergencies: only an admin may say someone is on them.
ADMIN_ACK_ONLY: Final = frozenset(
    {AlertType.BATTERY_EMERGENCY, AlertType.BATTERY_CRITICAL, AlertType.CRITICAL_ZONE_FAILURE}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class BatteryLevel:
    """One battery alert threshold."""

    alert_type: AlertType
    threshold_pct: float
    severity: Severity


@dataclass(frozen=True, kw_only=True, slots=True)
class BatteryStep:
    """The outcome of one SoC reading against the battery levels."""

    armed: frozenset[AlertType]
    fire: BatteryLevel | None  # the most severe level crossed by this reading
    crossed: frozenset[AlertType]  # every level disarmed by this reading
    rearmed: frozenset[AlertType]  # levels the charge recovered past (threshold + hysteresis)


def battery_levels(thresholds: Thresholds) -> tuple[BatteryLevel, ...]:
    """The three battery alert levels, highest threshold first."""
    return (
        BatteryLevel(
            alert_type=AlertType.BATTERY_LOW,
            threshold_pct=thresholds.conservation_pct,
            severity=Severity.WARNING,
        ),
        BatteryLevel(
            alert_type=AlertType.BATTERY_EMERGENCY,
            threshold_pct=thresholds.emergency_pct,
            severity=Severity.CRITICAL,
        ),
        BatteryLevel(
            alert_type=AlertType.BATTERY_CRITICAL,
            threshold_pct=thresholds.critical_alert_pct,
            severity=Severity.CRITICAL,
        ),
    )


def battery_step(
    soc_pct: float,
    armed: frozenset[AlertType],
    levels: Iterable[BatteryLevel],
    hysteresis_pct: float,
) -> BatteryStep:
    """Fire an armed level once SoC is below it; re-arm it at threshold + hysteresis or above."""
    now_armed = set(armed)
    crossed: list[BatteryLevel] = []
    rearmed: set[AlertType] = set()
    for level in levels:
        if level.alert_type in armed:
            if soc_pct < level.threshold_pct:
                crossed.append(level)
                now_armed.discard(level.alert_type)
        elif soc_pct >= level.threshold_pct + max(hysteresis_pct, 0.0):
            rearmed.add(level.alert_type)
            now_armed.add(level.alert_type)
    # A fall through several levels at once (e.g. the first reading after an outage) sends only
    # the most severe alert; the others are disarmed so they do not follow one after another.
    fire = min(crossed, key=lambda level: level.threshold_pct, default=None)
    return BatteryStep(
        armed=frozenset(now_armed),
        fire=fire,
        crossed=frozenset(level.alert_type for level in crossed),
        rearmed=frozenset(rearmed),
    )


def zone_failure_cause(zone: ZoneSnapshot) -> str | None:
    """Why a critical zone that should be on is not powered ("offline", "relay_off"), or None."""
    if zone.zone.priority is not PriorityClass.CRITICAL or zone.desired_on is not True:
        return None
    if not zone.online:
        return "offline"
    if zone.relay_on is False:
        return "relay_off"
    return None


def escalation_due(alert: Alert, delay: timedelta) -> datetime | None:
    """When an alert escalates, or None when it never will."""
    if alert.severity is not Severity.CRITICAL or not alert.open or alert.escalated_at:
        return None
    return alert.created_at + delay


def acknowledge_refusal(
    alert: Alert, household: str | None, actor: Actor, households: frozenset[str]
) -> str | None:
    """Why this caller may not acknowledge this alert (a translation key), or None."""
    if actor.is_admin:
        return None
    if alert.alert_type in ADMIN_ACK_ONLY:
        return "acknowledge_admin_only"
    if household is None or household not in households:
        return "acknowledge_not_your_household"
    return None
