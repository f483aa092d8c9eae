"""The calendar platform: the day plan's deferrable runs, as the plan has them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.calendar import DOMAIN as CALENDAR_DOMAIN, SERVICE_GET_EVENTS
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.microgrid.planning.manager import plan_runs
from sim.rtdb import RTDBServer

from .conftest import assert_platform_snapshot, settle_site

pytestmark = [
    pytest.mark.freeze_time("2026-06-01 10:02:30+00:00"),
    pytest.mark.parametrize("init_integration", [Platform.CALENDAR], indirect=True),
]


async def _events(
    hass: HomeAssistant, entity_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """calendar.get_events over [start, end)."""
    response = await hass.services.async_call(
        CALENDAR_DOMAIN,
        SERVICE_GET_EVENTS,
        {"entity_id": entity_id, "start_date_time": start, "end_date_time": end},
        blocking=True,
        return_response=True,
    )
    return response[entity_id]["events"]


async def test_calendar(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """One calendar per site; its state is the pump's current or next planned run."""
    await assert_platform_snapshot(hass, snapshot, init_integration, rtdb)


async def test_events_are_the_planned_runs(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """get_events lists exactly the deferrable zone's runs of the plan (the pump), and only
    those overlapping the asked window."""
    entry = init_integration
    await settle_site(entry, rtdb)
    [calendar] = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    plan = entry.runtime_data.coordinator.planner.plan
    assert plan is not None
    runs = plan_runs(plan, "Zone4")
    assert runs
    now = dt_util.utcnow()
    events = await _events(
        hass, calendar.entity_id, now - timedelta(hours=1), now + timedelta(hours=30)
    )
    assert [
        (dt_util.parse_datetime(e["start"]), dt_util.parse_datetime(e["end"])) for e in events
    ] == runs
    assert {e["summary"] for e in events} == {"Water pump"}
    assert events == snapshot
    # Only runs overlapping the window: inside the first run, before it, after the last.
    first, last = runs[0], runs[-1]
    inside = (first[0] + timedelta(minutes=1), first[1] - timedelta(minutes=1))
    before = (first[0] - timedelta(hours=1), first[0])
    after = (last[1], last[1] + timedelta(hours=1))
    assert await _events(hass, calendar.entity_id, *inside) == events[:1]
    assert await _events(hass, calendar.entity_id, *before) == []
    assert await _events(hass, calendar.entity_id, *after) == []
