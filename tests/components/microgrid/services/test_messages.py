"""Household messages through the actions, as the admin, a member and a neighbour would use
them: a message reaches only its household; read marks and the unread sensor follow."""

from __future__ import annotations

from typing import Any

from homeassistant.auth.models import User
from homeassistant.components import persistent_notification
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.microgrid.const import CONF_MEMBERS, CONF_NAME, DOMAIN, SUBENTRY_HOUSEHOLD
from tests.components.microgrid.conftest import entity_id

from .conftest import call


@pytest.fixture
async def neighbour(hass: HomeAssistant, admin_user: User) -> User:
    """A member of another household, 'Okafor'."""
    return await hass.auth.async_create_user("Chidi", group_ids=["system-users"])


@pytest.fixture
def mock_config_entry(mock_config_entry: MockConfigEntry, neighbour: User) -> MockConfigEntry:
    """The test site with a second household."""
    subentries = [
        ConfigSubentryData(
            subentry_type=s.subentry_type, title=s.title, unique_id=s.unique_id, data=dict(s.data)
        )
        for s in mock_config_entry.subentries.values()
    ]
    subentries.append(
        ConfigSubentryData(
            subentry_type=SUBENTRY_HOUSEHOLD,
            title="Okafor",
            unique_id="Okafor",
            data={CONF_NAME: "Okafor", CONF_MEMBERS: [neighbour.id]},
        )
    )
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=mock_config_entry.entry_id,
        title=mock_config_entry.title,
        unique_id=mock_config_entry.unique_id,
        data=dict(mock_config_entry.data),
        options=dict(mock_config_entry.options),
        subentries_data=subentries,
    )


def _unread(hass: HomeAssistant, entry: MockConfigEntry, household: str) -> Any:
    state = hass.states.get(entity_id(hass, entry, f"household_{household}_unread", "sensor"))
    assert state is not None
    return int(state.state)


async def test_a_message_reaches_only_its_household(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
    neighbour: User,
) -> None:
    """The admin writes to Homes: Asha (Homes) sees it, Chidi (Okafor) does not and cannot
    ask for it; Asha marks it read; the unread sensors follow; the sending is audited."""
    site = {"config_entry": init_integration.entry_id}
    sent = await call(
        hass,
        "send_message",
        {**site, "household": "homes", "message": "Pump repair at 10", "title": "Water"},
        admin_user,
    )
    assert sent["household"] == "Homes" and sent["sender"] == admin_user.id
    await hass.async_block_till_done()
    assert (
        _unread(hass, init_integration, "homes"),
        _unread(hass, init_integration, "okafor"),
    ) == (
        1,
        0,
    )
    mine = await call(hass, "get_notifications", site, household_user)
    assert [m["message"] for m in mine["messages"]] == ["Pump repair at 10"]
    assert mine["unread"] == {"Homes": 1}
    theirs = await call(hass, "get_notifications", site, neighbour)
    assert theirs["messages"] == [] and theirs["unread"] == {"Okafor": 0}
    with pytest.raises(Unauthorized):
        await call(hass, "get_notifications", {**site, "household": "Homes"}, neighbour)
    # Chidi cannot mark Homes' message read, even by its id.
    marked = await call(
        hass, "mark_notifications_read", {**site, "message_id": [sent["message_id"]]}, neighbour
    )
    assert marked["marked"] == []
    marked = await call(hass, "mark_notifications_read", site, household_user)
    assert marked["marked"] == [sent["message_id"]]
    await hass.async_block_till_done()
    assert _unread(hass, init_integration, "homes") == 0
    everything = await call(hass, "get_notifications", site, admin_user)
    assert everything["unread"] == {"Homes": 0, "Okafor": 0}
    assert everything["messages"][0]["read_by"] == household_user.id
    assert init_integration.runtime_data.audit.query(action="message_sent")


async def test_households_cannot_send_and_unknown_households_are_refused(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
) -> None:
    """send_message is admin-only; a household that does not exist is a translated error."""
    site = {"config_entry": init_integration.entry_id}
    with pytest.raises(Unauthorized):
        await call(
            hass, "send_message", {**site, "household": "Homes", "message": "x"}, household_user
        )
    with pytest.raises(ServiceValidationError) as err:
        await call(
            hass, "send_message", {**site, "household": "Nobody", "message": "x"}, admin_user
        )
    assert err.value.translation_key == "unknown_household"


async def test_an_alert_to_a_household_lands_in_its_inbox_not_in_everyones_notifications(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
    neighbour: User,
) -> None:
    """send_alert(household=...) reaches that household's inbox; no persistent notification
    (which every HA user sees) carries it; the neighbour's inbox stays empty."""
    site = {"config_entry": init_integration.entry_id}
    await call(
        hass,
        "send_alert",
        {**site, "household": "Homes", "message": "Meter check tomorrow", "severity": "info"},
        admin_user,
    )
    await hass.async_block_till_done()
    mine = await call(hass, "get_notifications", site, household_user)
    assert [m["message"] for m in mine["messages"]] == ["Meter check tomorrow"]
    theirs = await call(hass, "get_notifications", site, neighbour)
    assert theirs["messages"] == []
    shown = persistent_notification._async_get_or_create_notifications(hass)
    assert not any("Meter check" in n["message"] for n in shown.values())
