"""Signed readings over the webhook: a second path beside Firebase."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta
import logging
import time
from typing import Any

from aiohttp.test_utils import TestClient
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import jwt
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.microgrid.control.webhook import (
    BURST,
    MAX_SEEN_PER_BOARD,
    ReadingGuard,
    SignedReading,
    async_webhook_id,
)
from tests.components.microgrid.conftest import SECRET, board_record


def _token(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _claims(node: str = "Zone3", *, ago: float = 0, **reading: Any) -> dict[str, Any]:
    now = int(time.time() - ago)
    return {"node": node, "reading": board_record(**reading), "iat": now, "exp": now + 60}


async def _poster(
    hass: HomeAssistant, client_factory: ClientSessionGenerator, entry: MockConfigEntry
) -> Callable[[Any], Any]:
    """post(body) -> (status, json, headers) against the site's webhook."""
    client: TestClient = await client_factory()
    webhook_id, _ = await async_webhook_id(hass, entry.entry_id)

    async def post(body: Any) -> tuple[int, Any, Mapping[str, str]]:
        resp = await client.post(f"/api/webhook/{webhook_id}", json=body)
        return resp.status, await resp.json(), resp.headers

    return post


async def test_signed_reading_is_ingested_and_decided_on(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> None:
    """Valid signed 8 % readings arrive like stream events: the site goes into emergency."""
    _, created = await async_webhook_id(hass, init_integration.entry_id)
    assert not created  # made at setup, stable afterwards
    post = await _poster(hass, hass_client_no_auth, init_integration)
    coordinator = init_integration.runtime_data.coordinator
    for zone_id in ("Zone1", "Zone2", "Zone3", "Zone4"):
        reply = await post({"token": _token(_claims(zone_id, soc=8.0))})
        assert reply[:2] == (200, {"accepted": zone_id})
        assert coordinator.readings[zone_id].soc_pct == 8.0
    assert coordinator.band is not None and coordinator.band.value == "emergency"


# Bodies are built when the test runs: tokens made at import time would expire before use.
BAD_BODIES: dict[str, tuple[Callable[[], Any], int]] = {
    "forged": (lambda: {"token": _token(_claims(), secret="not-the-site-secret-at-all")}, 401),
    "expired": (lambda: {"token": _token({**_claims(), "exp": int(time.time()) - 10})}, 401),
    "no_node": (
        lambda: {"token": _token({k: v for k, v in _claims().items() if k != "node"})},
        401,
    ),
    "no_iat": (
        lambda: {"token": _token({k: v for k, v in _claims().items() if k != "iat"})},
        401,
    ),
    "lifetime_over_5_min": (
        lambda: {"token": _token(_claims() | {"exp": int(time.time()) + 301})},
        401,
    ),
    # 75 s, not 61: _claims truncates to whole seconds, so 61 could land at 60.x s ahead.
    "iat_75_s_ahead": (lambda: {"token": _token(_claims(ago=-75))}, 401),
    # PyJWT's own iat check raised TypeError on this (HA answered 200 with a traceback).
    "iat_not_a_time": (lambda: {"token": _token({**_claims(), "iat": [1]})}, 400),
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
    assert "error" in await resp.json()
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


def _board_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The webhook's refusals logged at warning level."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("Webhook refused")
    ]


async def test_a_reading_is_taken_once_and_never_after_a_newer_one(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same token posted 3 times is taken once, an older reading after a newer one is
    refused, a second reading within the same second is taken; each refusal is counted and
    logged at warning once per board and reason (forged tokens under the board `-`)."""
    post = await _poster(hass, hass_client_no_auth, init_integration)
    coordinator = init_integration.runtime_data.coordinator
    newer = {"token": _token(_claims(soc=75.0))}
    replies = [(await post(newer))[:2] for _ in range(3)]
    assert replies == [(200, {"accepted": "Zone3"})] + [(409, {"error": "replay"})] * 2
    older = {"token": _token(_claims(ago=10, soc=70.0))}
    assert (await post(older))[:2] == (409, {"error": "out_of_order"})
    assert coordinator.readings["Zone3"].soc_pct == 75.0
    same_second = {"token": _token({**_claims(soc=76.0), "iat": _claims()["iat"]})}
    assert (await post(same_second))[0] == 200
    forged = {"token": _token(_claims(), secret="not-the-site-secret-at-all")}
    assert [(await post(forged))[0] for _ in range(2)] == [401, 401]
    assert {k: v for k, v in coordinator.rejections.items() if "webhook" in k} == {
        "Zone3:webhook_replay": 2,
        "Zone3:webhook_out_of_order": 1,
        "-:webhook_bad_signature": 2,
    }
    assert len(_board_warnings(caplog)) == 3


async def test_a_jti_is_used_once(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> None:
    """Two different readings under one jti: the second is a replay."""
    post = await _poster(hass, hass_client_no_auth, init_integration)
    first = {"token": _token({**_claims(soc=71.0), "jti": "r-1"})}
    second = {"token": _token({**_claims(soc=72.0), "jti": "r-1"})}
    assert (await post(first))[0] == 200
    assert (await post(second))[:2] == (409, {"error": "replay"})
    assert init_integration.runtime_data.coordinator.readings["Zone3"].soc_pct == 71.0


async def test_tolerances_at_their_edges_are_accepted(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> None:
    """An iat 59 s ahead of our clock (a fast board clock) and a 300 s lifetime are fine."""
    post = await _poster(hass, hass_client_no_auth, init_integration)
    assert (await post({"token": _token(_claims("Zone1", ago=-59))}))[0] == 200
    five_minutes = _claims("Zone2")
    five_minutes["exp"] = five_minutes["iat"] + 300
    assert (await post({"token": _token(five_minutes)}))[0] == 200


async def test_a_flooding_board_gets_429_and_recovers(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    hass_client_no_auth: ClientSessionGenerator,
    init_integration: MockConfigEntry,
) -> None:
    """A burst of distinct valid readings: BURST taken, then 429 with a JSON error and a
    Retry-After; other boards are not limited, and a second later the board is heard again."""
    post = await _poster(hass, hass_client_no_auth, init_integration)

    def reading(soc: float) -> dict[str, str]:
        return {"token": _token(_claims(soc=soc))}

    statuses = [(await post(reading(50.0 + i / 10)))[0] for i in range(BURST)]
    assert statuses == [200] * BURST
    status, body, headers = await post(reading(60.0))
    assert (status, body, headers["Retry-After"]) == (429, {"error": "rate_limited"}, "1")
    assert (await post({"token": _token(_claims("Zone1"))}))[0] == 200
    freezer.tick(timedelta(seconds=1))
    assert (await post(reading(61.0)))[0] == 200
    assert init_integration.runtime_data.coordinator.readings["Zone3"].soc_pct == 61.0


def test_replay_memory_is_bounded() -> None:
    """A board's remembered tokens never exceed MAX_SEEN_PER_BOARD: expired ones are dropped
    first (every unexpired one is still refused), then the oldest."""
    guard = ReadingGuard(Counter())
    count = 3 * MAX_SEEN_PER_BOARD

    def signed(i: int, lifetime: float) -> SignedReading:
        return SignedReading(node="Zone1", reading={}, iat=i, exp=i + lifetime, token_id=f"{i}")

    for i in range(count):
        guard.admit(signed(i, 300), now=float(i))
    seen = guard._replays["Zone1"].seen
    assert len(seen) <= MAX_SEEN_PER_BOARD
    assert {f"{i}" for i in range(count - 300, count)} <= set(seen)
    for i in range(count, 2 * count):
        guard.admit(signed(i, 1e9), now=float(i))
    assert len(guard._replays["Zone1"].seen) <= MAX_SEEN_PER_BOARD
