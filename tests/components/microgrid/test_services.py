"""Actions: audit log verification, rate limits on households, option changes audited."""

from __future__ import annotations

from datetime import timedelta
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import entity_registry as er, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.const import DOMAIN

from .alerts.common import call
from .conftest import wait_for


async def reload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Unload and set up the entry again, its stream connected."""
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    link = entry.runtime_data.link
    await wait_for(lambda: link.connected)


async def test_verify_audit_log_reports_an_altered_store(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
) -> None:
    """An intact trail verifies; after someone edits the stored file, both actions say where
    the chain breaks and a repair issue is raised. Households may not verify (audited)."""
    entry = init_integration
    site = {"config_entry": entry.entry_id}
    response = await call(hass, "verify_audit_log", site, admin_user)
    assert response == {
        "valid": True,
        "entries": len(entry.runtime_data.audit),
        "first_broken": None,
    }
    response = await call(hass, "get_audit_log", site, admin_user)
    assert response["verified"] is True and response["first_broken"] is None
    with pytest.raises(Unauthorized) as err:
        await call(hass, "verify_audit_log", site, household_user)
    assert err.value.translation_key == "admin_only"
    assert "Only an administrator" in str(err.value)

    assert await hass.config_entries.async_unload(entry.entry_id)
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}.audit"]["data"]["entries"]
    refused = next(i for i, e in enumerate(stored) if e["action"] == "request_refused")
    stored[refused]["actor_name"] = "Someone else"  # covering one's tracks
    await reload(hass, entry)
    broken = {"index": refused, "at": stored[refused]["at"], "reason": "hash_mismatch"}
    response = await call(hass, "get_audit_log", site, admin_user)
    assert response["verified"] is False and response["first_broken"] == broken
    response = await call(hass, "verify_audit_log", site, admin_user)
    assert response["valid"] is False and response["first_broken"] == broken
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"audit_chain_broken_{entry.entry_id}")


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


async def test_option_changes_are_audited_once_without_secrets(
    hass: HomeAssistant, hass_storage: dict[str, Any], init_integration: MockConfigEntry
) -> None:
    """Changing the options writes one options_changed entry (old -> new; secrets only as set)
    before the reload; the reload itself writes none."""
    entry = init_integration
    token = "f" * 32
    hass.config_entries.async_update_entry(
        entry,
        options={
            **entry.options,
            "conservation_pct": 25.0,
            "twilio_account_sid": "AC" + "0" * 32,
            "twilio_auth_token": token,
        },
    )
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.link.connected)
    [changed] = entry.runtime_data.audit.query(action="options_changed")
    assert changed["detail"]["changes"] == {
        "conservation_pct": {"old": 20.0, "new": 25.0},
        "twilio_account_sid": {"old": None, "new": "**REDACTED**"},
        "twilio_auth_token": {"old": None, "new": "**REDACTED**"},
    }
    await reload(hass, entry)
    assert len(entry.runtime_data.audit.query(action="options_changed")) == 1
    assert token not in json.dumps(hass_storage[f"{DOMAIN}.{entry.entry_id}.audit"])
