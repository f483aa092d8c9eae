"""The audit trail: who (or what) switched which zone, when and why; persisted and logbooked."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.logbook import async_log_entry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store

from .const import DOMAIN, EVENT_AUDIT

STORAGE_VERSION = 1
MAX_ENTRIES = 5000
SAVE_DELAY_S = 10


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One audited action."""

    at: str  # ISO-8601 UTC
    actor: str  # "policy", "optimizer", "balancer", "system" or an HA user id
    actor_name: str
    action: str  # e.g. "zone_command", "household_request", "override_set", "band_changed"
    zone_id: str | None
    detail: dict[str, Any]


class AuditLog:
    """A bounded, persisted audit trail for one site entry."""

    def __init__(self, hass: HomeAssistant, entry_id: str, site_name: str) -> None:
        """Prepare the store; call async_load before use."""
        self._hass = hass
        self._site_name = site_name
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.audit"
        )
        self._entries: deque[AuditEntry] = deque(maxlen=MAX_ENTRIES)

    async def async_load(self) -> None:
        """Load the persisted trail."""
        data = await self._store.async_load() or {}
        for raw in data.get("entries", []):
            try:
                self._entries.append(AuditEntry(**raw))
            except TypeError:
                continue  # an entry from a future format: skip, keep the rest

    @callback
    def record(
        self,
        *,
        now: datetime,
        actor: str,
        actor_name: str,
        action: str,
        zone_id: str | None = None,
        message: str | None = None,
        entity_id: str | None = None,
        **detail: Any,
    ) -> AuditEntry:
        """Append an entry, schedule a save, fire an event and write a logbook line."""
        entry = AuditEntry(
            at=now.isoformat(),
            actor=actor,
            actor_name=actor_name,
            action=action,
            zone_id=zone_id,
            detail=detail,
        )
        self._entries.append(entry)
        self._store.async_delay_save(self._data_to_save, SAVE_DELAY_S)
        self._hass.bus.async_fire(EVENT_AUDIT, asdict(entry))
        if message:
            async_log_entry(
                self._hass, self._site_name, message, domain=DOMAIN, entity_id=entity_id
            )
        return entry

    @callback
    def _data_to_save(self) -> dict[str, Any]:
        """The store's payload."""
        return {"entries": [asdict(e) for e in self._entries]}

    async def async_flush(self) -> None:
        """Write pending entries now (on unload)."""
        await self._store.async_save(self._data_to_save())

    def query(
        self,
        *,
        zone_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest-first entries matching the filters."""
        since_iso = since.isoformat() if since else None
        out: list[dict[str, Any]] = []
        for entry in reversed(self._entries):
            if since_iso and entry.at < since_iso:
                break
            if zone_id and entry.zone_id != zone_id:
                continue
            if action and entry.action != action:
                continue
            out.append(asdict(entry))
            if len(out) >= limit:
                break
        return out

    def __len__(self) -> int:
        """How many entries are kept."""
        return len(self._entries)
