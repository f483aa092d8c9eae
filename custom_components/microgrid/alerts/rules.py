"""The pure rules: when a reading raises or clears an alert, when a failing critical zone is
restarted, which alerts concern an essential service, and who may acknowledge an alert (the
escalation ladder's timing is in ladder.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from ..optimizer.model import PriorityClass, Thresholds, Zone
from .model import Alert, AlertType, Severity

if TYPE_CHECKING:
    from ..people.permissions import Actor
    from ..snapshot import ZoneSnapshot

# A critical zone must stay unpowered this long before it alerts: a command in flight or one
# missed reading is not a failure.
ZONE_FAILURE_GRACE: Final = timedelta(minutes=1)
# Its ON command is sent again once it has been unpowered this long: past the ack window of the
# command that is already on its way (ACK_TIMEOUT, 20 s), so a zone just switched on is left alone.
ZONE_RESTART_AFTER: Final = timedelta(seconds=30)
# The restart gets this long (one ack window and a reading) before the alert goes out.
ZONE_RESTART_GRACE: Final = timedelta(seconds=30)

# Site-wide battery alerts that concern an essential service when one is left without power.
SITE_EMERGENCIES: Final = frozenset({AlertType.BATTERY_EMERGENCY, AlertType.BATTERY_CRITICAL})

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


class ZoneFailureAction(StrEnum):
    """What a failing critical zone calls for now."""

    RESTART = "restart"  # send its ON command again, once
    ALERT = "alert"


def zone_failure_action(
    since: datetime, now: datetime, *, restarted_at: datetime | None, can_restart: bool
) -> ZoneFailureAction | None:
    """Restart first (once, ZONE_RESTART_AFTER into the failure), then alert if it is still
    unpowered ZONE_FAILURE_GRACE into the failure and ZONE_RESTART_GRACE after the restart;
    None: wait. Without a restart (monitor mode) the alert comes after the grace alone."""
    if restarted_at is None and can_restart:
        return ZoneFailureAction.RESTART if now - since >= ZONE_RESTART_AFTER else None
    alert_at = since + ZONE_FAILURE_GRACE
    if restarted_at is not None:
        alert_at = max(alert_at, restarted_at + ZONE_RESTART_GRACE)
    return ZoneFailureAction.ALERT if now >= alert_at else None


def zone_unpowered(zone: ZoneSnapshot) -> bool:
    """Off, its board silent, or about to be switched off (the deep-discharge cutoff)."""
    return not zone.online or zone.relay_on is False or zone.desired_on is False


def essential_zones_unpowered(zones: Iterable[ZoneSnapshot]) -> tuple[str, ...]:
    """The essential-service zones (clinic, hospital) without power, by id."""
    return tuple(z.zone.zone_id for z in zones if z.zone.essential_service and zone_unpowered(z))


def concerns_essential_service(
    alert_type: AlertType, zone: Zone | None, *, command: str | None = None
) -> bool:
    """Whether a zone alert is about an essential service losing power: its failure, or an ON
    command it never confirmed."""
    if zone is None or not zone.essential_service:
        return False
    return alert_type is AlertType.CRITICAL_ZONE_FAILURE or (
        alert_type is AlertType.COMMAND_FAILED and command == "ON"
    )


def anomaly_key(zone_id: str | None, anomaly_type: str) -> str:
    """One key per zone (or the site) and anomaly type: an anomaly alerts once while active."""
    return f"{zone_id or ''}|{anomaly_type}"


def active_anomaly_keys(
    zone_anomalies: Mapping[str, Mapping[str, Any]], site_anomaly: Mapping[str, Any] | None
) -> frozenset[str]:
    """The anomaly keys active in the learning view (each zone's types, the site's)."""

    def types(attrs: Mapping[str, Any]) -> list[str]:
        return [str(t) for t in attrs.get("types") or [attrs.get("type")] if t]

    keys = {anomaly_key(z, t) for z, attrs in zone_anomalies.items() for t in types(attrs)}
    if site_anomaly:
        keys.update(anomaly_key(None, t) for t in types(site_anomaly))
    return frozenset(keys)


def climbs_ladder(alert: Alert) -> bool:
    """Critical and neither acknowledged nor resolved: it goes on up the ladder."""
    return alert.severity is Severity.CRITICAL and alert.open


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
