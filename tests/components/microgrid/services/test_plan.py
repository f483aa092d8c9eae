"""Plan actions, snapshot: get_schedule, simulate, optimize and apply_schedule answers."""

from __future__ import annotations

from homeassistant.auth.models import User
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import settle_site

from .conftest import call

pytestmark = pytest.mark.freeze_time("2026-06-01 10:02:30+00:00")


async def test_get_schedule(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    household_user: User,
) -> None:
    """Anyone may read the plan: each zone's runs, hourly SoC, energy per class, the jobs."""
    await settle_site(init_integration, rtdb)
    site = {"config_entry": init_integration.entry_id}
    assert await call(hass, "get_schedule", site, household_user) == snapshot


async def test_simulate(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    household_user: User,
) -> None:
    """A what-if at 5 % with no sun, the homes off and the pump rated 600 W: what it assumed
    and the plan it made (the installed plan stays)."""
    entry = init_integration
    await settle_site(entry, rtdb)
    planner = entry.runtime_data.coordinator.planner
    installed = planner.plan
    what_if = {
        "config_entry": entry.entry_id,
        "soc_pct": 5,
        "pv_scale": 0,
        "demand_scale": 1.5,
        "zones_off": ["Homes"],
        "rated_w": {"water pump": 600},
        "horizon_hours": 6,
    }
    assert await call(hass, "simulate", what_if, household_user) == snapshot
    assert planner.plan is installed


async def test_optimize_and_apply_schedule(
    hass: HomeAssistant,
    snapshot: SnapshotAssertion,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    admin_user: User,
) -> None:
    """An admin re-plans (the new plan's summary), then applies a half-sun what-if for two
    hours (pinned until then)."""
    entry = init_integration
    await settle_site(entry, rtdb)
    site = {"config_entry": entry.entry_id}
    assert await call(hass, "optimize", site, admin_user) == snapshot(name="optimize")
    applied = await call(
        hass, "apply_schedule", {**site, "pv_scale": 0.5, "duration": {"hours": 2}}, admin_user
    )
    assert applied == snapshot(name="apply_schedule")
    assert applied["status"] == "pinned"
    assert applied["pinned_until"] == "2026-06-01T12:02:30+00:00"
