"""End to end: Home Assistant killed without a clean stop (a power cut) keeps what it knew."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_override_and_household_request_survive_a_power_cut(restart_result: dict) -> None:
    """The admin's override and the household's request, both older than the save delay."""
    after = restart_result["after"]
    assert after["overrides"] == ["Zone4"], restart_result["_failure"]
    assert after["requests"].get("Zone3") is False, restart_result["_failure"]


def test_energy_counters_lose_at_most_the_save_delay(restart_result: dict) -> None:
    """Every energy counter is at least what it was one save delay before the kill."""
    before, after = restart_result["before"]["energy_kwh"], restart_result["after"]["energy_kwh"]
    assert before, restart_result["_failure"]
    for key, kwh in before.items():
        assert after.get(key, 0.0) >= kwh, (key, kwh, after.get(key))


def test_audit_entries_older_than_the_save_delay_survive_and_the_chain_holds(
    restart_result: dict,
) -> None:
    """No audit entry recorded before the wait is lost, and the restored chain verifies."""
    before, after = restart_result["before"]["audit"], restart_result["after"]["audit"]
    assert before, restart_result["_failure"]
    assert set(before) <= set(after), sorted(set(before) - set(after))
    assert restart_result["verify"]["valid"] is True, restart_result["verify"]
