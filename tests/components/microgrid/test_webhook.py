"""Signed readings over the webhook: a second path beside Firebase."""

from __future__ import annotations

from collections.abc import Callable
import time
from typing import Any

from homeassistant.core import HomeAssistant
import jwt
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.microgrid.webhook import async_webhook_id

from .conftest import SECRET, board_record


def _token(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _claims(node: str = "Zone3", **reading: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"node": node, "reading": board_record(**reading), "iat": now, "exp": now + 60}


async def test_signed_reading_is_ingested_and_decided_on(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> None:
    """A valid signed 8 % reading arrives like a stream event: the site goes into emergency."""
    client = await hass_client_no_auth()
    webhook_id, created = await async_webhook_id(hass, init_integration.entry_id)
    assert not created  # made at setup, stable afterwards
    resp = await client.post(
        f"/api/webhook/{webhook_id}", json={"token": _token(_claims("Zone1", soc=8.0))}
    )
    assert resp.status == 200
    assert (await resp.json()) == {"accepted": "Zone1"}
    coordinator = init_integration.runtime_data.coordinator
    assert coordinator.readings["Zone1"].soc_pct == 8.0
    assert coordinator.band is not None and coordinator.band.value == "emergency"


# Bodies are built when the test runs: tokens made at import time would expire before use.
BAD_BODIES: dict[str, tuple[Callable[[], Any], int]] = {
    "forged": (lambda: {"token": _token(_claims(), secret="not-the-site-secret-at-all")}, 401),
    "expired": (lambda: {"token": _token({**_claims(), "exp": int(time.time()) - 10})}, 401),
    "no_node": (
        lambda: {"token": _token({k: v for k, v in _claims().items() if k != "node"})},
        401,
    ),
    "token_not_text": (lambda: {"token": 42}, 400),
    "not_an_object": (lambda: ["not", "an", "object"], 400),
    "unknown_zone": (lambda: {"token": _token(_claims("Ghost"))}, 404),
    "bad_record": (
        lambda: {"token": _token({**_claims(), "reading": {"batteryPercentage": "low"}})},
        400,
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
async def test_bad_webhook_readings_are_refused(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    kind: str,
) -> None:
    """Forged, expired, malformed and unknown-zone readings change nothing."""
    client = await hass_client_no_auth()
    webhook_id, _ = await async_webhook_id(hass, init_integration.entry_id)
    coordinator = init_integration.runtime_data.coordinator
    before = coordinator.readings["Zone3"]
    make_body, status = BAD_BODIES[kind]
    resp = await client.post(f"/api/webhook/{webhook_id}", json=make_body())
    assert resp.status == status
    assert coordinator.readings["Zone3"] == before


async def test_garbage_body_is_a_bad_request(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> None:
    """Not JSON at all: 400, logged, no crash."""
    client = await hass_client_no_auth()
    webhook_id, _ = await async_webhook_id(hass, init_integration.entry_id)
    resp = await client.post(f"/api/webhook/{webhook_id}", data=b"\xff\x00garbage")
    assert resp.status == 400
