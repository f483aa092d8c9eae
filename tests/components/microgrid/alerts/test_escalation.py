"""The escalation ladder in Home Assistant, on the frozen clock: a failing clinic is restarted
before it alerts, then its alert climbs household -> admins -> duty phone -> authorities at its
delays until someone acknowledges it; a failed channel hands over to SMS, then push; the ladder
resumes after a reload. Twilio and FCM are faked at the HTTP level (fakes.py)."""

from __future__ import annotations

from datetime import timedelta
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.alerts import gateways as alert_gateways
from custom_components.microgrid.alerts.manager import AlertManager
from custom_components.microgrid.alerts.model import Alert, AlertType
from custom_components.microgrid.const import (
    CONF_AUTHORITIES_PHONES,
    CONF_AUTHORITIES_TARGETS,
    CONF_CONTROL_MODE,
    CONF_DUTY_PHONE,
    CONF_ESSENTIAL_SERVICE,
    CONF_FCM_TOPIC,
    CONF_HOUSEHOLD,
    CONF_SERVICE_ACCOUNT,
    CONF_SMS_TARGETS,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
    CONTROL_MODE_MONITOR,
)
from custom_components.microgrid.diagnostics import async_get_config_entry_diagnostics
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import ZONES, board_record, set_site_soc, wait_for
from tests.components.microgrid.services.conftest import call

from .common import (
    ALERT_OPTIONS,
    DEFAULT_RUNG_MINUTES,
    advance,
    all_boards,
    manager_of,
    rebuilt_entry,
    record_notify,
    soc,
)
from .fakes import DUTY, NURSE, SENDER, SID, TOKEN, TOPIC, Gateways

AUTHORITY = "+221771234567"  # the district health office's phone
MIN = 60.0


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """The default ladder (0 / 10 / 20 / 30 min): admins = notify.escalation, the duty phone,
    the authorities by notify and SMS; SMS to the nurse, push to a topic."""
    return {
        **ALERT_OPTIONS,
        CONF_TWILIO_ACCOUNT_SID: SID,
        CONF_TWILIO_AUTH_TOKEN: TOKEN,
        CONF_TWILIO_FROM: SENDER,
        CONF_SMS_TARGETS: [NURSE],
        CONF_FCM_TOPIC: TOPIC,
        CONF_DUTY_PHONE: DUTY,
        CONF_AUTHORITIES_TARGETS: ["notify.authorities"],
        CONF_AUTHORITIES_PHONES: [AUTHORITY],
    }


@pytest.fixture
def essential() -> bool:
    """Whether the clinic (Zone1) is marked as an essential service."""
    return True


@pytest.fixture
def clinic_household() -> dict[str, Any]:
    """Changes to the clinic's zone data (the household rung's test gives it a household)."""
    return {}


@pytest.fixture
def notified(hass: HomeAssistant) -> dict[str, list[dict[str, Any]]]:
    """The site's, the admins' and the authorities' notify actions, recording."""
    return record_notify(hass, ("test_target", "escalation", "authorities"))


@pytest.fixture
def mock_config_entry(
    mock_config_entry: MockConfigEntry,
    gateways: Gateways,
    service_account: dict[str, Any],
    essential: bool,
    clinic_household: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> MockConfigEntry:
    """The conftest site with a key for push, its clinic marked (or not) as essential."""
    monkeypatch.setattr(alert_gateways, "TWILIO_BASE_URL", gateways.base_url)
    monkeypatch.setattr(alert_gateways, "FCM_BASE_URL", gateways.base_url)
    return rebuilt_entry(
        mock_config_entry,
        data={CONF_SERVICE_ACCOUNT: json.dumps(service_account)},
        zones={"Zone1": {CONF_ESSENTIAL_SERVICE: essential, **clinic_household}},
    )


def clinic_silent() -> dict[str, Any]:
    """Every board but the clinic's reports (its board is down)."""
    return {z: board_record() for z, *_ in ZONES if z != "Zone1"}


async def clinic_alert(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: MockConfigEntry, rtdb: RTDBServer
) -> Alert:
    """Let the clinic's board go silent until its failure alerts; the alert."""
    manager = manager_of(hass, entry)
    for _ in range(12):
        await advance(hass, freezer, entry, rtdb, 30, clinic_silent)
        if manager.alerts:
            break
    [alert] = manager.alerts
    assert alert.alert_type is AlertType.CRITICAL_ZONE_FAILURE and alert.zone_id == "Zone1"
    return alert


def texted(gateways: Gateways) -> list[str]:
    """The numbers Twilio was asked to text, in order."""
    return [r["form"]["To"] for r in gateways.twilio.requests]


def rungs(manager: AlertManager, alert_id: str) -> dict[str, Any]:
    """rung -> when it fired."""
    current = manager.get(alert_id)
    assert current is not None
    return {r.rung: r.at for r in current.rungs}


async def test_clinic_restart_then_alert_then_each_rung_on_time(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The clinic's board goes down: its ON command is sent again first, the alert follows,
    then the admins at 10 min, the duty phone at 20, the authorities (a clinic) at 30 — each
    exactly at its time, none earlier; the record shows every rung and attempt."""
    entry = init_integration
    manager = manager_of(hass, entry)
    alert = await clinic_alert(hass, freezer, entry, rtdb)
    [restart] = entry.runtime_data.audit.query(action="zone_restart")
    assert restart["zone_id"] == "Zone1" and restart["detail"]["cause"] == "offline"
    assert alert.restart_at is not None and alert.restart_at < alert.created_at
    assert dt_util.parse_datetime(restart["at"]) == alert.restart_at
    assert rtdb.get_value("commands/Zone1")["reason"] == "restart"
    assert "did not bring it back" in alert.message and alert.essential
    assert texted(gateways) == [NURSE]  # critical: the site's SMS recipient at once
    created = alert.created_at

    reached = {
        "admins": lambda: len(notified["escalation"]) == 1,
        "duty": lambda: texted(gateways)[-1] == DUTY,
        "authorities": lambda: len(notified["authorities"]) == 1,
    }
    elapsed = 0.0
    for rung, minutes in (("admins", 10), ("duty", 20), ("authorities", 30)):
        await advance(hass, freezer, entry, rtdb, minutes * MIN - 30 - elapsed, clinic_silent)
        assert rung not in rungs(manager, alert.alert_id), rung
        assert not reached[rung]()
        await advance(hass, freezer, entry, rtdb, 30, clinic_silent)
        elapsed = minutes * MIN
        assert rungs(manager, alert.alert_id)[rung] == created + timedelta(minutes=minutes)
        assert reached[rung](), rung

    assert texted(gateways) == [NURSE, NURSE, DUTY, AUTHORITY]
    assert "Not acknowledged after 10 min" in notified["escalation"][0]["message"]
    duty_sms = gateways.twilio.requests[2]["form"]["Body"]
    assert "Not acknowledged after 20 min" in duty_sms and "Clinic" in duty_sms
    authorities = notified["authorities"][0]["message"]
    assert "essential service" in authorities and "30 min" in authorities
    assert "Clinic" in authorities
    assert "essential service" in gateways.twilio.requests[3]["form"]["Body"]
    assert manager._timers == {}  # nothing left to climb
    audited = entry.runtime_data.audit.query(action="alert_escalated")
    assert sorted(e["detail"]["rung"] for e in audited) == ["admins", "authorities", "duty"]

    response = await call(
        hass,
        "get_alerts",
        {"config_entry": entry.entry_id, "alert_type": "critical_zone_failure"},
    )
    assert response["ladder_minutes"] == DEFAULT_RUNG_MINUTES
    [shown] = response["alerts"]
    assert [(r["rung"], r["status"]) for r in shown["ladder"]] == [
        ("household", "skipped"),  # the clinic belongs to no household
        ("admins", "fired"),
        ("duty", "fired"),
        ("authorities", "fired"),
    ]
    for step in shown["ladder"][1:]:
        assert step["fired_at"] == step["due_at"]
    by_rung = {(a["rung"], a["channel"]): a for a in shown["attempts"]}
    assert by_rung["alert", "notify.test_target"]["ok"] is True
    assert by_rung["admins", "notify.escalation"]["ok"] is True
    assert by_rung["duty", f"sms:{DUTY}"]["ok"] is True
    assert by_rung["authorities", "notify.authorities"]["ok"] is True
    assert by_rung["authorities", f"sms:{AUTHORITY}"]["ok"] is True
    assert all(a["error"] is None and a["backup_for"] is None for a in shown["attempts"])


async def test_acknowledging_stops_the_ladder(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    admin_user: User,
) -> None:
    """An admin acknowledges at 12 min (after the admins rung): neither the duty phone nor the
    authorities are reached; the audit says which rungs were reached and which stopped."""
    entry = init_integration
    manager = manager_of(hass, entry)
    alert = await clinic_alert(hass, freezer, entry, rtdb)
    await advance(hass, freezer, entry, rtdb, 12 * MIN, clinic_silent)
    assert set(rungs(manager, alert.alert_id)) == {"admins"}
    await call(
        hass,
        "acknowledge_alert",
        {"config_entry": entry.entry_id, "alert_id": alert.alert_id},
        admin_user,
    )
    assert manager._timers == {}
    await advance(hass, freezer, entry, rtdb, 30 * MIN, clinic_silent)
    assert set(rungs(manager, alert.alert_id)) == {"admins"}
    assert DUTY not in texted(gateways) and AUTHORITY not in texted(gateways)
    assert notified["authorities"] == []
    [acked] = entry.runtime_data.audit.query(action="alert_acknowledged")
    assert acked["actor"] == admin_user.id
    assert acked["detail"]["rungs_reached"] == ["admins"]
    assert acked["detail"]["rungs_stopped"] == ["duty", "authorities"]
    response = await call(
        hass,
        "get_alerts",
        {"config_entry": entry.entry_id, "alert_type": "critical_zone_failure"},
    )
    assert [r["status"] for r in response["alerts"][0]["ladder"]] == [
        "skipped",
        "fired",
        "stopped",
        "stopped",
    ]


@pytest.mark.parametrize("essential", [False])
async def test_authorities_only_for_an_essential_service(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The same failure of a zone not marked clinic/hospital: the ladder stops at the duty
    phone; the authorities are never told."""
    entry = init_integration
    manager = manager_of(hass, entry)
    alert = await clinic_alert(hass, freezer, entry, rtdb)
    assert not alert.essential
    await advance(hass, freezer, entry, rtdb, 31 * MIN, clinic_silent)
    assert set(rungs(manager, alert.alert_id)) == {"admins", "duty"}
    assert notified["authorities"] == [] and AUTHORITY not in texted(gateways)
    [plan] = [
        p for p in manager.ladder_plan(manager.get(alert.alert_id)) if p.rung == "authorities"
    ]  # type: ignore[arg-type]
    assert plan.status == "skipped"


async def test_battery_emergency_with_the_clinic_off_reaches_the_authorities(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A battery emergency is site-wide; with the clinic without power it concerns an
    essential service: its ladder gains the authorities rung (audited). With the clinic on, a
    battery emergency never reaches them."""
    entry = init_integration
    manager = manager_of(hass, entry)
    await soc(hass, entry, rtdb, 8)
    [emergency] = manager.alerts
    assert emergency.alert_type is AlertType.BATTERY_EMERGENCY and not emergency.essential
    statuses = {p.rung: p.status for p in manager.ladder_plan(emergency)}
    assert statuses["authorities"] == "skipped"  # the clinic is on
    await advance(
        hass,
        freezer,
        entry,
        rtdb,
        30,
        lambda: all_boards(8, rtdb=rtdb, Zone1=board_record(soc=8, relay=False)),
    )
    marked = manager.get(emergency.alert_id)
    assert marked is not None and marked.essential
    [audited] = entry.runtime_data.audit.query(action="alert_essential_service")
    assert audited["detail"]["zones"] == ["Zone1"]
    statuses = {p.rung: p.status for p in manager.ladder_plan(marked)}
    assert statuses["authorities"] == "pending"


async def test_backup_channels_notify_to_sms_and_sms_to_push(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The site's notify action fails: the warning goes by SMS to the site's recipient instead.
    The duty phone's SMS fails: the push topic takes it. Each attempt is recorded with its
    rung, its error and what it stood in for."""
    entry = init_integration
    manager = manager_of(hass, entry)

    async def broken(call: ServiceCall) -> None:
        raise HomeAssistantError("phone unreachable")

    hass.services.async_register("notify", "test_target", broken)
    await soc(hass, entry, rtdb, 15)  # battery low: a warning (no SMS of its own)
    [low] = manager.alerts
    done = await manager.async_delivered(low.alert_id)
    assert done is not None
    attempts = {a.channel: a for a in done.attempts}
    assert attempts["notify.test_target"].ok is False
    assert attempts["notify.test_target"].error == "phone unreachable"
    assert attempts[f"sms:{NURSE}"].ok and attempts[f"sms:{NURSE}"].backup_for == (
        "notify.test_target"
    )
    assert texted(gateways) == [NURSE]
    assert "notify.test_target" in done.failed and f"sms:{NURSE}" in done.delivered

    gateways.twilio.fail[DUTY] = 500
    pushes = len(gateways.fcm.requests)
    await advance(hass, freezer, entry, rtdb, 30, lambda: all_boards(8, rtdb=rtdb))
    emergency = manager.alerts[-1]  # critical: it climbs
    assert emergency.alert_type is AlertType.BATTERY_EMERGENCY
    await advance(hass, freezer, entry, rtdb, 20 * MIN, lambda: all_boards(8, rtdb=rtdb))
    done = manager.get(emergency.alert_id)
    assert done is not None
    duty = [a for a in done.attempts if a.rung == "duty"]
    assert [(a.channel, a.ok, a.backup_for) for a in duty] == [
        (f"sms:{DUTY}", False, None),
        (f"fcm:topic:{TOPIC}", True, f"sms:{DUTY}"),
    ]
    assert duty[0].error is not None and "HTTP 500" in duty[0].error
    pushed = gateways.fcm.requests[pushes:]
    assert pushed[-1]["body"]["message"]["data"]["escalated"] == "true"
    assert "Not acknowledged after 20 min" in pushed[-1]["body"]["message"]["notification"]["body"]


async def test_restart_that_works_needs_no_alert(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The clinic reports its relay off; the ON command sent again brings it back: no alert,
    the restart audited."""
    entry = init_integration
    manager = manager_of(hass, entry)
    restarted = False

    def records() -> dict[str, Any]:
        nonlocal restarted
        command = rtdb.get_value("commands/Zone1")
        restarted = restarted or (command is not None and command["reason"] == "restart")
        return all_boards(Zone1=board_record(relay=restarted))

    await advance(hass, freezer, entry, rtdb, 30, records)
    assert not restarted
    await advance(hass, freezer, entry, rtdb, 30, records)  # 30 s without power: restart
    assert rtdb.get_value("commands/Zone1")["reason"] == "restart"
    await advance(hass, freezer, entry, rtdb, 5 * MIN, records)
    assert restarted and not manager.alerts
    [audited] = entry.runtime_data.audit.query(action="zone_restart")
    assert audited["detail"]["cause"] == "relay_off"


@pytest.mark.parametrize(
    "entry_options", [{**ALERT_OPTIONS, CONF_CONTROL_MODE: CONTROL_MODE_MONITOR}]
)
async def test_monitor_mode_alerts_without_a_restart(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """In monitor mode no command is written, so no restart: the alert comes after the grace."""
    entry = init_integration
    alert = await clinic_alert(hass, freezer, entry, rtdb)
    assert alert.restart_at is None and "did not bring it back" not in alert.message
    assert entry.runtime_data.audit.query(action="zone_restart") == []


async def test_the_ladder_resumes_after_a_reload(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The admins were reached at 10 min; Home Assistant is down from 10.5 to 25.5 min: on
    reload the overdue duty rung fires at once (once), the admins are not told again."""
    entry = init_integration
    manager = manager_of(hass, entry)
    await soc(hass, entry, rtdb, 8)
    [alert] = manager.alerts
    await advance(hass, freezer, entry, rtdb, 10.5 * MIN, lambda: all_boards(8, rtdb=rtdb))
    assert set(rungs(manager, alert.alert_id)) == {"admins"}
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    freezer.tick(timedelta(minutes=15))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert DUTY not in texted(gateways)

    set_site_soc(rtdb, 8)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.link.connected)
    restored = manager_of(hass, entry)
    reloaded_at = dt_util.utcnow()
    await hass.async_block_till_done()
    await restored.async_delivered(alert.alert_id)
    assert rungs(restored, alert.alert_id)["duty"] == reloaded_at
    assert rungs(restored, alert.alert_id)["admins"] == alert.created_at + timedelta(minutes=10)
    assert texted(gateways).count(DUTY) == 1
    assert len(notified["escalation"]) == 1
    assert restored._timers == {}  # the authorities are not on this ladder (no clinic off)


@pytest.mark.parametrize("clinic_household", [{CONF_HOUSEHOLD: "Homes"}])
async def test_household_rung_reaches_the_zone_households_phones_at_once(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    household_user: User,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The failing zone belongs to a household: its members' phones get the alert at once
    (the first rung, 0 min), before the admins; the diagnostics show the ladder too."""
    entry = init_integration
    manager = manager_of(hass, entry)
    phone: list[dict[str, Any]] = []

    async def asha_phone(call: ServiceCall) -> None:
        phone.append(dict(call.data))

    hass.services.async_register("notify", "mobile_app_asha_phone", asha_phone)
    MockConfigEntry(
        domain="mobile_app", data={"user_id": household_user.id, "device_name": "Asha phone"}
    ).add_to_hass(hass)
    alert = await clinic_alert(hass, freezer, entry, rtdb)
    await hass.async_block_till_done()
    assert rungs(manager, alert.alert_id) == {"household": alert.created_at}
    assert len(phone) == 1 and "Clinic" in phone[0]["message"]
    assert notified["escalation"] == []
    done = manager.get(alert.alert_id)
    assert done is not None
    assert [(a.channel, a.rung, a.ok) for a in done.attempts if a.rung == "household"] == [
        ("notify.mobile_app_asha_phone", "household", True)
    ]
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    [shown] = [a for a in diagnostics["alerts"] if a["alert_id"] == alert.alert_id]
    assert [(r["rung"], r["status"]) for r in shown["ladder"]][:2] == [
        ("household", "fired"),
        ("admins", "pending"),
    ]
    assert any(a["channel"] == "notify.mobile_app_asha_phone" for a in shown["attempts"])
