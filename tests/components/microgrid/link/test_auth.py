"""Tests for the token providers (service-account JWT grant against a fake Google endpoint)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
import json
import math
import time
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
import jwt
import pytest

from custom_components.microgrid.link.auth import (
    GRANT_TYPE,
    SCOPES,
    EmulatorAuth,
    InvalidServiceAccount,
    ServiceAccountAuth,
    TokenProvider,
    auth_for,
    load_service_account,
    service_account_project,
)
from custom_components.microgrid.link.errors import (
    FirebaseAuthError,
    FirebaseConnectionError,
    FirebaseInvalidURL,
)
from custom_components.microgrid.link.rtdb import FirebaseLink
from sim.rtdb import RTDBServer

CLIENT_EMAIL = "microgrid@site-123.iam.gserviceaccount.com"


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA key for the module (generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class TokenEndpoint:
    """A fake Google OAuth2 token endpoint that checks the signed grant."""

    public_key: Any
    url: str = ""
    status: int = 200
    body: dict[str, Any] | str | None = None
    expires_in: Any = 3600
    grants: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    on_issue: Callable[[str], None] = lambda token: None

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["grant_type"] == GRANT_TYPE
        assertion = str(form["assertion"])
        claims = jwt.decode(
            assertion,
            self.public_key,
            algorithms=["RS256"],
            audience=self.url,
            options={"verify_exp": False, "verify_iat": False},  # the test injects its clock
        )
        self.grants.append(claims)
        self.headers.append(jwt.get_unverified_header(assertion))
        if self.status != 200 or self.body is not None:
            body = self.body if self.body is not None else {"error": "invalid_grant"}
            text = body if isinstance(body, str) else json.dumps(body)
            return web.Response(status=self.status, text=text, content_type="application/json")
        token = f"ya29.token{len(self.grants)}"
        self.on_issue(token)
        return web.json_response(
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        )


@pytest.fixture
async def endpoint(
    socket_enabled: None, rsa_key: rsa.RSAPrivateKey
) -> AsyncIterator[TokenEndpoint]:
    """Serve the fake token endpoint on loopback."""
    ep = TokenEndpoint(public_key=rsa_key.public_key())
    app = web.Application()
    app.router.add_post("/token", ep.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ep.url = f"http://127.0.0.1:{port}/token"
    yield ep
    await runner.cleanup()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as sess:
        yield sess


@pytest.fixture
def key(endpoint: TokenEndpoint, rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """A service-account key pointing at the fake endpoint."""
    return {
        "type": "service_account",
        "project_id": "site-123",
        "private_key_id": "kid-1",
        "private_key": _pem(rsa_key),
        "client_email": CLIENT_EMAIL,
        "token_uri": endpoint.url,
    }


class Clock:
    """An injectable clock."""

    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t


async def test_mints_a_signed_grant_and_caches_the_token(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """The grant is RS256-signed with the right claims; the token is reused."""
    clock = Clock()
    auth = ServiceAccountAuth(session, key, now=clock)
    assert isinstance(auth, TokenProvider)
    assert await auth.async_get_token() == "ya29.token1"
    assert await auth.async_get_token() == "ya29.token1"
    assert len(endpoint.grants) == 1
    grant = endpoint.grants[0]
    assert grant["iss"] == CLIENT_EMAIL
    assert grant["scope"] == SCOPES
    assert grant["aud"] == endpoint.url
    assert grant["iat"] == int(clock.t)
    assert grant["exp"] - grant["iat"] == 3600
    assert endpoint.headers[0]["kid"] == "kid-1"
    assert auth.expires_at == clock.t + 3600
    assert auth.client_email == CLIENT_EMAIL


async def test_grant_carries_the_requested_scopes(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """Another API's scope (FCM) replaces the database scopes in the grant; default unchanged."""
    fcm = "https://www.googleapis.com/auth/firebase.messaging"
    await ServiceAccountAuth(session, key, now=Clock(), scopes=fcm).async_get_token()
    await ServiceAccountAuth(session, key, now=Clock()).async_get_token()
    assert [grant["scope"] for grant in endpoint.grants] == [fcm, SCOPES]


async def test_refreshes_five_minutes_before_expiry(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """Still cached with just over 5 min left; re-minted with less."""
    clock = Clock()
    start = clock.t
    auth = ServiceAccountAuth(session, key, now=clock)
    await auth.async_get_token()
    clock.t = start + 3600 - 301
    assert await auth.async_get_token() == "ya29.token1"
    clock.t = start + 3600 - 299
    assert await auth.async_get_token() == "ya29.token2"
    assert len(endpoint.grants) == 2
    assert endpoint.grants[1]["iat"] == int(clock.t)


async def test_short_lived_tokens_are_used_for_half_their_life(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """A token living less than the margin is not re-minted on every call."""
    endpoint.expires_in = 120
    clock = Clock()
    start = clock.t
    auth = ServiceAccountAuth(session, key, now=clock)
    await auth.async_get_token()
    clock.t = start + 59
    assert await auth.async_get_token() == "ya29.token1"
    clock.t = start + 60
    assert await auth.async_get_token() == "ya29.token2"


async def test_invalidate_forces_a_new_token(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """After invalidate() the next call mints again."""
    auth = ServiceAccountAuth(session, key, now=Clock())
    assert await auth.async_get_token() == "ya29.token1"
    auth.invalidate()
    assert auth.expires_at == 0.0
    assert await auth.async_get_token() == "ya29.token2"


async def test_concurrent_callers_share_one_mint(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """Five callers at once: one request to the endpoint."""
    auth = ServiceAccountAuth(session, key, now=Clock())
    tokens = await asyncio.gather(*(auth.async_get_token() for _ in range(5)))
    assert tokens == ["ya29.token1"] * 5
    assert len(endpoint.grants) == 1


async def test_signing_can_run_in_an_executor(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """run_blocking receives the signing job (HA passes hass.async_add_executor_job)."""
    jobs: list[Callable[[], str]] = []

    async def run_blocking(job: Callable[[], str]) -> str:
        jobs.append(job)
        return await asyncio.get_running_loop().run_in_executor(None, job)

    auth = ServiceAccountAuth(session, key, now=Clock(), run_blocking=run_blocking)
    assert await auth.async_get_token() == "ya29.token1"
    assert len(jobs) == 1


async def test_key_as_json_text(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """The key pasted as JSON text works like the dict."""
    auth = ServiceAccountAuth(session, json.dumps(key), now=Clock())
    assert await auth.async_get_token() == "ya29.token1"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, "JWT"),
        (401, {"error": "unauthorized_client"}, "unauthorized_client"),
        (200, {"token_type": "Bearer"}, "access_token"),
        (200, "not json", "access_token"),
    ],
)
async def test_refused_or_odd_answers_are_auth_errors(
    session: aiohttp.ClientSession,
    endpoint: TokenEndpoint,
    key: dict[str, Any],
    status: int,
    body: Any,
    error: str,
) -> None:
    """A refused key (400/401) or an answer without a token: FirebaseAuthError."""
    endpoint.status, endpoint.body = status, body
    auth = ServiceAccountAuth(session, key, now=Clock())
    with pytest.raises(FirebaseAuthError, match=error) as err:
        await auth.async_get_token()
    assert not isinstance(err.value, InvalidServiceAccount)
    assert "PRIVATE KEY" not in str(err.value)


@pytest.mark.parametrize("expires_in", ["3600", 0, -5, True, None, math.nan, math.inf])
async def test_bad_expires_in_is_an_auth_error(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any], expires_in: Any
) -> None:
    """expires_in must be a positive number."""
    endpoint.expires_in = expires_in
    auth = ServiceAccountAuth(session, key, now=Clock())
    with pytest.raises(FirebaseAuthError, match="expires_in"):
        await auth.async_get_token()


async def test_endpoint_outage_is_a_connection_error(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """503 from the endpoint, or nothing listening: FirebaseConnectionError (retryable)."""
    endpoint.status = 503
    auth = ServiceAccountAuth(session, key, now=Clock())
    with pytest.raises(FirebaseConnectionError, match="503"):
        await auth.async_get_token()
    unreachable = {**key, "token_uri": "http://127.0.0.1:1/token"}
    auth = ServiceAccountAuth(session, unreachable, now=Clock())
    with pytest.raises(FirebaseConnectionError):
        await auth.async_get_token()


def _malformed_keys(good: dict[str, Any]) -> list[Any]:
    ec_pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    return [
        None,
        [],
        "not json {",
        "[1, 2]",
        {**good, "type": "authorized_user"},
        {k: v for k, v in good.items() if k != "type"},
        {k: v for k, v in good.items() if k != "client_email"},
        {k: v for k, v in good.items() if k != "private_key"},
        {k: v for k, v in good.items() if k != "token_uri"},
        {**good, "client_email": ""},
        {**good, "client_email": 42},
        {**good, "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"},
        {**good, "private_key": ec_pem},
        {**good, "token_uri": "http://oauth2.example.com/token"},  # plain http off loopback
        {**good, "token_uri": "file:///etc/passwd"},
    ]


def test_malformed_keys_are_rejected(session: aiohttp.ClientSession, key: dict[str, Any]) -> None:
    """Every malformed key raises InvalidServiceAccount (a FirebaseAuthError) at construction."""
    for bad in _malformed_keys(key):
        with pytest.raises(InvalidServiceAccount) as err:
            ServiceAccountAuth(session, bad)
        assert isinstance(err.value, FirebaseAuthError)
        assert "PRIVATE KEY" not in str(err.value)


def test_load_service_account_returns_a_copy(key: dict[str, Any]) -> None:
    """The validated key is a plain dict copy."""
    loaded = load_service_account(key)
    assert loaded == key
    assert loaded is not key


def test_service_account_project_from_text_or_mapping(
    session: aiohttp.ClientSession, key: dict[str, Any]
) -> None:
    """The config flow and the push channel read the key's project through one parser: from
    JSON text or a mapping; None for an unreadable key or one without a project."""
    assert service_account_project(json.dumps(key)) == "site-123"
    assert service_account_project({**key, "project_id": " site-123 "}) == "site-123"
    for unusable in (None, "", "not json {", "[1, 2]", {**key, "project_id": "  "}, {"a": 1}):
        assert service_account_project(unusable) is None, unusable
    assert ServiceAccountAuth(session, json.dumps(key)).project_id == "site-123"
    no_project = {k: v for k, v in key.items() if k != "project_id"}
    assert ServiceAccountAuth(session, no_project).project_id is None


async def test_emulator_auth() -> None:
    """The emulator token is fixed; invalidate is harmless."""
    auth = EmulatorAuth()
    assert await auth.async_get_token() == "owner"
    auth.invalidate()
    assert await auth.async_get_token() == "owner"
    assert isinstance(auth, TokenProvider)


def test_auth_for_picks_the_provider(session: aiohttp.ClientSession, key: dict[str, Any]) -> None:
    """Loopback URL -> emulator token; https -> the service account (required)."""
    assert isinstance(auth_for(session, "http://127.0.0.1:9000/?ns=demo", None), EmulatorAuth)
    assert isinstance(auth_for(session, "http://localhost:9000/?ns=demo", key), EmulatorAuth)
    sa = auth_for(session, "https://site-123.firebaseio.com", key)
    assert isinstance(sa, ServiceAccountAuth)
    with pytest.raises(InvalidServiceAccount):
        auth_for(session, "https://site-123.firebaseio.com", None)
    with pytest.raises(InvalidServiceAccount):
        auth_for(session, "https://site-123.firebaseio.com", {"type": "service_account"})
    with pytest.raises(FirebaseInvalidURL):
        auth_for(session, "https://example.com", key)


async def test_link_refreshes_a_revoked_service_account_token(
    session: aiohttp.ClientSession, endpoint: TokenEndpoint, key: dict[str, Any]
) -> None:
    """End to end: minted tokens authorise REST; after a revoke the link mints a new one."""
    server = RTDBServer()
    await server.start()
    endpoint.on_issue = server.add_token
    try:
        auth = ServiceAccountAuth(session, key, now=Clock())
        link = FirebaseLink(session, server.database_url(), auth, on_data=lambda m, k: None)
        await link.async_put("commands/Zone1", {"command": "ON"})
        assert len(endpoint.grants) == 1
        server.revoke_token("ya29.token1")
        await link.async_put("commands/Zone1", {"command": "OFF"})
        assert len(endpoint.grants) == 2
        assert server.get_value("commands/Zone1") == {"command": "OFF"}
        assert server.requests == [("PUT", "/commands/Zone1.json")] * 3
    finally:
        await server.stop()
