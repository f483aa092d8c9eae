"""The Twilio SMS channel against a loopback fake of Twilio's Messages API."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from custom_components.microgrid.alerts.channels.http import GatewayError
from custom_components.microgrid.alerts.channels.sms import (
    SMS_MAX_CHARS,
    TwilioSmsChannel,
    sms_body,
)
from tests.components.microgrid.alerts.fakes import (
    DUTY,
    SENDER,
    SID,
    SMS,
    TOKEN,
    Gateways,
    basic,
    make_alert,
)


def test_sms_body_fits_one_message() -> None:
    """Title and message; a long message is cut to Twilio's limit."""
    assert sms_body(make_alert()) == (
        "Village: Battery emergency\nBattery at 8 %, below the 10 % emergency threshold."
    )
    long = sms_body(make_alert(message="x" * 5000))
    assert len(long) == SMS_MAX_CHARS and long.endswith("…")


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
