"""The coordinator under faults: a dead or stalled stream, failing polls, bursts, lying boards,
and a power cut's worth of unsaved state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.alerts.manager import DATA_ALERTS
from custom_components.microgrid.alerts.model import AlertType
from custom_components.microgrid.const import DOMAIN
from custom_components.microgrid.control.coordinator import STATE_SAVE_DELAY_S, MicrogridCoordinator
from custom_components.microgrid.control.readings import MAX_UNKNOWN_ZONES_KEPT
from custom_components.microgrid.learning.manager import EVENT_ANOMALY
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import (
    ZONES,
    board_record,
    decided,
    entity_id,
    push,
    set_site_soc,
    site_records,
    wait_for,
)

NON_CRITICAL = ("Zone2", "Zone3", "Zone4")


def coordinator_of(entry: MockConfigEntry) -> MicrogridCoordinator:
    """The entry's coordinator."""
    return entry.runtime_data.coordinator


def command(rtdb: RTDBServer, zone_id: str) -> str | None:
    """The command written for a zone ("ON"/"OFF"), if any."""
    record = rtdb.get_value(f"commands/{zone_id}")
    return record["command"] if record else None


async def stream_down(entry: MockConfigEntry) -> None:
    """The stream dies and stays down (as after a cancel whose re-subscription keeps failing)."""
    await entry.runtime_data.link.async_stop()
    coordinator_of(entry).on_connection(False)


async def tick(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: MockConfigEntry, seconds: float
) -> None:
    """Move time in 5 s steps (the coordinator's tick), letting each poll and write finish."""
    coordinator = coordinator_of(entry)
    for _ in range(round(seconds / 5)):
        freezer.tick(timedelta(seconds=5))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        await wait_for(lambda: not coordinator.polling and coordinator.commands.in_flight == 0)


async def test_polls_keep_deciding_while_the_stream_is_down(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """With the stream dead, the REST poll runs every interval despite the 5 s tick, and a
    battery that drains into the emergency band is shed from polled readings alone."""
    entry = init_integration
    coordinator = coordinator_of(entry)
    await stream_down(entry)
    await tick(hass, freezer, entry, 30)
    polls = coordinator.polls
    set_site_soc(rtdb, 7.8)
    await tick(hass, freezer, entry, 30)
    assert coordinator.polls >= polls + 2
    assert coordinator.band is not None and coordinator.band.value == "emergency"
    assert [command(rtdb, z) for z in NON_CRITICAL] == ["OFF", "OFF", "OFF"]
    assert command(rtdb, "Zone1") == "ON"
    # The clinic's board kept reporting through the polls: no false "offline".
    online = hass.states.get(entity_id(hass, entry, "Zone1_board_online", "binary_sensor"))
    assert online is not None and online.state == STATE_ON


async def test_a_failed_poll_keeps_the_last_good_data(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A 503 on a poll: logged and counted; no entity goes unavailable; the next poll works."""
    entry = init_integration
    coordinator = coordinator_of(entry)
    await stream_down(entry)
    await tick(hass, freezer, entry, 5)
    rtdb.fail_next(3, 503)
    await tick(hass, freezer, entry, 30)
    assert coordinator.poll_errors >= 1
    for unique, domain in (
        ("battery_soc", "sensor"),
        ("emergency", "binary_sensor"),
        ("Zone1_relay", "switch"),
    ):
        state = hass.states.get(entity_id(hass, entry, unique, domain))
        assert state is not None and state.state != STATE_UNAVAILABLE, unique
    set_site_soc(rtdb, 50.0)
    await tick(hass, freezer, entry, 15)
    assert coordinator.data is not None and coordinator.data.soc_pct == 50.0


async def test_cancel_resubscribes_and_clears_the_repair(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """After `cancel` the stream comes back by itself, the repair issue goes, and readings
    flow: the drain to 7.8 % is shed."""
    entry = init_integration
    issue_id = f"stream_cancelled_{entry.entry_id}"
    rtdb.cancel_streams()
    await wait_for(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None)
    await wait_for(lambda: entry.runtime_data.link.connected)
    await wait_for(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None)
    set_site_soc(rtdb, 7.8)
    await wait_for(lambda: all(command(rtdb, z) == "OFF" for z in NON_CRITICAL))
    assert command(rtdb, "Zone1") == "ON"


async def test_a_burst_is_coalesced_and_a_band_drop_decided_at_once(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """200 events in one loop turn make one decision on the latest records; a record that takes
    the site into the emergency band is decided inside the very event."""
    coordinator = coordinator_of(init_integration)
    mirror = dict(rtdb.get_value("sensors"))
    before = coordinator.decisions
    for watts in range(200):
        mirror["Zone3"] = board_record(power=float(watts + 1))
        coordinator.on_data(dict(mirror), {"Zone3"})
    assert coordinator.decisions == before  # nothing decided per event
    await decided(coordinator, before)
    assert coordinator.decisions == before + 1
    assert coordinator.readings["Zone3"].output_power_w == 200.0  # the latest record won
    assert coordinator.data is not None and coordinator.data.zones["Zone3"].power_w == 200.0

    before = coordinator.decisions
    coordinator.on_data(site_records(8.0), {z for z, *_ in ZONES})
    assert coordinator.decisions == before + 1  # no waiting for the window
    assert coordinator.band is not None and coordinator.band.value == "emergency"


async def test_a_lying_board_is_outvoted_flagged_and_ignored(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """One board says 5 % (then 1e-7 %) while three say 80 %: the band never moves, no battery
    alert, the board is flagged once; the others' genuine drop then sheds at once."""
    entry = init_integration
    coordinator = coordinator_of(entry)
    anomalies: list[Event] = []
    hass.bus.async_listen(EVENT_ANOMALY, anomalies.append)
    bands: list[str] = []
    for i in range(20):
        freezer.tick(timedelta(seconds=2))
        lie = 5.0 if i < 16 else 1e-7
        await push(entry, rtdb, {**site_records(80.0), "Zone3": board_record(soc=lie)})
        bands.append(coordinator.band.value)  # type: ignore[union-attr]
    assert set(bands) == {"normal"}
    assert coordinator.data is not None and coordinator.data.soc_pct == 80.0
    assert coordinator.outliers == {"Zone3": "soc_disagrees"}
    assert [e.data["type"] for e in anomalies] == ["battery_outlier"]
    assert anomalies[0].data["zone"] == "Zone3"
    sensor = hass.states.get(entity_id(hass, entry, "Zone3_anomaly", "binary_sensor"))
    assert sensor is not None and sensor.state == STATE_ON
    assert sensor.attributes["battery_outlier"] == "soc_disagrees"
    alerts = entry.runtime_data.audit.query(action="board_outlier")
    assert len(alerts) == 1 and alerts[0]["zone_id"] == "Zone3"
    # One warning about the board, no battery alert (no SMS storm).
    alerts_raised = hass.data[DATA_ALERTS][entry.entry_id].alerts
    assert [(a.alert_type, a.zone_id) for a in alerts_raised] == [
        (AlertType.BOARD_OUTLIER, "Zone3")
    ]
    assert "5 %" in alerts_raised[0].message and "80 %" in alerts_raised[0].message

    # The battery really drops, seen by every board: shed on that very reading.
    before = coordinator.decisions
    coordinator.on_data(site_records(8.0), {z for z, *_ in ZONES})
    assert coordinator.decisions == before + 1
    assert coordinator.band is not None and coordinator.band.value == "emergency"
    await push(entry, rtdb, site_records(8.0))
    assert coordinator.outliers == {}  # it agrees again
    sensor = hass.states.get(entity_id(hass, entry, "Zone3_anomaly", "binary_sensor"))
    assert sensor is not None and sensor.state == STATE_OFF


async def test_state_is_saved_within_the_delay_under_steady_readings(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """Boards reporting every 5 s no longer push the save back forever: the energy counters
    are on disk within STATE_SAVE_DELAY_S, as a power cut would find them."""
    entry = init_integration
    key = f"{DOMAIN}.{entry.entry_id}.state"
    hass_storage.pop(key, None)
    for _ in range(round(STATE_SAVE_DELAY_S / 5) + 2):
        freezer.tick(timedelta(seconds=5))
        await push(entry, rtdb, site_records(80.0, power=300.0))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    assert key in hass_storage
    saved = hass_storage[key]["data"]["energy_kwh"]
    assert saved.get("zone:Zone3", 0.0) > 0.0
    assert saved == coordinator_of(entry).energy_kwh or saved["zone:Zone3"] > 0.0


async def test_an_older_record_never_rolls_a_board_back(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """A record older than the board's last (a late poll answer, a replay) is ignored."""
    entry = init_integration
    coordinator = coordinator_of(entry)
    now = dt_util.utcnow()
    await push(entry, rtdb, {"Zone3": board_record(power=120.0, at=now)})
    await push(entry, rtdb, {"Zone3": board_record(power=999.0, at=now - timedelta(seconds=60))})
    assert coordinator.readings["Zone3"].output_power_w == 120.0


async def test_a_flood_of_unknown_boards_is_bounded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Made-up board ids are warned about and ignored; the set kept for that is capped."""
    coordinator = coordinator_of(init_integration)
    ghosts = {f"Ghost{i}": board_record(soc=1.0) for i in range(500)}
    coordinator.on_data(ghosts, set(ghosts))
    assert len(coordinator.unknown_zones) == MAX_UNKNOWN_ZONES_KEPT
    assert coordinator.band is not None and coordinator.band.value == "normal"


async def test_a_persons_override_and_request_are_saved_at_once(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """An admin override and a household request reach the store on the next loop turn, not
    after the save delay (the clock does not move here): a power cut right after keeps them."""
    entry = init_integration
    coordinator = coordinator_of(entry)
    state_key = f"{DOMAIN}.{entry.entry_id}.state"
    audit_key = f"{DOMAIN}.{entry.entry_id}.audit"
    await hass.async_block_till_done()
    hass_storage.pop(state_key, None)
    hass_storage.pop(audit_key, None)
    coordinator.async_set_override(
        "Zone4", False, reason="pump repair", duration=timedelta(hours=1), actor="a", actor_name="A"
    )
    coordinator.async_set_request("Zone3", False, actor="h", actor_name="H")
    async_fire_time_changed(hass)  # due now: no time passes
    await hass.async_block_till_done()
    saved = hass_storage[state_key]["data"]
    assert saved["overrides"]["Zone4"]["reason"] == "pump repair"
    assert saved["requests"] == {"Zone3": False}
    actions = [e["action"] for e in hass_storage[audit_key]["data"]["entries"]]
    assert "override_set" in actions and "zone_request" in actions
