"""Who may switch what: admins vs households, checked (and rate-limited) on every caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.util.hass_dict import HassKey
import voluptuous as vol

from ..const import (
    CONF_RATE_LIMIT_BURST,
    CONF_RATE_LIMIT_PER_MINUTE,
    DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    DOMAIN,
)
from ..optimizer.model import Band, PriorityClass, Zone
from ..optimizer.policy import household_may_set
from ..site import SiteConfig

DATA_LIMITERS: HassKey[dict[str, RateLimiter]] = HassKey(f"{DOMAIN}_rate_limiters")
RATE_LIMITED: Final = "rate_limited"


class BadRequest(ServiceValidationError, vol.Invalid):
    """A translated refusal or invalid request (HTTP 400).

    Also a vol.Invalid because HA's REST service view answers only that (and ServiceNotFound)
    with 400: any other error escapes it as a 500 with a logged traceback (HA 2025.4).
    """


class NotPermitted(Unauthorized, ServiceValidationError):
    """Not for this user (HTTP 401), with a translated message.

    Also a ServiceValidationError so the websocket API answers with the translated text
    instead of logging an "Unexpected exception" traceback for a plain Unauthorized.
    """

    def __init__(
        self, context: Context | None, key: str, placeholders: dict[str, str] | None = None
    ) -> None:
        """A refusal for the caller of `context`, with the translation key as permission."""
        super().__init__(context=context, permission=key)
        self.translation_domain = DOMAIN
        self.translation_key = key
        self.translation_placeholders = placeholders
        self.generate_message = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Actor:
    """The person (or automation) behind a call."""

    user_id: str | None
    name: str
    is_admin: bool

    @property
    def audit_id(self) -> str:
        """The id written in the audit trail."""
        return self.user_id or "system"


async def async_actor(hass: HomeAssistant, context: Context | None) -> Actor:
    """The caller: a user, or an automation/script (no user: runs with admin rights)."""
    user_id = context.user_id if context else None
    if user_id is None:
        return Actor(user_id=None, name="Automation", is_admin=True)
    user = await hass.auth.async_get_user(user_id)
    if user is None:
        raise BadRequest(translation_domain=DOMAIN, translation_key="unknown_user")
    return Actor(user_id=user.id, name=user.name or user.id, is_admin=user.is_admin)


def households_of(site: SiteConfig, user_id: str | None) -> frozenset[str]:
    """The households a user belongs to."""
    if user_id is None:
        return frozenset()
    return frozenset(name for name, members in site.households.items() if user_id in members)


def zone_switch_refusal(
    site: SiteConfig, actor: Actor, zone: Zone, band: Band | None, on: bool
) -> str | None:
    """Why this caller may not switch this zone now (a translation key), or None."""
    if not actor.is_admin and (
        zone.household is None or zone.household not in households_of(site, actor.user_id)
    ):
        return "not_your_zone"
    if zone.priority is PriorityClass.CRITICAL:
        if on:
            return None  # already forced on; nothing to ask
        return "critical_zone" if not actor.is_admin else "critical_needs_override"
    allowed, reason = household_may_set(zone, band or Band.CONSERVATION, on)
    return None if allowed else reason


# ---- rate limits -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimit:
    """A token bucket's shape: `burst` calls at once, refilled at `per_minute`."""

    burst: int = DEFAULT_RATE_LIMIT_BURST
    per_minute: float = DEFAULT_RATE_LIMIT_PER_MINUTE

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RateLimit:
        """From an entry's options (defaults when unset)."""
        return cls(
            burst=max(1, int(options.get(CONF_RATE_LIMIT_BURST, DEFAULT_RATE_LIMIT_BURST))),
            per_minute=max(
                0.1, float(options.get(CONF_RATE_LIMIT_PER_MINUTE, DEFAULT_RATE_LIMIT_PER_MINUTE))
            ),
        )


class RateLimiter:
    """Per-user token buckets for one site."""

    def __init__(self, limit: RateLimit) -> None:
        """Every user starts with a full bucket."""
        self.limit = limit
        self._buckets: dict[str, tuple[float, datetime]] = {}

    def take(self, user_id: str, now: datetime) -> bool:
        """Spend one token of this user's bucket; False when it is empty."""
        tokens, at = self._buckets.get(user_id, (float(self.limit.burst), now))
        refill = max((now - at).total_seconds(), 0.0) * self.limit.per_minute / 60
        tokens = min(float(self.limit.burst), tokens + refill)
        allowed = tokens >= 1
        self._buckets[user_id] = (tokens - 1 if allowed else tokens, now)
        return allowed

    def spare(self, user_id: str) -> bool:
        """Whether the user's bucket held another token at the last take."""
        return self._buckets.get(user_id, (float(self.limit.burst), None))[0] >= 1
