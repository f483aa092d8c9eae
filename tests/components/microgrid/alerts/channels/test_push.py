"""The FCM push channel against loopback fakes of FCM's HTTP v1 API and Google's OAuth."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from custom_components.microgrid.alerts.channels.http import GatewayError
from custom_components.microgrid.alerts.channels.push import FCM_SCOPE, FcmPushChannel
from custom_components.microgrid.link.auth import ServiceAccountAuth
from tests.components.microgrid.alerts.fakes import (
    CLIENT_EMAIL,
    PHONE,
    PROJECT,
    TOPIC,
    Gateways,
    make_alert,
)


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
