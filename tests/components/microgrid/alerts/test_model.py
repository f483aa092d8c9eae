"""The alert record: what is stored comes back equal, and stores from before the ladder load."""

from __future__ import annotations

from homeassistant.util import dt as dt_util
import pytest

from custom_components.microgrid.alerts.model import (
    Alert,
    AlertType,
    Attempt,
    FiredRung,
    Severity,
)


def test_alert_round_trips_through_storage() -> None:
    """What is stored comes back equal; a broken record raises a clear error type."""
    alert = Alert(
        alert_id="01",
        alert_type=AlertType.BATTERY_LOW,
        severity=Severity.WARNING,
        title="t",
        message="m",
        created_at=dt_util.utcnow(),
        soc_pct=19.0,
        delivered=("event",),
    )
    assert Alert.from_dict(alert.as_dict()) == alert
    with pytest.raises(ValueError):
        Alert.from_dict({**alert.as_dict(), "alert_type": "nonsense"})


def test_ladder_record_round_trips_and_old_stores_load() -> None:
    """Rungs, attempts, the restart and the essential flag are stored; a record written before
    the ladder loads with its one escalation as the admins rung."""
    now = dt_util.utcnow()
    alert = Alert(
        alert_id="02",
        alert_type=AlertType.CRITICAL_ZONE_FAILURE,
        severity=Severity.CRITICAL,
        title="t",
        message="Not acknowledged after 10 min. m",
        original_message="m",
        created_at=now,
        zone_id="Zone1",
        essential=True,
        restart_at=now,
        escalated_at=now,
        rungs=(FiredRung(rung="admins", at=now),),
        attempts=(
            Attempt(channel="notify.x", rung="admins", at=now, ok=False, error="gone"),
            Attempt(
                channel="sms:+254712345678", rung="admins", at=now, ok=True, backup_for="notify.x"
            ),
        ),
    )
    stored = alert.as_dict()
    assert stored["attempts"][1] == {
        "channel": "sms:+254712345678",
        "rung": "admins",
        "at": now.isoformat(),
        "ok": True,
        "error": None,
        "backup_for": "notify.x",
    }
    assert Alert.from_dict(stored) == alert
    old = {
        k: v
        for k, v in stored.items()
        if k not in ("rungs", "attempts", "essential", "restart_at", "original_message")
    }
    loaded = Alert.from_dict(old)
    assert loaded.rungs == (FiredRung(rung="admins", at=now),)
    assert loaded.attempts == () and not loaded.essential and loaded.restart_at is None
    never_escalated = Alert.from_dict({**old, "escalated_at": None})
    assert never_escalated.rungs == ()
