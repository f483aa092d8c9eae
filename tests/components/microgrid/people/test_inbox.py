"""Household inboxes: scoped, capped, read marks, and kept across a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.microgrid.people.inbox import (
    MAX_MESSAGE_CHARS,
    MAX_MESSAGES_PER_HOUSEHOLD,
    Inbox,
)

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


async def _inbox(hass: HomeAssistant, changes: list[int] | None = None) -> Inbox:
    inbox = Inbox(hass, "entry1", (lambda: changes.append(1)) if changes is not None else None)
    await inbox.async_load()
    return inbox


async def test_messages_reach_only_their_household(hass: HomeAssistant) -> None:
    """A household sees its own messages, newest first; never another's."""
    changes: list[int] = []
    inbox = await _inbox(hass, changes)
    inbox.post(now=T0, household="Okafor", message="Pump repair at 10", sender="admin1")
    inbox.post(now=T0 + timedelta(minutes=1), household="Mensah", message="Your meter")
    inbox.post(now=T0 + timedelta(minutes=2), household="Okafor", message="Done", title="Pump")
    okafor = inbox.messages(["Okafor"])
    assert [m.message for m in okafor] == ["Done", "Pump repair at 10"]
    assert all(m.household == "Okafor" for m in okafor)
    assert [m.message for m in inbox.messages(["Mensah"])] == ["Your meter"]
    assert inbox.messages(["Nobody"]) == []
    assert (inbox.unread("Okafor"), inbox.unread("Mensah")) == (2, 1)
    assert len(changes) == 3


async def test_mark_read_touches_only_the_callers_households(hass: HomeAssistant) -> None:
    """Marking another household's message id read does nothing; all-unread marks its own."""
    inbox = await _inbox(hass)
    theirs = inbox.post(now=T0, household="Mensah", message="private")
    mine = inbox.post(now=T0, household="Okafor", message="hello")
    assert inbox.mark_read(["Okafor"], now=T0, reader="u1", message_ids=[theirs.message_id]) == []
    assert inbox.unread("Mensah") == 1
    assert inbox.mark_read(["Okafor"], now=T0, reader="u1") == [mine.message_id]
    assert inbox.unread("Okafor") == 0
    read = inbox.messages(["Okafor"])[0]
    assert (read.read_by, read.read_at) == ("u1", T0)
    assert inbox.messages(["Okafor"], unread_only=True) == []
    assert inbox.mark_read(["Okafor"], now=T0, reader="u1") == []  # nothing left to mark


async def test_inbox_is_capped_and_texts_are_bounded(hass: HomeAssistant) -> None:
    """The oldest messages go past the cap; an over-long text is cut; a bad severity is info."""
    inbox = await _inbox(hass)
    for i in range(MAX_MESSAGES_PER_HOUSEHOLD + 5):
        inbox.post(now=T0 + timedelta(seconds=i), household="Okafor", message=str(i))
    kept = inbox.messages(["Okafor"], limit=10_000)
    assert len(kept) == MAX_MESSAGES_PER_HOUSEHOLD
    assert kept[-1].message == "5"  # 0-4 dropped
    long = inbox.post(now=T0, household="X", message="a" * 10_000, severity="shouting")
    assert len(long.message) == MAX_MESSAGE_CHARS and long.severity == "info"


async def test_messages_survive_a_restart_and_bad_records_are_dropped(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """What was posted and read is there after a reload; a corrupted record is skipped."""
    inbox = await _inbox(hass)
    kept = inbox.post(now=T0, household="Okafor", message="kept")
    inbox.post(now=T0, household="Okafor", message="read one")
    inbox.mark_read(["Okafor"], now=T0, reader="u1", message_ids=[kept.message_id])
    await inbox.async_flush()
    stored = hass_storage["microgrid.entry1.inbox"]["data"]["messages"]
    stored.append({"household": "Okafor", "message": "no id, no time"})
    again = await _inbox(hass)
    assert {m.message for m in again.messages(["Okafor"])} == {"kept", "read one"}
    assert again.unread("Okafor") == 1
