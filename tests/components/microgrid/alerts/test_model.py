"""The alert record: what is stored comes back equal."""

from __future__ import annotations

from homeassistant.util import dt as dt_util
import pytest

from custom_components.microgrid.alerts.model import Alert, AlertType, Severity


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
