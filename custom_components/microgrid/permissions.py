"""Who may switch what: admins vs households, checked on the calling user of every action."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError

from .const import DOMAIN
from .models import SiteConfig
from .optimizer.model import Band, PriorityClass, Zone
from .optimizer.policy import household_may_set


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
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="unknown_user")
    return Actor(user_id=user.id, name=user.name or user.id, is_admin=user.is_admin)


def households_of(site: SiteConfig, user_id: str | None) -> frozenset[str]:
    """The households a user belongs to."""
    if user_id is None:
        return frozenset()
    return frozenset(name for name, members in site.households.items() if user_id in members)


def check_zone_switch(
    site: SiteConfig, actor: Actor, zone: Zone, band: Band | None, on: bool
) -> None:
    """Raise a translated error unless this caller may switch this zone now."""
    placeholders = {"zone": zone.name}
    if not actor.is_admin and (
        zone.household is None or zone.household not in households_of(site, actor.user_id)
    ):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_your_zone",
            translation_placeholders=placeholders,
        )
    if zone.priority is PriorityClass.CRITICAL:
        if on:
            return  # already forced on; nothing to ask
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="critical_zone" if not actor.is_admin else "critical_needs_override",
            translation_placeholders=placeholders,
        )
    allowed, reason = household_may_set(zone, band or Band.CONSERVATION, on)
    if not allowed:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=reason,
            translation_placeholders=placeholders,
        )
