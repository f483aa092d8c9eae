"""Relay commands: written on change (plus a heartbeat), signed, acknowledged by echo, retried."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
import random

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from ..const import (
    ACK_TIMEOUT,
    COMMAND_BACKOFF_MAX,
    COMMAND_MAX_ATTEMPTS,
    COMMAND_TTL,
    DOMAIN,
    EVENT_COMMAND_FAILED,
    HEARTBEAT_INTERVAL,
    LOGGER,
    PATH_COMMANDS,
)
from ..device import build_command
from ..link.errors import FirebaseError
from ..link.rtdb import FirebaseLink
from ..snapshot import PendingCommand


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """Exponential backoff with ±20 % jitter, capped; attempt 1 waits one ack timeout."""
    base = min(ACK_TIMEOUT * (2 ** max(attempts - 1, 0)), COMMAND_BACKOFF_MAX)
    return base * rng.uniform(0.8, 1.2)


class CommandWriter:
    """Keeps every board's relay where the decision wants it."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        entry_id: str,
        link: FirebaseLink,
        secret: str,
        create_task: Callable[..., object],
        next_seq: Callable[[datetime], int],
        zone_name: Callable[[str], str],
        rng: random.Random | None = None,
    ) -> None:
        """Hold the link, the site secret and the delivery state of each zone."""
        self._hass = hass
        self._entry_id = entry_id
        self._link = link
        self._secret = secret
        self._create_task = create_task
        self._next_seq = next_seq
        self._zone_name = zone_name
        self._rng = rng or random.Random()
        self.pending: dict[str, PendingCommand] = {}
        self.last_write: dict[str, datetime] = {}
        # After a failed write: when to write again, and how many failed in a row.
        self.retry_at: dict[str, datetime] = {}
        self._failures: dict[str, int] = {}
        self.failed: set[str] = set()
        self.writes = 0
        self.write_errors = 0
        self.in_flight = 0

    @callback
    def reconcile(
        self,
        now: datetime,
        desired: dict[str, tuple[bool, str]],
        confirmed: dict[str, bool | None],
        online: dict[str, bool],
    ) -> None:
        """Write, acknowledge or retry each zone's command."""
        for zone_id, (on, reason) in desired.items():
            pend = self.pending.get(zone_id)
            if confirmed.get(zone_id) == on:
                if pend is not None and pend.on == on:
                    self._acknowledged(zone_id)
                    pend = None
                if pend is None:
                    if self._heartbeat_due(now, zone_id):
                        first = zone_id not in self.last_write
                        self._send(now, zone_id, on, reason if first else "heartbeat", attempts=1)
                    continue
            if pend is None or pend.on != on:
                self._send(now, zone_id, on, reason, attempts=1)
                continue
            if now - pend.last_sent < retry_delay(pend.attempts, self._rng):
                continue
            if online.get(zone_id) and pend.attempts >= COMMAND_MAX_ATTEMPTS:
                self._failed(zone_id, pend)
            self._send(now, zone_id, on, pend.reason, attempts=pend.attempts + 1, first=pend)

    def _heartbeat_due(self, now: datetime, zone_id: str) -> bool:
        """Never written, a heartbeat interval since the last write, or a failed write to retry."""
        last = self.last_write.get(zone_id)
        if last is None or now - last >= HEARTBEAT_INTERVAL:
            return True
        retry = self.retry_at.get(zone_id)
        return retry is not None and now >= retry

    @callback
    def _send(
        self,
        now: datetime,
        zone_id: str,
        on: bool,
        reason: str,
        *,
        attempts: int,
        first: PendingCommand | None = None,
    ) -> None:
        """Record the command as pending and write it in the background."""
        seq = self._next_seq(now)
        self.pending[zone_id] = PendingCommand(
            on=on,
            seq=seq,
            reason=reason,
            first_sent=first.first_sent if first else now,
            last_sent=now,
            attempts=attempts,
        )
        self.last_write[zone_id] = now
        record = build_command(
            zone_id=zone_id,
            on=on,
            seq=seq,
            now=now,
            ttl=COMMAND_TTL,
            reason=reason,
            secret=self._secret,
        )
        self._create_task(self._async_write(zone_id, record), f"{DOMAIN} command {zone_id}")

    async def _async_write(self, zone_id: str, record: dict[str, object]) -> None:
        """PUT commands/<zone>; a failure is retried by reconcile after the backoff."""
        self.in_flight += 1
        try:
            await self._link.async_put(f"{PATH_COMMANDS}/{zone_id}", record)
        except FirebaseError as err:
            self.write_errors += 1
            # An acknowledged zone has no pending command to retry: the heartbeat path must,
            # or one failed write costs a whole interval of the board's fallback margin.
            failures = self._failures.get(zone_id, 0) + 1
            self._failures[zone_id] = failures
            self.retry_at[zone_id] = dt_util.utcnow() + retry_delay(failures, self._rng)
            LOGGER.warning("Writing the command for %s failed (will retry): %s", zone_id, err)
        else:
            self.writes += 1
            self._failures.pop(zone_id, None)
            self.retry_at.pop(zone_id, None)
        finally:
            self.in_flight -= 1

    @callback
    def _acknowledged(self, zone_id: str) -> None:
        """The board echoed the commanded state."""
        self.pending.pop(zone_id, None)
        if zone_id in self.failed:
            self.failed.discard(zone_id)
            ir.async_delete_issue(self._hass, DOMAIN, self._issue_id(zone_id))

    @callback
    def _failed(self, zone_id: str, pend: PendingCommand) -> None:
        """Repeated failure: one repair issue and one event per episode."""
        if zone_id in self.failed:
            return
        self.failed.add(zone_id)
        name = self._zone_name(zone_id)
        LOGGER.error(
            "Zone %s did not apply %s after %d attempts",
            name,
            "ON" if pend.on else "OFF",
            pend.attempts,
        )
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self._issue_id(zone_id),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="command_failed",
            translation_placeholders={
                "zone": name,
                "command": "ON" if pend.on else "OFF",
                "attempts": str(pend.attempts),
            },
        )
        self._hass.bus.async_fire(
            EVENT_COMMAND_FAILED,
            {
                "entry_id": self._entry_id,
                "zone_id": zone_id,
                "command": "ON" if pend.on else "OFF",
                "attempts": pend.attempts,
                "reason": pend.reason,
            },
        )

    def _issue_id(self, zone_id: str) -> str:
        """One repair issue per entry and zone."""
        return f"command_failed_{self._entry_id}_{zone_id}"
