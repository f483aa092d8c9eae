"""Audit actions: get_audit_log's filters and answer, verify_audit_log after an edited store."""

from __future__ import annotations

from typing import Any

from homeassistant.auth.models import User
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import Unauthorized
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion
from syrupy.matchers import path_type

from custom_components.microgrid.const import DOMAIN
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import named, reload, settle_site

from .conftest import call

# Each entry's hash covers its actor's user id, random per test: shown as their type (the
# chain itself is what `verified` and verify_audit_log check).
CHAIN = path_type({r".*\.(hash|prev)": (str,)}, regex=True)


@pytest.mark.freeze_time("2026-06-01 10:02:30+00:00")
async def test_get_audit_log(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    admin_user: User,
) -> None:
    """The trail newest first with its verification; filtered by zone (id or name), action,
    time and count."""
    entry = init_integration
    await settle_site(entry, rtdb)
    site = {"config_entry": entry.entry_id}
    override = {**site, "zone": "Zone2", "state": "off", "reason": "Market day"}
    await call(hass, "override_zone", override, admin_user)
    matcher = named({admin_user.id: "<admin_user.id>"}, then=CHAIN)
    full = await call(hass, "get_audit_log", site, admin_user)
    assert full == snapshot(matcher=matcher)
    by_zone = await call(hass, "get_audit_log", {**site, "zone": "street lights"}, admin_user)
    assert by_zone == snapshot(name="zone", matcher=matcher)
    assert {e["zone_id"] for e in by_zone["entries"]} == {"Zone2"}
    by_action = await call(hass, "get_audit_log", {**site, "action": "override_set"}, admin_user)
    assert [e["action"] for e in by_action["entries"]] == ["override_set"]
    limited = await call(hass, "get_audit_log", {**site, "limit": 2}, admin_user)
    assert limited["count"] == 2 and limited["entries"] == full["entries"][:2]
    # A naive `since` is local time (US/Pacific in tests): every entry is from 03:02:30 there.
    since = {**site, "since": "2026-06-01 03:02:30"}
    assert (await call(hass, "get_audit_log", since, admin_user))["entries"] == full["entries"]
    since = {**site, "since": "2026-06-01 03:02:31"}
    assert (await call(hass, "get_audit_log", since, admin_user))["entries"] == []


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
