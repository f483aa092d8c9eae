"""Diagnostics carry the site's state and never its secrets."""

from __future__ import annotations

import json

from homeassistant.auth.models import User
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.microgrid.const import DEFAULT_OPTIONS
from sim.rtdb import RTDBServer

from .conftest import SECRET, board_record, named, set_site_soc, settle_site, wait_for


@pytest.mark.freeze_time("2026-06-01 10:02:30+00:00")
async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
    household_user: User,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """The whole dump of the demo site, planned and forecast (the household member's user id,
    random per test, shown by name)."""
    await settle_site(init_integration, rtdb)
    dump = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert dump == snapshot(matcher=named({household_user.id: "<household_user.id>"}))


async def test_diagnostics_are_redacted(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """The command secret, the database URL and command signatures are absent from the dump."""
    rtdb.set_value("sensors/Zone3", {**board_record(), "outputPower": "lots"})
    coordinator = init_integration.runtime_data.coordinator
    await wait_for(lambda: bool(coordinator.rejections))
    set_site_soc(rtdb, 8.0)  # raises one battery alert
    await wait_for(lambda: coordinator.band is not None and coordinator.band.value == "emergency")
    await hass.async_block_till_done()
    await wait_for(lambda: coordinator.commands.in_flight == 0 and coordinator.commands.writes > 0)
    dump = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    text = json.dumps(dump)
    assert SECRET not in text
    assert rtdb.database_url("demo") not in text
    assert f"127.0.0.1:{rtdb.port}" not in text
    assert dump["entry"]["data"]["command_secret"] == "**REDACTED**"
    # what is useful stays: readings, the rejection with its reason, command counters
    assert dump["state"]["readings"]["Zone1"]["soc_pct"] == 8.0
    assert any(r["reason"] == "wrong_type" for r in dump["state"]["recent_rejections"])
    assert dump["state"]["commands"]["writes"] >= 1
    assert [a["alert_type"] for a in dump["alerts"]] == ["battery_emergency"]
    assert {s["data"]["zone_id"] for s in dump["subentries"] if s["type"] == "zone"} == {
        "Zone1",
        "Zone2",
        "Zone3",
        "Zone4",
    }


@pytest.mark.parametrize(
    "entry_options",
    [
        {
            **DEFAULT_OPTIONS,
            "twilio_account_sid": "AC" + "1" * 32,
            "twilio_auth_token": "f" * 32,
            "twilio_from": "+15005550006",
            "sms_targets": ["+15005550009"],
        }
    ],
)
async def test_gateway_credentials_are_redacted(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
) -> None:
    """The SMS gateway's account, token and the duty phone numbers are absent from the dump."""
    text = json.dumps(await get_diagnostics_for_config_entry(hass, hass_client, init_integration))
    for secret in ("AC" + "1" * 32, "f" * 32, "+15005550009"):
        assert secret not in text
