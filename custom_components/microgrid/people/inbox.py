"""Each household's inbox: messages from the site's admins (and alerts addressed to it), kept
across restarts, visible only to the household's members and to admins."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util, ulid as ulid_util

from ..const import DOMAIN, LOGGER
from ..storage import BoundedSave

STORAGE_VERSION = 1
# Per household; the oldest are dropped first (a village site gets a few a day).
MAX_MESSAGES_PER_HOUSEHOLD: Final = 200
MAX_MESSAGE_CHARS: Final = 2000
MAX_TITLE_CHARS: Final = 200
SEVERITIES: Final = ("info", "warning", "critical")


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """One message to one household."""

    message_id: str
    household: str
    at: datetime
    message: str
    title: str | None = None
    severity: str = "info"
    sender: str | None = None  # user id, or None for the site itself (alerts)
    sender_name: str = "Microgrid"
    read_at: datetime | None = None
    read_by: str | None = None  # the member who marked it read

    def as_dict(self) -> dict[str, Any]:
        """JSON form (action responses and storage)."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["read_at"] = self.read_at.isoformat() if self.read_at else None
        return data

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Message:
        """Back from storage (raises KeyError/TypeError/ValueError when malformed)."""
        at = dt_util.parse_datetime(str(raw["at"]))
        if at is None:
            raise ValueError("bad time")
        read_at = dt_util.parse_datetime(str(raw["read_at"])) if raw.get("read_at") else None
        return cls(
            message_id=str(raw["message_id"]),
            household=str(raw["household"]),
            at=at,
            message=str(raw["message"]),
            title=raw.get("title"),
            severity=str(raw.get("severity", "info")),
            sender=raw.get("sender"),
            sender_name=str(raw.get("sender_name", "Microgrid")),
            read_at=read_at,
            read_by=raw.get("read_by"),
        )


class Inbox:
    """The site's household inboxes; `on_change` is told after every change (sensors)."""

    def __init__(
        self, hass: HomeAssistant, entry_id: str, on_change: Callable[[], None] | None = None
    ) -> None:
        """Empty until async_load."""
        self._messages: dict[str, list[Message]] = {}  # household -> oldest first
        self._on_change = on_change or (lambda: None)
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.inbox"
        )
        # What a person sent or read is written on the next loop turn.
        self._saver = BoundedSave(self._store, self._data, 0)

    async def async_load(self) -> None:
        """Restore the inboxes; a malformed message is logged and dropped, the rest kept."""
        data = await self._store.async_load() or {}
        for raw in data.get("messages", []):
            try:
                message = Message.from_dict(raw)
            except (KeyError, TypeError, ValueError) as err:
                LOGGER.warning("Dropped a malformed stored message: %s", err)
                continue
            self._messages.setdefault(message.household, []).append(message)

    @callback
    def _data(self) -> dict[str, Any]:
        return {"messages": [m.as_dict() for box in self._messages.values() for m in box]}

    async def async_flush(self) -> None:
        """Write now (unload)."""
        await self._saver.async_flush(close=True)

    @callback
    def post(
        self,
        *,
        now: datetime,
        household: str,
        message: str,
        title: str | None = None,
        severity: str = "info",
        sender: str | None = None,
        sender_name: str = "Microgrid",
    ) -> Message:
        """Put a message in a household's inbox (texts capped; the oldest dropped past the cap)."""
        posted = Message(
            message_id=ulid_util.ulid_now(),
            household=household,
            at=now,
            message=message[:MAX_MESSAGE_CHARS],
            title=title[:MAX_TITLE_CHARS] if title else None,
            severity=severity if severity in SEVERITIES else "info",
            sender=sender,
            sender_name=sender_name,
        )
        box = self._messages.setdefault(household, [])
        box.append(posted)
        del box[:-MAX_MESSAGES_PER_HOUSEHOLD]
        self._changed()
        return posted

    def messages(
        self, households: Iterable[str], *, unread_only: bool = False, limit: int = 50
    ) -> list[Message]:
        """The households' messages, newest first."""
        found = [
            m
            for household in households
            for m in self._messages.get(household, [])
            if not (unread_only and m.read_at)
        ]
        found.sort(key=lambda m: m.at, reverse=True)
        return found[:limit]

    def unread(self, household: str) -> int:
        """How many of a household's messages nobody has marked read."""
        return sum(1 for m in self._messages.get(household, []) if m.read_at is None)

    @callback
    def mark_read(
        self,
        households: Iterable[str],
        *,
        now: datetime,
        reader: str,
        message_ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Mark messages of these households read (all unread ones when no ids); the ids marked.
        An id of another household is never touched."""
        wanted = None if message_ids is None else set(message_ids)
        marked: list[str] = []
        for household in households:
            box = self._messages.get(household, [])
            for index, message in enumerate(box):
                if message.read_at is None and (wanted is None or message.message_id in wanted):
                    box[index] = replace(message, read_at=now, read_by=reader)
                    marked.append(message.message_id)
        if marked:
            self._changed()
        return marked

    @callback
    def _changed(self) -> None:
        self._saver.schedule(now=True)
        self._on_change()
