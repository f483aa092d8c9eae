"""Fixtures: a real loopback RTDB with four boards, and a site entry pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
import math
import time
from typing import Any
from unittest.mock import patch

from aiohttp.web_log import AccessLogger
from homeassistant.auth.models import User
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    snapshot_platform,
)
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.matchers import path_type

from custom_components.microgrid import PLATFORMS
from custom_components.microgrid.const import (
    CONF_BATTERY_CAPACITY_WH,
    CONF_COMMAND_SECRET,
    CONF_DATABASE_URL,
    CONF_HOUSEHOLD,
    CONF_MEMBERS,
    CONF_NAME,
    CONF_NOMINAL_VOLTAGE_V,
    CONF_POWER_LIMIT_W,
    CONF_PRIORITY,
    CONF_RATED_W,
    CONF_SCHEDULE,
    CONF_SITE_NAME,
    CONF_ZONE_ID,
    DEFAULT_OPTIONS,
    DOMAIN,
    SUBENTRY_HOUSEHOLD,
    SUBENTRY_ZONE,
)
from custom_components.microgrid.control.coordinator import MicrogridCoordinator
from sim.rtdb import RTDBServer

SECRET = "test-command-secret-0123456789abcdef"
# Snapshot matcher for figures the site does not decide, shown as their type: how long planning
# took (wall clock), and how many plans and decisions setup made (its concurrent starts, the
# first poll and the stream's first event over real loopback I/O, finish in either order).
SETUP_RACES = path_type(
    {
        r"(.*\.)?duration_ms": (float,),
        r"attributes\.runs": (int,),
        r"state\.stream\.decisions": (int,),
    },
    regex=True,
)
ZONES = (
    ("Zone1", "Clinic", "critical", 150.0, "always", None),
    ("Zone2", "Street lights", "semi_critical", 200.0, "always", None),
    ("Zone3", "Homes", "non_critical", 400.0, "always", "Homes"),
    ("Zone4", "Water pump", "deferrable", 300.0, "always", None),
)


def board_record(
    *,
    soc: float = 80.0,
    relay: bool = True,
    power: float = 100.0,
    solar: float = 300.0,
    voltage: float = 12.6,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A sensors/<zone> record in the original ESP32 format."""
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "batteryVoltage": voltage,
        "inputPower": solar,
        "outputPower": power if relay else 0.0,
        "solarGeneration": solar,
        "batteryPercentage": soc,
        "relayState": relay,
        "timestamp": stamp,
    }


def entity_id(hass: HomeAssistant, entry: MockConfigEntry, unique_suffix: str, domain: str) -> str:
    """The entity id registered for a unique id suffix."""
    found = er.async_get(hass).async_get_entity_id(
        domain, DOMAIN, f"{entry.entry_id}_{unique_suffix}"
    )
    assert found, unique_suffix
    return found


def site_records(pct: float, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """A record of every board at this state of charge (they all measure the one battery)."""
    return {zone_id: board_record(soc=pct, **kwargs) for zone_id, *_ in ZONES}


def set_site_soc(rtdb: RTDBServer, pct: float, **kwargs: Any) -> None:
    """Every board reports this state of charge, in one multi-path write (one stream event)."""
    rtdb.update_value("sensors", site_records(pct, **kwargs))


async def push(entry: MockConfigEntry, rtdb: RTDBServer, records: dict[str, Any]) -> None:
    """Write records and hand them to the coordinator as the stream would; wait for the
    decision on them (made at once or on the next coalescing turn).

    Tests that move the clock with the freezer also jump the loop clock, which trips the real
    stream's watchdog; they feed the coordinator directly (the stream has its own tests).
    """
    coordinator = entry.runtime_data.coordinator
    for zone_id, record in records.items():
        rtdb.set_value(f"sensors/{zone_id}", record)
    before = coordinator.decisions
    coordinator.on_data(rtdb.get_value("sensors"), set(records))
    await decided(coordinator, before)


async def wait_for_executor(
    hass: HomeAssistant, predicate: Callable[[], bool], rounds: int = 3000
) -> None:
    """Until the predicate holds, letting executor work (file I/O, training) run: a frozen
    loop clock cannot time out, so this counts rounds of a short executor sleep."""
    for _ in range(rounds):
        if predicate():
            return
        await hass.async_add_executor_job(time.sleep, 0.01)
    raise AssertionError("condition not reached")


async def settle_site(entry: MockConfigEntry, rtdb: RTDBServer) -> None:
    """Bring the site to one state whatever order setup's work finished in (for snapshots
    under a frozen clock): planned, the learning started, every board reporting again so a
    decision follows the plan and its commands are acknowledged, then forecast once."""
    coordinator = entry.runtime_data.coordinator
    await wait_for(lambda: coordinator.planner.plan is not None)
    await wait_for_executor(coordinator.hass, lambda: coordinator.ml.started_up)
    await coordinator.hass.async_block_till_done()
    await wait_for(lambda: coordinator.commands.in_flight == 0)
    await push(entry, rtdb, rtdb.get_value("sensors"))
    await wait_for(lambda: coordinator.commands.in_flight == 0)
    await coordinator.ml.async_refresh()
    await coordinator.hass.async_block_till_done()


async def assert_platform_snapshot(
    hass: HomeAssistant, snapshot: SnapshotAssertion, entry: MockConfigEntry, rtdb: RTDBServer
) -> None:
    """The settled site's entities (one platform loaded): each registry entry and state
    against its snapshot."""
    await settle_site(entry, rtdb)
    await snapshot_platform(
        hass, er.async_get(hass), snapshot.with_defaults(matcher=SETUP_RACES), entry.entry_id
    )


async def decided(coordinator: MicrogridCoordinator, before: int) -> None:
    """Wait for a decision after `before`; a frozen clock is moved past the coalescing window."""
    if coordinator.decisions == before:
        async_fire_time_changed(coordinator.hass, dt_util.utcnow() + timedelta(seconds=1))
    await wait_for(lambda: coordinator.decisions > before)


async def reload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Unload and set up the entry again, its stream connected."""
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    link = entry.runtime_data.link
    await wait_for(lambda: link.connected)


def named(values: dict[str, str], then: Any = SETUP_RACES) -> Any:
    """Snapshot matcher: these random values (user ids) by name, the rest through `then`."""

    def matcher(*, data: Any, path: Any) -> Any:
        if isinstance(data, str) and data in values:
            return values[data]
        return then(data=data, path=path)

    return matcher


async def wait_for(predicate: Callable[[], bool], rounds: int = 200_000) -> None:
    """Let real loopback I/O run (bounded) until the predicate holds.

    Counts loop rounds rather than seconds: tests that freeze time also freeze the loop clock,
    so a timed sleep would never return.
    """
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


@pytest.fixture(autouse=True)
def access_log_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's access log reads the local UTC offset from time.localtime(), which has none
    under freezegun: a frozen test calling the HTTP API would log an error (failing tests that
    check for none) unless an earlier unfrozen test happened to cache the offset. Fix one."""
    monkeypatch.setattr(AccessLogger, "_cached_tz", UTC)
    monkeypatch.setattr(AccessLogger, "_cached_tz_expires", math.inf)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Syrupy with Home Assistant's serializer (registry ids, contexts and state times as ANY;
    files in snapshots/ next to the test), as core's tests use it. The plugin declares the same
    fixture, but syrupy's own may be registered after it and win."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
async def rtdb(socket_enabled: None) -> AsyncIterator[RTDBServer]:
    """The loopback RTDB-compatible server with four healthy boards."""
    server = RTDBServer()
    server.keepalive_interval_s = 1.0
    await server.start()
    for zone_id, *_ in ZONES:
        server.set_value(f"sensors/{zone_id}", board_record())
    yield server
    await server.stop()


@pytest.fixture
async def admin_user(hass: HomeAssistant) -> User:
    """An admin user (created first, so it is also the owner)."""
    return await hass.auth.async_create_user("Admin", group_ids=["system-admin"])


@pytest.fixture
async def household_user(hass: HomeAssistant, admin_user: User) -> User:
    """A non-admin user who belongs to the household 'Homes'."""
    user = await hass.auth.async_create_user("Asha", group_ids=["system-users"])
    assert not user.is_admin
    return user


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Options of the site entry (tests override)."""
    return dict(DEFAULT_OPTIONS)


@pytest.fixture
def mock_config_entry(
    rtdb: RTDBServer, household_user: User, entry_options: dict[str, Any]
) -> MockConfigEntry:
    """The site entry: four zones and one household as subentries."""
    subentries = [
        ConfigSubentryData(
            subentry_type=SUBENTRY_ZONE,
            title=name,
            unique_id=zone_id,
            data={
                CONF_ZONE_ID: zone_id,
                CONF_NAME: name,
                CONF_PRIORITY: priority,
                CONF_RATED_W: rated,
                CONF_SCHEDULE: schedule,
                CONF_HOUSEHOLD: household,
            },
        )
        for zone_id, name, priority, rated, schedule, household in ZONES
    ]
    subentries.append(
        ConfigSubentryData(
            subentry_type=SUBENTRY_HOUSEHOLD,
            title="Homes",
            unique_id="Homes",
            data={CONF_NAME: "Homes", CONF_MEMBERS: [household_user.id]},
        )
    )
    return MockConfigEntry(
        domain=DOMAIN,
        # Fixed: unique ids carry it, and platform snapshots show them.
        entry_id="01JMICROGR1DV1LLAGE0000000",
        title="Village",
        unique_id="demo@127.0.0.1",
        data={
            CONF_SITE_NAME: "Village",
            CONF_DATABASE_URL: rtdb.database_url("demo"),
            # A battery large enough that the day plan keeps zones 1-3 on at any hour: tests
            # that are not about planning must not depend on the time of day they run at.
            CONF_BATTERY_CAPACITY_WH: 50000.0,
            CONF_NOMINAL_VOLTAGE_V: 12.0,
            CONF_POWER_LIMIT_W: 1000.0,
            CONF_COMMAND_SECRET: SECRET,
        },
        options=entry_options,
        subentries_data=subentries,
    )


@pytest.fixture
async def init_integration(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    mock_config_entry: MockConfigEntry,
    request: pytest.FixtureRequest,
) -> AsyncIterator[MockConfigEntry]:
    """The site set up, its stream connected: every platform, or only the one a test passes
    as indirect parameter (`@pytest.mark.parametrize("init_integration", [Platform.SENSOR],
    indirect=True)`, as platform snapshots need)."""
    platforms: list[Platform] = [request.param] if hasattr(request, "param") else PLATFORMS
    with patch("custom_components.microgrid.PLATFORMS", platforms):
        mock_config_entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        link = mock_config_entry.runtime_data.link
        await wait_for(lambda: link.connected)
        yield mock_config_entry
        if mock_config_entry.state.recoverable:
            await hass.config_entries.async_unload(mock_config_entry.entry_id)
            await hass.async_block_till_done()
