"""Relay commands on an idle site: how often they are written, and a failed write retried."""

from __future__ import annotations

from datetime import timedelta
import inspect
import random
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.const import (
    BOARD_FALLBACK_AFTER,
    HEARTBEAT_INTERVAL,
    TICK_INTERVAL,
)
from custom_components.microgrid.control.commands import retry_delay
from custom_components.microgrid.link.errors import FirebaseError
from sim.cli import build_parser
from sim.fleet import FALLBACK_AFTER_S, Board, Fleet
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import ZONES, board_record, wait_for

STEP = timedelta(seconds=5)  # the coordinator's tick
# A fixed instant: what the day plan wants must not depend on when the test runs.
START = "2025-01-27 20:00:00+00:00"


def command_writes(rtdb: RTDBServer) -> dict[str, int]:
    """PUTs of commands/<zone> the loopback RTDB has seen, per zone."""
    counts = dict.fromkeys((z for z, *_ in ZONES), 0)
    for method, path in rtdb.requests:
        if method == "PUT" and path.startswith("/commands/"):
            counts[path.removeprefix("/commands/").removesuffix(".json")] += 1
    return counts


def echo_all(entry: MockConfigEntry, rtdb: RTDBServer) -> None:
    """Every board reports, its relay where its command put it (fed to the coordinator as
    the stream would: a frozen clock jump trips the real stream's watchdog)."""
    records: dict[str, Any] = {}
    for zone_id, *_ in ZONES:
        command = rtdb.get_value(f"commands/{zone_id}")
        records[zone_id] = board_record(relay=command is None or command["command"] == "ON")
        rtdb.set_value(f"sensors/{zone_id}", records[zone_id])
    entry.runtime_data.coordinator.on_data(rtdb.get_value("sensors"), set(records))


async def advance(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry: MockConfigEntry,
    rtdb: RTDBServer,
    ticks: int,
) -> None:
    """`ticks` ticks later, the boards reporting every 30 s, every command write finished."""
    for tick in range(1, ticks + 1):
        freezer.tick(STEP)
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        await wait_for(lambda: entry.runtime_data.coordinator.commands.in_flight == 0)
        if tick % 6 == 0:
            echo_all(entry, rtdb)


async def settled(hass: HomeAssistant, entry: MockConfigEntry, rtdb: RTDBServer) -> None:
    """Setup's first command per zone written and echoed."""
    await wait_for(lambda: all(rtdb.get_value(f"commands/{z}") for z, *_ in ZONES))
    await wait_for(lambda: entry.runtime_data.coordinator.commands.in_flight == 0)
    echo_all(entry, rtdb)
    await hass.async_block_till_done()


@pytest.mark.freeze_time(START)
async def test_idle_site_writes_360_commands_per_zone_and_day(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """Ten idle minutes: one heartbeat per zone every 4 minutes, 8 writes in all (the old
    60-s heartbeat wrote 40); 4 zones x 86,400 / 240 = 1,440 writes a day (was 5,760)."""
    entry = init_integration
    await settled(hass, entry, rtdb)
    before = command_writes(rtdb)
    written_at: dict[str, list[int]] = {z: [] for z in before}
    for tick in range(1, 121):
        counts = command_writes(rtdb)
        await advance(hass, freezer, entry, rtdb, 1)
        for zone_id, count in command_writes(rtdb).items():
            written_at[zone_id] += [tick * 5] * (count - counts[zone_id])
        if tick % 6 == 0:
            echo_all(entry, rtdb)  # boards report; no relay moves
    assert written_at == {z: [240, 480] for z in before}
    per_day = sum(86_400 / (times[1] - times[0]) for times in written_at.values())
    assert per_day == 1_440


def test_heartbeat_fits_the_board_fallback_with_a_lost_write_and_retries() -> None:
    """A heartbeat lost outright, then two failed writes each a tick late, still land before
    the board's fallback, which the integration, the simulated board and its CLI agree on."""
    worst_retries = retry_delay(1, _Max()) + retry_delay(2, _Max())
    assert worst_retries == timedelta(seconds=72)
    assert 2 * HEARTBEAT_INTERVAL + worst_retries + 3 * TICK_INTERVAL < BOARD_FALLBACK_AFTER
    assert BOARD_FALLBACK_AFTER.total_seconds() == FALLBACK_AFTER_S
    for sim_class in (Board, Fleet):
        default = inspect.signature(sim_class).parameters["fallback_after_s"].default
        assert default == FALLBACK_AFTER_S
    assert build_parser().parse_args(["run"]).fallback_after == FALLBACK_AFTER_S


class _Max(random.Random):
    """An rng whose jitter is always the largest."""

    def uniform(self, a: float, b: float) -> float:
        """The upper bound."""
        return b


@pytest.mark.freeze_time(START)
async def test_a_failed_heartbeat_write_is_retried_after_the_backoff(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first heartbeat write fails; it is written again within the first backoff (at most
    24 s and a tick), not a whole heartbeat interval later."""
    entry = init_integration
    await settled(hass, entry, rtdb)
    link = entry.runtime_data.coordinator.commands._link
    real_put, failed = link.async_put, []

    async def flaky_put(path: str, value: Any) -> None:
        if not failed:
            failed.append(path)
            raise FirebaseError("simulated outage")
        await real_put(path, value)

    monkeypatch.setattr(link, "async_put", flaky_put)
    seqs = {z: rtdb.get_value(f"commands/{z}/seq") for z, *_ in ZONES}
    await advance(hass, freezer, entry, rtdb, 48)  # 240 s: the heartbeats are due
    assert failed
    zone_id = failed[0].removeprefix("commands/")
    assert rtdb.get_value(f"commands/{zone_id}/seq") == seqs[zone_id]
    await advance(hass, freezer, entry, rtdb, 6)
    assert rtdb.get_value(f"commands/{zone_id}/seq") > seqs[zone_id]
