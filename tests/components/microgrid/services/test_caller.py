"""Who calls an action: households are rate-limited (refusals audited once per burst), admins
and automations are not; admin-only actions refuse everyone else (audited)."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.const import DOMAIN
from custom_components.microgrid.people.permissions import DATA_LIMITERS

from .conftest import call


async def test_household_flood_cannot_evict_an_admin_override(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
    freezer: FrozenDateTimeFactory,
) -> None:
    """5,100 toggles in 22 s by a household write about a burst of entries, not 5,100: the
    admin's override stays in the trail (cap 5,000); the refusals are one entry and a count."""
    entry = init_integration
    audit = entry.runtime_data.audit
    await call(
        hass,
        "override_zone",
        {"config_entry": entry.entry_id, "zone": "Zone2", "state": "on", "reason": "Market day"},
        admin_user,
    )
    before = len(audit)
    homes = er.async_get(hass).async_get_entity_id(
        "switch", DOMAIN, f"{entry.entry_id}_Zone3_relay"
    )
    accepted = refused = 0
    for _ in range(5100):
        freezer.tick(timedelta(seconds=22 / 5100))
        try:
            await hass.services.async_call(
                "switch",
                "turn_on",
                {"entity_id": homes},
                blocking=True,
                context=Context(user_id=household_user.id),
            )
            accepted += 1
        except ServiceValidationError as err:
            assert err.translation_key == "rate_limited"
            refused += 1
    assert accepted == 12  # the burst of 10, and 6/min over 22 s
    freezer.tick(timedelta(seconds=61))  # a quiet minute ends the burst
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    first, summary = reversed(audit.query(action="request_refused"))
    assert first["detail"]["reason"] == "rate_limited" and first["zone_id"] == "Zone3"
    assert summary["detail"]["refused_calls"] == refused == 5100 - accepted
    assert len(audit) - before == accepted + 2
    assert audit.query(action="override_set")[0]["detail"]["reason"] == "Market day"


async def test_actions_of_households_are_rate_limited(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A household's 11th action in a row is refused (translated); an admin's are not."""
    site = {"config_entry": init_integration.entry_id}
    for _ in range(10):
        await call(hass, "get_schedule", site, household_user)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "get_schedule", site, household_user)
    assert err.value.translation_key == "rate_limited"
    assert "at most 10 at once and 6 a minute" in str(err.value)
    for _ in range(30):
        await call(hass, "get_schedule", site, admin_user)
    freezer.tick(timedelta(seconds=10))  # one token back
    await call(hass, "get_schedule", site, household_user)


async def test_admin_only_refusals_are_audited_with_the_action(
    hass: HomeAssistant, init_integration: MockConfigEntry, household_user: User
) -> None:
    """A household calling an admin action gets admin_only (401 type, translated) and the
    trail names the action; automations (no user) act as admins."""
    entry = init_integration
    site = {"config_entry": entry.entry_id}
    for service in ("optimize", "get_audit_log", "retrain"):
        with pytest.raises(Unauthorized) as err:
            await call(hass, service, site, household_user)
        assert err.value.translation_key == "admin_only"
    refusals = entry.runtime_data.audit.query(action="request_refused")
    assert [(e["actor"], e["detail"]["reason"], e["detail"]["request"]) for e in refusals] == [
        (household_user.id, "admin_only", f"{DOMAIN}.{service}")
        for service in ("retrain", "get_audit_log", "optimize")
    ]
    assert (await call(hass, "verify_audit_log", site))["valid"] is True


async def test_the_limiter_follows_the_entry(
    hass: HomeAssistant, init_integration: MockConfigEntry, household_user: User
) -> None:
    """A site's limiter is made on first use and forgotten when the entry unloads (a reload
    starts with full buckets and the new options)."""
    entry = init_integration
    await call(hass, "get_schedule", {"config_entry": entry.entry_id}, household_user)
    assert entry.entry_id in hass.data[DATA_LIMITERS]
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.entry_id not in hass.data[DATA_LIMITERS]
