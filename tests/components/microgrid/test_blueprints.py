"""The automation blueprints in blueprints/automation/microgrid, run by a real Home Assistant.

Each blueprint is loaded by HA's blueprint component (as core's own blueprint tests do:
`DomainBlueprints._load_blueprint` patched to read the repository's file), an automation is
made from it, and the real integration drives its trigger: a falling battery, the emergency
band, the plan's calendar, a shed zone.

A blueprint run may wait for a long time (for the battery to re-arm, for a zone's power to
come back, for a planned run to end), and `hass.async_block_till_done` waits for every running
task: these tests wait for what they expect instead (`wait_for`) and, to prove something did
not happen, let the loop run (`settle`) and check again after the next thing that does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.components import automation
from homeassistant.components.blueprint import models
from homeassistant.core import Context, HomeAssistant, ServiceCall, callback
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util, yaml as yaml_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)

from custom_components.microgrid.const import DOMAIN
from sim.rtdb import RTDBServer

from .conftest import ZONES, board_record, entity_id, push, wait_for

BLUEPRINTS = Path(__file__).parents[3] / "blueprints" / "automation" / "microgrid"
FILES = sorted(p.name for p in BLUEPRINTS.glob("*.yaml"))
AUTOMATION = "automation.blueprint_under_test"

type Setup = Callable[[str, dict[str, Any]], Awaitable[None]]


def load(name: str) -> models.Blueprint:
    """A blueprint file as HA's blueprint component validates it."""
    return models.Blueprint(
        yaml_util.load_yaml_dict(BLUEPRINTS / name),
        expected_domain=automation.DOMAIN,
        path=f"microgrid/{name}",
        schema=automation.config.AUTOMATION_BLUEPRINT_SCHEMA,
    )


@contextlib.contextmanager
def patch_blueprint(name: str) -> Iterator[None]:
    """HA loads `microgrid/<name>` from this repository, not from a config dir."""

    @callback
    def _load(self: models.DomainBlueprints, path: str) -> models.Blueprint:
        if path != f"microgrid/{name}":
            pytest.fail(f"unexpected blueprint {path}")
        return load(name)

    with patch.object(models.DomainBlueprints, "_load_blueprint", _load):
        yield


@pytest.fixture
async def blueprint_automation(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> AsyncIterator[Setup]:
    """Make one automation from a blueprint; stop its runs before the site unloads."""

    async def _setup(name: str, inputs: dict[str, Any]) -> None:
        with patch_blueprint(name):
            assert await async_setup_component(
                hass,
                automation.DOMAIN,
                {
                    automation.DOMAIN: {
                        "alias": "Blueprint under test",
                        "use_blueprint": {"path": f"microgrid/{name}", "input": inputs},
                    }
                },
            )
        await settle(hass, init_integration)
        state = hass.states.get(AUTOMATION)
        assert state is not None and state.state == "on", state

    yield _setup
    # A run still waiting would keep the fixtures' async_block_till_done from returning.
    if hass.states.get(AUTOMATION) is not None:
        await hass.services.async_call(
            automation.DOMAIN, "turn_off", {"entity_id": AUTOMATION}, blocking=True
        )


async def settle(hass: HomeAssistant, entry: MockConfigEntry, rounds: int = 100) -> None:
    """Let command writes finish and the automation's reactions run (no I/O in between)."""
    coordinator = entry.runtime_data.coordinator
    await wait_for(lambda: coordinator.commands.in_flight == 0)
    for _ in range(rounds):
        await asyncio.sleep(0)


def boards(rtdb: RTDBServer, pct: float = 80.0, **relays: bool) -> dict[str, Any]:
    """A fresh record of every board; each relay follows its last command (a working board)
    unless given."""

    def relay(zone_id: str) -> bool:
        if zone_id in relays:
            return relays[zone_id]
        command = rtdb.get_value(f"commands/{zone_id}")
        return command is None or command["command"] == "ON"

    return {zone_id: board_record(soc=pct, relay=relay(zone_id)) for zone_id, *_ in ZONES}


async def report(hass: HomeAssistant, entry: MockConfigEntry, rtdb: RTDBServer, pct: float) -> None:
    """The boards report twice: the decision on the reading, then the relays' echo of it."""
    for _ in range(2):
        await push(entry, rtdb, boards(rtdb, pct))
        await settle(hass, entry)


async def advance(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry: MockConfigEntry,
    rtdb: RTDBServer,
    seconds: float,
    pct: float = 80.0,
) -> None:
    """Move time in steps of at most 30 s, the boards reporting at each step."""
    left = seconds
    while left > 0:
        step = min(30.0, left)
        freezer.tick(timedelta(seconds=step))
        left -= step
        await push(entry, rtdb, boards(rtdb, pct))
        async_fire_time_changed(hass)
        await settle(hass, entry)


def recorder(hass: HomeAssistant, domain: str, service: str) -> list[dict[str, Any]]:
    """A real action that records the data it was called with."""
    calls: list[dict[str, Any]] = []

    async def _handler(call: ServiceCall) -> None:
        calls.append(dict(call.data))

    hass.services.async_register(domain, service, _handler)
    return calls


def notify(service: str) -> list[dict[str, Any]]:
    """The notification actions an operator would give: one notify action with the message."""
    return [{"action": f"notify.{service}", "data": {"message": "{{ message }}"}}]


# ---- every blueprint ------------------------------------------------------------------------


def test_the_four_blueprints_are_there() -> None:
    """The issue's four blueprints, and nothing half-finished beside them."""
    assert FILES == [
        "emergency_broadcast.yaml",
        "low_battery_notify.yaml",
        "run_load_when_planned.yaml",
        "zone_shed_notify.yaml",
    ]


@pytest.mark.parametrize("name", FILES)
def test_blueprint_is_valid_and_picks_only_microgrid_things(name: str) -> None:
    """HA's schema accepts it; every entity or site it asks for is filtered to this
    integration; it names itself and where to re-import it from."""
    blueprint = load(name)
    assert blueprint.domain == automation.DOMAIN
    assert blueprint.name.startswith("Microgrid: ")
    metadata = blueprint.metadata
    assert metadata["description"].strip()
    assert metadata["source_url"].endswith(f"/blueprints/automation/microgrid/{name}")
    assert metadata["homeassistant"]["min_version"] == "2026.10.0"
    for key, spec in blueprint.inputs.items():
        assert spec.get("name"), key
        selector = spec["selector"]
        if "entity" in selector:
            filters = selector["entity"]["filter"]
            assert filters and all(f["integration"] == DOMAIN for f in filters), key
        if "config_entry" in selector:
            assert selector["config_entry"]["integration"] == DOMAIN, key


# ---- low_battery_notify ---------------------------------------------------------------------


async def test_low_battery_notifies_once_per_descent(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    rtdb: RTDBServer,
    blueprint_automation: Setup,
) -> None:
    """Below 20 %: one notification. Hovering under the re-arm level (22 %) does not notify
    again; recovering past it and falling again does. Drops that stay above 20 % never do."""
    entry = init_integration
    calls = async_mock_service(hass, "notify", "operator")
    battery = entity_id(hass, entry, "battery_soc", "sensor")
    await blueprint_automation(
        "low_battery_notify.yaml", {"battery": battery, "notify": notify("operator")}
    )

    async def soc(pct: float) -> None:
        await push(entry, rtdb, boards(rtdb, pct))
        await wait_for(lambda: float(hass.states.get(battery).state) == pct)  # type: ignore[union-attr]
        await settle(hass, entry)

    await soc(30)
    await soc(22)  # a drop, still above the level
    assert calls == []
    await soc(19)
    await wait_for(lambda: len(calls) == 1)
    assert calls[0].data["message"] == "Village battery at 19 %, below 20 %."
    await soc(15)
    await soc(21)  # back above 20 but not past the re-arm margin
    await soc(19)
    await soc(23)  # re-armed
    await soc(22)
    assert len(calls) == 1
    await soc(18)
    await wait_for(lambda: len(calls) == 2)
    await settle(hass, entry)
    assert calls[1].data["message"] == "Village battery at 18 %, below 20 %."
    assert len(calls) == 2


# ---- emergency_broadcast --------------------------------------------------------------------


async def test_emergency_broadcast_reaches_every_household(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    rtdb: RTDBServer,
    household_user: User,
    blueprint_automation: Setup,
) -> None:
    """The site entering the emergency band sends the message, through microgrid.send_alert,
    to the phones of every household's members (found from the site's zones); a drop into
    conservation does not."""
    entry = init_integration
    phone = recorder(hass, "notify", "mobile_app_asha_phone")
    MockConfigEntry(
        domain="mobile_app", data={"user_id": household_user.id, "device_name": "Asha phone"}
    ).add_to_hass(hass)
    await blueprint_automation("emergency_broadcast.yaml", {"site": entry.entry_id})

    def broadcasts() -> list[dict[str, Any]]:
        return [c for c in phone if c.get("title", "").endswith("Battery emergency")]

    await report(hass, entry, rtdb, 15)  # conservation
    assert broadcasts() == []
    await report(hass, entry, rtdb, 8)  # emergency
    await wait_for(lambda: len(broadcasts()) == 1)
    await settle(hass, entry)
    [sent] = broadcasts()
    assert sent["message"].startswith("Battery emergency: the battery is at 8 %.")
    await report(hass, entry, rtdb, 7)  # still the same emergency
    assert len(broadcasts()) == 1
    alerts = await hass.services.async_call(
        DOMAIN,
        "get_alerts",
        {"config_entry": entry.entry_id, "alert_type": "custom"},
        blocking=True,
        return_response=True,
    )
    assert [(a["household"], a["severity"]) for a in alerts["alerts"]] == [("Homes", "warning")]


async def test_emergency_broadcast_to_listed_households_survives_a_typo(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    rtdb: RTDBServer,
    household_user: User,
    blueprint_automation: Setup,
) -> None:
    """Households listed by hand, one misspelt: the known ones are sent to first, so the
    integration's refusal of the unknown one (invalid data, which ends a run even with
    continue_on_error) costs nobody the message; the message is the operator's template."""
    entry = init_integration
    phone = recorder(hass, "notify", "mobile_app_asha_phone")
    MockConfigEntry(
        domain="mobile_app", data={"user_id": household_user.id, "device_name": "Asha phone"}
    ).add_to_hass(hass)
    await blueprint_automation(
        "emergency_broadcast.yaml",
        {
            "site": entry.entry_id,
            "households": ["Nobody", "homes"],
            "message": "Pump off until the battery is at {{ soc_pct + 10 }} %",
            "title": "Water",
        },
    )
    await report(hass, entry, rtdb, 8)
    await wait_for(lambda: any(c.get("title", "").endswith("Water") for c in phone))
    [sent] = [c for c in phone if c.get("title", "").endswith("Water")]
    assert sent["message"] == "Pump off until the battery is at 18 %"


# ---- run_load_when_planned ------------------------------------------------------------------


def pin_run(entry: MockConfigEntry, zone_id: str, start_slot: int, slots: int) -> datetime:
    """Pin a plan (as `apply_schedule` does) in which the zone runs for `slots` slots from
    `start_slot` and no other time; the start of the run."""
    planner = entry.runtime_data.coordinator.planner
    plan = planner.plan
    assert plan is not None
    states = tuple(start_slot <= i < start_slot + slots for i in range(len(plan.slot_start)))
    planner.install(
        replace(plan, zone_on={**plan.zone_on, zone_id: states}),
        until=dt_util.utcnow() + timedelta(hours=2),
    )
    return plan.slot_start[start_slot]


async def test_planned_run_starts_and_stops_the_load(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    rtdb: RTDBServer,
    freezer: FrozenDateTimeFactory,
    blueprint_automation: Setup,
) -> None:
    """The water pump's planned run starts the washer at the run's start, not before (not
    even when the pump's relay comes on outside a run), and stops it when the run is over,
    also when the plan lengthened the run after it began."""
    entry = init_integration
    planner = entry.runtime_data.coordinator.planner
    await wait_for(lambda: planner.plan is not None)
    # No re-plan in flight: one that finishes after the pin would replace the pinned plan.
    await hass.async_block_till_done()
    plan = planner.plan
    assert plan is not None
    now = dt_util.utcnow()
    first = next(i for i, s in enumerate(plan.slot_start) if s >= now + timedelta(minutes=1))
    start = pin_run(entry, "Zone4", first, 2)
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {"washer": {}}})
    washer = "input_boolean.washer"
    pump = entity_id(hass, entry, "Zone4_relay", "switch")
    await blueprint_automation(
        "run_load_when_planned.yaml",
        {
            "calendar": entity_id(hass, entry, "planned_runs", "calendar"),
            "zone": pump,
            "start_actions": [{"action": "input_boolean.turn_on", "target": {"entity_id": washer}}],
            "stop_at_end": True,
            "stop_actions": [{"action": "input_boolean.turn_off", "target": {"entity_id": washer}}],
        },
    )
    await report(hass, entry, rtdb, 80)
    assert hass.states.get(pump).state == "off"  # type: ignore[union-attr]  # planned off now
    # The pump's relay comes on outside its run (a board that disobeys): not a planned run.
    await push(entry, rtdb, boards(rtdb, Zone4=True))
    await wait_for(lambda: hass.states.get(pump).state == "on")  # type: ignore[union-attr]
    await settle(hass, entry)
    assert hass.states.get(washer).state == "off"  # type: ignore[union-attr]

    await advance(hass, freezer, entry, rtdb, (start - dt_util.utcnow()).total_seconds() - 30)
    assert hass.states.get(washer).state == "off"  # type: ignore[union-attr]
    await advance(hass, freezer, entry, rtdb, 30)
    await wait_for(lambda: hass.states.get(washer).state == "on")  # type: ignore[union-attr]

    # Half-way the plan lengthens the run by a slot: at the old end the washer keeps going.
    await advance(hass, freezer, entry, rtdb, 5 * 60)
    pin_run(entry, "Zone4", first, 3)
    await advance(hass, freezer, entry, rtdb, 5 * 60)
    assert hass.states.get(washer).state == "on"  # type: ignore[union-attr]
    # The run is followed to the second; the test's timers may fire up to 0.5 s early.
    await advance(hass, freezer, entry, rtdb, 5 * 60 + 30)
    await wait_for(lambda: hass.states.get(washer).state == "off")  # type: ignore[union-attr]


# ---- zone_shed_notify -----------------------------------------------------------------------


async def test_zone_shed_notifies_the_household_not_its_own_switching(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    rtdb: RTDBServer,
    household_user: User,
    freezer: FrozenDateTimeFactory,
    blueprint_automation: Setup,
) -> None:
    """The household switching its own zone off is not reported; the emergency shedding it
    is, with the reason, and so is the power coming back."""
    entry = init_integration
    calls = async_mock_service(hass, "notify", "homes")
    homes = entity_id(hass, entry, "Zone3_relay", "switch")
    await blueprint_automation("zone_shed_notify.yaml", {"zone": homes, "notify": notify("homes")})
    asha = Context(user_id=household_user.id)

    async def switch(service: str) -> None:
        await hass.services.async_call(
            "switch", service, {"entity_id": homes}, blocking=True, context=asha
        )

    def relay() -> str:
        return hass.states.get(homes).state  # type: ignore[union-attr]

    await switch("turn_off")
    await report(hass, entry, rtdb, 80)
    assert relay() == "off"
    assert hass.states.get(homes).attributes["reason"] == "household_request"  # type: ignore[union-attr]
    await switch("turn_on")
    await advance(hass, freezer, entry, rtdb, 6 * 60)  # past the minimum off time
    await wait_for(lambda: relay() == "on")
    assert calls == []

    await report(hass, entry, rtdb, 8)
    await wait_for(lambda: len(calls) == 1)
    assert relay() == "off"
    assert calls[0].data["message"] == "Homes was switched off: the battery is nearly empty."

    await advance(hass, freezer, entry, rtdb, 6 * 60, pct=80)
    await wait_for(lambda: len(calls) == 2)
    assert relay() == "on"
    assert calls[1].data["message"] == "Homes has power again."
    await settle(hass, entry)
    assert len(calls) == 2
