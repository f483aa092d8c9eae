"""The alert manager in Home Assistant: battery thresholds with hysteresis, critical zones,
failed commands, anomalies, escalation, and its history across unload and reload."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import persistent_notification
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.alerts.manager import DATA_ALERTS
from custom_components.microgrid.alerts.model import AlertType, Severity
from custom_components.microgrid.const import DOMAIN, EVENT_COMMAND_FAILED
from custom_components.microgrid.learning.manager import EVENT_ANOMALY
from custom_components.microgrid.ml.anomaly import Anomaly
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import ZONES, board_record, set_site_soc, wait_for
from tests.components.microgrid.services.conftest import call

from .common import (
    FakeChannel,
    advance,
    all_boards,
    event_state,
    manager_of,
    notifications,
    soc,
)


async def test_battery_low_once_per_descent_with_hysteresis(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
) -> None:
    """20 → 19 → 21 → 19 gives one alert; → 23 → 19 a second; each on every channel."""
    entry = init_integration
    manager = manager_of(hass, entry)
    for pct in (20, 19, 21, 19):
        await soc(hass, entry, rtdb, pct)
    assert [a.alert_type for a in manager.alerts] == [AlertType.BATTERY_LOW]
    first = manager.alerts[0]
    assert first.severity is Severity.WARNING and first.soc_pct == 19
    assert len(notified["test_target"]) == 1
    sent = notified["test_target"][0]
    assert "19 %" in sent["message"] and "20 %" in sent["message"]
    assert sent["title"] == "Village: Battery low"
    assert manager.notification.notification_id(first) in notifications(hass)
    state = event_state(hass, entry)
    assert state.attributes["event_type"] == "battery_low"
    assert state.attributes["severity"] == "warning"
    assert state.attributes["alert_id"] == first.alert_id
    assert set(manager.get(first.alert_id).delivered) == {  # type: ignore[union-attr]
        "persistent_notification",
        "event",
        "notify.test_target",
    }

    await soc(hass, entry, rtdb, 23)  # recovered past 20 + 2: re-armed, the first one resolved
    resolved = manager.get(first.alert_id)
    assert resolved is not None and resolved.resolved_at is not None and not resolved.open
    assert manager.notification.notification_id(first) not in notifications(hass)
    await soc(hass, entry, rtdb, 19)
    assert [a.alert_type for a in manager.alerts] == [AlertType.BATTERY_LOW] * 2
    assert len(notified["test_target"]) == 2
    audited = entry.runtime_data.audit.query(action="alert")
    assert [e["detail"]["alert_type"] for e in audited] == ["battery_low", "battery_low"]


async def test_emergency_and_critical_levels(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
) -> None:
    """15 → 8 → 4: low (warning), emergency and critical (critical), each fired on the event."""
    entry = init_integration
    manager = manager_of(hass, entry)
    seen: list[str] = []
    for pct, expected in ((15, "battery_low"), (8, "battery_emergency"), (4, "battery_critical")):
        await soc(hass, entry, rtdb, pct)
        seen.append(event_state(hass, entry).attributes["event_type"])
        assert seen[-1] == expected
    assert [(a.alert_type, a.severity) for a in manager.alerts] == [
        (AlertType.BATTERY_LOW, Severity.WARNING),
        (AlertType.BATTERY_EMERGENCY, Severity.CRITICAL),
        (AlertType.BATTERY_CRITICAL, Severity.CRITICAL),
    ]
    assert "4 %" in notified["test_target"][-1]["message"]
    await soc(hass, entry, rtdb, 3)  # still falling: nothing new
    assert len(manager.alerts) == 3


async def test_unacknowledged_critical_alert_escalates_once(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    freezer: FrozenDateTimeFactory,
) -> None:
    """Nobody acknowledges the emergency: after 10 min it goes to the escalation targets (and
    to added channels: one for every alert, one only for escalations, one that fails)."""
    entry = init_integration
    manager = manager_of(hass, entry)
    every, on_escalation, broken = (
        FakeChannel("sms:every"),
        FakeChannel("sms:duty"),
        FakeChannel("sms:broken", fail=True),
    )
    manager.add_channel(every)
    manager.add_channel(on_escalation, escalation_only=True)
    remove = manager.add_channel(broken)
    await soc(hass, entry, rtdb, 8)  # 80 → 8: one alert, the emergency
    [alert] = manager.alerts
    assert alert.alert_type is AlertType.BATTERY_EMERGENCY
    await advance(hass, freezer, entry, rtdb, 9 * 60, lambda: all_boards(8, rtdb=rtdb))
    assert notified["escalation"] == []
    assert manager.get(alert.alert_id).escalated_at is None  # type: ignore[union-attr]
    await advance(hass, freezer, entry, rtdb, 90, lambda: all_boards(8, rtdb=rtdb))
    assert len(notified["escalation"]) == 1
    assert "Not acknowledged after 10 min" in notified["escalation"][0]["message"]
    escalated = manager.get(alert.alert_id)
    assert escalated is not None and escalated.escalated_at is not None
    assert "notify.escalation" in escalated.delivered
    assert event_state(hass, entry).attributes["escalated"] is True
    assert every.sent == [(alert.alert_id, False), (alert.alert_id, True)]
    assert on_escalation.sent == [(alert.alert_id, True)]
    assert "sms:broken" in escalated.failed and "sms:every" in escalated.delivered
    remove()
    assert all(c is not broken for c in manager._channels([], escalated=True))
    assert entry.runtime_data.audit.query(action="alert_escalated")
    await advance(hass, freezer, entry, rtdb, 30 * 60, lambda: all_boards(8, rtdb=rtdb))
    assert len(notified["escalation"]) == 1  # once
    assert manager._timers == {}


async def test_critical_zone_relay_off_alerts_after_a_minute(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    freezer: FrozenDateTimeFactory,
) -> None:
    """The clinic reports its relay off while it must be on: one alert after ~1 min, resolved
    when it is back on."""
    entry = init_integration
    manager = manager_of(hass, entry)

    def broken() -> dict[str, Any]:
        return all_boards(Zone1=board_record(relay=False))

    await advance(hass, freezer, entry, rtdb, 30, broken)
    assert not manager.alerts
    await advance(hass, freezer, entry, rtdb, 60, broken)
    [alert] = manager.alerts
    assert alert.alert_type is AlertType.CRITICAL_ZONE_FAILURE
    assert alert.severity is Severity.CRITICAL and alert.zone_id == "Zone1"
    assert "Clinic" in alert.message and "relay off" in alert.message
    assert event_state(hass, entry).attributes["event_type"] == "critical_zone_failure"
    await advance(hass, freezer, entry, rtdb, 60, broken)
    assert len(manager.alerts) == 1  # one per failure, not per reading
    await advance(hass, freezer, entry, rtdb, 30)  # relay back on
    fixed = manager.get(alert.alert_id)
    assert fixed is not None and fixed.resolved_at is not None
    assert manager._timers == {}  # resolved: no escalation pending


async def test_critical_zone_board_offline_alerts(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    freezer: FrozenDateTimeFactory,
) -> None:
    """The clinic's board goes silent: offline after 2 min, an alert a minute later."""
    entry = init_integration
    manager = manager_of(hass, entry)

    def others() -> dict[str, Any]:
        return {z: board_record() for z, *_ in ZONES if z != "Zone1"}

    await advance(hass, freezer, entry, rtdb, 150, others)
    assert not manager.alerts
    await advance(hass, freezer, entry, rtdb, 90, others)
    [alert] = manager.alerts
    assert alert.zone_id == "Zone1" and "offline" in alert.message


async def test_command_failed_alerts(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
) -> None:
    """A failed command alerts (critical for a critical zone); other sites' events are ignored;
    the event entity fires even while the site's data is failing."""
    entry = init_integration
    manager = manager_of(hass, entry)
    entry.runtime_data.coordinator.async_set_update_error(UpdateFailed("database down"))
    base = {"command": "OFF", "attempts": 5, "reason": "battery_emergency"}
    hass.bus.async_fire(EVENT_COMMAND_FAILED, {**base, "entry_id": "other", "zone_id": "Zone4"})
    hass.bus.async_fire(
        EVENT_COMMAND_FAILED, {**base, "entry_id": entry.entry_id, "zone_id": "Zone4"}
    )
    hass.bus.async_fire(
        EVENT_COMMAND_FAILED,
        {**base, "command": "ON", "entry_id": entry.entry_id, "zone_id": "Zone1"},
    )
    await hass.async_block_till_done()
    assert [(a.zone_id, a.severity) for a in manager.alerts] == [
        ("Zone4", Severity.WARNING),
        ("Zone1", Severity.CRITICAL),
    ]
    assert "Water pump did not confirm the OFF command after 5 attempts" in (
        manager.alerts[0].message
    )
    state = event_state(hass, entry)
    assert state.state != STATE_UNAVAILABLE
    assert state.attributes["event_type"] == "command_failed"
    assert len(notified["test_target"]) == 2
    # the entity sits on the site's device
    entity = er.async_get(hass).async_get(state.entity_id)
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    assert entity is not None and device is not None and entity.device_id == device.id
    assert device.name == "Village"


async def test_unload_cancels_timers_and_reload_restores_history(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    freezer: FrozenDateTimeFactory,
) -> None:
    """Unload cancels the escalation timer; after a reload the history, the disarmed levels and
    the pending escalation come back (no second alert at the same charge)."""
    entry = init_integration
    manager = manager_of(hass, entry)
    await soc(hass, entry, rtdb, 8)
    [alert] = manager.alerts
    assert alert.alert_id in manager._timers
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert manager._timers == {}
    assert entry.entry_id not in hass.data[DATA_ALERTS]
    freezer.tick(timedelta(minutes=20))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert notified["escalation"] == []
    with pytest.raises(ServiceValidationError):
        await call(hass, "get_alerts", {"config_entry": entry.entry_id})
    notification_id = manager.notification.notification_id(alert)
    persistent_notification.async_dismiss(hass, notification_id)  # as after an HA restart

    set_site_soc(rtdb, 8)  # fresh again at the new time
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.link.connected)
    restored = manager_of(hass, entry)
    assert restored is not manager
    assert [a.alert_id for a in restored.alerts] == [alert.alert_id]
    assert notification_id in notifications(hass)  # the open alert is shown again
    await soc(hass, entry, rtdb, 8)
    assert len(restored.alerts) == 1  # still disarmed: no repeat after a restart
    # overdue at restore: escalated at once
    assert len(notified["escalation"]) == 1
    assert restored.alerts[0].escalated_at is not None


async def test_anomalies_alert_once_per_zone_and_type_until_they_clear(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `microgrid_anomaly` is a warning alert delivered like the others; the same zone and
    type again while it is active is not; once the learning no longer shows it the alert
    resolves and a new one may come. Another site's anomalies are ignored."""
    entry = init_integration
    manager = manager_of(hass, entry)
    learning = entry.runtime_data.coordinator.ml
    # The learning's own detection (nothing to find here) would replace the anomalies below.
    monkeypatch.setattr(learning, "async_refresh", AsyncMock())
    now = dt_util.utcnow()
    stuck = {
        "entry_id": entry.entry_id,
        "zone": "Zone3",
        "type": "relay_off_power_flow",
        "score": 3.21,
        "at": now.isoformat(),
        "detail": {},
    }
    learning.anomalies = [
        Anomaly(zone_id="Zone3", type="relay_off_power_flow", score=3.21, at=now.timestamp())
    ]
    hass.bus.async_fire(EVENT_ANOMALY, {**stuck, "entry_id": "other"})
    hass.bus.async_fire(EVENT_ANOMALY, stuck)
    await hass.async_block_till_done()
    [alert] = manager.alerts
    assert (alert.alert_type, alert.severity, alert.zone_id) == (
        AlertType.ANOMALY,
        Severity.WARNING,
        "Zone3",
    )
    assert alert.message.startswith("Homes: Relay off while power flows (anomaly score 3.2)")
    assert notified["test_target"][0]["title"] == "Village: Anomaly"
    assert event_state(hass, entry).attributes["event_type"] == "anomaly"
    hass.bus.async_fire(EVENT_ANOMALY, stuck)  # the same anomaly again
    await hass.async_block_till_done()
    await advance(hass, freezer, entry, rtdb, 30)  # still active in the learning's view
    assert len(manager.alerts) == 1 and manager.alerts[0].open

    learning.anomalies = []
    await advance(hass, freezer, entry, rtdb, 30)
    cleared = manager.get(alert.alert_id)
    assert cleared is not None and cleared.resolved_at is not None
    hass.bus.async_fire(EVENT_ANOMALY, stuck)  # it comes back: alerts again
    hass.bus.async_fire(
        EVENT_ANOMALY, {**stuck, "zone": None, "type": "base_load_drift", "score": None}
    )
    await hass.async_block_till_done()
    assert [a.alert_type for a in manager.alerts] == [AlertType.ANOMALY] * 3
    assert (
        manager.alerts[-1].message == "Village: Base load rising across the site (anomaly score ?)."
    )
    assert len(notified["test_target"]) == 3
    assert manager.ladder_plan(manager.alerts[-1]) == ()  # warnings do not climb
