"""The audit trail: who (or what) did what, when and why; hash-chained, persisted, logbooked."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
import hashlib
import json
import re
from typing import Any

from homeassistant.components.logbook import async_log_entry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.json import json_dumps
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from ..const import (
    CONF_FCM_TOKENS,
    CONF_SMS_TARGETS,
    CONF_TWILIO_ACCOUNT_SID,
    DOMAIN,
    EVENT_AUDIT,
    LOGGER,
)
from ..storage import BoundedSave

STORAGE_VERSION = 2  # 2: entries carry prev/hash; the payload an anchor and the known options
MAX_ENTRIES = 5000
SAVE_DELAY_S = 10
MACHINE_ACTORS = frozenset({"policy", "optimizer", "balancer", "system"})
GENESIS = "0" * 64  # the predecessor hash of the very first entry
# A rate-limit burst ends after this long without a refused call (or at the next accepted one).
BURST_QUIET = timedelta(seconds=60)
REDACTED = "**REDACTED**"
# Options whose values never enter the trail (only that they changed).
SECRET_OPTIONS = frozenset({CONF_TWILIO_ACCOUNT_SID, CONF_SMS_TARGETS, CONF_FCM_TOKENS})
_SECRET_NAME = re.compile(r"(^|_)(tokens?|secret|password|key|sid)(_|$)")

ACTION_REFUSED = "request_refused"
ACTION_CHAIN_BROKEN = "audit_chain_broken"
ACTION_OPTIONS_CHANGED = "options_changed"


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One audited action, chained to the one before it."""

    at: str  # ISO-8601 UTC
    actor: str  # "policy", "optimizer", "balancer", "system" or an HA user id
    actor_name: str
    action: str  # e.g. "zone_decision", "zone_request", "override_set", "request_refused"
    zone_id: str | None
    detail: dict[str, Any]
    prev: str  # the previous entry's hash (the anchor for the oldest kept entry)
    hash: str  # SHA-256 of this entry's fields and prev


@dataclass(frozen=True, kw_only=True, slots=True)
class ChainBreak:
    """Where a chain stops verifying."""

    index: int  # position in the kept trail, oldest first
    at: str | None
    reason: str  # "hash_mismatch", "prev_mismatch" or "malformed"

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"index": self.index, "at": self.at, "reason": self.reason}


@dataclass(kw_only=True, slots=True)
class _Burst:
    """A run of rate-limited calls by one user: the first is audited, the rest counted."""

    actor_name: str
    first_at: datetime
    last_at: datetime
    more: int = 0  # refused calls after the first


def entry_hash(fields: Mapping[str, Any], prev: str) -> str:
    """SHA-256 over the canonical JSON of an entry's fields and its predecessor's hash."""
    body = {k: fields.get(k) for k in ("at", "actor", "actor_name", "action", "zone_id")}
    canonical = json.dumps(
        {**body, "detail": fields.get("detail"), "prev": prev},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _json_native(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The detail as it will read back from storage (enums, datetimes, NaN made plain)."""
    return json.loads(json_dumps(detail))


def chain(raw_entries: Iterable[Mapping[str, Any]], anchor: str) -> list[dict[str, Any]]:
    """Hash-chain entries that have none (stored before version 2)."""
    out: list[dict[str, Any]] = []
    prev = anchor
    for raw in raw_entries:
        fields = {k: raw.get(k) for k in ("at", "actor", "actor_name", "action", "zone_id")}
        fields["detail"] = _json_native(raw.get("detail") or {})
        digest = entry_hash(fields, prev)
        out.append({**fields, "prev": prev, "hash": digest})
        prev = digest
    return out


def verify(entries: Iterable[AuditEntry | Mapping[str, Any]], anchor: str) -> ChainBreak | None:
    """The first entry that breaks the chain, or None when every link and hash holds."""
    prev = anchor
    for index, item in enumerate(entries):
        raw = asdict(item) if isinstance(item, AuditEntry) else item
        try:
            if raw["prev"] != prev:
                return ChainBreak(index=index, at=raw.get("at"), reason="prev_mismatch")
            if entry_hash(raw, prev) != raw["hash"]:
                return ChainBreak(index=index, at=raw.get("at"), reason="hash_mismatch")
        except (KeyError, TypeError, ValueError):
            at = raw.get("at") if isinstance(raw, Mapping) else None
            return ChainBreak(index=index, at=at, reason="malformed")
        prev = raw["hash"]
    return None


def _secret(key: str) -> bool:
    """An option whose value must never be written to the trail."""
    return key in SECRET_OPTIONS or bool(_SECRET_NAME.search(key))


def options_view(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as the trail may know them: secrets by digest only."""
    return {
        key: (
            {"sha256": hashlib.sha256(json_dumps(value).encode()).hexdigest()}
            if _secret(key)
            else _json_native({"v": value})["v"]
        )
        for key, value in options.items()
    }


def options_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Changed keys, old -> new; a secret shows only whether it is set."""
    changes = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if _secret(key):
            changes[key] = {
                "old": REDACTED if key in old else None,
                "new": REDACTED if key in new else None,
            }
        else:
            changes[key] = {"old": old.get(key), "new": new.get(key)}
    return changes


class _AuditStore(Store[dict[str, Any]]):
    """The trail's store: chains version-1 files once, at their first load."""

    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: dict[str, Any]
    ) -> dict[str, Any]:
        """Version 1 had no hashes: chain what was stored from the genesis anchor."""
        if old_major_version == 1:
            return {"anchor": GENESIS, "entries": chain(old_data.get("entries", []), GENESIS)}
        raise NotImplementedError


class AuditLog:
    """A bounded, persisted, hash-chained audit trail for one site entry."""

    def __init__(self, hass: HomeAssistant, entry_id: str, site_name: str) -> None:
        """Prepare the store; call async_load before use."""
        self._hass = hass
        self._entry_id = entry_id
        self._site_name = site_name
        self._store = _AuditStore(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.audit")
        self._saver = BoundedSave(self._store, self._data_to_save, SAVE_DELAY_S)
        self._entries: deque[AuditEntry] = deque()
        self._anchor = GENESIS
        self._options: dict[str, Any] | None = None
        self.broken: ChainBreak | None = None
        self._dropped_broken = False  # the broken entry was trimmed: verify again
        self._bursts: dict[str, _Burst] = {}
        self._burst_timer: CALLBACK_TYPE | None = None

    # ---- loading and verifying -------------------------------------------------------------

    async def async_load(self) -> None:
        """Load the trail, verify its chain and note option changes made while unloaded."""
        data = await self._store.async_load() or {}
        self._anchor = str(data.get("anchor", GENESIS))
        raw_entries = data.get("entries", [])
        self.broken = verify(raw_entries, self._anchor)
        for raw in raw_entries:
            try:
                self._entries.append(AuditEntry(**raw))
            except TypeError:
                continue  # malformed: already reported as the break
        if isinstance(known := data.get("options"), dict):
            self._options = known
        self._report_chain()
        if (entry := self._hass.config_entries.async_get_entry(self._entry_id)) is not None:
            self.note_options(entry.options)

    @property
    def _issue_id(self) -> str:
        """The broken-chain repair issue of this entry."""
        return f"audit_chain_broken_{self._entry_id}"

    @callback
    def _report_chain(self) -> None:
        """A broken chain: log, raise a repair issue and audit it (once per break)."""
        if self.broken is None:
            ir.async_delete_issue(self._hass, DOMAIN, self._issue_id)
            return
        brk = self.broken
        LOGGER.error(
            "The audit trail of %s was altered: its hash chain breaks at entry %s (%s, %s)",
            self._site_name,
            brk.index,
            brk.at,
            brk.reason,
        )
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self._issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="audit_chain_broken",
            translation_placeholders={
                "site": self._site_name,
                "store": f".storage/{self._store.key}",
                "index": str(brk.index),
                "at": brk.at or "-",
                "reason": brk.reason,
            },
        )
        seen = next((e for e in reversed(self._entries) if e.action == ACTION_CHAIN_BROKEN), None)
        if seen is None or seen.detail.get("broken_at") != brk.at:
            self.record(
                now=dt_util.utcnow(),
                actor="system",
                actor_name="Microgrid",
                action=ACTION_CHAIN_BROKEN,
                message=f"audit trail altered: chain broken at entry {brk.index}",
                index=brk.index,
                broken_at=brk.at,
                reason=brk.reason,
            )

    def verification(self) -> dict[str, Any]:
        """Whether the kept chain verified, and where it first breaks."""
        return {
            "valid": self.broken is None,
            "entries": len(self._entries),
            "first_broken": self.broken.as_dict() if self.broken else None,
        }

    async def async_verify(self) -> dict[str, Any]:
        """Recompute every hash of the kept trail (in the executor: ~5,000 SHA-256 + JSON)."""
        self.broken = await self._hass.async_add_executor_job(
            verify, list(self._entries), self._anchor
        )
        self._dropped_broken = False
        return self.verification()

    async def async_verification(self) -> dict[str, Any]:
        """The cached verification, recomputed when the broken entry was trimmed away."""
        if self._dropped_broken:
            return await self.async_verify()
        return self.verification()

    # ---- recording ---------------------------------------------------------------------------

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
        """Append a chained entry, schedule a save, fire an event and write a logbook line."""
        prev = self._entries[-1].hash if self._entries else self._anchor
        fields = {
            "at": now.isoformat(),
            "actor": actor,
            "actor_name": actor_name,
            "action": action,
            "zone_id": zone_id,
            "detail": _json_native(detail),
        }
        entry = AuditEntry(**fields, prev=prev, hash=entry_hash(fields, prev))
        self._entries.append(entry)
        self._trim()
        # What people did is written at once (rare, rate-limited); the machine's own entries
        # within SAVE_DELAY_S.
        self._saver.schedule(now=actor not in MACHINE_ACTORS)
        self._hass.bus.async_fire(EVENT_AUDIT, asdict(entry))
        if message:
            async_log_entry(
                self._hass, self._site_name, message, domain=DOMAIN, entity_id=entity_id
            )
        return entry

    @callback
    def _trim(self) -> None:
        """Drop the oldest entries past the cap; the anchor keeps the rest verifiable."""
        while len(self._entries) > MAX_ENTRIES:
            self._anchor = self._entries.popleft().hash
            if self.broken is not None:
                if self.broken.index == 0:
                    self._dropped_broken = True
                else:
                    self.broken = ChainBreak(
                        index=self.broken.index - 1, at=self.broken.at, reason=self.broken.reason
                    )

    @callback
    def record_refusal(
        self, *, now: datetime, actor: str, actor_name: str, reason: str, **detail: Any
    ) -> AuditEntry:
        """A refused request (reason: the translation key the caller was answered with)."""
        return self.record(
            now=now,
            actor=actor,
            actor_name=actor_name,
            action=ACTION_REFUSED,
            message=f"{actor_name} was refused: {reason}",
            reason=reason,
            **detail,
        )

    @callback
    def record_rate_limited(
        self, *, now: datetime, actor: str, actor_name: str, **detail: Any
    ) -> None:
        """A rate-limited call: the first of a burst is audited, later ones only counted."""
        if (burst := self._bursts.get(actor)) is not None:
            burst.more += 1
            burst.last_at = now
            return
        self._bursts[actor] = _Burst(actor_name=actor_name, first_at=now, last_at=now)
        self.record_refusal(
            now=now, actor=actor, actor_name=actor_name, reason="rate_limited", **detail
        )
        self._arm_burst_timer(now + BURST_QUIET)

    @callback
    def end_burst(self, actor: str, now: datetime, *, ended_by: str = "accepted") -> None:
        """Close a user's burst: write how many more calls were refused (if any)."""
        if (burst := self._bursts.pop(actor, None)) is None or burst.more == 0:
            return
        self.record_refusal(
            now=now,
            actor=actor,
            actor_name=burst.actor_name,
            reason="rate_limited",
            burst_ended=ended_by,
            refused_calls=burst.more + 1,
            first_at=burst.first_at.isoformat(),
            last_at=burst.last_at.isoformat(),
        )

    @callback
    def _arm_burst_timer(self, when: datetime) -> None:
        """One timer for every open burst; it re-arms for the latest quiet deadline."""
        if self._burst_timer is None:
            self._burst_timer = async_track_point_in_utc_time(
                self._hass, self._async_close_quiet_bursts, when
            )

    @callback
    def _async_close_quiet_bursts(self, _scheduled: datetime) -> None:
        """End the bursts that have been quiet long enough; wait for the others."""
        self._burst_timer = None
        now = dt_util.utcnow()  # the timer may run late: the scheduled point understates it
        for actor, burst in list(self._bursts.items()):
            if now - burst.last_at >= BURST_QUIET:
                self.end_burst(actor, now, ended_by="quiet")
        if self._bursts:
            self._arm_burst_timer(min(b.last_at for b in self._bursts.values()) + BURST_QUIET)

    @callback
    def note_options(self, options: Mapping[str, Any]) -> None:
        """Audit the option keys that changed since the trail last saw them (secrets hidden)."""
        view = options_view(options)
        known, self._options = self._options, view
        if known is None or not (changes := options_diff(known, view)):
            if known is None:
                self._saver.schedule()
            return
        self.record(
            now=dt_util.utcnow(),
            actor="system",
            actor_name="Options",
            action=ACTION_OPTIONS_CHANGED,
            message=f"options changed: {', '.join(changes)}",
            changes=changes,
        )

    # ---- storing and reading -----------------------------------------------------------------

    @callback
    def _data_to_save(self) -> dict[str, Any]:
        """The store's payload."""
        return {
            "anchor": self._anchor,
            "options": self._options,
            "entries": [asdict(e) for e in self._entries],
        }

    async def async_flush(self) -> None:
        """Close open bursts and write pending entries now (on unload)."""
        if self._burst_timer is not None:
            self._burst_timer()
            self._burst_timer = None
        now = dt_util.utcnow()
        for actor in list(self._bursts):
            self.end_burst(actor, now, ended_by="unload")
        await self._saver.async_flush(close=True)

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
