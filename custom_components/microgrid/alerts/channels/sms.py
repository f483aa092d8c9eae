"""The SMS channel: Twilio's Messages API over HA's aiohttp session (one HTTPS POST per alert)."""

from __future__ import annotations

from typing import Final

import aiohttp

from ...link.auth import json_object
from ..model import Alert
from ..options import SmsOptions
from .http import GATEWAY_TIMEOUT_S, GatewayError, gateway_request

# The gateway's production endpoint, read at set-up (tests point it at a loopback fake).
TWILIO_BASE_URL = "https://api.twilio.com"
SMS_MAX_CHARS: Final = 1600  # Twilio's limit for one message body


def sms_body(alert: Alert) -> str:
    """The SMS text: title and message, within one Twilio message."""
    text = f"{alert.title}\n{alert.message}"
    return text if len(text) <= SMS_MAX_CHARS else text[: SMS_MAX_CHARS - 1] + "…"


class TwilioSmsChannel:
    """One phone number, by SMS through Twilio's Messages API (one HTTPS POST per alert)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        sms: SmsOptions,
        to: str,
        *,
        base_url: str = TWILIO_BASE_URL,
        timeout_s: float = GATEWAY_TIMEOUT_S,
    ) -> None:
        """For one E.164 number."""
        self._session = session
        self._sms = sms
        self._to = to
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{sms.account_sid}/Messages.json"
        self._timeout_s = timeout_s
        self.name = f"sms:{to}"

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """POST the message; anything but 2xx raises GatewayError."""
        form = {"To": self._to, "From": self._sms.from_number, "Body": sms_body(alert)}
        auth = aiohttp.encode_basic_auth(self._sms.account_sid, self._sms.auth_token)
        async with (
            gateway_request("Twilio", self._timeout_s),
            self._session.post(self._url, data=form, headers={"Authorization": auth}) as resp,
        ):
            status = resp.status
            raw = await resp.read()
        if not 200 <= status < 300:
            body = json_object(raw)
            raise GatewayError(
                f"Twilio: HTTP {status}: error {body.get('code', '?')}: "
                f"{body.get('message', 'no reason given')}"
            )
