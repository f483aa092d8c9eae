"""The day plan inside Home Assistant: planned in the executor, shown, simulated, applied."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import Unauthorized
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.const import DOMAIN
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import wait_for


def _entity(hass: HomeAssistant, entry: MockConfigEntry, key: str, domain: str) -> str:
    found = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{entry.entry_id}_{key}")
    assert found
    return found


async def _planned(entry: MockConfigEntry) -> None:
    planner = entry.runtime_data.coordinator.planner
    await wait_for(lambda: planner.plan is not None)
    await entry.runtime_data.coordinator.hass.async_block_till_done()


async def test_site_is_planned_at_start_and_shown(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A plan exists right after setup; its status and unserved energy are sensors."""
    entry = init_integration
    await _planned(entry)
    await hass.async_block_till_done()
    status = hass.states.get(_entity(hass, entry, "plan_status", "sensor"))
    assert status is not None and status.state == "ok"
    assert status.attributes["runs"] >= 1
    unserved = hass.states.get(_entity(hass, entry, "expected_unserved_energy", "sensor"))
    assert unserved is not None and float(unserved.state) >= 0.0
    assert set(unserved.attributes) >= {"critical", "semi_critical", "non_critical", "deferrable"}
    plan = entry.runtime_data.coordinator.planner.plan
    # The clinic is planned on all day at 80 % SoC; a day is 288 five-minute slots.
    assert len(plan.slot_start) == 288
    assert all(plan.zone_on["Zone1"])


async def test_get_schedule_and_calendar_agree(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """get_schedule lists each zone's runs; the calendar shows the deferrable zone's runs."""
    entry = init_integration
    await _planned(entry)
    schedule = await hass.services.async_call(
        DOMAIN,
        "get_schedule",
        {"config_entry": entry.entry_id},
        blocking=True,
        return_response=True,
    )
    assert schedule["status"] == "ok"
    assert set(schedule["zones"]) == {"Zone1", "Zone2", "Zone3", "Zone4"}
    assert schedule["jobs"] and schedule["jobs"][0]["zone_id"] == "Zone4"
    calendar = _entity(hass, entry, "planned_runs", "calendar")
    start = dt_util.utcnow() - timedelta(hours=1)
    events = await hass.services.async_call(
        "calendar",
        "get_events",
        {
            "entity_id": calendar,
            "start_date_time": start,
            "end_date_time": start + timedelta(hours=30),
        },
        blocking=True,
        return_response=True,
    )
    runs = schedule["zones"]["Zone4"]
    got = events[calendar]["events"]
    assert len(got) == len(runs)
    if runs:
        assert dt_util.parse_datetime(got[0]["start"]) == dt_util.parse_datetime(runs[0]["start"])
        assert got[0]["summary"] == "Water pump"


async def test_simulate_never_touches_a_relay(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """A what-if at 5 % SoC plans the shed, and no command changes."""
    entry = init_integration
    await _planned(entry)
    coordinator = entry.runtime_data.coordinator
    await wait_for(lambda: coordinator.commands.in_flight == 0)
    before = rtdb.get_value("commands")
    installed = coordinator.planner.plan
    result = await hass.services.async_call(
        DOMAIN,
        "simulate",
        {"config_entry": entry.entry_id, "soc_pct": 5, "pv_scale": 0, "zones_off": ["Homes"]},
        blocking=True,
        return_response=True,
    )
    assert result["status"] == "simulated"
    assert result["assumed"]["soc_pct"] == 5.0
    assert "Zone3" not in result["zones"]
    # No sun and an almost empty battery: the plan serves far less than it wants.
    assert result["unserved_wh"]["semi_critical"] > 0
    await hass.async_block_till_done()
    assert rtdb.get_value("commands") == before
    assert coordinator.planner.plan is installed


async def test_optimize_and_apply_are_admin_only_and_audited(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
) -> None:
    """Households cannot re-plan or apply; an admin's applied plan is pinned and audited."""
    entry = init_integration
    await _planned(entry)
    for service in ("optimize", "apply_schedule"):
        with pytest.raises(Unauthorized):
            await hass.services.async_call(
                DOMAIN,
                service,
                {"config_entry": entry.entry_id},
                blocking=True,
                context=Context(user_id=household_user.id),
            )
    planner = entry.runtime_data.coordinator.planner
    runs = planner.runs
    await hass.services.async_call(
        DOMAIN,
        "optimize",
        {"config_entry": entry.entry_id},
        blocking=True,
        context=Context(user_id=admin_user.id),
        return_response=True,
    )
    assert planner.runs > runs
    applied = await hass.services.async_call(
        DOMAIN,
        "apply_schedule",
        {"config_entry": entry.entry_id, "pv_scale": 0.5, "duration": {"hours": 2}},
        blocking=True,
        context=Context(user_id=admin_user.id),
        return_response=True,
    )
    assert applied["status"] == "pinned"
    await hass.async_block_till_done()
    status = hass.states.get(_entity(hass, entry, "plan_status", "sensor"))
    assert status is not None and status.state == "pinned"
    # While pinned, scheduled re-plans keep the applied plan.
    pinned, runs = planner.plan, planner.runs
    await planner.async_replan("schedule")
    assert planner.runs == runs and planner.plan is pinned
    audit = entry.runtime_data.audit.query(action="apply_schedule")
    assert audit and audit[0]["actor"] == admin_user.id


async def test_a_stale_plan_is_not_followed(
    hass: HomeAssistant, init_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Past its freshness the plan stops steering dispatch: policy and greedy decide alone."""
    entry = init_integration
    await _planned(entry)
    planner = entry.runtime_data.coordinator.planner
    assert planner.planned_on(dt_util.utcnow()) is not None
    # The boards fall silent: with no fresh SoC nothing can re-plan, so the plan ages.
    freezer.tick(timedelta(minutes=20))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert planner.status == "stale"
    assert planner.planned_on(dt_util.utcnow()) is None
    status = hass.states.get(_entity(hass, entry, "plan_status", "sensor"))
    assert status is not None and status.state == "stale"
