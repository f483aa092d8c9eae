"""The site end to end inside Home Assistant, against the real loopback RTDB server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import Context, Event, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import jwt
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.microgrid.const import (
    CONF_CONTROL_MODE,
    CONTROL_MODE_MONITOR,
    DEFAULT_OPTIONS,
    DOMAIN,
    EVENT_COMMAND_FAILED,
)
from sim.rtdb import RTDBServer

from .conftest import SECRET, ZONES, board_record, entity_id, push, set_site_soc, wait_for


def command_of(rtdb: RTDBServer, zone_id: str) -> dict[str, Any] | None:
    """The command record the integration wrote for a zone."""
    return rtdb.get_value(f"commands/{zone_id}")


def verified(record: dict[str, Any], zone_id: str) -> dict[str, Any]:
    """Check the signature binds node, command, seq and expiry, as a board would."""
    claims = jwt.decode(record["sig"], SECRET, algorithms=["HS256"])
    assert claims["node"] == zone_id
    assert claims["command"] == record["command"]
    assert claims["seq"] == record["seq"]
    assert claims["exp"] == record["expires"]
    return claims


async def echo(rtdb: RTDBServer, zone_id: str, *, soc: float = 80.0) -> None:
    """The board applies its current command and echoes relayState (the acknowledgement)."""
    command = command_of(rtdb, zone_id)
    assert command is not None
    rtdb.set_value(f"sensors/{zone_id}", board_record(soc=soc, relay=command["command"] == "ON"))


async def test_setup_creates_site_and_zone_entities(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Every zone gets a relay, power, energy and board sensor; the site its battery and band."""
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    soc = hass.states.get(entity_id(hass, entry, "battery_soc", "sensor"))
    assert soc is not None and float(soc.state) == 80.0
    band = hass.states.get(entity_id(hass, entry, "operating_band", "sensor"))
    assert band is not None and band.state == "normal"
    load = hass.states.get(entity_id(hass, entry, "load_power", "sensor"))
    assert load is not None and float(load.state) == 400.0  # four boards at 100 W
    for zone_id, *_ in ZONES:
        relay = hass.states.get(entity_id(hass, entry, f"{zone_id}_relay", "switch"))
        assert relay is not None and relay.state == STATE_ON
        online = hass.states.get(entity_id(hass, entry, f"{zone_id}_board_online", "binary_sensor"))
        assert online is not None and online.state == STATE_ON
    # zone entities hang off the zone's subentry
    registry = er.async_get(hass)
    switch = registry.async_get(entity_id(hass, entry, "Zone1_relay", "switch"))
    assert switch is not None and switch.config_subentry_id is not None


async def test_emergency_reading_sheds_non_critical_in_the_same_update(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """The reading that crosses 10 % writes OFF for zones 2-4 at once; the clinic stays ON."""
    entry = init_integration
    set_site_soc(rtdb, 8.0)
    await wait_for(
        lambda: all(
            (c := command_of(rtdb, z)) is not None and c["command"] == "OFF"
            for z in ("Zone2", "Zone3", "Zone4")
        )
    )
    for zone_id in ("Zone2", "Zone3", "Zone4"):
        verified(command_of(rtdb, zone_id), zone_id)  # type: ignore[arg-type]
    clinic = command_of(rtdb, "Zone1")
    assert clinic is not None and clinic["command"] == "ON"
    coordinator = entry.runtime_data.coordinator
    assert coordinator.band is not None and coordinator.band.value == "emergency"
    emergency = hass.states.get(entity_id(hass, entry, "emergency", "binary_sensor"))
    assert emergency is not None and emergency.state == STATE_ON
    # The switch shows the confirmed state until the board echoes; the pending command is an
    # attribute.
    street = entity_id(hass, entry, "Zone2_relay", "switch")
    state = hass.states.get(street)
    assert state is not None and state.state == STATE_ON
    assert state.attributes["pending_command"]["state"] == "off"
    await echo(rtdb, "Zone2", soc=8.0)
    await wait_for(lambda: hass.states.get(street).state == STATE_OFF)  # type: ignore[union-attr]
    assert hass.states.get(street).attributes["pending_command"] is None  # type: ignore[union-attr]


async def test_commands_are_only_written_on_change_with_growing_seq(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """Readings that change nothing write nothing beyond the first heartbeat."""
    await wait_for(lambda: command_of(rtdb, "Zone4") is not None)
    first = {z: command_of(rtdb, z)["seq"] for z, *_ in ZONES}  # type: ignore[index]
    for _ in range(3):
        rtdb.set_value("sensors/Zone3", board_record(soc=79.0))
        await hass.async_block_till_done()
    await wait_for(
        lambda: init_integration.runtime_data.coordinator.readings["Zone3"].soc_pct == 79.0
    )
    assert {z: command_of(rtdb, z)["seq"] for z, *_ in ZONES} == first  # type: ignore[index]
    was_on = [z for z in ("Zone2", "Zone3") if command_of(rtdb, z)["command"] == "ON"]  # type: ignore[index]
    assert was_on
    set_site_soc(rtdb, 5.0)
    await wait_for(lambda: all(command_of(rtdb, z)["command"] == "OFF" for z in was_on))  # type: ignore[index]
    for zone_id in was_on:
        assert command_of(rtdb, zone_id)["seq"] > first[zone_id]  # type: ignore[index]


async def test_malformed_records_are_rejected_and_last_good_reading_kept(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """Wrong types, out-of-range values, missing fields and unknown zones never crash."""
    coordinator = init_integration.runtime_data.coordinator
    bad_records: list[Any] = [
        {**board_record(), "batteryPercentage": "eighty"},
        {**board_record(), "batteryPercentage": 180.0},
        {**board_record(), "outputPower": -5},
        {k: v for k, v in board_record().items() if k != "relayState"},
        {**board_record(), "relayState": "maybe"},
        {**board_record(), "timestamp": "yesterday-ish"},
        [1, 2, 3],
        "garbage",
    ]
    for record in bad_records:
        rtdb.set_value("sensors/Zone3", record)
        await hass.async_block_till_done()
    rtdb.set_value("sensors/Ghost", board_record(soc=1.0))
    await wait_for(lambda: sum(coordinator.rejections.values()) >= len(bad_records))
    await wait_for(lambda: "Ghost" in coordinator.unknown_zones)
    assert coordinator.readings["Zone3"].soc_pct == 80.0
    reasons = {r.split(":")[1] for r in coordinator.rejections}
    assert {
        "wrong_type",
        "out_of_range",
        "missing_field",
        "bad_timestamp",
        "not_an_object",
    } <= reasons
    # The unknown board's 1 % did not drive the site into an emergency.
    assert coordinator.band is not None and coordinator.band.value == "normal"
    assert init_integration.state is ConfigEntryState.LOADED


async def test_household_may_switch_only_its_zones_within_the_rules(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    household_user: User,
) -> None:
    """A household toggles its own non-critical zone; never the clinic, never a neighbour's."""
    entry = init_integration
    ctx = Context(user_id=household_user.id)
    homes = entity_id(hass, entry, "Zone3_relay", "switch")
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": homes}, blocking=True, context=ctx
    )
    await wait_for(lambda: command_of(rtdb, "Zone3")["command"] == "OFF")  # type: ignore[index]
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "switch",
            "turn_off",
            {"entity_id": entity_id(hass, entry, "Zone1_relay", "switch")},
            blocking=True,
            context=ctx,
        )
    assert err.value.translation_key == "not_your_zone"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "switch",
            "turn_off",
            {"entity_id": entity_id(hass, entry, "Zone4_relay", "switch")},
            blocking=True,
            context=ctx,
        )
    assert err.value.translation_key == "not_your_zone"
    assert command_of(rtdb, "Zone1")["command"] == "ON"  # type: ignore[index]
    # In the conservation band a household cannot turn a zone on.
    set_site_soc(rtdb, 15.0)
    await wait_for(lambda: entry.runtime_data.coordinator.band.value == "conservation")  # type: ignore[union-attr]
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "switch", "turn_on", {"entity_id": homes}, blocking=True, context=ctx
        )
    assert err.value.translation_key == "battery_conservation"
    audit = entry.runtime_data.audit.query(action="zone_request")
    assert audit and audit[0]["actor"] == household_user.id


async def test_critical_zone_off_needs_an_admin_override(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
) -> None:
    """Admins cannot switch the clinic off by toggle; an override with a reason can, audited."""
    entry = init_integration
    clinic = entity_id(hass, entry, "Zone1_relay", "switch")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "switch",
            "turn_off",
            {"entity_id": clinic},
            blocking=True,
            context=Context(user_id=admin_user.id),
        )
    assert err.value.translation_key == "critical_needs_override"
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "override_zone",
            {"config_entry": entry.entry_id, "zone": "Zone1", "state": "off", "reason": "repair"},
            blocking=True,
            context=Context(user_id=household_user.id),
        )
    response = await hass.services.async_call(
        DOMAIN,
        "override_zone",
        {
            "config_entry": entry.entry_id,
            "zone": "Clinic",
            "state": "off",
            "reason": "rewiring the clinic",
            "duration": {"minutes": 30},
        },
        blocking=True,
        context=Context(user_id=admin_user.id),
        return_response=True,
    )
    assert response is not None and response["zone"] == "Zone1"
    await wait_for(lambda: command_of(rtdb, "Zone1")["command"] == "OFF")  # type: ignore[index]
    log = await hass.services.async_call(
        DOMAIN,
        "get_audit_log",
        {"config_entry": entry.entry_id, "zone": "Zone1"},
        blocking=True,
        context=Context(user_id=admin_user.id),
        return_response=True,
    )
    actions = [e["action"] for e in log["entries"]]  # type: ignore[index]
    assert "override_set" in actions
    override = next(e for e in log["entries"] if e["action"] == "override_set")  # type: ignore[index]
    assert override["actor"] == admin_user.id
    assert override["detail"]["reason"] == "rewiring the clinic"
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "get_audit_log",
            {"config_entry": entry.entry_id},
            blocking=True,
            context=Context(user_id=household_user.id),
            return_response=True,
        )
    await hass.services.async_call(
        DOMAIN,
        "clear_override",
        {"config_entry": entry.entry_id, "zone": "Zone1"},
        blocking=True,
        context=Context(user_id=admin_user.id),
    )
    await wait_for(lambda: command_of(rtdb, "Zone1")["command"] == "ON")  # type: ignore[index]


async def test_unknown_zone_and_entry_give_translated_errors(
    hass: HomeAssistant, init_integration: MockConfigEntry, admin_user: User
) -> None:
    """Bad action input is a validation error with a translation key."""
    ctx = Context(user_id=admin_user.id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "override_zone",
            {
                "config_entry": init_integration.entry_id,
                "zone": "Nope",
                "state": "on",
                "reason": "test",
            },
            blocking=True,
            context=ctx,
        )
    assert err.value.translation_key == "unknown_zone"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "clear_override",
            {"config_entry": "not-an-entry", "zone": "Zone1"},
            blocking=True,
            context=ctx,
        )
    assert err.value.translation_key == "invalid_config_entry"


async def test_silent_board_goes_unavailable(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A board that stops reporting makes its zone unavailable and its board sensor off."""
    entry = init_integration
    freezer.tick(timedelta(minutes=3))
    await push(entry, rtdb, {z: board_record() for z in ("Zone1", "Zone2", "Zone3")})
    await wait_for(lambda: entry.runtime_data.coordinator.commands.in_flight == 0)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    pump = hass.states.get(entity_id(hass, entry, "Zone4_relay", "switch"))
    assert pump is not None and pump.state == STATE_UNAVAILABLE
    board = hass.states.get(entity_id(hass, entry, "Zone4_board_online", "binary_sensor"))
    assert board is not None and board.state == STATE_OFF
    homes = hass.states.get(entity_id(hass, entry, "Zone3_relay", "switch"))
    assert homes is not None and homes.state == STATE_ON


async def test_unacknowledged_command_retries_then_raises_a_repair_issue(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A board that never applies OFF: retries with backoff, then a repair issue and an event."""
    entry = init_integration
    failed: list[Event] = []
    hass.bus.async_listen(EVENT_COMMAND_FAILED, failed.append)
    set_site_soc(rtdb, 8.0)
    await wait_for(lambda: command_of(rtdb, "Zone4")["command"] == "OFF")  # type: ignore[index]
    await wait_for(lambda: entry.runtime_data.coordinator.commands.in_flight == 0)
    seqs = [command_of(rtdb, "Zone4")["seq"]]  # type: ignore[index]
    gaps: list[timedelta] = []
    sent_at = dt_util.utcnow()
    for _ in range(30):
        freezer.tick(timedelta(seconds=30))
        # the boards keep reporting (fresh, still ON): the stuck relay never echoes OFF
        await push(entry, rtdb, {z: board_record(soc=8.0) for z, *_ in ZONES})
        await wait_for(lambda: entry.runtime_data.coordinator.commands.in_flight == 0)
        seq = command_of(rtdb, "Zone4")["seq"]  # type: ignore[index]
        if seq != seqs[-1]:
            seqs.append(seq)
            gaps.append(dt_util.utcnow() - sent_at)
            sent_at = dt_util.utcnow()
        # Street lights and Homes are stuck as well and may give up a round earlier
        if any(e.data["zone_id"] == "Zone4" for e in failed):
            break
    # retried with growing gaps (exponential backoff), never the same seq twice
    assert len(seqs) >= 5
    assert gaps[-1] > gaps[0]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert any(e.data["zone_id"] == "Zone4" and e.data["command"] == "OFF" for e in failed)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"command_failed_{entry.entry_id}_Zone4")
    assert issue is not None and issue.translation_key == "command_failed"
    # The board finally applies it: the issue goes away.
    await push(entry, rtdb, {"Zone4": board_record(soc=8.0, relay=False)})
    await wait_for(
        lambda: (
            ir.async_get(hass).async_get_issue(DOMAIN, f"command_failed_{entry.entry_id}_Zone4")
            is None
        )
    )


@pytest.mark.parametrize(
    "entry_options", [{**DEFAULT_OPTIONS, CONF_CONTROL_MODE: CONTROL_MODE_MONITOR}]
)
async def test_monitor_mode_decides_but_writes_nothing(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """In monitor mode the decision is recorded and no command is written."""
    coordinator = init_integration.runtime_data.coordinator
    set_site_soc(rtdb, 8.0)
    await wait_for(lambda: coordinator.band is not None and coordinator.band.value == "emergency")
    assert coordinator.decision is not None
    assert not coordinator.decision.zones["Zone3"].on
    assert rtdb.get_value("commands") is None
    decisions = init_integration.runtime_data.audit.query(action="zone_decision", zone_id="Zone3")
    assert decisions and decisions[0]["detail"]["control"] == "monitor"


async def test_stream_cancel_raises_a_repair_issue(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """A `cancel` from the database becomes a repair issue."""
    rtdb.cancel_streams()
    issue_id = f"stream_cancelled_{init_integration.entry_id}"
    await wait_for(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None)


async def test_unload_stops_the_stream(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """Unloading closes the stream and leaves no timer behind."""
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED
    await wait_for(lambda: rtdb.stream_count() == 0)
