"""Loopback fakes of the gateways behind the SMS and push channels, and an alert to send.

The HTTP level is the only fake: the channels, the alert manager and the site run for real.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from homeassistant.util import dt as dt_util
import jwt

from custom_components.microgrid.alerts.model import Alert, AlertType, Severity
from custom_components.microgrid.alerts.options import SmsOptions

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f" * 32
SENDER = "+15005550006"
DUTY = "+254712345678"
NURSE = "+254798765432"
TOPIC = "village-alerts"
PHONE = "dQw4w9WgXcQ:APA91bH" + "x" * 120
PROJECT = "demo-site"
CLIENT_EMAIL = "ha@demo-site.iam.gserviceaccount.com"


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
