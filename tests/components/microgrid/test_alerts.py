"""Alerts: battery thresholds with hysteresis, critical zones, failed commands, escalation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.components import persistent_notification
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Context, HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util
from hypothesis import given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.alerts.manager import (
    DATA_ALERTS,
    Alert,
    AlertManager,
    AlertOptions,
    AlertType,
    Severity,
    battery_levels,
    battery_step,
    normalize_target,
)
from custom_components.microgrid.const import (
    CONF_ESCALATION_MINUTES,
    CONF_ESCALATION_TARGETS,
    CONF_NOTIFY_TARGETS,
    DEFAULT_OPTIONS,
    DOMAIN,
    EVENT_COMMAND_FAILED,
)
from custom_components.microgrid.optimizer.model import Thresholds
from sim.rtdb import RTDBServer

from .conftest import ZONES, board_record, push, set_site_soc, wait_for

THRESHOLDS = Thresholds(
    conservation_pct=20.0,
    emergency_pct=10.0,
    critical_alert_pct=5.0,
    hysteresis_pct=2.0,
    min_on_s=300,
    min_off_s=300,
)


# ----- the pure decision --------------------------------------------------------------------


def run(socs: list[float], armed: frozenset[AlertType] | None = None) -> list[AlertType | None]:
    """The alert (or None) each reading gives."""
    state = frozenset(AlertType) if armed is None else armed
    fired: list[AlertType | None] = []
    for soc in socs:
        step = battery_step(soc, state, battery_levels(THRESHOLDS), THRESHOLDS.hysteresis_pct)
        state = step.armed
        fired.append(step.fire.alert_type if step.fire else None)
    return fired


def test_battery_step_once_per_descent_with_hysteresis() -> None:
    """20 → 19 → 21 → 19 alerts once; 23 re-arms; 19 alerts again; a plunge sends the worst."""
    low = AlertType.BATTERY_LOW
    assert run([20, 19, 21, 19, 23, 19]) == [None, low, None, None, None, low]
    assert run([15, 9.9, 4]) == [low, AlertType.BATTERY_EMERGENCY, AlertType.BATTERY_CRITICAL]
    assert run([25, 4, 6.9, 4]) == [None, AlertType.BATTERY_CRITICAL, None, None]
    # re-armed exactly at threshold + hysteresis (as the operating band climbs back)
    emergency = AlertType.BATTERY_EMERGENCY
    assert run([9, 11.9, 9, 12, 9]) == [emergency, None, None, None, emergency]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=40))
def test_battery_step_properties(socs: list[float]) -> None:
    """Never two alerts of a level without a recovery past its hysteresis between them, and a
    reading below an armed level always alerts (that level or a worse one)."""
    state = frozenset(AlertType)
    levels = battery_levels(THRESHOLDS)
    recovered = {level.alert_type: True for level in levels}
    for soc in socs:
        step = battery_step(soc, state, levels, THRESHOLDS.hysteresis_pct)
        for level in levels:
            if level.alert_type in state and soc < level.threshold_pct:
                assert step.fire is not None and step.fire.threshold_pct <= level.threshold_pct
            if soc >= level.threshold_pct + THRESHOLDS.hysteresis_pct:
                recovered[level.alert_type] = True
        if step.fire is not None:
            assert recovered[step.fire.alert_type]
            for level in levels:
                if level.alert_type in step.crossed:
                    recovered[level.alert_type] = False
        state = step.armed


def test_targets_and_options_are_normalized() -> None:
    """`x` and `notify.x` are one target; malformed ones are dropped; minutes are bounded."""
    assert normalize_target(" Mobile_App_X ") == "notify.mobile_app_x"
    assert normalize_target("light.kitchen") is None
    assert normalize_target("") is None
    options = AlertOptions.from_options(
        {
            CONF_NOTIFY_TARGETS: ["a", "notify.a", "bad target"],
            CONF_ESCALATION_TARGETS: "b",
            CONF_ESCALATION_MINUTES: 0,
        }
    )
    assert options.notify_targets == ("notify.a",)
    assert options.escalation_targets == ("notify.b",)
    assert options.escalation_delay == timedelta(minutes=1)
    assert AlertOptions.from_options({}).escalation_delay == timedelta(minutes=10)


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


# ----- in Home Assistant --------------------------------------------------------------------


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Alerts go to notify.test_target; escalations to notify.escalation after 10 min."""
    return {
        **DEFAULT_OPTIONS,
        CONF_NOTIFY_TARGETS: ["notify.test_target"],
        CONF_ESCALATION_TARGETS: ["notify.escalation"],
        CONF_ESCALATION_MINUTES: 10,
    }


@pytest.fixture
def notified(hass: HomeAssistant) -> dict[str, list[dict[str, Any]]]:
    """Real notify actions that record what they were called with."""
    calls: dict[str, list[dict[str, Any]]] = {"test_target": [], "escalation": []}
    for name, recorded in calls.items():

        async def handler(call: ServiceCall, recorded: list[dict[str, Any]] = recorded) -> None:
            recorded.append(dict(call.data))

        hass.services.async_register("notify", name, handler)
    return calls


class FakeChannel:
    """A channel as an SMS or push gateway would implement it: records what it was sent."""

    def __init__(self, name: str, *, fail: bool = False) -> None:
        """Named; optionally always failing."""
        self.name = name
        self.fail = fail
        self.sent: list[tuple[str, bool]] = []

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Record, or fail as a gateway that is down."""
        if self.fail:
            raise HomeAssistantError("gateway down")
        self.sent.append((alert.alert_id, escalated))


def manager_of(hass: HomeAssistant, entry: MockConfigEntry) -> AlertManager:
    """The entry's alert manager."""
    return hass.data[DATA_ALERTS][entry.entry_id]


async def soc(hass: HomeAssistant, entry: MockConfigEntry, rtdb: RTDBServer, pct: float) -> None:
    """Every board reports this state of charge, through the real stream, in order."""
    coordinator = entry.runtime_data.coordinator
    for zone_id, *_ in ZONES:
        rtdb.set_value(f"sensors/{zone_id}", board_record(soc=pct))
    await wait_for(lambda: coordinator.data is not None and coordinator.data.soc_pct == pct)
    await settle(hass, entry)


async def settle(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Let command writes finish before the clock moves (a frozen jump times them out)."""
    coordinator = entry.runtime_data.coordinator
    await hass.async_block_till_done()
    await wait_for(lambda: coordinator.commands.in_flight == 0)


async def advance(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry: MockConfigEntry,
    rtdb: RTDBServer,
    seconds: float,
    records: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Move time in steps of at most 30 s, the boards reporting `records()` at each step."""
    left = seconds
    while left > 0:
        step = min(30.0, left)
        freezer.tick(timedelta(seconds=step))
        left -= step
        await push(entry, rtdb, records() if records else all_boards(rtdb=rtdb))
        async_fire_time_changed(hass)
        await settle(hass, entry)


def all_boards(
    pct: float = 80.0, *, rtdb: RTDBServer | None = None, **zone_records: dict[str, Any]
) -> dict[str, Any]:
    """A fresh record for every board (some replaced); with `rtdb`, each relay follows the
    command written for it, as a working board's does."""

    def relay(zone_id: str) -> bool:
        command = rtdb.get_value(f"commands/{zone_id}") if rtdb else None
        return command is None or command["command"] == "ON"

    return {z: zone_records.get(z, board_record(soc=pct, relay=relay(z))) for z, *_ in ZONES}


def event_state(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    """The alert event entity's state."""
    entity_id = er.async_get(hass).async_get_entity_id("event", DOMAIN, f"{entry.entry_id}_alerts")
    assert entity_id
    return hass.states.get(entity_id)


def notifications(hass: HomeAssistant) -> dict[str, Any]:
    """The persistent notifications."""
    return persistent_notification._async_get_or_create_notifications(hass)


async def call(
    hass: HomeAssistant, service: str, data: dict[str, Any], user: User | None = None
) -> Any:
    """Call an alert action (as a user when given) and return its response."""
    return await hass.services.async_call(
        DOMAIN,
        service,
        data,
        blocking=True,
        return_response=True,
        context=Context(user_id=user.id) if user else None,
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


async def test_household_cannot_acknowledge_a_site_emergency(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    admin_user: User,
    household_user: User,
    freezer: FrozenDateTimeFactory,
) -> None:
    """At 4 % a household member's acknowledgement is refused (translated, audited) and the
    alert still escalates to the admins; an admin's acknowledgement is recorded."""
    entry = init_integration
    manager = manager_of(hass, entry)
    await soc(hass, entry, rtdb, 4)
    [alert] = manager.alerts
    assert alert.alert_type is AlertType.BATTERY_CRITICAL
    await advance(hass, freezer, entry, rtdb, 5 * 60, lambda: all_boards(4, rtdb=rtdb))
    stranger = await hass.auth.async_create_user("Stranger", group_ids=["system-users"])
    with pytest.raises(Unauthorized):
        await call(hass, "acknowledge_alert", {"config_entry": entry.entry_id}, stranger)
    with pytest.raises(ServiceValidationError) as err:
        await call(
            hass,
            "acknowledge_alert",
            {"config_entry": entry.entry_id, "alert_id": "nope"},
            household_user,
        )
    assert err.value.translation_key == "unknown_alert"
    for data in ({"alert_id": alert.alert_id}, {}):  # by id, and "every open one"
        with pytest.raises(ServiceValidationError) as err:
            await call(
                hass, "acknowledge_alert", {"config_entry": entry.entry_id, **data}, household_user
            )
        assert err.value.translation_key == "acknowledge_admin_only"
        assert "Only an administrator may acknowledge" in str(err.value)
    assert manager.get(alert.alert_id).open  # type: ignore[union-attr]
    refused = entry.runtime_data.audit.query(action="request_refused")
    assert [(e["actor"], e["detail"]["reason"], e["detail"].get("alert_id")) for e in refused] == [
        *[(household_user.id, "acknowledge_admin_only", alert.alert_id)] * 2,
        (stranger.id, "not_site_user", None),
    ]
    await advance(hass, freezer, entry, rtdb, 6 * 60, lambda: all_boards(4, rtdb=rtdb))
    assert len(notified["escalation"]) == 1  # escalation to the admins went on
    response = await call(
        hass,
        "acknowledge_alert",
        {"config_entry": entry.entry_id, "alert_id": alert.alert_id},
        admin_user,
    )
    assert response == {"acknowledged": [alert.alert_id], "count": 1}
    acked = manager.get(alert.alert_id)
    assert acked is not None and acked.acknowledged_by == admin_user.id and not acked.open
    assert manager.notification.notification_id(alert) not in notifications(hass)
    audited = entry.runtime_data.audit.query(action="alert_acknowledged")
    assert audited[0]["actor"] == admin_user.id


async def test_household_acknowledges_only_its_own_alerts(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    admin_user: User,
    household_user: User,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A critical message to the household 'Homes' is theirs to acknowledge (it then does not
    escalate); a site-wide one is not (refused, and it escalates)."""
    entry = init_integration
    manager = manager_of(hass, entry)
    base = {"config_entry": entry.entry_id, "severity": "critical", "site_targets": False}
    own = await call(
        hass, "send_alert", {**base, "message": "Meter", "household": "Homes"}, admin_user
    )
    site = await call(hass, "send_alert", {**base, "message": "Clinic"}, admin_user)
    assert own["household"] == "Homes" and manager.get(own["alert_id"]).household == "Homes"  # type: ignore[union-attr]
    with pytest.raises(ServiceValidationError) as err:
        await call(
            hass,
            "acknowledge_alert",
            {"config_entry": entry.entry_id, "alert_id": [own["alert_id"], site["alert_id"]]},
            household_user,
        )
    assert err.value.translation_key == "acknowledge_not_your_household"
    assert manager.get(own["alert_id"]).open  # type: ignore[union-attr]  # all or nothing
    response = await call(
        hass, "acknowledge_alert", {"config_entry": entry.entry_id}, household_user
    )
    assert response == {"acknowledged": [own["alert_id"]], "count": 1}  # only its own
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "acknowledge_alert", {"config_entry": entry.entry_id}, household_user)
    assert err.value.translation_key == "acknowledge_not_your_household"
    await advance(hass, freezer, entry, rtdb, 11 * 60)
    assert manager.get(own["alert_id"]).escalated_at is None  # type: ignore[union-attr]
    assert manager.get(site["alert_id"]).escalated_at is not None  # type: ignore[union-attr]


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


async def test_send_alert_is_admin_only_and_reaches_a_household(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    admin_user: User,
    household_user: User,
) -> None:
    """An admin's message goes to the site targets and the household's phones; a failing target
    is reported, not fatal; households may not send."""
    entry = init_integration
    phone: list[dict[str, Any]] = []

    async def phone_handler(call: ServiceCall) -> None:
        phone.append(dict(call.data))

    async def broken(call: ServiceCall) -> None:
        raise HomeAssistantError("gateway down")

    hass.services.async_register("notify", "mobile_app_asha_phone", phone_handler)
    hass.services.async_register("notify", "mobile_app_old_phone", broken)
    MockConfigEntry(
        domain="mobile_app", data={"user_id": household_user.id, "device_name": "Asha phone"}
    ).add_to_hass(hass)
    MockConfigEntry(
        domain="mobile_app", data={"user_id": household_user.id, "device_name": "Old phone"}
    ).add_to_hass(hass)
    MockConfigEntry(
        domain="mobile_app", data={"user_id": admin_user.id, "device_name": "Admin phone"}
    ).add_to_hass(hass)
    data = {
        "config_entry": entry.entry_id,
        "message": "Water pump maintenance at 14:00",
        "household": "homes",
    }
    with pytest.raises(Unauthorized):
        await call(hass, "send_alert", data, household_user)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "send_alert", {**data, "household": "Nobody"}, admin_user)
    assert err.value.translation_key == "unknown_household"

    response = await call(hass, "send_alert", data, admin_user)
    assert response["alert_type"] == "custom" and response["severity"] == "info"
    assert response["household"] == "Homes"
    assert response["household_targets"] == [
        "notify.mobile_app_asha_phone",
        "notify.mobile_app_old_phone",
    ]
    assert set(response["delivered"]) == {
        "persistent_notification",
        "event",
        "notify.test_target",
        "notify.mobile_app_asha_phone",
    }
    assert response["failed"] == ["notify.mobile_app_old_phone"]
    assert response["source"] == admin_user.id
    assert phone == [{"message": "Water pump maintenance at 14:00", "title": "Village: Message"}]
    assert notified["test_target"][0]["message"] == "Water pump maintenance at 14:00"
    assert event_state(hass, entry).attributes["event_type"] == "custom"

    # household only, a titled critical message: not to the site targets; it escalates
    response = await call(
        hass,
        "send_alert",
        {**data, "site_targets": False, "severity": "critical", "title": "Clinic closed"},
        admin_user,
    )
    assert len(notified["test_target"]) == 1
    assert phone[-1]["title"] == "Clinic closed"
    assert response["alert_id"] in manager_of(hass, entry)._timers


async def test_get_alerts_history_and_filters(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    admin_user: User,
    household_user: User,
) -> None:
    """Newest first, with acknowledged/escalated state; filters; strangers refused."""
    entry = init_integration
    await soc(hass, entry, rtdb, 15)
    await soc(hass, entry, rtdb, 8)
    response = await call(hass, "get_alerts", {"config_entry": entry.entry_id}, household_user)
    assert response["count"] == 2 and response["open"] == 2
    newest, oldest = response["alerts"]
    assert newest["alert_type"] == "battery_emergency" and oldest["alert_type"] == "battery_low"
    assert newest["acknowledged_at"] is None and newest["escalated_at"] is None
    assert newest["open"] is True and newest["soc_pct"] == 8
    await call(
        hass,
        "acknowledge_alert",
        {"config_entry": entry.entry_id, "alert_id": oldest["alert_id"]},
        admin_user,
    )
    response = await call(
        hass, "get_alerts", {"config_entry": entry.entry_id, "open_only": True}, admin_user
    )
    assert [a["alert_id"] for a in response["alerts"]] == [newest["alert_id"]]
    assert response["open"] == 1
    response = await call(
        hass, "get_alerts", {"config_entry": entry.entry_id, "alert_type": "battery_low"}
    )
    [low] = response["alerts"]
    assert low["acknowledged_by"] == admin_user.id and low["acknowledged_by_name"] == "Admin"
    response = await call(hass, "get_alerts", {"config_entry": entry.entry_id, "limit": 1})
    assert response["count"] == 1
    response = await call(hass, "acknowledge_alert", {"config_entry": entry.entry_id})
    assert response == {"acknowledged": [newest["alert_id"]], "count": 1}  # every open one
    stranger = await hass.auth.async_create_user("Stranger", group_ids=["system-users"])
    with pytest.raises(Unauthorized):
        await call(hass, "get_alerts", {"config_entry": entry.entry_id}, stranger)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "get_alerts", {"config_entry": "nope"})
    assert err.value.translation_key == "invalid_config_entry"


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
