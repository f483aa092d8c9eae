"""The alert actions: send_alert (admins), get_alerts and acknowledge_alert (site users), with
their refusals, household rules and responses."""

from __future__ import annotations

from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.microgrid.alerts.model import AlertType
from sim.rtdb import RTDBServer
from tests.components.microgrid.alerts.common import (
    ALERT_OPTIONS,
    DEFAULT_RUNG_MINUTES,
    advance,
    all_boards,
    event_state,
    manager_of,
    notifications,
    record_notify,
    soc,
)
from tests.components.microgrid.services.conftest import call


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Alerts go to notify.test_target; escalations to notify.escalation after 10 min."""
    return dict(ALERT_OPTIONS)


@pytest.fixture
def notified(hass: HomeAssistant) -> dict[str, list[dict[str, Any]]]:
    """Real notify actions that record what they were called with."""
    return record_notify(hass)


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


async def test_responses_show_the_ladder_and_every_attempt(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    notified: dict[str, list[dict[str, Any]]],
    admin_user: User,
    freezer: FrozenDateTimeFactory,
) -> None:
    """get_alerts and send_alert answer with each alert's ladder (every rung: when due, whether
    it fired) and its delivery attempts; a warning has no ladder; the site's rung minutes."""
    entry = init_integration

    async def broken(call: ServiceCall) -> None:
        raise HomeAssistantError("gateway down")

    hass.services.async_register("notify", "escalation", broken)
    sent = await call(
        hass,
        "send_alert",
        {"config_entry": entry.entry_id, "message": "Clinic door forced", "severity": "critical"},
        admin_user,
    )
    assert [(r["rung"], r["status"], r["fired_at"]) for r in sent["ladder"]] == [
        ("household", "skipped", None),
        ("admins", "pending", None),
        ("duty", "skipped", None),  # no duty phone set
        ("authorities", "skipped", None),  # no clinic affected, none set
    ]
    assert {(a["channel"], a["rung"], a["ok"]) for a in sent["attempts"]} == {
        ("persistent_notification", "alert", True),
        ("event", "alert", True),
        ("notify.test_target", "alert", True),
    }
    await advance(hass, freezer, entry, rtdb, 10 * 60)
    response = await call(hass, "get_alerts", {"config_entry": entry.entry_id}, admin_user)
    assert response["ladder_minutes"] == DEFAULT_RUNG_MINUTES
    [shown] = response["alerts"]
    admins = shown["ladder"][1]
    assert admins["status"] == "fired" and admins["fired_at"] == admins["due_at"]
    failed = [a for a in shown["attempts"] if not a["ok"]]
    assert failed == [
        {
            "channel": "notify.escalation",
            "rung": "admins",
            "at": admins["fired_at"],
            "ok": False,
            "error": "gateway down",
            "backup_for": None,  # no SMS or push configured: nothing to fall back on
        }
    ]
    assert shown["failed"] == ["notify.escalation"]
    await advance(hass, freezer, entry, rtdb, 30, lambda: all_boards(15, rtdb=rtdb))  # warning
    response = await call(
        hass, "get_alerts", {"config_entry": entry.entry_id, "alert_type": "battery_low"}
    )
    assert response["alerts"][0]["ladder"] == []
