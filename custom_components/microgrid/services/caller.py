"""Who is calling an action on a site: rate limits per user, audited refusals, admin-only checks."""

from __future__ import annotations

from typing import Any

from homeassistant.core import Context, HomeAssistant, ServiceCall, callback
from homeassistant.util import dt as dt_util

from ..const import DOMAIN
from ..people.permissions import (
    DATA_LIMITERS,
    RATE_LIMITED,
    Actor,
    BadRequest,
    NotPermitted,
    RateLimit,
    RateLimiter,
    async_actor,
)
from ..runtime import MicrogridConfigEntry


def rate_limiter(hass: HomeAssistant, entry: MicrogridConfigEntry) -> RateLimiter:
    """The site's limiter (made on first use with the entry's options; gone at unload)."""
    limiters = hass.data.setdefault(DATA_LIMITERS, {})
    if (limiter := limiters.get(entry.entry_id)) is None:
        limiter = limiters[entry.entry_id] = RateLimiter(RateLimit.from_options(entry.options))

        @callback
        def _forget() -> None:
            limiters.pop(entry.entry_id, None)

        entry.async_on_unload(_forget)
    return limiter


async def async_site_caller(
    hass: HomeAssistant,
    entry: MicrogridConfigEntry,
    context: Context | None,
    *,
    request: str,
    zone_id: str | None = None,
) -> Actor:
    """The caller of a request on this site; users who are not admins are rate-limited.

    Admins and automations are not limited: they can change the limits anyway, and a runaway
    automation is the admin's to fix. A refused call is audited once per burst.
    """
    actor = await async_actor(hass, context)
    if actor.is_admin:
        return actor
    audit = entry.runtime_data.audit
    now = dt_util.utcnow()
    limiter = rate_limiter(hass, entry)
    if not limiter.take(actor.audit_id, now):
        audit.record_rate_limited(
            now=now, actor=actor.audit_id, actor_name=actor.name, request=request, zone_id=zone_id
        )
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key=RATE_LIMITED,
            translation_placeholders={
                "burst": str(limiter.limit.burst),
                "per_minute": f"{limiter.limit.per_minute:g}",
            },
        )
    if limiter.spare(actor.audit_id):
        # A flood lets one call through per refill and stays one burst; the burst ends when
        # the caller slowed down enough to have a token to spare (or after a quiet minute).
        audit.end_burst(actor.audit_id, now)
    return actor


def refusal(
    entry: MicrogridConfigEntry,
    actor: Actor,
    key: str,
    placeholders: dict[str, str] | None = None,
    *,
    request: str,
    zone_id: str | None = None,
    context: Context | None = None,
    **detail: Any,
) -> BadRequest | NotPermitted:
    """Audit a refusal; the error to raise (NotPermitted when a context is given)."""
    entry.runtime_data.audit.record_refusal(
        now=dt_util.utcnow(),
        actor=actor.audit_id,
        actor_name=actor.name,
        reason=key,
        request=request,
        zone_id=zone_id,
        **detail,
    )
    if context is not None:
        return NotPermitted(context, key, placeholders)
    return BadRequest(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


async def async_admin(
    hass: HomeAssistant, entry: MicrogridConfigEntry, context: Context | None, *, request: str
) -> Actor:
    """The calling admin; anyone else is rate-limited, then refused (audited, 401)."""
    actor = await async_site_caller(hass, entry, context, request=request)
    if not actor.is_admin:
        raise refusal(entry, actor, "admin_only", request=request, context=context)
    return actor


def request_of(call: ServiceCall) -> str:
    """How an action call is named in the audit trail (`microgrid.<action>`)."""
    return f"{DOMAIN}.{call.service}"


async def async_action_admin(call: ServiceCall, entry: MicrogridConfigEntry) -> Actor:
    """The admin calling this action; anyone else is rate-limited, then refused (audited)."""
    return await async_admin(call.hass, entry, call.context, request=request_of(call))


async def async_action_caller(call: ServiceCall, entry: MicrogridConfigEntry) -> Actor:
    """Whoever calls this action; users who are not admins are rate-limited."""
    return await async_site_caller(call.hass, entry, call.context, request=request_of(call))
