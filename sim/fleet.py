"""Simulated ESP32 boards (one per zone) talking REST/SSE to any RTDB URL, on one shared site."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
import json
import logging
import math
import random
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt

from .physics import SiteModel, SiteSpec, SiteState, ZoneSpec
from .site import DEMO_SITE, DEMO_SOC_PCT
from .sse import iter_events
from .tree import InvalidDataError, Json, apply_update, normalize, set_at, split_path

_LOGGER = logging.getLogger(__name__)

PATH_SENSORS = "sensors"  # = custom_components.microgrid.const.PATH_SENSORS
PATH_COMMANDS = "commands"  # = custom_components.microgrid.const.PATH_COMMANDS
MODE_REMOTE = "remote"
MODE_FALLBACK = "fallback"
# Board faults for tests and the demo: link down (no reports, deaf to commands), relay welded
# (verifies and acks, never switches), overload (the zone draws OVERLOAD_FACTOR times its load).
FAULT_OFFLINE = "offline"
FAULT_STUCK = "stuck"
FAULT_OVERLOAD = "overload"
FAULTS = (FAULT_OFFLINE, FAULT_STUCK, FAULT_OVERLOAD)
OVERLOAD_FACTOR = 2.0
# Without a valid command for this long a board applies its local safe state
# (= custom_components.microgrid.const.BOARD_FALLBACK_AFTER; the integration's heartbeat fits in
# it twice with room for retries).
FALLBACK_AFTER_S = 600.0
# Integration seqs are max(last + 1, now in ms). A board with a set clock accepts a seq up to its
# clock plus SEQ_SKEW_MS (= const.CLOCK_SKEW_TOLERANCE); without one, up to SEQ_WINDOW_MS past
# the last accepted seq. So a far-future seq cannot make it refuse the integration's commands as
# replays for longer than that. Not max() of the two: accepted seqs could then climb W at a time.
SEQ_SKEW_MS = 600_000
SEQ_WINDOW_MS = 600_000
# A wall clock before 2024-01-01 was never set (no SNTP yet): it bounds nothing.
CLOCK_SET_AFTER_S = 1_704_067_200

# Local safe state: the least SoC at which a class keeps its relay ON without commands.
FALLBACK_MIN_SOC_PCT: Mapping[str, float] = {
    "critical": 0.0,
    "semi_critical": 10.0,
    "non_critical": 20.0,
    "deferrable": 20.0,
}


class Reject(StrEnum):
    """Why a board refused a command."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    WRONG_NODE = "wrong_node"
    MISMATCH = "mismatch"
    EXPIRED = "expired"
    REPLAY = "replay"
    SEQ_WINDOW = "seq_window"


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """The outcome of checking one command record."""

    on: bool | None = None  # the relay state to apply when accepted
    seq: int | None = None
    reject: Reject | None = None

    @property
    def accepted(self) -> bool:
        """True when the command may be applied."""
        return self.reject is None


def verify_command(
    record: Any, *, node: str, secret: str | None, last_seq: int | None, now_s: float
) -> Verdict:
    """Check a `commands/<node>` record as a board does (secret None: a legacy board)."""
    if not isinstance(record, dict) or record.get("command") not in ("ON", "OFF"):
        return Verdict(reject=Reject.MALFORMED)
    command = record["command"]
    if secret is None:
        seq = record.get("seq")
        return Verdict(on=command == "ON", seq=seq if isinstance(seq, int) else None)
    sig = record.get("sig")
    if not isinstance(sig, str):
        return Verdict(reject=Reject.BAD_SIGNATURE)
    try:
        claims = jwt.decode(
            sig,
            secret,
            algorithms=["HS256"],
            # Expiry is checked below against the board's own clock; iat/nbf are not its concern.
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["node", "command", "seq", "exp"],
            },
        )
    except jwt.InvalidTokenError:
        return Verdict(reject=Reject.BAD_SIGNATURE)
    if claims["node"] != node:
        return Verdict(reject=Reject.WRONG_NODE)
    seq = claims["seq"]
    if (
        claims["command"] != command
        or seq != record.get("seq")
        or claims["exp"] != record.get("expires")
        or not isinstance(seq, int)
        or isinstance(seq, bool)
    ):
        return Verdict(reject=Reject.MISMATCH)
    if not isinstance(claims["exp"], (int, float)) or claims["exp"] < now_s:
        return Verdict(reject=Reject.EXPIRED)
    if last_seq is not None and seq <= last_seq:
        return Verdict(reject=Reject.REPLAY)
    if seq > seq_ceiling(last_seq, now_s):
        return Verdict(reject=Reject.SEQ_WINDOW)
    return Verdict(on=command == "ON", seq=seq)


def seq_ceiling(last_seq: int | None, now_s: float) -> float:
    """The largest seq a board accepts now (inf: neither a set clock nor a last seq bounds it)."""
    if now_s >= CLOCK_SET_AFTER_S:
        return now_s * 1000 + SEQ_SKEW_MS
    return math.inf if last_seq is None else last_seq + SEQ_WINDOW_MS


def fallback_relay(priority: str, soc_pct: float) -> bool:
    """The local safe state: critical ON; the others ON only at or above their class threshold."""
    threshold = FALLBACK_MIN_SOC_PCT.get(priority)
    if threshold is None:
        raise ValueError(f"unknown priority class {priority!r}")
    return priority == "critical" or soc_pct >= threshold


def sensors_record(
    state: SiteState, *, zone_id: str, relay_on: bool, mode: str, at: datetime
) -> dict[str, Any]:
    """The board's `sensors/<node>` record in the original format (plus `mode`)."""
    return {
        "batteryVoltage": round(state.battery_voltage_v, 3),
        "inputPower": round(state.solar_used_w, 1),
        "outputPower": round(state.zone_load_w.get(zone_id, 0.0), 1) if relay_on else 0.0,
        "solarGeneration": round(state.solar_w, 1),
        "batteryPercentage": round(state.soc_pct, 2),
        "relayState": relay_on,
        "timestamp": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": mode,
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseTarget:
    """Where a database lives: base URL plus the query every request carries (ns, auth)."""

    base_url: str
    params: Mapping[str, str]

    @classmethod
    def parse(cls, database_url: str, token: str | None) -> DatabaseTarget:
        """Accept http://127.0.0.1:9000/?ns=demo or https://<db>.firebaseio.com."""
        parts = urlsplit(database_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not a database URL: {database_url!r}")
        params: dict[str, str] = {}
        ns = parse_qs(parts.query).get("ns")
        if ns:
            params["ns"] = ns[0]
        if token:
            params["auth"] = token
        return cls(base_url=f"{parts.scheme}://{parts.netloc}", params=params)

    def url(self, path: str) -> str:
        """The REST URL of a path."""
        return f"{self.base_url}/{path.strip('/')}.json"


class Board:
    """One ESP32: reports its zone, obeys verified commands, falls back when left alone."""

    def __init__(
        self,
        *,
        zone: ZoneSpec,
        site_state: Callable[[], SiteState],
        session: aiohttp.ClientSession,
        database_url: str,
        token: str | None = "owner",
        secret: str | None = None,
        report_interval_s: float = 5.0,
        fallback_after_s: float = FALLBACK_AFTER_S,
        stream_timeout_s: float = 90.0,
        initial_relay: bool | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_time: Callable[[], float] = time.time,
        on_relay_change: Callable[[], object] | None = None,
    ) -> None:
        """Configure; nothing runs before start()."""
        if zone.priority not in FALLBACK_MIN_SOC_PCT:
            raise ValueError(f"unknown priority class {zone.priority!r}")
        if report_interval_s <= 0 or fallback_after_s <= 0 or stream_timeout_s <= 0:
            raise ValueError("intervals must be positive")
        self.zone = zone
        self.node = zone.zone_id
        self.secret = secret
        self.report_interval_s = report_interval_s
        self.fallback_after_s = fallback_after_s
        self.stream_timeout_s = stream_timeout_s
        self._site_state = site_state
        self._session = session
        self._db = DatabaseTarget.parse(database_url, token)
        self._monotonic = monotonic
        self._wall_time = wall_time
        self._on_relay_change = on_relay_change
        if initial_relay is None:
            initial_relay = fallback_relay(zone.priority, site_state().soc_pct)
        self.relay_on = initial_relay
        self.mode = MODE_REMOTE
        self.fault: str | None = None
        self.last_seq: int | None = None
        self._last_sig: str | None = None
        self._last_valid = monotonic()
        self._command: Json = None
        self.accepted = 0
        self.duplicates = 0
        self.rejected: Counter[Reject] = Counter()
        self.reports = 0
        self.report_errors = 0
        self.stream_connects = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._report_now = asyncio.Event()
        self.reported = asyncio.Event()  # set by the first successful report

    # ----- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start reporting and listening."""
        self._last_valid = self._monotonic()
        self._spawn(self._report_loop(), f"board {self.node} report")
        self._spawn(self._listen_loop(), f"board {self.node} listen")

    async def stop(self) -> None:
        """Stop every task of this board and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coro: Any, name: str) -> None:
        """Run a coroutine owned by this board."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- commands --------------------------------------------------------------------------

    def handle_command(self, record: Any) -> Verdict:
        """Verify a command record; apply and acknowledge it when valid."""
        if (
            isinstance(record, dict)
            and self.last_seq is not None
            and record.get("seq") == self.last_seq
            and record.get("sig") == self._last_sig
        ):
            # The same record again (stream reconnect, resync): nothing new, nothing wrong.
            self.duplicates += 1
            return Verdict(on=self.relay_on, seq=self.last_seq)
        verdict = verify_command(
            record,
            node=self.node,
            secret=self.secret,
            last_seq=self.last_seq,
            now_s=self._wall_time(),
        )
        if not verdict.accepted:
            assert verdict.reject is not None
            self.rejected[verdict.reject] += 1
            _LOGGER.warning("Board %s rejected a command: %s", self.node, verdict.reject.value)
            return verdict
        self.accepted += 1
        if verdict.seq is not None:
            self.last_seq = verdict.seq
            self._last_sig = record.get("sig")
        self._last_valid = self._monotonic()
        self.mode = MODE_REMOTE
        self._set_relay(bool(verdict.on))
        self._report_now.set()  # the ack: a fresh record with the new relayState
        return verdict

    def check_fallback(self) -> bool:
        """Enter (or stay in) the local safe state when commands stopped; True when in it."""
        if self._monotonic() - self._last_valid < self.fallback_after_s:
            return self.mode == MODE_FALLBACK
        if self.mode != MODE_FALLBACK:
            _LOGGER.warning("Board %s heard no valid command: local fallback", self.node)
        self.mode = MODE_FALLBACK
        self._set_relay(fallback_relay(self.zone.priority, self._site_state().soc_pct))
        return True

    def set_fault(self, fault: str | None) -> None:
        """Inject (or clear, with None) a fault."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        was_offline = self.fault == FAULT_OFFLINE
        self.fault = fault
        if was_offline and fault != FAULT_OFFLINE:
            # Back online: act on whatever command arrived meanwhile, and report at once.
            if self._command is not None:
                self.handle_command(self._command)
            self._report_now.set()

    def _set_relay(self, on: bool) -> None:
        """Switch the relay; let the site know so the next record carries the new load."""
        if self.fault == FAULT_STUCK:
            return  # the relay is welded: the board thinks it switched, nothing moves
        changed = on != self.relay_on
        self.relay_on = on
        if changed and self._on_relay_change is not None:
            self._on_relay_change()

    def record(self) -> dict[str, Any]:
        """The sensors record this board would send now."""
        return sensors_record(
            self._site_state(),
            zone_id=self.node,
            relay_on=self.relay_on,
            mode=self.mode,
            at=datetime.fromtimestamp(self._wall_time(), UTC),
        )

    # ----- I/O -------------------------------------------------------------------------------

    async def report(self) -> bool:
        """PUT sensors/<node> once; False (logged) when the write fails."""
        self.check_fallback()
        if self.fault == FAULT_OFFLINE:
            return False
        try:
            async with self._session.put(
                self._db.url(f"{PATH_SENSORS}/{self.node}"),
                params={**self._db.params, "print": "silent"},
                json=self.record(),
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                if resp.status >= 300:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, (), status=resp.status, message=await resp.text()
                    )
        except (aiohttp.ClientError, TimeoutError) as err:
            self.report_errors += 1
            _LOGGER.debug("Board %s report failed: %s", self.node, err)
            return False
        self.reports += 1
        self.reported.set()
        return True

    async def _report_loop(self) -> None:
        """Report every report_interval_s, and at once after an accepted command."""
        while True:
            self._report_now.clear()
            try:
                await self.report()
            except Exception:
                _LOGGER.exception("Board %s report crashed (continuing)", self.node)
            try:
                await asyncio.wait_for(self._report_now.wait(), self.report_interval_s)
            except TimeoutError:
                pass

    async def _listen_loop(self) -> None:
        """Keep a stream on commands/<node> open, reconnecting with backoff."""
        backoff_s = 0.25
        while True:
            try:
                got_data = await self._listen_once()
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                _LOGGER.debug("Board %s stream error: %r", self.node, err)
                got_data = False
            except Exception:
                _LOGGER.exception("Board %s stream crashed (reconnecting)", self.node)
                got_data = False
            if got_data:
                backoff_s = 0.25
            await asyncio.sleep(backoff_s * random.uniform(0.8, 1.2))
            backoff_s = min(backoff_s * 2, 10.0)

    async def _listen_once(self) -> bool:
        """One stream session; returns True when it delivered at least the snapshot."""
        got_data = False
        async with self._session.get(
            self._db.url(f"{PATH_COMMANDS}/{self.node}"),
            params=dict(self._db.params),
            headers={"Accept": "text/event-stream"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        ) as resp:
            if resp.status != 200:
                _LOGGER.debug("Board %s stream refused: %s", self.node, resp.status)
                return False
            self.stream_connects += 1
            events = iter_events(resp)
            while True:
                # Read watchdog: a silent stream (no keep-alive either) is dead.
                event = await asyncio.wait_for(anext(events, None), self.stream_timeout_s)
                if event is None:
                    return got_data
                if event.event in ("put", "patch"):
                    got_data = True
                    self._on_data_event(event.event, event.data)
                elif event.event in ("cancel", "auth_revoked"):
                    _LOGGER.info("Board %s stream ended by server: %s", self.node, event.event)
                    return got_data

    def _on_data_event(self, kind: str, data: str) -> None:
        """Fold a put/patch into the local copy of commands/<node> and act on the result."""
        try:
            payload = json.loads(data)
            labels = split_path(payload["path"])
            if kind == "put":
                updated = set_at(self._command, labels, normalize(payload["data"], now_ms=0))
            else:
                updated = apply_update(self._command, labels, payload["data"], now_ms=0)
        except (ValueError, KeyError, TypeError, InvalidDataError) as err:
            _LOGGER.warning("Board %s ignored a malformed stream event: %s", self.node, err)
            return
        if updated == self._command:
            return
        self._command = updated
        if updated is not None and self.fault != FAULT_OFFLINE:
            self.handle_command(updated)


class Fleet:
    """All boards of a site on one shared SiteModel; physics may run faster than wall-clock."""

    def __init__(
        self,
        *,
        database_url: str,
        spec: SiteSpec = DEMO_SITE,
        secret: str | None = None,
        speed: float = 1.0,
        soc_pct: float = DEMO_SOC_PCT,
        report_interval_s: float = 5.0,
        fallback_after_s: float = FALLBACK_AFTER_S,
        stream_timeout_s: float = 90.0,
        token: str | None = "owner",
        sim_start: datetime | None = None,
        tick_s: float = 1.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """Configure; nothing runs before start()."""
        if speed <= 0 or tick_s <= 0:
            raise ValueError("speed and tick_s must be positive")
        if not 0 <= soc_pct <= 100:
            raise ValueError("soc_pct must be within [0, 100]")
        DatabaseTarget.parse(database_url, token)  # fail early on a bad URL
        self.database_url = database_url
        self.spec = spec
        self.speed = speed
        self.tick_s = tick_s
        self._sim_start = sim_start or datetime.now(UTC)
        self._mono_start = time.monotonic()
        self._last_mono = self._mono_start
        self.site = SiteModel(spec, now=self._sim_start, soc_pct=soc_pct)
        self._own_session = session is None
        self._session = session
        self._board_kwargs: dict[str, Any] = {
            "database_url": database_url,
            "token": token,
            "secret": secret,
            "report_interval_s": report_interval_s,
            "fallback_after_s": fallback_after_s,
            "stream_timeout_s": stream_timeout_s,
        }
        self.boards: dict[str, Board] = {}
        self._physics: asyncio.Task[None] | None = None

    def sim_now(self) -> datetime:
        """The simulated clock (runs `speed` times faster than wall-clock)."""
        elapsed_s = (time.monotonic() - self._mono_start) * self.speed
        return self._sim_start + timedelta(seconds=elapsed_s)

    def relay_states(self) -> dict[str, bool]:
        """Each zone's relay as its board has it."""
        return {node: board.relay_on for node, board in self.boards.items()}

    def step(self) -> SiteState:
        """Advance the physics to now (elapsed wall time times speed)."""
        mono = time.monotonic()
        dt_s = (mono - self._last_mono) * self.speed
        self._last_mono = mono
        overloaded = {
            node: OVERLOAD_FACTOR
            for node, board in self.boards.items()
            if board.fault == FAULT_OVERLOAD
        }
        return self.site.step(self.sim_now(), dt_s, self.relay_states(), load_scale=overloaded)

    def set_soc(self, soc_pct: float) -> SiteState:
        """Force the battery's state of charge (site control for tests and the demo)."""
        return self.site.set_soc(soc_pct)

    def set_fault(self, zone_id: str, fault: str | None) -> SiteState:
        """Inject or clear a fault on one board (see FAULTS)."""
        board = self.boards.get(zone_id)
        if board is None:
            raise ValueError(f"no board for zone {zone_id!r}")
        board.set_fault(fault)
        return self.step()

    def set_sim_time(self, when: datetime) -> SiteState:
        """Jump the simulated clock (e.g. to dusk); the physics does not integrate the jump."""
        if when.tzinfo is None:
            raise ValueError("sim time must be timezone-aware")
        self.step()
        self._sim_start = when
        self._mono_start = self._last_mono = time.monotonic()
        return self.site.step(when, 0.0, self.relay_states())

    async def start(self) -> None:
        """Create the boards and start physics, reports and listeners."""
        if self._physics is not None:
            raise RuntimeError("this fleet is already running")
        if self._session is None:
            # Threaded resolver: aiodns' c-ares channel delays interpreter exit by ~1.5 s.
            connector = aiohttp.TCPConnector(resolver=aiohttp.ThreadedResolver())
            self._session = aiohttp.ClientSession(connector=connector)
        self._mono_start = self._last_mono = time.monotonic()
        self.boards = {}
        for zone in self.spec.zones:
            self.boards[zone.zone_id] = Board(
                zone=zone,
                site_state=lambda: self.site.state,
                session=self._session,
                on_relay_change=self.step,
                **self._board_kwargs,
            )
        self.step()  # the first reports carry this instant's flows
        self._physics = asyncio.create_task(self._physics_loop(), name="fleet physics")
        for board in self.boards.values():
            await board.start()

    async def wait_reported(self, timeout_s: float = 10.0) -> bool:
        """Wait until every board has reported once; False when that took longer than timeout_s."""
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(board.reported.wait() for board in self.boards.values()))
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop every board and the physics; close our own session."""
        await asyncio.gather(*(board.stop() for board in self.boards.values()))
        if self._physics is not None:
            self._physics.cancel()
            await asyncio.gather(self._physics, return_exceptions=True)
            self._physics = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _physics_loop(self) -> None:
        """Step the shared site every tick."""
        while True:
            await asyncio.sleep(self.tick_s)
            self.step()

    def summary(self) -> dict[str, Any]:
        """A JSON-able view of the site and the boards (for the CLI and tests)."""
        state = self.site.state
        return {
            "sim_time": state.at.isoformat(),
            "speed": self.speed,
            "soc_pct": round(state.soc_pct, 2),
            "solar_w": round(state.solar_w, 1),
            "load_w": round(state.load_w, 1),
            "energy_wh": {
                zone_id: {
                    "served_wh": round(served, 1),
                    "unserved_wh": round(self.site.unserved_wh[zone_id], 1),
                }
                for zone_id, served in self.site.served_wh.items()
            },
            "boards": {
                node: {
                    "relay_on": board.relay_on,
                    "mode": board.mode,
                    "fault": board.fault,
                    "accepted": board.accepted,
                    "rejected": {reason.value: n for reason, n in board.rejected.items()},
                    "reports": board.reports,
                }
                for node, board in self.boards.items()
            },
        }
