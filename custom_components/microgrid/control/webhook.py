"""A second path for readings beside Firebase: boards POST JWT-signed records to a webhook.

The seed backend's `updateVoltage` endpoint, in Home Assistant's form. The body is JSON
`{"token": "<JWT>"}`, an HS256 JWT signed with the site's command secret whose claims are
`node` (the zone id), `reading` (a record in the `sensors/<zone>` format), `iat`, `exp` and
optionally `jti`. Each board is rate limited; a token is accepted once, and never after a
newer one from the same board.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
import json
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web
from homeassistant.components import persistent_notification, webhook
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
import jwt

from ..const import DOMAIN, LOGGER

if TYPE_CHECKING:
    from collections import Counter

    from .coordinator import MicrogridCoordinator

STORAGE_VERSION = 1
MAX_BODY_BYTES = 16 * 1024
# A board signs each reading as it sends it, so a token need only outlive one POST and its
# retries over a poor link. Five minutes is ample for that, and bounds how long a captured
# token is worth replaying and how long the replay cache must remember one.
MAX_TOKEN_LIFETIME_S = 300
# iat (and nbf) may lead our clock by this much. Small on purpose: a reading older than the
# board's newest accepted one is refused, so a far-ahead iat would shut this board's path.
TOKEN_CLOCK_SKEW_S = 60
# Token bucket per board: a report every few seconds plus an ack per command fit easily.
RATE_PER_S = 1.0
BURST = 20
# Tokens remembered per board. Within its rate a board has at most BURST + RATE_PER_S x
# (lifetime + skew) = 380 unexpired tokens, and expired ones are dropped first.
MAX_SEEN_PER_BOARD = 512
MAX_JTI_CHARS = 64
UNVERIFIED = "-"  # the board of a request whose signature did not verify (claims untrusted)


class Rejected(Exception):
    """A refused request: a short reason key, the HTTP status and a detail for the log."""

    def __init__(
        self, reason: str, status: HTTPStatus, detail: str = "", retry_after: int = 0
    ) -> None:
        """Keep what the response and the log need."""
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SignedReading:
    """The verified claims of one token."""

    node: str
    reading: Any
    iat: float
    exp: float
    token_id: str  # the jti when given, else the signature (the same claims sign the same)


@dataclass(slots=True)
class _Bucket:
    """A token bucket: BURST requests at once, RATE_PER_S sustained."""

    tokens: float
    at: float

    def take(self, now: float) -> float:
        """Take one token: 0 when granted, else the seconds until one is available."""
        # max(): the wall clock may step back; that earns nothing.
        self.tokens = min(BURST, self.tokens + max(now - self.at, 0.0) * RATE_PER_S)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / RATE_PER_S


@dataclass(slots=True)
class _Replays:
    """One board's newest accepted iat and its tokens that have not expired yet."""

    last_iat: float = -math.inf
    seen: dict[str, float] = field(default_factory=dict)  # token id -> exp

    def remember(self, signed: SignedReading, now: float) -> None:
        """Accept a token once, and never one issued before the newest accepted."""
        if signed.token_id in self.seen:
            raise Rejected("replay", HTTPStatus.CONFLICT)
        if signed.iat < self.last_iat:
            raise Rejected("out_of_order", HTTPStatus.CONFLICT, f"iat {signed.iat:.0f}")
        if len(self.seen) >= MAX_SEEN_PER_BOARD:
            self._prune(now)
        self.seen[signed.token_id] = signed.exp
        self.last_iat = signed.iat

    def _prune(self, now: float) -> None:
        """Drop expired tokens (refused anyway), then the oldest if still full."""
        self.seen = {key: exp for key, exp in self.seen.items() if exp > now}
        while len(self.seen) >= MAX_SEEN_PER_BOARD:
            del self.seen[next(iter(self.seen))]


class ReadingGuard:
    """Per-board rate limit and replay cache; refusals counted with the coordinator's."""

    def __init__(self, rejections: Counter[str]) -> None:
        """Count into the coordinator's rejection counter (keys `<board>:webhook_<reason>`)."""
        self._rejections = rejections
        self._buckets: dict[str, _Bucket] = {}
        self._replays: dict[str, _Replays] = {}

    def admit(self, signed: SignedReading, now: float) -> None:
        """Raise Rejected when the board is over its rate or the token was seen or is stale."""
        bucket = self._buckets.setdefault(signed.node, _Bucket(tokens=BURST, at=now))
        if wait := bucket.take(now):
            raise Rejected(
                "rate_limited", HTTPStatus.TOO_MANY_REQUESTS, retry_after=math.ceil(wait)
            )
        self._replays.setdefault(signed.node, _Replays()).remember(signed, now)

    def refuse(self, board: str, err: Rejected) -> web.Response:
        """Count and log (once per board and reason, then at debug) and answer in JSON."""
        key = f"{board}:webhook_{err.reason}"
        log = LOGGER.warning if self._rejections[key] == 0 else LOGGER.debug
        log("Webhook refused a reading from %s: %s", board, err)
        self._rejections[key] += 1
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
        return web.json_response({"error": err.reason}, status=err.status, headers=headers)


async def async_webhook_id(hass: HomeAssistant, entry_id: str) -> tuple[str, bool]:
    """The site's webhook id, created once and kept (returns (id, created_now))."""
    store: Store[dict[str, str]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.webhook")
    data = await store.async_load() or {}
    if webhook_id := data.get("webhook_id"):
        return webhook_id, False
    webhook_id = webhook.async_generate_id()
    await store.async_save({"webhook_id": webhook_id})
    return webhook_id, True


def _instant(claims: dict[str, Any], name: str) -> float:
    """A NumericDate claim as a finite number."""
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejected("bad_claims", HTTPStatus.BAD_REQUEST, f"{name} is not a time")
    return float(value)


def _decode(token: Any, secret: str) -> dict[str, Any]:
    """The claims of an HS256 token signed with the site secret (times are checked after)."""
    if not isinstance(token, str):
        raise Rejected("bad_token", HTTPStatus.BAD_REQUEST, "token must be a string")
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            # PyJWT's time checks raise TypeError on a non-numeric claim; _instant does them.
            options={
                "require": ["exp", "iat", "node", "reading"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError as err:
        raise Rejected("bad_signature", HTTPStatus.UNAUTHORIZED) from err
    except jwt.MissingRequiredClaimError as err:
        raise Rejected("missing_claim", HTTPStatus.UNAUTHORIZED, str(err)) from err
    except jwt.PyJWTError as err:
        raise Rejected("bad_token", HTTPStatus.UNAUTHORIZED, str(err)) from err


def _check_times(claims: dict[str, Any], now: float) -> tuple[float, float]:
    """(iat, exp): not expired, not issued ahead of the skew, a lifetime within the cap."""
    iat, exp = _instant(claims, "iat"), _instant(claims, "exp")
    if exp <= now:
        raise Rejected("expired", HTTPStatus.UNAUTHORIZED)
    ahead = max(iat, _instant(claims, "nbf") if "nbf" in claims else iat) - now
    if ahead > TOKEN_CLOCK_SKEW_S:
        raise Rejected("issued_in_future", HTTPStatus.UNAUTHORIZED, f"{ahead:.0f} s ahead")
    if not 0 < exp - iat <= MAX_TOKEN_LIFETIME_S:
        raise Rejected("bad_lifetime", HTTPStatus.UNAUTHORIZED, f"{exp - iat:.0f} s")
    return iat, exp


def verify_reading(token: Any, secret: str, now: float) -> SignedReading:
    """The verified claims of a board's token at `now` (epoch seconds); raises Rejected."""
    claims = _decode(token, secret)
    iat, exp = _check_times(claims, now)
    node, jti = claims["node"], claims.get("jti")
    if not isinstance(node, str) or not node:
        raise Rejected("bad_claims", HTTPStatus.BAD_REQUEST, "node must be a non-empty string")
    if jti is not None and not (isinstance(jti, str) and 0 < len(jti) <= MAX_JTI_CHARS):
        raise Rejected("bad_claims", HTTPStatus.BAD_REQUEST, "jti must be a short string")
    token_id = f"jti:{jti}" if jti else token.rsplit(".", 1)[-1]
    return SignedReading(node=node, reading=claims["reading"], iat=iat, exp=exp, token_id=token_id)


async def _read_token(request: web.Request) -> Any:
    """The `token` of a JSON body of at most MAX_BODY_BYTES."""
    body = b""
    while len(body) <= MAX_BODY_BYTES:
        chunk = await request.content.read(MAX_BODY_BYTES + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > MAX_BODY_BYTES:
        raise Rejected("too_large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    try:
        payload = json.loads(body)
    except ValueError as err:
        raise Rejected("bad_json", HTTPStatus.BAD_REQUEST, str(err)[:80]) from err
    if not isinstance(payload, dict):
        raise Rejected("bad_json", HTTPStatus.BAD_REQUEST, "not an object")
    return payload.get("token")


async def async_register_webhook(
    hass: HomeAssistant, coordinator: MicrogridCoordinator, secret: str
) -> str:
    """Register the site's webhook; it is unregistered when the entry unloads."""
    entry = coordinator.config_entry
    webhook_id, created = await async_webhook_id(hass, entry.entry_id)
    guard = ReadingGuard(coordinator.rejections)

    async def _handle(hass: HomeAssistant, _webhook_id: str, request: web.Request) -> web.Response:
        """Verify one signed reading and hand it to the coordinator like a stream event."""
        board = UNVERIFIED
        now = dt_util.utcnow().timestamp()
        try:
            signed = verify_reading(await _read_token(request), secret, now)
            if coordinator.site.zone(signed.node) is None:
                raise Rejected("unknown_zone", HTTPStatus.NOT_FOUND, signed.node[:40])
            board = signed.node
            guard.admit(signed, now)
        except Rejected as err:
            return guard.refuse(board, err)
        before = sum(coordinator.rejections.values())
        coordinator.on_data({board: signed.reading}, {board})
        if sum(coordinator.rejections.values()) > before:
            return web.json_response({"error": "invalid_reading"}, status=HTTPStatus.BAD_REQUEST)
        return web.json_response({"accepted": board})

    webhook.async_register(
        hass,
        DOMAIN,
        f"{coordinator.site.site_name} readings",
        webhook_id,
        _handle,
        allowed_methods=["POST"],
    )
    entry.async_on_unload(lambda: webhook.async_unregister(hass, webhook_id))
    if created:
        persistent_notification.async_create(
            hass,
            f"Boards of {coordinator.site.site_name} can also send signed readings to "
            f"`/api/webhook/{webhook_id}` (see the README: Device protocol).",
            title="Microgrid webhook",
            notification_id=f"{DOMAIN}_{entry.entry_id}_webhook",
        )
    return webhook_id
