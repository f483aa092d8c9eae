"""Twilio SMS and FCM push alert channels against loopback fakes of Twilio, FCM and Google OAuth.

The HTTP level is the only fake: the channels, the alert manager and the site run for real.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
import json
import logging
import socket
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import Context, HomeAssistant, ServiceCall
from homeassistant.util import dt as dt_util
import jwt
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.microgrid.alerts import manager as alerts
from custom_components.microgrid.alerts.manager import (
    FCM_SCOPE,
    SMS_MAX_CHARS,
    Alert,
    AlertType,
    FcmPushChannel,
    GatewayError,
    PushOptions,
    Severity,
    SmsOptions,
    TwilioSmsChannel,
    normalize_phone,
    sms_body,
)
from custom_components.microgrid.const import (
    CONF_ESCALATION_MINUTES,
    CONF_ESCALATION_TARGETS,
    CONF_FCM_TOKENS,
    CONF_FCM_TOPIC,
    CONF_NOTIFY_TARGETS,
    CONF_SERVICE_ACCOUNT,
    CONF_SMS_TARGETS,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
    DEFAULT_OPTIONS,
)
from custom_components.microgrid.link.auth import ServiceAccountAuth
from sim.rtdb import RTDBServer

from .test_alerts import advance, all_boards, manager_of, soc

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f" * 32
SENDER = "+15005550006"
DUTY = "+254712345678"
NURSE = "+254798765432"
TOPIC = "village-alerts"
PHONE = "dQw4w9WgXcQ:APA91bH" + "x" * 120
PROJECT = "demo-site"
CLIENT_EMAIL = "ha@demo-site.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """A throwaway service-account key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeTwilio:
    """Twilio's Messages API: records each request; fails or hangs for chosen numbers."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # To -> HTTP status
    hang: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """POST /2010-04-01/Accounts/{sid}/Messages.json."""
        form = dict(await request.post())
        self.requests.append(
            {
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "content_type": request.content_type,
                "form": form,
            }
        )
        to = str(form.get("To"))
        if to in self.hang:
            await self.release.wait()
        status = self.fail.get(to, 201)
        if status == 201:
            return web.json_response(
                {"sid": f"SM{len(self.requests):032x}", "status": "queued", "to": to}, status=201
            )
        message = "Authenticate" if status == 401 else "Internal error"
        return web.json_response(
            {"code": 20003 if status == 401 else 20500, "message": message, "status": status},
            status=status,
        )


FCM_ERRORS = {
    401: ("UNAUTHENTICATED", None),
    404: ("NOT_FOUND", "UNREGISTERED"),
    500: ("INTERNAL", None),
}


@dataclass
class FakeFcm:
    """FCM's HTTP v1 send endpoint: records each request; per-destination queued statuses."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    fail: dict[str, list[int]] = field(default_factory=dict)  # topic or token -> statuses

    async def handle(self, request: web.Request) -> web.Response:
        """POST /v1/projects/{project}/messages:send."""
        body = await request.json()
        self.requests.append(
            {
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "body": body,
            }
        )
        message = body["message"]
        queue = self.fail.get(message.get("topic") or message.get("token"), [])
        status = queue.pop(0) if queue else 200
        if status == 200:
            name = f"projects/{request.match_info['project']}/messages/{len(self.requests)}"
            return web.json_response({"name": name})
        state, code = FCM_ERRORS[status]
        error: dict[str, Any] = {"code": status, "message": "refused", "status": state}
        if code:
            error["details"] = [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
            ]
        return web.json_response({"error": error}, status=status)


@dataclass
class FakeGoogleToken:
    """Google's OAuth token endpoint: verifies each signed grant, hands out numbered tokens."""

    public_key: Any
    url: str = ""
    grants: list[dict[str, Any]] = field(default_factory=list)
    refuse: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        """POST /token with a JWT bearer grant."""
        form = await request.post()
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        # Signature and audience are checked; times are not: tests that freeze the clock sign
        # with the real time (time.time is bound at import) while jwt reads the frozen one.
        claims = jwt.decode(
            str(form["assertion"]),
            self.public_key,
            algorithms=["RS256"],
            audience=self.url,
            options={"verify_iat": False, "verify_exp": False, "verify_nbf": False},
        )
        self.grants.append(claims)
        if self.refuse:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response(
            {"access_token": f"ya29.fcm-{len(self.grants)}", "expires_in": 3600}
        )


@dataclass
class Gateways:
    """The three fakes behind one loopback server."""

    base_url: str
    twilio: FakeTwilio
    fcm: FakeFcm
    google: FakeGoogleToken


@pytest.fixture
async def gateways(socket_enabled: None, rsa_key: rsa.RSAPrivateKey) -> AsyncIterator[Gateways]:
    """Twilio, FCM and Google's token endpoint on 127.0.0.1."""
    twilio, fcm, google = FakeTwilio(), FakeFcm(), FakeGoogleToken(rsa_key.public_key())
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", twilio.handle)
    app.router.add_post("/v1/projects/{project}/messages:send", fcm.handle)
    app.router.add_post("/token", google.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    google.url = f"{base_url}/token"
    try:
        yield Gateways(base_url=base_url, twilio=twilio, fcm=fcm, google=google)
    finally:
        twilio.release.set()  # let a hanging handler finish so the runner stops promptly
        await runner.cleanup()


@pytest.fixture
def service_account(gateways: Gateways, rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """A service-account key whose token endpoint is the fake."""
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "token_uri": gateways.google.url,
    }


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session for the channel-level tests."""
    async with aiohttp.ClientSession() as client:
        yield client


def make_alert(severity: Severity = Severity.CRITICAL, **changes: Any) -> Alert:
    """An emergency alert as the manager raises it."""
    alert = Alert(
        alert_id="01JALERT",
        alert_type=AlertType.BATTERY_EMERGENCY,
        severity=severity,
        title="Village: Battery emergency",
        message="Battery at 8 %, below the 10 % emergency threshold.",
        created_at=dt_util.parse_datetime("2026-11-25T01:00:00+00:00"),  # type: ignore[arg-type]
        soc_pct=8.0,
    )
    return replace(alert, **changes)


SMS = SmsOptions(account_sid=SID, auth_token=TOKEN, from_number=SENDER, targets=(DUTY,))


def basic(user: str, password: str) -> str:
    """An HTTP basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ----- pure parts ---------------------------------------------------------------------------


def test_phone_numbers_and_options_parse() -> None:
    """E.164 with separators is accepted; anything else is not; SMS needs every field."""
    assert normalize_phone(" +254 (712) 345-678 ") == DUTY
    for bad in ("0712345678", "+0712345678", "+12", "+1234567890123456", "+25471234567x", ""):
        assert normalize_phone(bad) is None, bad
    complete = {
        CONF_TWILIO_ACCOUNT_SID: SID,
        CONF_TWILIO_AUTH_TOKEN: TOKEN,
        CONF_TWILIO_FROM: SENDER,
        CONF_SMS_TARGETS: [DUTY, "+254 712 345 678", "nonsense", NURSE],
    }
    sms = SmsOptions.from_options(complete)
    assert sms is not None and sms.targets == (DUTY, NURSE) and sms.from_number == SENDER
    assert TOKEN not in repr(sms)
    assert SmsOptions.from_options({}) is None
    for missing in (CONF_TWILIO_ACCOUNT_SID, CONF_TWILIO_AUTH_TOKEN, CONF_TWILIO_FROM):
        assert SmsOptions.from_options({**complete, missing: ""}) is None, missing
    assert SmsOptions.from_options({**complete, CONF_SMS_TARGETS: ["nonsense"]}) is None
    push = PushOptions.from_options({CONF_FCM_TOPIC: TOPIC, CONF_FCM_TOKENS: [PHONE, "bad"]})
    assert push == PushOptions(topic=TOPIC, tokens=(PHONE,))
    assert PushOptions.from_options({CONF_FCM_TOPIC: "no spaces allowed"}) is None


def test_sms_body_fits_one_message() -> None:
    """Title and message; a long message is cut to Twilio's limit."""
    assert sms_body(make_alert()) == (
        "Village: Battery emergency\nBattery at 8 %, below the 10 % emergency threshold."
    )
    long = sms_body(make_alert(message="x" * 5000))
    assert len(long) == SMS_MAX_CHARS and long.endswith("…")


# ----- Twilio channel -----------------------------------------------------------------------


async def test_twilio_posts_the_exact_request(
    session: aiohttp.ClientSession, gateways: Gateways
) -> None:
    """Form-encoded To/From/Body to the account's Messages.json with basic auth (sid, token)."""
    channel = TwilioSmsChannel(session, SMS, DUTY, base_url=gateways.base_url)
    assert channel.name == f"sms:{DUTY}"
    await channel.async_send(make_alert(), escalated=False)
    [request] = gateways.twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request["authorization"] == basic(SID, TOKEN)
    assert request["content_type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {"To": DUTY, "From": SENDER, "Body": sms_body(make_alert())}


@pytest.mark.parametrize(("status", "detail"), [(401, "error 20003"), (500, "error 20500")])
async def test_twilio_refusals_raise_gateway_error(
    session: aiohttp.ClientSession, gateways: Gateways, status: int, detail: str
) -> None:
    """A refused or failed request is a GatewayError naming the status and Twilio's code."""
    gateways.twilio.fail[DUTY] = status
    channel = TwilioSmsChannel(session, SMS, DUTY, base_url=gateways.base_url)
    with pytest.raises(GatewayError, match=f"HTTP {status}: {detail}"):
        await channel.async_send(make_alert(), escalated=False)


async def test_twilio_timeout_and_unreachable_raise_gateway_error(
    session: aiohttp.ClientSession, gateways: Gateways
) -> None:
    """No answer within the timeout, or nobody listening: GatewayError, not a raw exception."""
    gateways.twilio.hang.add(DUTY)
    slow = TwilioSmsChannel(session, SMS, DUTY, base_url=gateways.base_url, timeout_s=0.2)
    with pytest.raises(GatewayError, match="no answer"):
        await slow.async_send(make_alert(), escalated=False)
    with socket_bound() as port:  # a port with no server behind it
        down = TwilioSmsChannel(session, SMS, DUTY, base_url=f"http://127.0.0.1:{port}")
        with pytest.raises(GatewayError, match="ClientConnectorError"):
            await down.async_send(make_alert(), escalated=False)


class socket_bound:
    """A loopback port reserved (bound, not listening) for the duration of a block."""

    def __enter__(self) -> int:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


# ----- FCM channel --------------------------------------------------------------------------


def fcm_auth(session: aiohttp.ClientSession, key: dict[str, Any]) -> ServiceAccountAuth:
    """The FCM-scoped token provider the integration builds."""
    return ServiceAccountAuth(session, key, scopes=FCM_SCOPE)


async def test_fcm_posts_the_exact_request(
    session: aiohttp.ClientSession, gateways: Gateways, service_account: dict[str, Any]
) -> None:
    """A Bearer token minted with the messaging scope; the v1 body for a topic and a token."""
    auth = fcm_auth(session, service_account)
    topic = FcmPushChannel(
        session, auth, project_id=PROJECT, entry_id="e1", topic=TOPIC, base_url=gateways.base_url
    )
    phone = FcmPushChannel(
        session, auth, project_id=PROJECT, entry_id="e1", token=PHONE, base_url=gateways.base_url
    )
    assert topic.name == f"fcm:topic:{TOPIC}" and phone.name == f"fcm:token:{PHONE[:12]}"
    await topic.async_send(make_alert(zone_id="Zone1"), escalated=False)
    await phone.async_send(make_alert(), escalated=True)
    [grant] = gateways.google.grants  # one token for both sends
    assert grant["scope"] == FCM_SCOPE and grant["iss"] == CLIENT_EMAIL
    first, second = gateways.fcm.requests
    assert first["path"] == second["path"] == f"/v1/projects/{PROJECT}/messages:send"
    assert first["authorization"] == second["authorization"] == "Bearer ya29.fcm-1"
    data = {
        "entry_id": "e1",
        "alert_id": "01JALERT",
        "alert_type": "battery_emergency",
        "severity": "critical",
        "created_at": "2026-11-25T01:00:00+00:00",
        "soc_pct": "8",
    }
    notification = {
        "title": "Village: Battery emergency",
        "body": "Battery at 8 %, below the 10 % emergency threshold.",
    }
    assert first["body"] == {
        "message": {
            "topic": TOPIC,
            "notification": notification,
            "data": {**data, "escalated": "false", "zone_id": "Zone1"},
        }
    }
    assert second["body"] == {
        "message": {
            "token": PHONE,
            "notification": notification,
            "data": {**data, "escalated": "true"},
        }
    }
    with pytest.raises(ValueError):
        FcmPushChannel(session, auth, project_id=PROJECT, entry_id="e1")


async def test_fcm_401_mints_a_new_token_once(
    session: aiohttp.ClientSession, gateways: Gateways, service_account: dict[str, Any]
) -> None:
    """A 401 invalidates the token and retries once with a fresh one; a second 401 fails."""
    auth = fcm_auth(session, service_account)
    channel = FcmPushChannel(
        session, auth, project_id=PROJECT, entry_id="e1", topic=TOPIC, base_url=gateways.base_url
    )
    gateways.fcm.fail[TOPIC] = [401]
    await channel.async_send(make_alert(), escalated=False)
    assert [r["authorization"] for r in gateways.fcm.requests] == [
        "Bearer ya29.fcm-1",
        "Bearer ya29.fcm-2",
    ]
    gateways.fcm.fail[TOPIC] = [401, 401]
    with pytest.raises(GatewayError, match="HTTP 401: UNAUTHENTICATED"):
        await channel.async_send(make_alert(), escalated=False)
    assert len(gateways.google.grants) == 3


@pytest.mark.parametrize(("status", "detail"), [(404, "NOT_FOUND UNREGISTERED"), (500, "INTERNAL")])
async def test_fcm_errors_raise_gateway_error(
    session: aiohttp.ClientSession,
    gateways: Gateways,
    service_account: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    """An unregistered token or a server error: GatewayError with FCM's status and code."""
    gateways.fcm.fail[PHONE] = [status]
    channel = FcmPushChannel(
        session,
        fcm_auth(session, service_account),
        project_id=PROJECT,
        entry_id="e1",
        token=PHONE,
        base_url=gateways.base_url,
    )
    with pytest.raises(GatewayError, match=f"HTTP {status}: {detail}"):
        await channel.async_send(make_alert(), escalated=False)


async def test_fcm_without_a_token_raises_gateway_error(
    session: aiohttp.ClientSession, gateways: Gateways, service_account: dict[str, Any]
) -> None:
    """Google refuses the key: no send is attempted; GatewayError."""
    gateways.google.refuse = True
    channel = FcmPushChannel(
        session,
        fcm_auth(session, service_account),
        project_id=PROJECT,
        entry_id="e1",
        topic=TOPIC,
        base_url=gateways.base_url,
    )
    with pytest.raises(GatewayError, match="no access token"):
        await channel.async_send(make_alert(), escalated=False)
    assert gateways.fcm.requests == []


# ----- in Home Assistant --------------------------------------------------------------------


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Notify, SMS to two numbers, push to a topic and a phone."""
    return {
        **DEFAULT_OPTIONS,
        CONF_NOTIFY_TARGETS: ["notify.test_target"],
        CONF_ESCALATION_TARGETS: ["notify.escalation"],
        CONF_ESCALATION_MINUTES: 10,
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
    return alerts.GATEWAY_TIMEOUT_S


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
    monkeypatch.setattr(alerts, "TWILIO_BASE_URL", gateways.base_url)
    monkeypatch.setattr(alerts, "FCM_BASE_URL", gateways.base_url)
    monkeypatch.setattr(alerts, "GATEWAY_TIMEOUT_S", gateway_timeout_s)
    data = dict(mock_config_entry.data)
    if with_key:
        data[CONF_SERVICE_ACCOUNT] = json.dumps(service_account)
    return MockConfigEntry(
        domain=mock_config_entry.domain,
        title=mock_config_entry.title,
        unique_id=mock_config_entry.unique_id,
        data=data,
        options=dict(mock_config_entry.options),
        subentries_data=[
            ConfigSubentryData(
                data=dict(s.data),
                subentry_type=s.subentry_type,
                title=s.title,
                unique_id=s.unique_id,
            )
            for s in mock_config_entry.subentries.values()
        ],
    )


@pytest.fixture
def notified(hass: HomeAssistant) -> dict[str, list[dict[str, Any]]]:
    """Real notify actions that record what they were called with."""
    calls: dict[str, list[dict[str, Any]]] = {"test_target": [], "escalation": []}
    for name, recorded in calls.items():

        async def handler(call: ServiceCall, recorded: list[dict[str, Any]] = recorded) -> None:
            recorded.append(dict(call.data))

        hass.services.async_register("notify", name, handler)
    return calls


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
