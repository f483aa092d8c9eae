"""The SMS and push channels a site's options turn on, in Home Assistant, against loopback
fakes of Twilio, FCM and Google OAuth (the HTTP level is the only fake)."""

from __future__ import annotations

import json
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.microgrid.alerts import gateways as alert_gateways
from custom_components.microgrid.alerts.channels.push import FcmPushChannel
from custom_components.microgrid.alerts.model import AlertType
from custom_components.microgrid.const import (
    CONF_FCM_TOKENS,
    CONF_FCM_TOPIC,
    CONF_SERVICE_ACCOUNT,
    CONF_SMS_TARGETS,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
)
from sim.rtdb import RTDBServer

from .common import ALERT_OPTIONS, advance, all_boards, manager_of, rebuilt_entry, soc
from .fakes import DUTY, NURSE, PHONE, SENDER, SID, TOKEN, TOPIC, Gateways, basic


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Notify, SMS to two numbers, push to a topic and a phone."""
    return {
        **ALERT_OPTIONS,
        CONF_TWILIO_ACCOUNT_SID: SID,
        CONF_TWILIO_AUTH_TOKEN: TOKEN,
        CONF_TWILIO_FROM: SENDER,
        CONF_SMS_TARGETS: [DUTY, NURSE],
        CONF_FCM_TOPIC: TOPIC,
        CONF_FCM_TOKENS: [PHONE],
    }


@pytest.fixture
def with_key() -> bool:
    """Whether the site entry holds a service-account key (tests parametrize it off)."""
    return True


@pytest.fixture
def gateway_timeout_s() -> float:
    """The channels' timeout (a test that hangs a request parametrizes it short)."""
    return alert_gateways.GATEWAY_TIMEOUT_S


@pytest.fixture
def mock_config_entry(
    mock_config_entry: MockConfigEntry,
    gateways: Gateways,
    service_account: dict[str, Any],
    with_key: bool,
    gateway_timeout_s: float,
    monkeypatch: pytest.MonkeyPatch,
) -> MockConfigEntry:
    """The conftest site (emulator database) plus a key for FCM; gateways on loopback."""
    monkeypatch.setattr(alert_gateways, "TWILIO_BASE_URL", gateways.base_url)
    monkeypatch.setattr(alert_gateways, "FCM_BASE_URL", gateways.base_url)
    monkeypatch.setattr(alert_gateways, "GATEWAY_TIMEOUT_S", gateway_timeout_s)
    key = {CONF_SERVICE_ACCOUNT: json.dumps(service_account)} if with_key else {}
    return rebuilt_entry(mock_config_entry, data=key)


def sms_to(gateways: Gateways) -> list[str]:
    """The numbers Twilio was asked to text, in order."""
    return [r["form"]["To"] for r in gateways.twilio.requests]


def pushed_to(gateways: Gateways) -> list[str]:
    """The FCM destinations, in order."""
    return [
        r["body"]["message"].get("topic") or r["body"]["message"]["token"][:12]
        for r in gateways.fcm.requests
    ]


async def test_warning_is_pushed_and_critical_also_texted(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
) -> None:
    """Battery low (warning) goes to push only; the emergency (critical) to SMS and push."""
    entry = init_integration
    manager = manager_of(hass, entry)
    await soc(hass, entry, rtdb, 15)
    [low] = manager.alerts
    assert gateways.twilio.requests == []
    assert sorted(pushed_to(gateways)) == sorted([TOPIC, PHONE[:12]])
    pushed = manager.get(low.alert_id)
    assert pushed is not None
    assert {f"fcm:topic:{TOPIC}", f"fcm:token:{PHONE[:12]}"} <= set(pushed.delivered)

    await soc(hass, entry, rtdb, 8)
    emergency = manager.alerts[-1]
    assert emergency.alert_type is AlertType.BATTERY_EMERGENCY
    assert sorted(sms_to(gateways)) == sorted([DUTY, NURSE])
    for request in gateways.twilio.requests:
        assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
        assert request["authorization"] == basic(SID, TOKEN)
        assert request["form"]["From"] == SENDER
        assert request["form"]["Body"] == f"{emergency.title}\n{emergency.message}"
    delivered = manager.get(emergency.alert_id)
    assert delivered is not None and delivered.failed == ()
    assert {f"sms:{DUTY}", f"sms:{NURSE}", "notify.test_target", "event"} <= set(
        delivered.delivered
    )
    assert len(gateways.google.grants) == 1  # one token serves every push


@pytest.mark.parametrize("gateway_timeout_s", [0.3])
async def test_gateway_failures_are_recorded_and_others_still_delivered(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
) -> None:
    """Twilio 401 for one number, a hung request for the other, FCM 500 for the topic: each is
    recorded as failed; the phone's push, the notify target and the notification still go."""
    entry = init_integration
    manager = manager_of(hass, entry)
    gateways.twilio.fail[DUTY] = 401
    gateways.twilio.hang.add(NURSE)
    gateways.fcm.fail[TOPIC] = [500]
    await soc(hass, entry, rtdb, 8)
    [alert] = manager.alerts
    done = await manager.async_delivered(alert.alert_id)
    assert done is not None
    assert set(done.failed) == {f"sms:{DUTY}", f"sms:{NURSE}", f"fcm:topic:{TOPIC}"}
    assert set(done.delivered) == {
        "persistent_notification",
        "event",
        "notify.test_target",
        f"fcm:token:{PHONE[:12]}",
    }
    assert len(notified["test_target"]) == 1


async def test_escalation_goes_to_sms(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Nobody acknowledges the emergency: after 10 min both numbers get the escalation SMS and
    the push says escalated."""
    entry = init_integration
    manager = manager_of(hass, entry)
    await soc(hass, entry, rtdb, 8)
    [alert] = manager.alerts
    assert len(gateways.twilio.requests) == 2
    await advance(hass, freezer, entry, rtdb, 11 * 60, lambda: all_boards(8, rtdb=rtdb))
    escalated = manager.get(alert.alert_id)
    assert escalated is not None and escalated.escalated_at is not None
    assert len(notified["escalation"]) == 1
    later = gateways.twilio.requests[2:]
    assert sorted(r["form"]["To"] for r in later) == sorted([DUTY, NURSE])
    assert all("Not acknowledged after 10 min" in r["form"]["Body"] for r in later)
    pushes = [r["body"]["message"]["data"]["escalated"] for r in gateways.fcm.requests]
    assert pushes == ["false", "false", "true", "true"]


async def test_household_only_message_skips_site_sms_and_push(
    hass: HomeAssistant,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    init_integration: MockConfigEntry,
    admin_user: User,
) -> None:
    """A critical message sent with site_targets=False reaches neither the site's SMS numbers
    nor its push destinations (they are site targets, like the notify targets)."""
    response = await hass.services.async_call(
        "microgrid",
        "send_alert",
        {
            "config_entry": init_integration.entry_id,
            "message": "Clinic closed",
            "severity": "critical",
            "household": "Homes",
            "site_targets": False,
        },
        blocking=True,
        return_response=True,
        context=Context(user_id=admin_user.id),
    )
    assert response is not None
    assert gateways.twilio.requests == [] and gateways.fcm.requests == []


class Records(logging.Handler):
    """Collects log records (the suite runs with pytest's logging plugin off)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_logged() -> Any:
    """Warnings of the integration's logger during the test."""
    records = Records()
    logger = logging.getLogger("custom_components.microgrid")
    logger.addHandler(records)
    yield records.messages
    logger.removeHandler(records)


@pytest.mark.parametrize("with_key", [False])
async def test_push_skipped_without_a_key_sms_still_works(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    gateways: Gateways,
    notified: dict[str, list[dict[str, Any]]],
    warnings_logged: list[str],
    init_integration: MockConfigEntry,
) -> None:
    """An emulator site has no service-account key: push is skipped with a logged reason."""
    manager = manager_of(hass, init_integration)
    assert not any(isinstance(c, FcmPushChannel) for c in manager._channels([]))
    assert any("Push alerts (FCM) are skipped" in m for m in warnings_logged)
    await soc(hass, init_integration, rtdb, 8)
    assert sorted(sms_to(gateways)) == sorted([DUTY, NURSE])
    assert gateways.fcm.requests == [] and gateways.google.grants == []
