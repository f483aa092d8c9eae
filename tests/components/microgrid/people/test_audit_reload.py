"""A reload (options or subentries changed) never lets the old trail overwrite the new one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from tests.components.microgrid.conftest import wait_for


async def test_entries_recorded_after_a_reload_are_saved(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """An entry before the reload, one after; past every save delay both are in the store."""
    entry = init_integration
    entry.runtime_data.audit.record(
        now=dt_util.utcnow(), actor="system", actor_name="t", action="before_reload"
    )
    hass.config_entries.async_update_entry(entry, options={**entry.options, "x": 1})
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.link.connected)
    entry.runtime_data.audit.record(
        now=dt_util.utcnow(), actor="system", actor_name="t", action="after_reload"
    )
    for _ in range(4):
        freezer.tick(timedelta(seconds=15))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    stored = hass_storage[f"microgrid.{entry.entry_id}.audit"]["data"]["entries"]
    actions = [e["action"] for e in stored]
    assert "before_reload" in actions and "after_reload" in actions, actions
