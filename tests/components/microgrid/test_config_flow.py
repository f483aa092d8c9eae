"""Config flow tests: fail → recover → create, duplicates, subentries, options, reauth, reconfigure.

The site is the real loopback RTDB server from sim/; the only fake is Google's token endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import json
from pathlib import Path
import re
from types import MappingProxyType
from typing import Any
from unittest.mock import AsyncMock, patch

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from homeassistant.config_entries import (
    SOURCE_USER,
    ConfigEntryState,
    ConfigSubentry,
    ConfigSubentryData,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import config_validation as cv, entity_registry as er
from homeassistant.helpers.selector import SelectSelector
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.microgrid.config_flow import site_unique_id
from custom_components.microgrid.const import (
    CONF_AUTHORITIES_PHONES,
    CONF_AUTHORITIES_TARGETS,
    CONF_BATTERY_CAPACITY_WH,
    CONF_COMMAND_SECRET,
    CONF_CONSERVATION_PCT,
    CONF_CONTROL_MODE,
    CONF_CRITICAL_ALERT_PCT,
    CONF_DATABASE_URL,
    CONF_DEEP_DISCHARGE_CUTOFF_PCT,
    CONF_DUTY_PHONE,
    CONF_EMERGENCY_PCT,
    CONF_ESCALATION_MINUTES,
    CONF_ESCALATION_TARGETS,
    CONF_ESSENTIAL_SERVICE,
    CONF_FCM_TOKENS,
    CONF_FCM_TOPIC,
    CONF_HOUSEHOLD,
    CONF_HYSTERESIS_PCT,
    CONF_LADDER_AUTHORITIES_MINUTES,
    CONF_LADDER_DUTY_MINUTES,
    CONF_LADDER_HOUSEHOLD_MINUTES,
    CONF_MEMBERS,
    CONF_MIN_OFF_S,
    CONF_MIN_ON_S,
    CONF_NAME,
    CONF_NOMINAL_VOLTAGE_V,
    CONF_NOTIFY_TARGETS,
    CONF_POWER_LIMIT_W,
    CONF_PRIORITY,
    CONF_RATED_W,
    CONF_SCHEDULE,
    CONF_SERVICE_ACCOUNT,
    CONF_SITE_NAME,
    CONF_SMS_TARGETS,
    CONF_TEMPERATURE_ENTITY,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
    CONF_ZONE_ID,
    CONTROL_MODE_MONITOR,
    DEFAULT_OPTIONS,
    DOMAIN,
    SUBENTRY_HOUSEHOLD,
    SUBENTRY_ZONE,
)
from custom_components.microgrid.site import site_config
from sim.rtdb import RTDBServer

TRANSLATIONS = json.loads(
    (
        Path(__file__).parents[3] / "custom_components" / "microgrid" / "translations" / "en.json"
    ).read_text()
)
READING = {
    "batteryVoltage": 12.5,
    "inputPower": 45.2,
    "outputPower": 38.7,
    "solarGeneration": 25.3,
    "batteryPercentage": 85.2,
    "relayState": True,
    "timestamp": "2025-01-27T10:30:00Z",
}
ZONES = {
    "Zone1": {
        CONF_NAME: "Clinic",
        CONF_PRIORITY: "critical",
        CONF_RATED_W: 150,
        CONF_SCHEDULE: "always",
        CONF_ESSENTIAL_SERVICE: True,
    },
    "Zone2": {
        CONF_NAME: "Street lights",
        CONF_PRIORITY: "semi_critical",
        CONF_RATED_W: 200,
        CONF_SCHEDULE: "night",
        CONF_HOUSEHOLD: "",
    },
    "Zone3": {
        CONF_NAME: "Homes",
        CONF_PRIORITY: "non_critical",
        CONF_RATED_W: 400,
        CONF_SCHEDULE: "always",
        CONF_HOUSEHOLD: "Okafor",
    },
    "Zone4": {
        CONF_NAME: "Water pump",
        CONF_PRIORITY: "deferrable",
        CONF_RATED_W: 300,
        CONF_SCHEDULE: "day",
    },
}
HTTPS_URL = "https://demo-site-default-rtdb.firebaseio.com"


# ----- fixtures


@pytest.fixture
def mock_setup_entry() -> Iterator[AsyncMock]:
    """Keep the integration itself out of flow tests."""
    with patch("custom_components.microgrid.async_setup_entry", return_value=True) as mock_setup:
        yield mock_setup


@pytest.fixture
async def rtdb(socket_enabled: None) -> AsyncIterator[RTDBServer]:
    """The loopback RTDB with four boards reporting under sensors/."""
    server = RTDBServer()
    await server.start()
    for node in ZONES:
        server.set_value(f"sensors/{node}", READING)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    """A throwaway RSA private key for service-account JSON."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
async def token_endpoint(socket_enabled: None) -> AsyncIterator[str]:
    """Google's token endpoint on loopback, refusing every grant (a revoked key)."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
        )

    app = web.Application()
    app.router.add_post("/token", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/token"
    finally:
        await runner.cleanup()


def service_account_json(pem: str, token_uri: str) -> str:
    """A well-formed service-account key pointing at the given token endpoint."""
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "demo-site",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": "ha@demo-site.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


def site_input(url: str, **changes: Any) -> dict[str, Any]:
    """The user step's input for a site at url."""
    return {
        CONF_SITE_NAME: "Village clinic",
        CONF_DATABASE_URL: url,
        CONF_BATTERY_CAPACITY_WH: 5000,
        CONF_NOMINAL_VOLTAGE_V: 12,
        CONF_POWER_LIMIT_W: 1500,
        **changes,
    }


def site_entry(url: str, **data: Any) -> MockConfigEntry:
    """An existing site entry with one zone subentry."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Village clinic",
        unique_id=site_unique_id(url),
        data={
            CONF_SITE_NAME: "Village clinic",
            CONF_DATABASE_URL: url,
            CONF_BATTERY_CAPACITY_WH: 5000.0,
            CONF_NOMINAL_VOLTAGE_V: 12.0,
            CONF_POWER_LIMIT_W: 1500.0,
            CONF_COMMAND_SECRET: "s" * 43,
            **data,
        },
        options=dict(DEFAULT_OPTIONS),
        subentries_data=[
            ConfigSubentryData(
                data={
                    CONF_ZONE_ID: "Zone1",
                    CONF_NAME: "Clinic",
                    CONF_PRIORITY: "critical",
                    CONF_RATED_W: 150.0,
                    CONF_SCHEDULE: "always",
                    CONF_HOUSEHOLD: "Okafor",
                },
                subentry_type=SUBENTRY_ZONE,
                title="Clinic",
                unique_id="Zone1",
            )
        ],
    )


# ----- translations: every form, error and abort the tests reach must be translated -------------


def assert_translated(result: dict[str, Any], section: dict[str, Any]) -> None:
    """Fail when the result shows a string or placeholder that en.json lacks."""
    if result["type"] is FlowResultType.ABORT:
        assert result["reason"] in section["abort"], result["reason"]
        return
    if result["type"] is FlowResultType.CREATE_ENTRY:
        if "create_entry" in section:
            _assert_placeholders(section["create_entry"]["default"], result)
        return
    assert result["type"] is FlowResultType.FORM
    # The frontend and the REST API get the schema serialized; it must serialize.
    probatio.to_field_list(result["data_schema"], custom_serializer=cv.custom_serializer)
    step = section["step"][result["step_id"]]
    for key, value in result["data_schema"].schema.items():
        assert str(key) in step["data"], f"{result['step_id']}: no label for {key}"
        assert str(key) in step["data_description"], f"{result['step_id']}: no help for {key}"
        if isinstance(value, SelectSelector) and (tk := value.config.get("translation_key")):
            for option in value.config["options"]:
                assert option in TRANSLATIONS["selector"][tk]["options"], (tk, option)
    for error in (result["errors"] or {}).values():
        assert error in section["error"], error
        _assert_placeholders(section["error"][error], result)
    helps = [step["data_description"][str(key)] for key in result["data_schema"].schema]
    for text in (step.get("title", ""), step.get("description", ""), *helps):
        _assert_placeholders(text, result)


def suggested(result: dict[str, Any], field: str) -> Any:
    """What the form pre-fills for a field: its suggested value, else its default."""
    for key in result["data_schema"].schema:
        if str(key) == field:
            if key.description and "suggested_value" in key.description:
                return key.description["suggested_value"]
            return None if key.default is vol.UNDEFINED else key.default()
    raise KeyError(field)


def _assert_placeholders(text: str, result: dict[str, Any]) -> None:
    """Every {placeholder} in text is supplied by the flow."""
    needed = set(re.findall(r"{(\w+)}", text))
    assert needed <= set(result.get("description_placeholders") or {}), (text, needed)


CONFIG = TRANSLATIONS["config"]
OPTIONS = TRANSLATIONS["options"]
ZONE_STRINGS = TRANSLATIONS["config_subentries"][SUBENTRY_ZONE]
HOUSEHOLD_STRINGS = TRANSLATIONS["config_subentries"][SUBENTRY_HOUSEHOLD]


async def start(hass: HomeAssistant) -> dict[str, Any]:
    """Open the user step."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert_translated(result, CONFIG)
    return result


async def submit(hass: HomeAssistant, result: dict[str, Any], user_input: dict) -> dict[str, Any]:
    """Submit a config-flow form and check its strings."""
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert_translated(result, CONFIG)
    return result


# ----- user step


async def test_user_flow_creates_site_with_discovered_zones(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """Four boards under sensors/ → four zone forms → a site with four zone subentries."""
    url = rtdb.database_url("demo")
    result = await start(hass)
    # A pasted key is ignored for the loopback emulator.
    result = await submit(hass, result, site_input(url, **{CONF_SERVICE_ACCOUNT: "{}"}))

    for index, (node, fields) in enumerate(ZONES.items(), start=1):
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "zone"
        assert result["description_placeholders"][CONF_ZONE_ID] == node
        assert result["description_placeholders"]["index"] == str(index)
        assert result["last_step"] is (index == len(ZONES))
        result = await submit(hass, result, fields)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.title == "Village clinic"
    assert entry.unique_id == site_unique_id(url)
    secret = entry.data[CONF_COMMAND_SECRET]
    assert len(secret) >= 32
    assert result["description_placeholders"] == {CONF_COMMAND_SECRET: secret}
    assert dict(entry.data) == {
        CONF_SITE_NAME: "Village clinic",
        CONF_DATABASE_URL: url,
        CONF_BATTERY_CAPACITY_WH: 5000.0,
        CONF_NOMINAL_VOLTAGE_V: 12.0,
        CONF_POWER_LIMIT_W: 1500.0,
        CONF_COMMAND_SECRET: secret,
    }
    assert dict(entry.options) == DEFAULT_OPTIONS
    zones = {s.unique_id: s for s in entry.subentries.values()}
    assert set(zones) == set(ZONES)
    assert all(s.subentry_type == SUBENTRY_ZONE for s in zones.values())
    assert zones["Zone2"].title == "Street lights"
    assert dict(zones["Zone2"].data) == {
        CONF_ZONE_ID: "Zone2",
        CONF_NAME: "Street lights",
        CONF_PRIORITY: "semi_critical",
        CONF_RATED_W: 200.0,
        CONF_SCHEDULE: "night",
        CONF_HOUSEHOLD: None,
        CONF_ESSENTIAL_SERVICE: False,
    }
    assert zones["Zone1"].data[CONF_ESSENTIAL_SERVICE] is True  # the clinic
    assert zones["Zone3"].data[CONF_HOUSEHOLD] == "Okafor"
    assert zones["Zone4"].data[CONF_SCHEDULE] == "day"
    assert len(mock_setup_entry.mock_calls) == 1


async def test_zone_step_defaults(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """Only the rated power must be typed: name = node, non-critical, always on."""
    rtdb.set_value("sensors", {"Pump": READING})
    user_input = site_input(rtdb.database_url(), **{CONF_SITE_NAME: " "})
    result = await submit(hass, await start(hass), user_input)
    result = await submit(hass, result, {CONF_RATED_W: 300})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    # A blank site name falls back to the database name.
    assert result["result"].title == "demo"
    (zone,) = result["result"].subentries.values()
    assert zone.title == "Pump"
    assert dict(zone.data) == {
        CONF_ZONE_ID: "Pump",
        CONF_NAME: "Pump",
        CONF_PRIORITY: "non_critical",
        CONF_RATED_W: 300.0,
        CONF_SCHEDULE: "always",
        CONF_HOUSEHOLD: None,
        CONF_ESSENTIAL_SERVICE: False,  # not a clinic or hospital unless ticked
    }


async def test_weak_secret_then_given_secret_kept_and_no_zones(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """A short secret is refused before connecting; a good one is kept; no boards → no zones."""
    rtdb.set_value("sensors", None)
    url = rtdb.database_url()
    result = await submit(hass, await start(hass), site_input(url, command_secret="short"))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_COMMAND_SECRET: "weak_command_secret"}
    assert rtdb.requests == []

    secret = "a-secret-flashed-into-the-boards"
    result = await submit(hass, result, site_input(url, command_secret=f" {secret} "))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].data[CONF_COMMAND_SECRET] == secret
    assert not result["result"].subentries


async def test_cannot_connect_then_recover(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """A 503 from the database is cannot_connect; the next try goes through."""
    rtdb.fail_next(1, 503)
    result = await submit(hass, await start(hass), site_input(rtdb.database_url()))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    # The form keeps what the user typed.
    assert suggested(result, CONF_SITE_NAME) == "Village clinic"

    result = await submit(hass, result, site_input(rtdb.database_url()))
    assert result["step_id"] == "zone"


async def test_server_down_then_back(
    hass: HomeAssistant, socket_enabled: None, mock_setup_entry: AsyncMock
) -> None:
    """Nobody listening is cannot_connect; once the server is up the flow goes on."""
    server = RTDBServer()
    await server.start()
    url, port = server.database_url(), server.port
    await server.stop()

    result = await submit(hass, await start(hass), site_input(url))
    assert result["errors"] == {"base": "cannot_connect"}

    server = RTDBServer(port=port)
    await server.start()
    try:
        result = await submit(hass, result, site_input(url))
        assert result["type"] is FlowResultType.CREATE_ENTRY
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "bad_url",
    [
        "not a url",
        "https://example.com",
        "http://demo.firebaseio.com",  # real Firebase is https only
        "http://10.0.0.7:9000/?ns=demo",  # plain http only on loopback
    ],
)
async def test_invalid_url_then_recover(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock, bad_url: str
) -> None:
    """A URL that is not a Realtime Database is refused without any request."""
    result = await submit(hass, await start(hass), site_input(bad_url))
    assert result["errors"] == {CONF_DATABASE_URL: "invalid_url"}
    assert rtdb.requests == []

    result = await submit(hass, result, site_input(rtdb.database_url()))
    assert result["step_id"] == "zone"


@pytest.mark.parametrize(
    "key_text", [None, "", "not json", "[1, 2]", json.dumps({"type": "authorized_user"})]
)
async def test_invalid_service_account_then_recover(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock, key_text: str | None
) -> None:
    """https needs a real service-account key: missing, bad JSON or the wrong kind is refused."""
    user_input = site_input(HTTPS_URL)
    if key_text is not None:
        user_input[CONF_SERVICE_ACCOUNT] = key_text
    result = await submit(hass, await start(hass), user_input)
    assert result["errors"] == {CONF_SERVICE_ACCOUNT: "invalid_service_account"}

    result = await submit(hass, result, site_input(rtdb.database_url()))
    assert result["step_id"] == "zone"


async def test_invalid_auth_token_refused_then_recover(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    token_endpoint: str,
    rsa_pem: str,
    mock_setup_entry: AsyncMock,
) -> None:
    """Google refusing the key's grant is invalid_auth (the database is never reached)."""
    key = service_account_json(rsa_pem, token_endpoint)
    result = await submit(
        hass, await start(hass), site_input(HTTPS_URL, **{CONF_SERVICE_ACCOUNT: key})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    result = await submit(hass, result, site_input(rtdb.database_url()))
    assert result["step_id"] == "zone"


async def test_invalid_auth_database_refuses_then_recover(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """The database answering 401 (also after the link's one retry) is invalid_auth."""
    rtdb.fail_next(2, 401)
    result = await submit(hass, await start(hass), site_input(rtdb.database_url()))
    assert result["errors"] == {"base": "invalid_auth"}

    result = await submit(hass, result, site_input(rtdb.database_url()))
    assert result["step_id"] == "zone"


async def test_duplicate_site_aborts(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """The same database (namespace and host) cannot be added twice."""
    url = rtdb.database_url()
    site_entry(url).add_to_hass(hass)

    result = await submit(hass, await start(hass), site_input(f"  {url} "))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert rtdb.requests == []

    # Another namespace on the same server is another site.
    result = await submit(hass, await start(hass), site_input(rtdb.database_url("other")))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_same_site_in_two_flows_aborts(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """A second flow for a database another open flow is setting up aborts."""
    url = rtdb.database_url()
    rtdb.fail_next(1, 503)
    first = await submit(hass, await start(hass), site_input(url))
    assert first["errors"] == {"base": "cannot_connect"}

    second = await submit(hass, await start(hass), site_input(url))
    assert second["type"] is FlowResultType.ABORT
    assert second["reason"] == "already_in_progress"

    first = await submit(hass, first, site_input(url))
    assert first["step_id"] == "zone"


# ----- zone subentries


async def test_zone_subentry_add_duplicate_and_reconfigure(hass: HomeAssistant) -> None:
    """Add a zone for a new node; a node with a zone aborts; editing keeps the node."""
    entry = site_entry("http://127.0.0.1:9000/?ns=demo")
    entry.add_to_hass(hass)
    hass.config_entries.async_add_subentry(
        entry,
        _household_subentry("Okafor", []),
    )
    flows = hass.config_entries.subentries

    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_ZONE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert_translated(result, ZONE_STRINGS)
    household_field = result["data_schema"].schema[CONF_HOUSEHOLD]
    assert household_field.config["options"] == ["Okafor"]

    new_zone = {
        CONF_ZONE_ID: "Zone/5",
        CONF_NAME: "School",
        CONF_PRIORITY: "semi_critical",
        CONF_RATED_W: 250,
        CONF_SCHEDULE: "day",
        CONF_HOUSEHOLD: "Okafor",
    }
    result = await flows.async_configure(result["flow_id"], new_zone)
    assert_translated(result, ZONE_STRINGS)
    assert result["errors"] == {CONF_ZONE_ID: "invalid_zone_id"}

    result = await flows.async_configure(result["flow_id"], new_zone | {CONF_ZONE_ID: "Zone5"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    zone = next(s for s in entry.subentries.values() if s.unique_id == "Zone5")
    assert zone.title == "School"
    assert dict(zone.data) == {
        CONF_ZONE_ID: "Zone5",
        CONF_NAME: "School",
        CONF_PRIORITY: "semi_critical",
        CONF_RATED_W: 250.0,
        CONF_SCHEDULE: "day",
        CONF_HOUSEHOLD: "Okafor",
        CONF_ESSENTIAL_SERVICE: False,
    }

    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_ZONE), context={"source": SOURCE_USER}
    )
    result = await flows.async_configure(result["flow_id"], new_zone | {CONF_ZONE_ID: "Zone1"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert_translated(result, ZONE_STRINGS)
    assert sum(s.subentry_type == SUBENTRY_ZONE for s in entry.subentries.values()) == 2

    clinic = next(s for s in entry.subentries.values() if s.unique_id == "Zone1")
    result = await entry.start_subentry_reconfigure_flow(hass, clinic.subentry_id)
    assert result["step_id"] == "reconfigure"
    assert result["description_placeholders"] == {CONF_ZONE_ID: "Zone1"}
    assert_translated(result, ZONE_STRINGS)
    # The form starts from the zone as it is.
    assert suggested(result, CONF_PRIORITY) == "critical"
    assert suggested(result, CONF_ESSENTIAL_SERVICE) is False
    result = await flows.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Clinic and maternity",
            CONF_PRIORITY: "critical",
            CONF_RATED_W: 180,
            CONF_SCHEDULE: "always",
            CONF_ESSENTIAL_SERVICE: True,
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert_translated(result, ZONE_STRINGS)
    clinic = entry.subentries[clinic.subentry_id]
    assert clinic.title == "Clinic and maternity"
    assert clinic.unique_id == "Zone1"
    assert dict(clinic.data) == {
        CONF_ZONE_ID: "Zone1",
        CONF_NAME: "Clinic and maternity",
        CONF_PRIORITY: "critical",
        CONF_RATED_W: 180.0,
        CONF_SCHEDULE: "always",
        CONF_HOUSEHOLD: None,
        CONF_ESSENTIAL_SERVICE: True,
    }
    assert site_config(entry).zone("Zone1").essential_service is True  # type: ignore[union-attr]


# ----- household subentries


def _household_subentry(name: str, members: list[str]) -> ConfigSubentry:
    """A household subentry object for async_add_subentry."""
    return ConfigSubentry(
        data=MappingProxyType({CONF_NAME: name, CONF_MEMBERS: members}),
        subentry_type=SUBENTRY_HOUSEHOLD,
        title=name,
        unique_id=name,
    )


async def test_household_subentry_members_duplicate_and_rename(hass: HomeAssistant) -> None:
    """Members are active human users; names are unique; a rename carries the zones along."""
    entry = site_entry("http://127.0.0.1:9000/?ns=demo")
    entry.add_to_hass(hass)
    hass.config_entries.async_add_subentry(entry, _household_subentry("Mensah", []))
    alice = await hass.auth.async_create_user("Alice Okafor")
    bob = await hass.auth.async_create_user("Bob Okafor")
    gone = await hass.auth.async_create_user("Former resident")
    await hass.auth.async_deactivate_user(gone)
    robot = await hass.auth.async_create_system_user("microgrid bot")
    flows = hass.config_entries.subentries

    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_HOUSEHOLD), context={"source": SOURCE_USER}
    )
    assert_translated(result, HOUSEHOLD_STRINGS)
    offered = {
        o["value"]: o["label"] for o in result["data_schema"].schema[CONF_MEMBERS].config["options"]
    }
    assert offered[alice.id] == "Alice Okafor"
    assert offered[bob.id] == "Bob Okafor"
    assert gone.id not in offered
    assert robot.id not in offered

    result = await flows.async_configure(
        result["flow_id"], {CONF_NAME: "Okafor", CONF_MEMBERS: [alice.id, bob.id]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    okafor = next(s for s in entry.subentries.values() if s.unique_id == "Okafor")
    assert okafor.subentry_type == SUBENTRY_HOUSEHOLD
    assert dict(okafor.data) == {CONF_NAME: "Okafor", CONF_MEMBERS: [alice.id, bob.id]}

    # A user id that is not offered is refused by the selector.
    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_HOUSEHOLD), context={"source": SOURCE_USER}
    )
    with pytest.raises(Exception, match="members"):
        await flows.async_configure(result["flow_id"], {CONF_NAME: "X", CONF_MEMBERS: [robot.id]})
    result = await flows.async_configure(result["flow_id"], {CONF_NAME: " okafor "})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert_translated(result, HOUSEHOLD_STRINGS)

    result = await entry.start_subentry_reconfigure_flow(hass, okafor.subentry_id)
    assert suggested(result, CONF_MEMBERS) == [alice.id, bob.id]
    result = await flows.async_configure(
        result["flow_id"], {CONF_NAME: "Mensah", CONF_MEMBERS: [alice.id]}
    )
    assert result["errors"] == {CONF_NAME: "household_exists"}
    assert_translated(result, HOUSEHOLD_STRINGS)

    result = await flows.async_configure(
        result["flow_id"], {CONF_NAME: "Okafor family", CONF_MEMBERS: [alice.id]}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    okafor = entry.subentries[okafor.subentry_id]
    assert okafor.title == "Okafor family"
    assert okafor.unique_id == "Okafor family"
    assert dict(okafor.data) == {CONF_NAME: "Okafor family", CONF_MEMBERS: [alice.id]}
    clinic = next(s for s in entry.subentries.values() if s.unique_id == "Zone1")
    assert clinic.data[CONF_HOUSEHOLD] == "Okafor family"


# ----- options


async def test_options_thresholds_order_then_save(hass: HomeAssistant) -> None:
    """Thresholds out of order are refused; a valid set is saved, seconds as whole numbers."""
    entry = site_entry("http://127.0.0.1:9000/?ns=demo")
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options=DEFAULT_OPTIONS | {"extra": 1})

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert_translated(result, OPTIONS)
    assert suggested(result, CONF_CONSERVATION_PCT) == 20.0

    options = {
        CONF_CONSERVATION_PCT: 25.0,
        CONF_EMERGENCY_PCT: 12.0,
        CONF_CRITICAL_ALERT_PCT: 6.0,
        CONF_HYSTERESIS_PCT: 3.0,
        CONF_MIN_ON_S: 600.0,
        CONF_MIN_OFF_S: 120.0,
        CONF_CONTROL_MODE: CONTROL_MODE_MONITOR,
        CONF_ESCALATION_MINUTES: 15.0,
    }
    for bad in (
        {CONF_EMERGENCY_PCT: 25.0},  # emergency == conservation
        {CONF_EMERGENCY_PCT: 30.0},  # emergency above conservation
        {CONF_CRITICAL_ALERT_PCT: 12.0},  # critical alert == emergency
    ):
        result = await hass.config_entries.options.async_configure(result["flow_id"], options | bad)
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"base": "thresholds_order"}
        assert_translated(result, OPTIONS)

    result = await hass.config_entries.options.async_configure(result["flow_id"], options)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert dict(entry.options) == options | {
        "extra": 1,
        CONF_MIN_ON_S: 600,
        CONF_MIN_OFF_S: 120,
        CONF_ESCALATION_MINUTES: 15,
        CONF_NOTIFY_TARGETS: [],
        CONF_ESCALATION_TARGETS: [],
    }
    assert isinstance(entry.options[CONF_MIN_ON_S], int)


async def test_options_notify_targets_validated_normalized_and_clearable(
    hass: HomeAssistant,
) -> None:
    """Malformed and unknown notify targets are refused; valid ones are stored as notify.<name>."""
    hass.services.async_register("notify", "ops_phone", AsyncMock())
    hass.services.async_register("notify", "manager", AsyncMock())
    entry = site_entry("http://127.0.0.1:9000/?ns=demo")
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_ESCALATION_MINUTES) == 10
    base = {**DEFAULT_OPTIONS, CONF_ESCALATION_MINUTES: 10}
    for field, value, error in (
        (CONF_NOTIFY_TARGETS, ["light.kitchen"], "invalid_notify_target"),
        (CONF_NOTIFY_TARGETS, ["notify.nobody"], "unknown_notify_target"),
        (CONF_ESCALATION_TARGETS, ["has space"], "invalid_notify_target"),
    ):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], base | {field: value}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {field: error}
        assert_translated(result, OPTIONS)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        base
        | {
            CONF_NOTIFY_TARGETS: ["ops_phone", "notify.ops_phone", " "],
            CONF_ESCALATION_TARGETS: ["Notify.Manager"],
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_NOTIFY_TARGETS] == ["notify.ops_phone"]
    assert entry.options[CONF_ESCALATION_TARGETS] == ["notify.manager"]
    # The form leaves a cleared field out: that clears the targets.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_NOTIFY_TARGETS) == ["notify.ops_phone"]
    result = await hass.config_entries.options.async_configure(result["flow_id"], base)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_NOTIFY_TARGETS] == []
    assert entry.options[CONF_ESCALATION_TARGETS] == []


async def test_options_temperature_entity_is_stored_and_clearable(hass: HomeAssistant) -> None:
    """The outdoor temperature source is optional; a cleared field removes it."""
    entry = site_entry("http://127.0.0.1:9000/?ns=demo")
    entry.add_to_hass(hass)
    base = {**DEFAULT_OPTIONS, CONF_ESCALATION_MINUTES: 10}
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert_translated(result, OPTIONS)
    assert suggested(result, CONF_TEMPERATURE_ENTITY) is None
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {CONF_TEMPERATURE_ENTITY: "weather.home"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_TEMPERATURE_ENTITY] == "weather.home"
    assert site_config(entry).temperature_entity_id == "weather.home"
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_TEMPERATURE_ENTITY) == "weather.home"
    result = await hass.config_entries.options.async_configure(result["flow_id"], base)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_TEMPERATURE_ENTITY not in entry.options
    assert site_config(entry).temperature_entity_id is None


async def test_options_deep_discharge_cutoff_checked_stored_and_clearable(
    hass: HomeAssistant,
) -> None:
    """The cutoff must sit below the emergency threshold; it reaches the policy's thresholds;
    a cleared field (or 0) means critical zones are never switched off."""
    entry = site_entry("http://127.0.0.1:9000/?ns=demo")
    entry.add_to_hass(hass)
    base = {**DEFAULT_OPTIONS, CONF_ESCALATION_MINUTES: 10}
    assert site_config(entry).thresholds.deep_discharge_cutoff_pct is None
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_DEEP_DISCHARGE_CUTOFF_PCT) is None
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {CONF_DEEP_DISCHARGE_CUTOFF_PCT: base[CONF_EMERGENCY_PCT]}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_DEEP_DISCHARGE_CUTOFF_PCT: "cutoff_above_emergency"}
    assert_translated(result, OPTIONS)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {CONF_DEEP_DISCHARGE_CUTOFF_PCT: 4.5}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site_config(entry).thresholds.deep_discharge_cutoff_pct == 4.5
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_DEEP_DISCHARGE_CUTOFF_PCT) == 4.5
    result = await hass.config_entries.options.async_configure(result["flow_id"], base)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_DEEP_DISCHARGE_CUTOFF_PCT not in entry.options
    assert site_config(entry).thresholds.deep_discharge_cutoff_pct is None
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {CONF_DEEP_DISCHARGE_CUTOFF_PCT: 0}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site_config(entry).thresholds.deep_discharge_cutoff_pct is None


TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "f" * 32
FCM_TOKEN = "dQw4w9WgXcQ:APA91bH" + "x" * 120
SMS_OPTIONS = (CONF_TWILIO_ACCOUNT_SID, CONF_TWILIO_AUTH_TOKEN, CONF_TWILIO_FROM, CONF_SMS_TARGETS)


async def options_submit(
    hass: HomeAssistant, entry: MockConfigEntry, user_input: dict[str, Any]
) -> dict[str, Any]:
    """Open the options form and submit it once; check its strings."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert_translated(result, OPTIONS)
    return result


async def test_options_sms_validated_normalized_token_kept_and_cleared(
    hass: HomeAssistant,
) -> None:
    """Twilio fields are checked one by one; numbers are stored as E.164; the stored token is
    never shown and is kept when left empty for the same account; clearing turns SMS off."""
    entry = site_entry("http://127.0.0.1:9000/?ns=demo")
    entry.add_to_hass(hass)
    base = {**DEFAULT_OPTIONS, CONF_ESCALATION_MINUTES: 10}
    sms = {
        CONF_TWILIO_ACCOUNT_SID: TWILIO_SID,
        CONF_TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
        CONF_TWILIO_FROM: "+1 500 555 0006",
        CONF_SMS_TARGETS: ["+254 712-345-678", "+254712345678", " ", "(+254) 798 765 432"],
    }
    for change, errors in (
        ({CONF_TWILIO_ACCOUNT_SID: "SK123"}, {CONF_TWILIO_ACCOUNT_SID: "invalid_twilio_sid"}),
        ({CONF_TWILIO_AUTH_TOKEN: ""}, {CONF_TWILIO_AUTH_TOKEN: "invalid_twilio_token"}),
        ({CONF_TWILIO_FROM: "0712345678"}, {CONF_TWILIO_FROM: "invalid_phone_number"}),
        ({CONF_SMS_TARGETS: ["0712 345 678"]}, {CONF_SMS_TARGETS: "invalid_phone_number"}),
        ({CONF_SMS_TARGETS: []}, {CONF_SMS_TARGETS: "sms_targets_required"}),
    ):
        result = await options_submit(hass, entry, base | sms | change)
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == errors, change
    # Only a number given: every other Twilio field is asked for.
    result = await options_submit(hass, entry, base | {CONF_SMS_TARGETS: ["+254712345678"]})
    assert set(result["errors"]) == {
        CONF_TWILIO_ACCOUNT_SID,
        CONF_TWILIO_AUTH_TOKEN,
        CONF_TWILIO_FROM,
    }

    result = await options_submit(hass, entry, base | sms)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert {k: entry.options[k] for k in SMS_OPTIONS} == {
        CONF_TWILIO_ACCOUNT_SID: TWILIO_SID,
        CONF_TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
        CONF_TWILIO_FROM: "+15005550006",
        CONF_SMS_TARGETS: ["+254712345678", "+254798765432"],
    }

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_TWILIO_AUTH_TOKEN) is None  # never sent back to the browser
    assert suggested(result, CONF_TWILIO_ACCOUNT_SID) == TWILIO_SID
    assert suggested(result, CONF_SMS_TARGETS) == ["+254712345678", "+254798765432"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        base | sms | {CONF_TWILIO_AUTH_TOKEN: "", CONF_SMS_TARGETS: ["+15551234567"]},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_TWILIO_AUTH_TOKEN] == TWILIO_TOKEN
    assert entry.options[CONF_SMS_TARGETS] == ["+15551234567"]
    # Another account needs its own token.
    other = "AC" + "f" * 32
    result = await options_submit(
        hass, entry, base | sms | {CONF_TWILIO_ACCOUNT_SID: other, CONF_TWILIO_AUTH_TOKEN: ""}
    )
    assert result["errors"] == {CONF_TWILIO_AUTH_TOKEN: "invalid_twilio_token"}

    result = await options_submit(hass, entry, base)  # every SMS field cleared
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert not set(SMS_OPTIONS) & set(entry.options)


async def test_options_push_needs_the_service_account_key(
    hass: HomeAssistant, rsa_pem: str
) -> None:
    """An emulator site (no key) cannot take FCM options; a site with a key can; bad topics and
    tokens are refused; clearing turns push off."""
    base = {**DEFAULT_OPTIONS, CONF_ESCALATION_MINUTES: 10}
    emulator = site_entry("http://127.0.0.1:9000/?ns=demo")
    emulator.add_to_hass(hass)
    result = await options_submit(hass, emulator, base | {CONF_FCM_TOPIC: "village-alerts"})
    assert result["errors"] == {CONF_FCM_TOPIC: "fcm_needs_service_account"}
    result = await options_submit(hass, emulator, base | {CONF_FCM_TOKENS: [FCM_TOKEN]})
    assert result["errors"] == {CONF_FCM_TOKENS: "fcm_needs_service_account"}

    key = service_account_json(rsa_pem, "https://oauth2.googleapis.com/token")
    site = site_entry(HTTPS_URL, **{CONF_SERVICE_ACCOUNT: key})
    site.add_to_hass(hass)
    for change, errors in (
        ({CONF_FCM_TOPIC: "has spaces"}, {CONF_FCM_TOPIC: "invalid_fcm_topic"}),
        ({CONF_FCM_TOKENS: ["short"]}, {CONF_FCM_TOKENS: "invalid_fcm_token"}),
    ):
        result = await options_submit(hass, site, base | change)
        assert result["errors"] == errors, change
    push = {CONF_FCM_TOPIC: " village-alerts ", CONF_FCM_TOKENS: [FCM_TOKEN, FCM_TOKEN, " "]}
    result = await options_submit(hass, site, base | push)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site.options[CONF_FCM_TOPIC] == "village-alerts"
    assert site.options[CONF_FCM_TOKENS] == [FCM_TOKEN]
    result = await options_submit(hass, site, base)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_FCM_TOPIC not in site.options and CONF_FCM_TOKENS not in site.options


# ----- reauth


async def test_reauth_cannot_connect_then_success(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """Re-authentication is validated against the site's own database."""
    entry = site_entry(rtdb.database_url())
    entry.add_to_hass(hass)

    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"][CONF_DATABASE_URL] == rtdb.database_url()
    assert_translated(result, CONFIG)

    rtdb.fail_next(1, 503)
    result = await submit(hass, result, {})
    assert result["errors"] == {"base": "cannot_connect"}

    result = await submit(hass, result, {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_COMMAND_SECRET] == "s" * 43
    assert CONF_SERVICE_ACCOUNT not in entry.data


async def test_reauth_https_key_errors(
    hass: HomeAssistant, token_endpoint: str, rsa_pem: str, mock_setup_entry: AsyncMock
) -> None:
    """A https site's new key is checked: bad JSON, then a key Google refuses."""
    old_key = service_account_json(rsa_pem, "https://oauth2.googleapis.com/token")
    entry = site_entry(HTTPS_URL, **{CONF_SERVICE_ACCOUNT: old_key})
    entry.add_to_hass(hass)

    result = await entry.start_reauth_flow(hass)
    result = await submit(hass, result, {CONF_SERVICE_ACCOUNT: "{not json"})
    assert result["errors"] == {CONF_SERVICE_ACCOUNT: "invalid_service_account"}

    result = await submit(
        hass, result, {CONF_SERVICE_ACCOUNT: service_account_json(rsa_pem, token_endpoint)}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    assert entry.data[CONF_SERVICE_ACCOUNT] == old_key


# ----- reconfigure


async def test_reconfigure_cannot_connect_then_success(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """Battery and limit change after a validated connection; name and secret stay."""
    url = rtdb.database_url()
    entry = site_entry(url)
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    assert_translated(result, CONFIG)
    assert suggested(result, CONF_BATTERY_CAPACITY_WH) == 5000.0

    changes = {
        CONF_DATABASE_URL: url,
        CONF_BATTERY_CAPACITY_WH: 7200,
        CONF_NOMINAL_VOLTAGE_V: 24,
        CONF_POWER_LIMIT_W: 2000,
    }
    rtdb.fail_next(1, 503)
    result = await submit(hass, result, changes)
    assert result["errors"] == {"base": "cannot_connect"}
    assert entry.data[CONF_BATTERY_CAPACITY_WH] == 5000.0

    result = await submit(hass, result, changes)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert dict(entry.data) == {
        CONF_SITE_NAME: "Village clinic",
        CONF_DATABASE_URL: url,
        CONF_BATTERY_CAPACITY_WH: 7200.0,
        CONF_NOMINAL_VOLTAGE_V: 24.0,
        CONF_POWER_LIMIT_W: 2000.0,
        CONF_COMMAND_SECRET: "s" * 43,
    }


async def test_reconfigure_other_database_aborts(
    hass: HomeAssistant, rtdb: RTDBServer, mock_setup_entry: AsyncMock
) -> None:
    """Pointing a site at another database is refused before connecting to it."""
    entry = site_entry(rtdb.database_url())
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    result = await submit(
        hass,
        result,
        {
            CONF_DATABASE_URL: rtdb.database_url("elsewhere"),
            CONF_BATTERY_CAPACITY_WH: 5000,
            CONF_NOMINAL_VOLTAGE_V: 12,
            CONF_POWER_LIMIT_W: 1500,
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    assert rtdb.requests == []
    assert entry.data[CONF_DATABASE_URL] == rtdb.database_url()


async def test_reconfigure_invalid_url_and_kept_key(
    hass: HomeAssistant, token_endpoint: str, rsa_pem: str, mock_setup_entry: AsyncMock
) -> None:
    """A bad URL is a form error; an empty key field re-validates the stored key."""
    key = service_account_json(rsa_pem, token_endpoint)
    entry = site_entry(HTTPS_URL, **{CONF_SERVICE_ACCOUNT: key})
    entry.add_to_hass(hass)
    fields = {
        CONF_BATTERY_CAPACITY_WH: 5000,
        CONF_NOMINAL_VOLTAGE_V: 12,
        CONF_POWER_LIMIT_W: 1500,
    }

    result = await entry.start_reconfigure_flow(hass)
    # The stored key is never echoed into the form.
    assert suggested(result, CONF_SERVICE_ACCOUNT) is None
    result = await submit(hass, result, fields | {CONF_DATABASE_URL: "ftp://nope"})
    assert result["errors"] == {CONF_DATABASE_URL: "invalid_url"}

    # The stored key is used (and here refused by Google): proof it was not dropped.
    result = await submit(hass, result, fields | {CONF_DATABASE_URL: HTTPS_URL})
    assert result["errors"] == {"base": "invalid_auth"}


# ----- the contract with the integration


async def test_created_site_sets_up(hass: HomeAssistant, rtdb: RTDBServer) -> None:
    """What the flow stores is what the integration needs: the new site loads and unloads."""
    result = await submit(hass, await start(hass), site_input(rtdb.database_url()))
    for fields in ZONES.values():
        result = await submit(hass, result, fields)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    # Every zone the flow created carries the zone's entities.
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    assert {e.config_subentry_id for e in entities} >= set(entry.subentries)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_add_zone_offers_boards_without_a_zone(hass: HomeAssistant, rtdb: RTDBServer) -> None:
    """On a loaded site the add-zone form lists the reporting boards that have no zone yet."""
    entry = site_entry(rtdb.database_url())
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    link = entry.runtime_data.link
    deadline = asyncio.get_running_loop().time() + 5
    while not link.connected:  # real loopback I/O: connected once the first snapshot is in
        assert asyncio.get_running_loop().time() < deadline, "no snapshot from the stream"
        await asyncio.sleep(0.01)

    flows = hass.config_entries.subentries
    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_ZONE), context={"source": SOURCE_USER}
    )
    assert_translated(result, ZONE_STRINGS)
    zone_id_field = result["data_schema"].schema[CONF_ZONE_ID]
    assert zone_id_field.config["options"] == ["Zone2", "Zone3", "Zone4"]
    assert zone_id_field.config["custom_value"] is True

    result = await flows.async_configure(
        result["flow_id"], {**ZONES["Zone2"], CONF_ZONE_ID: "Zone2"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert {s.unique_id for s in entry.subentries.values()} == {"Zone1", "Zone2"}

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


LADDER_MINUTES = (
    CONF_LADDER_HOUSEHOLD_MINUTES,
    CONF_ESCALATION_MINUTES,
    CONF_LADDER_DUTY_MINUTES,
    CONF_LADDER_AUTHORITIES_MINUTES,
)


async def test_options_ladder_defaults_order_contacts_and_clearing(hass: HomeAssistant) -> None:
    """The form shows the ladder as it runs (0 / 10 / 20 / 30 min for old options); minutes
    that go down the ladder, bad numbers, unknown targets and phones without Twilio are
    refused; valid ones are stored normalized; cleared fields go back to the defaults."""
    hass.services.async_register("notify", "district_health", AsyncMock())
    entry = site_entry("http://127.0.0.1:9000/?ns=demo")
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, options={**DEFAULT_OPTIONS, CONF_ESCALATION_MINUTES: 10}
    )
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert [suggested(result, key) for key in LADDER_MINUTES] == [0, 10, 20, 30]
    base = {**DEFAULT_OPTIONS, CONF_ESCALATION_MINUTES: 10}
    sms = {
        CONF_TWILIO_ACCOUNT_SID: TWILIO_SID,
        CONF_TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
        CONF_TWILIO_FROM: "+15005550006",
    }
    for change, errors in (
        ({CONF_LADDER_DUTY_MINUTES: 5}, {"base": "ladder_order"}),
        ({CONF_LADDER_HOUSEHOLD_MINUTES: 11}, {"base": "ladder_order"}),
        ({CONF_LADDER_AUTHORITIES_MINUTES: 15}, {"base": "ladder_order"}),
        ({CONF_DUTY_PHONE: "0712 345 678"}, {CONF_DUTY_PHONE: "invalid_phone_number"}),
        ({CONF_DUTY_PHONE: "+254712345678"}, {CONF_DUTY_PHONE: "phone_needs_sms"}),
        (
            {CONF_AUTHORITIES_PHONES: ["+221771234567"]},
            {CONF_AUTHORITIES_PHONES: "phone_needs_sms"},
        ),
        (
            {CONF_AUTHORITIES_TARGETS: ["notify.nobody"]},
            {CONF_AUTHORITIES_TARGETS: "unknown_notify_target"},
        ),
    ):
        result = await options_submit(hass, entry, base | change)
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == errors, change

    ladder = {
        CONF_LADDER_HOUSEHOLD_MINUTES: 0.5,
        CONF_LADDER_DUTY_MINUTES: 20.0,
        CONF_LADDER_AUTHORITIES_MINUTES: 30.0,
        CONF_DUTY_PHONE: "+254 712 345 678",
        CONF_AUTHORITIES_TARGETS: ["district_health"],
        CONF_AUTHORITIES_PHONES: ["+221 77 123 45 67", " "],
    }
    # Twilio with no site recipients is enough for the ladder's numbers.
    result = await options_submit(hass, entry, base | sms | ladder)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert {k: entry.options[k] for k in ladder} == {
        CONF_LADDER_HOUSEHOLD_MINUTES: 0.5,
        CONF_LADDER_DUTY_MINUTES: 20,
        CONF_LADDER_AUTHORITIES_MINUTES: 30,
        CONF_DUTY_PHONE: "+254712345678",
        CONF_AUTHORITIES_TARGETS: ["notify.district_health"],
        CONF_AUTHORITIES_PHONES: ["+221771234567"],
    }
    assert entry.options[CONF_SMS_TARGETS] == []  # no site recipients
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result, CONF_DUTY_PHONE) == "+254712345678"
    assert [suggested(result, key) for key in LADDER_MINUTES] == [0.5, 10, 20, 30]

    result = await options_submit(hass, entry, base)  # every ladder field cleared
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert not set(ladder) & set(entry.options)
