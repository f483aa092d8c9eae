"""Fixtures of the alert tests: the alert options, recording notify actions, and loopback fakes
of the SMS and push gateways (Twilio, FCM, Google's token endpoint)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from homeassistant.core import HomeAssistant
import pytest

from .common import ALERT_OPTIONS, record_notify
from .fakes import CLIENT_EMAIL, PROJECT, FakeFcm, FakeGoogleToken, FakeTwilio, Gateways


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Alerts go to notify.test_target; escalations to notify.escalation after 10 min."""
    return dict(ALERT_OPTIONS)


@pytest.fixture
def notified(hass: HomeAssistant) -> dict[str, list[dict[str, Any]]]:
    """Real notify actions that record what they were called with."""
    return record_notify(hass)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """A throwaway service-account key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


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
