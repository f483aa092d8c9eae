"""Helpers of the alert tests (here and in services/test_alerts.py): a site driven through its
readings and clock, its alert manager, its notify actions, the alert actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import persistent_notification
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.alerts.manager import DATA_ALERTS, AlertManager
from custom_components.microgrid.alerts.model import Alert
from custom_components.microgrid.const import (
    CONF_ESCALATION_MINUTES,
    CONF_ESCALATION_TARGETS,
    CONF_NOTIFY_TARGETS,
    DEFAULT_OPTIONS,
    DOMAIN,
)
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import ZONES, board_record, push, wait_for

# Alerts go to notify.test_target; escalations to notify.escalation after 10 min.
ALERT_OPTIONS: dict[str, Any] = {
    **DEFAULT_OPTIONS,
    CONF_NOTIFY_TARGETS: ["notify.test_target"],
    CONF_ESCALATION_TARGETS: ["notify.escalation"],
    CONF_ESCALATION_MINUTES: 10,
}
# The ladder those options run (get_alerts' `ladder_minutes`): 0 / 10 / 20 / 30.
DEFAULT_RUNG_MINUTES = {"household": 0, "admins": 10, "duty": 20, "authorities": 30}


def rebuilt_entry(
    entry: MockConfigEntry,
    *,
    data: dict[str, Any] | None = None,
    zones: dict[str, dict[str, Any]] | None = None,
) -> MockConfigEntry:
    """The conftest site entry again, its data and some zones' subentry data changed."""
    changes = zones or {}
    return MockConfigEntry(
        domain=entry.domain,
        title=entry.title,
        unique_id=entry.unique_id,
        data={**entry.data, **(data or {})},
        options=dict(entry.options),
        subentries_data=[
            ConfigSubentryData(
                data={**s.data, **changes.get(str(s.unique_id), {})},
                subentry_type=s.subentry_type,
                title=s.title,
                unique_id=s.unique_id,
            )
            for s in entry.subentries.values()
        ],
    )


def record_notify(
    hass: HomeAssistant, names: tuple[str, ...] = ("test_target", "escalation")
) -> dict[str, list[dict[str, Any]]]:
    """Real notify actions (test_target, escalation) that record what they were called with."""
    calls: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for name, recorded in calls.items():

        async def handler(call: ServiceCall, recorded: list[dict[str, Any]] = recorded) -> None:
            recorded.append(dict(call.data))

        hass.services.async_register("notify", name, handler)
    return calls


class FakeChannel:
    """A channel as an SMS or push gateway would implement it: records what it was sent."""

    def __init__(self, name: str, *, fail: bool = False) -> None:
        """Named; optionally always failing."""
        self.name = name
        self.fail = fail
        self.sent: list[tuple[str, bool]] = []

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Record, or fail as a gateway that is down."""
        if self.fail:
            raise HomeAssistantError("gateway down")
        self.sent.append((alert.alert_id, escalated))


def manager_of(hass: HomeAssistant, entry: MockConfigEntry) -> AlertManager:
    """The entry's alert manager."""
    return hass.data[DATA_ALERTS][entry.entry_id]


async def soc(hass: HomeAssistant, entry: MockConfigEntry, rtdb: RTDBServer, pct: float) -> None:
    """Every board reports this state of charge, through the real stream, in order."""
    coordinator = entry.runtime_data.coordinator
    for zone_id, *_ in ZONES:
        rtdb.set_value(f"sensors/{zone_id}", board_record(soc=pct))
    await wait_for(lambda: coordinator.data is not None and coordinator.data.soc_pct == pct)
    await settle(hass, entry)


async def settle(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Let command writes finish before the clock moves (a frozen jump times them out)."""
    coordinator = entry.runtime_data.coordinator
    await hass.async_block_till_done()
    await wait_for(lambda: coordinator.commands.in_flight == 0)


async def advance(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry: MockConfigEntry,
    rtdb: RTDBServer,
    seconds: float,
    records: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Move time in steps of at most 30 s, the boards reporting `records()` at each step."""
    left = seconds
    while left > 0:
        step = min(30.0, left)
        freezer.tick(timedelta(seconds=step))
        left -= step
        await push(entry, rtdb, records() if records else all_boards(rtdb=rtdb))
        async_fire_time_changed(hass)
        await settle(hass, entry)


def all_boards(
    pct: float = 80.0, *, rtdb: RTDBServer | None = None, **zone_records: dict[str, Any]
) -> dict[str, Any]:
    """A fresh record for every board (some replaced); with `rtdb`, each relay follows the
    command written for it, as a working board's does."""

    def relay(zone_id: str) -> bool:
        command = rtdb.get_value(f"commands/{zone_id}") if rtdb else None
        return command is None or command["command"] == "ON"

    return {z: zone_records.get(z, board_record(soc=pct, relay=relay(z))) for z, *_ in ZONES}


def event_state(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    """The alert event entity's state."""
    entity_id = er.async_get(hass).async_get_entity_id("event", DOMAIN, f"{entry.entry_id}_alerts")
    assert entity_id
    return hass.states.get(entity_id)


def notifications(hass: HomeAssistant) -> dict[str, Any]:
    """The persistent notifications."""
    return persistent_notification._async_get_or_create_notifications(hass)
