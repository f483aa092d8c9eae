"""Access tokens for the Firebase link: emulator token or OAuth2 from a service-account key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
import json
import math
import time
from typing import Any, Protocol, runtime_checkable

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
import jwt
from yarl import URL

from .errors import FirebaseAuthError, FirebaseConnectionError
from .url import LOOPBACK_HOSTS, parse_database_url

EMULATOR_TOKEN = "owner"
SCOPES = (
    "https://www.googleapis.com/auth/firebase.database "
    "https://www.googleapis.com/auth/userinfo.email"
)
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_LIFETIME_S = 3600
REFRESH_MARGIN_S = 300.0  # refresh a token with less than this left
TOKEN_TIMEOUT = aiohttp.ClientTimeout(total=20)
_REQUIRED_FIELDS = ("client_email", "private_key", "token_uri")

type RunBlocking = Callable[[Callable[[], str]], Awaitable[str]]


class InvalidServiceAccount(FirebaseAuthError):
    """The service-account key is missing or malformed."""


@runtime_checkable
class TokenProvider(Protocol):
    """Something that hands out a current access token."""

    async def async_get_token(self) -> str:
        """Return a valid token (cached; refreshed before expiry)."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token (after a 401 or `auth_revoked`)."""
        ...


class EmulatorAuth:
    """The emulator convention: a fixed admin token ("owner")."""

    def __init__(self, token: str = EMULATOR_TOKEN) -> None:
        """Use this fixed token."""
        self._token = token

    async def async_get_token(self) -> str:
        """Return the fixed token."""
        return self._token

    def invalidate(self) -> None:
        """Nothing to refresh."""


def parse_service_account(raw: Any) -> dict[str, Any]:
    """A service-account key (JSON text or a mapping) as a dict; raise InvalidServiceAccount
    when it is not a JSON object. The one place the key's text is read."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidServiceAccount("the service-account key is not valid JSON") from None
    if not isinstance(raw, Mapping):
        raise InvalidServiceAccount("the service-account key must be a JSON object")
    return dict(raw)


def service_account_project(raw: Any) -> str | None:
    """The Firebase project of a service-account key (JSON text or a mapping); None when the
    key is unreadable or names none."""
    try:
        project_id = parse_service_account(raw).get("project_id")
    except InvalidServiceAccount:
        return None
    return project_id.strip() if isinstance(project_id, str) and project_id.strip() else None


def load_service_account(raw: Mapping[str, Any] | str) -> dict[str, Any]:
    """Validate a service-account key (dict or JSON text); raise InvalidServiceAccount."""
    key = parse_service_account(raw)
    if key.get("type") != "service_account":
        raise InvalidServiceAccount('the key is not of "type": "service_account"')
    missing = [f for f in _REQUIRED_FIELDS if not isinstance(key.get(f), str) or not key.get(f)]
    if missing:
        raise InvalidServiceAccount(f"the key lacks {', '.join(missing)}")
    _check_token_uri(key["token_uri"])
    return key


def _check_token_uri(uri: str) -> None:
    """Only https (or http on loopback, for tests) may receive a signed grant."""
    try:
        url = URL(uri)
    except ValueError:
        raise InvalidServiceAccount("token_uri is not a URL") from None
    secure = url.scheme == "https" and bool(url.host)
    loopback = url.scheme == "http" and (url.host or "") in LOOPBACK_HOSTS
    if not (secure or loopback):
        raise InvalidServiceAccount("token_uri must be an https URL")


def _load_private_key(pem: str) -> RSAPrivateKey:
    """Parse the PEM private key of the service account."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidServiceAccount("private_key is not a PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise InvalidServiceAccount("private_key is not an RSA key")
    return key


class ServiceAccountAuth:
    """OAuth2 access tokens minted from a service-account key (JWT bearer grant)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        key: Mapping[str, Any] | str,
        *,
        now: Callable[[], float] = time.time,
        run_blocking: RunBlocking | None = None,
        scopes: str = SCOPES,
    ) -> None:
        """Validate the key now, so a bad key fails at setup, not at the first request."""
        self._session = session
        self._scopes = scopes
        self._key = load_service_account(key)
        self._private_key = _load_private_key(self._key["private_key"])
        self._now = now
        self._run_blocking = run_blocking
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def client_email(self) -> str:
        """Return the service account's e-mail (for logs and diagnostics)."""
        return str(self._key["client_email"])

    @property
    def project_id(self) -> str | None:
        """Return the Firebase project the key names (FCM sends to it), or None."""
        return service_account_project(self._key)

    @property
    def expires_at(self) -> float:
        """Return when the cached token expires (epoch seconds; 0 when none)."""
        return self._expires_at if self._token else 0.0

    async def async_get_token(self) -> str:
        """Return the cached token, minting a new one when < 5 min are left."""
        async with self._lock:  # one mint at a time; waiters reuse its result
            if self._token is None or self._now() >= self._refresh_at:
                token, issued_at, lifetime_s = await self._mint()
                self._token = token
                self._expires_at = issued_at + lifetime_s
                # A token shorter-lived than the margin is still used for half its life.
                self._refresh_at = self._expires_at - min(REFRESH_MARGIN_S, lifetime_s / 2)
            return self._token

    def invalidate(self) -> None:
        """Force a new token on the next call."""
        self._token = None
        self._expires_at = self._refresh_at = 0.0

    def _sign_grant(self, issued_at: int) -> str:
        """Sign the JWT grant (RS256)."""
        headers = {"kid": self._key["private_key_id"]} if self._key.get("private_key_id") else None
        claims = {
            "iss": self._key["client_email"],
            "scope": self._scopes,
            "aud": self._key["token_uri"],
            "iat": issued_at,
            "exp": issued_at + GRANT_LIFETIME_S,
        }
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers=headers)

    async def _mint(self) -> tuple[str, int, float]:
        """Exchange a freshly signed grant for (access token, issued at, lifetime in s)."""
        issued_at = int(self._now())
        if self._run_blocking is not None:
            assertion = await self._run_blocking(lambda: self._sign_grant(issued_at))
        else:
            assertion = self._sign_grant(issued_at)
        try:
            async with self._session.post(
                self._key["token_uri"],
                data={"grant_type": GRANT_TYPE, "assertion": assertion},
                timeout=TOKEN_TIMEOUT,
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise FirebaseConnectionError(f"token endpoint: {type(err).__name__}") from None
        if status >= 500 or status == 429:
            raise FirebaseConnectionError(f"token endpoint: HTTP {status}")
        body = json_object(raw)
        if status != 200:
            reason = body.get("error_description") or body.get("error") or "no reason given"
            raise FirebaseAuthError(f"token endpoint refused the key: HTTP {status}: {reason}")
        token = body.get("access_token")
        expires_in = body.get("expires_in", GRANT_LIFETIME_S)
        if not isinstance(token, str) or not token:
            raise FirebaseAuthError("token endpoint answered without an access_token")
        if (
            not isinstance(expires_in, int | float)
            or isinstance(expires_in, bool)
            or not math.isfinite(expires_in)
            or expires_in <= 0
        ):
            raise FirebaseAuthError("token endpoint answered with a bad expires_in")
        return token, issued_at, float(expires_in)


def json_object(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body; anything else is {}."""
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def auth_for(
    session: aiohttp.ClientSession,
    database_url: str,
    service_account: Mapping[str, Any] | str | None,
    *,
    run_blocking: RunBlocking | None = None,
) -> TokenProvider:
    """Pick the token provider for a database: emulator token on loopback, else the key."""
    if parse_database_url(database_url).emulator:
        return EmulatorAuth()
    if not service_account:
        raise InvalidServiceAccount("a service-account key is required for a Firebase database")
    return ServiceAccountAuth(session, service_account, run_blocking=run_blocking)
