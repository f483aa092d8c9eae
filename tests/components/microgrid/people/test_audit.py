"""The audit trail: hash chain, trimming, migration, tamper detection, refusal bursts, options."""

from __future__ import annotations

from datetime import timedelta
import itertools
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.const import DOMAIN
from custom_components.microgrid.people import audit as audit_module
from custom_components.microgrid.people.audit import GENESIS, AuditLog, entry_hash
from tests.components.microgrid.conftest import reload, wait_for

ENTRY_ID = "site1"
KEY = f"{DOMAIN}.{ENTRY_ID}.audit"


async def fresh(hass: HomeAssistant) -> AuditLog:
    """A trail loaded from what is stored now."""
    log = AuditLog(hass, ENTRY_ID, "Village")
    await log.async_load()
    return log


def add(log: AuditLog, n: int, action: str = "zone_request") -> None:
    """Record n entries."""
    for i in range(n):
        log.record(now=dt_util.utcnow(), actor="u1", actor_name="Asha", action=action, n=i)


async def test_entries_are_chained_and_trimming_keeps_the_chain_verifiable(
    hass: HomeAssistant, hass_storage: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each entry holds its predecessor's hash; past the cap the oldest go and the stored
    anchor (the last dropped hash) lets the rest verify, also after a reload."""
    monkeypatch.setattr(audit_module, "MAX_ENTRIES", 5)
    log = await fresh(hass)
    add(log, 8)
    entries = list(reversed(log.query(limit=10)))
    assert [e["detail"]["n"] for e in entries] == [3, 4, 5, 6, 7]
    for before, after in itertools.pairwise(entries):
        assert after["prev"] == before["hash"]
    assert entries[0]["hash"] == entry_hash(entries[0], entries[0]["prev"])
    assert log.verification() == {"valid": True, "entries": 5, "first_broken": None}
    await log.async_flush()
    assert hass_storage[KEY]["version"] == 2
    assert hass_storage[KEY]["data"]["anchor"] == entries[0]["prev"] != GENESIS
    assert (await (await fresh(hass)).async_verify())["valid"] is True


async def test_version_1_store_is_chained_once_at_load(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """An old trail without hashes is chained from the genesis anchor and saved as version 2."""
    old = [
        {"at": f"2025-01-0{i}T00:00:00+00:00", "actor": "policy", "actor_name": "P"}
        | {"action": "band_changed", "zone_id": None, "detail": {"band": "normal"}}
        for i in range(1, 4)
    ]
    hass_storage[KEY] = {"version": 1, "minor_version": 1, "key": KEY, "data": {"entries": old}}
    log = await fresh(hass)
    assert log.verification() == {"valid": True, "entries": 3, "first_broken": None}
    stored = hass_storage[KEY]
    assert stored["version"] == 2
    first, second, _ = stored["data"]["entries"]
    assert first["prev"] == GENESIS and second["prev"] == first["hash"]
    assert (await fresh(hass)).query(limit=1)[0]["hash"] == stored["data"]["entries"][-1]["hash"]


async def test_an_edited_store_is_reported_and_never_served_as_verified(
    hass: HomeAssistant, hass_storage: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Someone edits entry 2 of the stored file: the load logs an error, raises a repair issue,
    audits the break (once, not again at the next load) and says where the chain breaks."""
    log = await fresh(hass)
    add(log, 4, "override_set")
    await log.async_flush()
    hass_storage[KEY]["data"]["entries"][2]["detail"]["n"] = 99  # forged
    log = await fresh(hass)
    broken = {"index": 2, "at": hass_storage[KEY]["data"]["entries"][2]["at"]}
    broken["reason"] = "hash_mismatch"
    assert log.verification() == {"valid": False, "entries": 5, "first_broken": broken}
    assert await log.async_verify() == log.verification()
    assert "altered: its hash chain breaks at entry 2" in caplog.text
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"audit_chain_broken_{ENTRY_ID}")
    assert issue is not None and issue.translation_key == "audit_chain_broken"
    assert issue.translation_placeholders["index"] == "2"
    [audited] = log.query(action="audit_chain_broken")
    assert audited["detail"] == {"index": 2, "broken_at": broken["at"], "reason": "hash_mismatch"}
    await log.async_flush()
    again = await fresh(hass)
    assert len(again.query(action="audit_chain_broken")) == 1

    del hass_storage[KEY]["data"]["entries"][1]  # a removed entry breaks the next link
    removed = await fresh(hass)
    assert removed.verification()["first_broken"]["reason"] == "prev_mismatch"
    assert removed.verification()["first_broken"]["index"] == 1
    await removed.async_flush()


async def test_rate_limited_refusals_are_audited_once_per_burst(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """The first refusal of a burst is written at once; the rest only as a count when the burst
    ends: at the next accepted call, or after a quiet minute."""
    log = await fresh(hass)
    for _ in range(50):
        log.record_rate_limited(now=dt_util.utcnow(), actor="u1", actor_name="Asha", request="x")
        freezer.tick(timedelta(seconds=0.2))
    refused = log.query(action="request_refused")
    assert len(refused) == 1 and refused[0]["detail"]["reason"] == "rate_limited"
    log.end_burst("u1", dt_util.utcnow())
    summary = log.query(action="request_refused")[0]["detail"]
    assert summary["refused_calls"] == 50 and summary["burst_ended"] == "accepted"

    log.record_rate_limited(now=dt_util.utcnow(), actor="u1", actor_name="Asha", request="x")
    for _ in range(3):
        freezer.tick(timedelta(seconds=30))  # refused every 30 s: never quiet for a minute
        log.record_rate_limited(now=dt_util.utcnow(), actor="u1", actor_name="Asha", request="x")
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    assert len(log.query(action="request_refused")) == 3
    freezer.tick(timedelta(seconds=61))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    summary = log.query(action="request_refused")[0]["detail"]
    assert summary["refused_calls"] == 4 and summary["burst_ended"] == "quiet"
    log.end_burst("u1", dt_util.utcnow())  # nothing open: nothing written
    assert len(log.query(action="request_refused")) == 4
    await log.async_flush()


async def test_option_changes_are_audited_without_secrets(hass: HomeAssistant) -> None:
    """Changed keys old -> new; a secret shows only that it was set, never its value; the same
    options again write nothing."""
    log = await fresh(hass)
    log.note_options({"conservation_pct": 20.0})  # the first look is the baseline
    assert log.query(action="options_changed") == []
    secrets = {"twilio_auth_token": "a" * 32, "fcm_tokens": ["tok-" * 8]}
    log.note_options({"conservation_pct": 25.0, **secrets})
    log.note_options({"conservation_pct": 25.0, **secrets})
    [entry] = log.query(action="options_changed")
    assert entry["detail"]["changes"] == {
        "conservation_pct": {"old": 20.0, "new": 25.0},
        "fcm_tokens": {"old": None, "new": "**REDACTED**"},
        "twilio_auth_token": {"old": None, "new": "**REDACTED**"},
    }
    dumped = json.dumps(log._data_to_save())
    assert "a" * 32 not in dumped and "tok-" not in dumped
    await log.async_flush()


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
