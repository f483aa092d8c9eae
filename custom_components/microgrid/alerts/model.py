"""What an alert is: its type, its severity and the record kept of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from homeassistant.util import dt as dt_util


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
    CUSTOM = "custom"


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

    @property
    def open(self) -> bool:
        """Neither acknowledged nor resolved."""
        return self.acknowledged_at is None and self.resolved_at is None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (storage and action responses)."""
        data = asdict(self)
        for key in ("created_at", "acknowledged_at", "escalated_at", "resolved_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["delivered"] = list(self.delivered)
        data["failed"] = list(self.failed)
        data["open"] = self.open
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Alert:
        """Back from storage (raises KeyError/ValueError/TypeError on a bad record)."""

        def when(key: str) -> datetime | None:
            return dt_util.parse_datetime(raw[key]) if raw.get(key) else None

        created = when("created_at")
        if created is None:
            raise ValueError("created_at")
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
            escalated_at=when("escalated_at"),
            resolved_at=when("resolved_at"),
            delivered=tuple(raw.get("delivered", ())),
            failed=tuple(raw.get("failed", ())),
        )
