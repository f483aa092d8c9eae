"""What an alert is: its type, its severity and the record kept of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from homeassistant.util import dt as dt_util

from .ladder import Rung


class Severity(StrEnum):
    """How urgent an alert is; critical ones escalate unless acknowledged."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return list(Severity).index(self)


class AlertType(StrEnum):
    """What an alert is about (also the event entity's event types)."""

    BATTERY_LOW = "battery_low"
    BATTERY_EMERGENCY = "battery_emergency"
    BATTERY_CRITICAL = "battery_critical"
    CRITICAL_ZONE_FAILURE = "critical_zone_failure"
    COMMAND_FAILED = "command_failed"
    BOARD_OUTLIER = "board_outlier"
    ANOMALY = "anomaly"  # one the learning flagged (microgrid_anomaly)
    CUSTOM = "custom"


# An alert keeps at most this many delivery attempts (a long ladder with backups stays small).
MAX_ATTEMPTS: Final = 60
ERROR_MAX_CHARS: Final = 200


def _when(raw: Mapping[str, Any], key: str) -> datetime | None:
    """A stored timestamp, or None."""
    return dt_util.parse_datetime(raw[key]) if raw.get(key) else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    """One try to deliver an alert through one channel."""

    channel: str  # "notify.x", "sms:+254…", "fcm:topic:x", "event", "persistent_notification"
    rung: str  # "alert" (the first delivery) or a ladder rung
    at: datetime
    ok: bool
    error: str | None = None
    backup_for: str | None = None  # the failed channel this one stood in for

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "channel": self.channel,
            "rung": self.rung,
            "at": self.at.isoformat(),
            "ok": self.ok,
            "error": self.error,
            "backup_for": self.backup_for,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Attempt:
        """Back from storage (raises KeyError/ValueError/TypeError on a bad record)."""
        if (at := _when(raw, "at")) is None:
            raise ValueError("at")
        return cls(
            channel=str(raw["channel"]),
            rung=str(raw["rung"]),
            at=at,
            ok=bool(raw["ok"]),
            error=raw.get("error"),
            backup_for=raw.get("backup_for"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class FiredRung:
    """A ladder rung an alert reached, and when."""

    rung: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"rung": self.rung, "at": self.at.isoformat()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FiredRung:
        """Back from storage."""
        if (at := _when(raw, "at")) is None:
            raise ValueError("at")
        return cls(rung=str(raw["rung"]), at=at)


@dataclass(frozen=True, kw_only=True, slots=True)
class Alert:
    """One alert and what became of it."""

    alert_id: str
    alert_type: AlertType
    severity: Severity
    title: str
    message: str
    created_at: datetime
    source: str = "system"  # "system" or the HA user id who sent it
    source_name: str = "Microgrid"
    zone_id: str | None = None
    household: str | None = None  # a message sent to one household
    soc_pct: float | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_by_name: str | None = None
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    delivered: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    # The escalation ladder and the delivery record (absent from stores before the ladder).
    essential: bool = False  # a clinic or hospital is affected: the authorities rung applies
    restart_at: datetime | None = None  # the automatic restart tried before a zone alert
    original_message: str | None = None  # the message before an escalation rewrote it
    rungs: tuple[FiredRung, ...] = ()
    attempts: tuple[Attempt, ...] = ()

    @property
    def open(self) -> bool:
        """Neither acknowledged nor resolved."""
        return self.acknowledged_at is None and self.resolved_at is None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (storage and action responses)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("created_at", "acknowledged_at", "escalated_at", "resolved_at", "restart_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["delivered"] = list(self.delivered)
        data["failed"] = list(self.failed)
        data["rungs"] = [r.as_dict() for r in self.rungs]
        data["attempts"] = [a.as_dict() for a in self.attempts]
        data["open"] = self.open
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Alert:
        """Back from storage (raises KeyError/ValueError/TypeError on a bad record)."""

        def when(key: str) -> datetime | None:
            return _when(raw, key)

        created = when("created_at")
        if created is None:
            raise ValueError("created_at")
        escalated_at = when("escalated_at")
        if "rungs" in raw:
            rungs = tuple(FiredRung.from_dict(r) for r in raw["rungs"])
        else:  # a store from before the ladder: its one escalation was the admins rung
            rungs = (FiredRung(rung=Rung.ADMINS.value, at=escalated_at),) if escalated_at else ()
        return cls(
            alert_id=str(raw["alert_id"]),
            alert_type=AlertType(raw["alert_type"]),
            severity=Severity(raw["severity"]),
            title=str(raw["title"]),
            message=str(raw["message"]),
            created_at=created,
            source=str(raw.get("source", "system")),
            source_name=str(raw.get("source_name", "Microgrid")),
            zone_id=raw.get("zone_id"),
            household=raw.get("household"),
            soc_pct=raw.get("soc_pct"),
            acknowledged_at=when("acknowledged_at"),
            acknowledged_by=raw.get("acknowledged_by"),
            acknowledged_by_name=raw.get("acknowledged_by_name"),
            escalated_at=escalated_at,
            resolved_at=when("resolved_at"),
            delivered=tuple(raw.get("delivered", ())),
            failed=tuple(raw.get("failed", ())),
            essential=bool(raw.get("essential", False)),
            restart_at=when("restart_at"),
            original_message=raw.get("original_message"),
            rungs=rungs,
            attempts=tuple(Attempt.from_dict(a) for a in raw.get("attempts", ())),
        )
