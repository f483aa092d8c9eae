"""The system under test: scripts/demo_lib's simulated site and real Home Assistant, and the
three doors the benchmark uses (Home Assistant's REST/websocket API, the RTDB REST API, the
sim's fault and site hooks). Nothing here reads the integration's code or files."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
import sys
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from demo_lib.cli import Options, bring_up, spawn_hass  # noqa: E402
from demo_lib.configdir import reset_dir  # noqa: E402
from demo_lib.ha_api import HAClient, HAError  # noqa: E402
from demo_lib.procs import Child, Supervisor  # noqa: E402
from demo_lib.site_setup import Credentials, zone_switch_map  # noqa: E402

from .figures import as_number  # noqa: E402

HA_PORT = 8123
SIM_PORT = 9000
NS = "demo"
OWNER = "owner"
ADMIN = Credentials(username="bench-admin", password="bench-admin-pass-123")
HOUSEHOLD = Credentials(username="bench-household", password="bench-household-pass-123")
SECRET = "bench-faults-command-secret-0123456789"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15)


def now_iso() -> str:
    """A board-style timestamp (UTC, seconds, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class RTDB:
    """The simulated RTDB's REST API and the sim's hooks, as the emulator admin (`owner`)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        """Bind to a session."""
        self.session = session
        self.base = f"http://127.0.0.1:{SIM_PORT}"
        self.failed: list[int] = []  # statuses of the bench's own data requests that failed

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
    ) -> tuple[int, Any]:
        """One data request; return (status, JSON body)."""
        async with self.session.request(
            method,
            f"{self.base}/{path.strip('/')}.json",
            params={"ns": NS, "auth": OWNER},
            json=body,
            timeout=HTTP_TIMEOUT,
        ) as resp:
            payload = await resp.json(content_type=None)
            if resp.status >= 300:
                self.failed.append(resp.status)
            return resp.status, payload

    async def get(self, path: str) -> Any:
        """GET a value (None when absent or on an error status)."""
        status, payload = await self.request("GET", path)
        return payload if status < 300 else None

    async def write(self, method: str, path: str, body: Any, *, attempts: int = 3) -> int:
        """PUT/PATCH, retried on 5xx (a fault hook may be armed); return the last status."""
        status = 0
        for _ in range(attempts):
            status, _payload = await self.request(method, path, body)
            if status < 500:
                break
        return status

    async def hook(self, name: str, body: dict[str, Any] | None = None) -> Any:
        """POST /.sim/<name> (faults/... or site/...); return its result."""
        async with self.session.post(
            f"{self.base}/.sim/{name}",
            params={"ns": NS, "auth": OWNER},
            json=body or {},
            timeout=HTTP_TIMEOUT,
        ) as resp:
            payload = await resp.json(content_type=None)
            if resp.status != 200:
                raise HAError(f"sim hook {name}: HTTP {resp.status}: {payload}")
            return payload.get("result")


@dataclass
class Entities:
    """The demo's entity ids, found over HA's registry and states (no assumption on naming)."""

    entry_id: str
    battery: str
    band: str | None
    stream: str | None
    alerts: str | None
    switches: dict[str, str]  # zone node -> switch entity id
    priority: dict[str, str]  # zone node -> priority class
    energy: list[str]
    all: list[str]

    @property
    def critical(self) -> list[str]:
        """The critical zones (the clinic)."""
        return sorted(z for z, p in self.priority.items() if p == "critical")

    @property
    def non_critical(self) -> list[str]:
        """Every zone that emergency shedding switches off."""
        return sorted(z for z, p in self.priority.items() if p != "critical")


async def discover(client: HAClient, token: str) -> Entities:
    """Find the microgrid entities: by device class, domain and subentry, as a user would."""
    async with client.websocket(token) as ws:
        entry_id = (await ws.call("config_entries/get", domain="microgrid"))[0]["entry_id"]
        registry = [
            e for e in await ws.call("config/entity_registry/list") if e["platform"] == "microgrid"
        ]
        states = {s["entity_id"]: s for s in await ws.call("get_states")}
        switches = await zone_switch_map(ws)

    def site_level(domain: str, pred: Callable[[dict[str, Any]], bool]) -> list[str]:
        return sorted(
            e["entity_id"]
            for e in registry
            if e["entity_id"].startswith(f"{domain}.")
            and not e.get("config_subentry_id")
            and pred(states.get(e["entity_id"], {}).get("attributes", {}))
        )

    battery = site_level("sensor", lambda a: a.get("device_class") == "battery")
    band = site_level("sensor", lambda a: "emergency" in (a.get("options") or []))
    stream = site_level("binary_sensor", lambda a: a.get("device_class") == "connectivity")
    alerts = site_level("event", lambda a: True)
    energy = sorted(  # the counters (total_increasing), not the forecast figures
        e["entity_id"]
        for e in registry
        if (attrs := states.get(e["entity_id"], {}).get("attributes", {})).get("device_class")
        == "energy"
        and attrs.get("state_class") == "total_increasing"
    )
    if not battery:
        raise HAError("no battery sensor found among the microgrid entities")
    priority = {
        zone: str(states.get(eid, {}).get("attributes", {}).get("priority", "unknown"))
        for zone, eid in switches.items()
    }
    return Entities(
        entry_id=entry_id,
        battery=battery[0],
        band=band[0] if band else None,
        stream=stream[0] if stream else None,
        alerts=alerts[0] if alerts else None,
        switches=switches,
        priority=priority,
        energy=energy,
        all=sorted(e["entity_id"] for e in registry),
    )


@dataclass
class Watcher:
    """Every state change of the watched entities, stamped on arrival over HA's websocket."""

    entity_ids: list[str]
    events: list[tuple[float, str, str]] = field(default_factory=list)
    state: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    unavailable: list[tuple[float, int]] = field(default_factory=list)  # (t, count) on change
    closed: bool = False
    task: asyncio.Task[None] | None = None
    alert_entity: str | None = None

    def start(self, client: HAClient, token: str) -> None:
        """Subscribe in the background."""
        self.task = asyncio.create_task(self._run(client, token), name="bench watcher")

    async def stop(self) -> None:
        """Unsubscribe (close the websocket)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self, client: HAClient, token: str) -> None:
        try:
            async with client.websocket(token) as ws:
                async for event in ws.subscribe("subscribe_entities", entity_ids=self.entity_ids):
                    self._apply(time.monotonic(), event)
        except (aiohttp.ClientError, HAError, TimeoutError, TypeError, ValueError):
            pass
        finally:
            self.closed = True

    def _apply(self, now: float, event: dict[str, Any]) -> None:
        for eid, full in (event.get("a") or {}).items():
            self.attrs[eid] = dict(full.get("a") or {})
            self._state(now, eid, str(full.get("s")))
        for eid, diff in (event.get("c") or {}).items():
            attrs = self.attrs.setdefault(eid, {})
            for key in (diff.get("-") or {}).get("a") or []:
                attrs.pop(key, None)
            plus = diff.get("+") or {}
            attrs.update(plus.get("a") or {})
            if "s" in plus:
                self._state(now, eid, str(plus["s"]))

    def _state(self, now: float, eid: str, state: str) -> None:
        if eid == self.alert_entity and eid in self.state and state != self.state[eid]:
            self.alerts.append((now, dict(self.attrs.get(eid, {}))))
        self.state[eid] = state
        self.events.append((now, eid, state))
        count = sum(1 for s in self.state.values() if s == "unavailable")
        if not self.unavailable or self.unavailable[-1][1] != count:
            self.unavailable.append((now, count))

    def states_of(self, eid: str, since: float) -> list[str]:
        """The states an entity showed from `since` on (starting with the one it had then)."""
        before = [s for t, e, s in self.events if e == eid and t < since]
        return before[-1:] + [s for t, e, s in self.events if e == eid and t >= since]

    def first(self, eid: str, pred: Callable[[str], bool], since: float) -> float | None:
        """When the entity first showed a state matching pred at or after `since`."""
        return next((t for t, e, s in self.events if e == eid and t >= since and pred(s)), None)

    async def wait(
        self, eid: str, pred: Callable[[str], bool], *, since: float, until: float
    ) -> float | None:
        """Wait (bounded by the monotonic deadline `until`) for a matching state; its time."""
        while True:
            if (found := self.first(eid, pred, since)) is not None:
                return found
            if time.monotonic() >= until or self.closed:
                return None
            await asyncio.sleep(0.05)

    def unavailable_window(self, since: float, until: float) -> tuple[int, float]:
        """(most entities unavailable at once, seconds with at least one) within a window."""
        earlier = [c for t, c in self.unavailable if t < since]
        points = [(since, earlier[-1] if earlier else 0)] + [
            (t, c) for t, c in self.unavailable if since <= t <= until
        ]
        worst = max(c for _, c in points)
        seconds = sum(
            (t_next - t) for (t, c), (t_next, _) in zip(points, [*points[1:], (until, 0)]) if c
        )
        return worst, seconds

    def below(self, limit: float) -> Callable[[str], bool]:
        """A predicate: a numeric state below limit."""
        return lambda s: (n := as_number(s)) is not None and n < limit


@dataclass
class Stack:
    """The running site and Home Assistant, with logged-in clients."""

    opts: Options
    sup: Supervisor
    session: aiohttp.ClientSession
    client: HAClient
    rtdb: RTDB
    hass: Child
    admin_token: str = ""
    household_token: str = ""
    entities: Entities | None = None
    watcher: Watcher | None = None
    restarts: int = 0
    errors: list[str] = field(default_factory=list)  # API failures, for the report's notes

    @property
    def ent(self) -> Entities:
        """The discovered entities."""
        assert self.entities is not None
        return self.entities

    @property
    def watch(self) -> Watcher:
        """The running watcher."""
        assert self.watcher is not None
        return self.watcher

    async def login(self) -> None:
        """Fresh tokens for the admin and the household user; (re)start the watcher."""
        self.admin_token = await self.client.login(username=ADMIN.username, password=ADMIN.password)
        self.household_token = await self.client.login(
            username=HOUSEHOLD.username, password=HOUSEHOLD.password
        )
        # HA 2026.x answers HTTP before the integration has set up its entities (the frontend
        # starts in stage 0): after a restart, wait for them rather than fail on the first look.
        deadline = time.monotonic() + 60
        while True:
            try:
                self.entities = await discover(self.client, self.admin_token)
                break
            except HAError:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.5)
        if self.watcher is not None:
            await self.watcher.stop()
        self.watcher = Watcher(entity_ids=self.ent.all, alert_entity=self.ent.alerts)
        self.watcher.start(self.client, self.admin_token)
        await self.watch.wait(self.ent.battery, bool, since=0, until=time.monotonic() + 30)

    async def ha(self, method: str, path: str, json: Any = None, *, token: str = "") -> Any:
        """A Home Assistant REST call as the admin (or `token`)."""
        return await self.client.rest(method, path, token=token or self.admin_token, json=json)

    async def service(
        self, domain: str, service: str, data: dict[str, Any], *, token: str = ""
    ) -> Any:
        """Call an action over REST; return its response (actions that return one)."""
        suffix = "?return_response" if (domain, service) == ("microgrid", "get_audit_log") else ""
        result = await self.ha(
            "POST", f"/api/services/{domain}/{service}{suffix}", data, token=token
        )
        return (result or {}).get("service_response") if isinstance(result, dict) else result

    async def audit(self) -> list[Any] | None:
        """The whole audit trail (None when the action fails)."""
        try:
            response = await self.service(
                "microgrid",
                "get_audit_log",
                {"config_entry": self.ent.entry_id, "limit": 5000},
            )
        except (HAError, aiohttp.ClientError, TimeoutError) as err:
            self.errors.append(f"get_audit_log: {err}"[:300])
            return None
        entries = (response or {}).get("entries")
        return entries if isinstance(entries, list) else None

    async def diagnostics(self) -> Any:
        """The entry's diagnostics dump (HA's diagnostics REST API), None on failure."""
        try:
            dump = await self.ha("GET", f"/api/diagnostics/config_entry/{self.ent.entry_id}")
        except (HAError, aiohttp.ClientError, TimeoutError):
            return None
        return (dump or {}).get("data")

    def energy(self) -> dict[str, str]:
        """The energy counters' states as the watcher has them."""
        return {eid: self.watch.state.get(eid, "missing") for eid in self.ent.energy}

    async def set_options(self, **values: Any) -> dict[str, Any]:
        """Run the options flow over REST, changing only `values` (the rest keep theirs)."""
        step = await self.ha(
            "POST", "/api/config/config_entries/options/flow", {"handler": self.ent.entry_id}
        )
        current = {
            f["name"]: f["description"]["suggested_value"]
            for f in step.get("data_schema", [])
            if isinstance(f.get("description"), dict) and "suggested_value" in f["description"]
        }
        done = await self.ha(
            "POST", f"/api/config/config_entries/options/flow/{step['flow_id']}", current | values
        )
        if done.get("type") != "create_entry":
            raise HAError(f"options flow: {done.get('errors') or done}")
        return current | values

    async def reload_entry(self) -> None:
        """Reload the microgrid entry (HA's config entries REST API)."""
        await self.ha("POST", f"/api/config/config_entries/entry/{self.ent.entry_id}/reload")

    async def write_soc(self, soc_pct: float, zones: list[str] | None = None) -> int:
        """One multi-path PATCH: these boards (all by default) report soc_pct now."""
        stamp = now_iso()
        body: dict[str, Any] = {}
        for zone in zones or sorted(self.ent.switches):
            body[f"{zone}/batteryPercentage"] = soc_pct
            body[f"{zone}/timestamp"] = stamp
        return await self.rtdb.write("PATCH", "sensors", body)

    def hass_rss(self) -> float | None:
        """Home Assistant's resident memory (MiB)."""
        return rss_mib(self.hass.pid)

    async def kill_and_restart(self, *, timeout_s: float) -> dict[str, float | None]:
        """SIGKILL Home Assistant, start it again on the same config; when it answered."""
        started = time.monotonic()
        self.hass.kill()
        killed = time.monotonic() - started
        self.restarts += 1
        self.hass = spawn_hass(self.opts, self.sup, name=f"hass-restart{self.restarts}")
        with contextlib.suppress(HAError):
            await self.client.wait_ready(timeout_s=timeout_s, alive=self.hass.alive)
        answered = time.monotonic() - started if self.hass.alive() else None
        return {"killed_at": started, "killed_s": killed, "answering_s": answered}


async def start_stack(
    session: aiohttp.ClientSession, *, state_dir: Path, integration_dir: Path
) -> Stack:
    """Bring the demo up the way scripts/demo does (sim run + hass), with the bench's logins."""
    opts = Options(
        isolated=False,
        speed=1.0,
        port=HA_PORT,
        sim_port=SIM_PORT,
        soc_pct=None,
        state_dir=state_dir,
        integration_dir=integration_dir,
        database_url=None,
        ready_timeout_s=180.0,
    )
    reset_dir(state_dir)
    sup = Supervisor(log_dir=state_dir / "logs")
    stack = Stack(
        opts=opts,
        sup=sup,
        session=session,
        client=HAClient(session, f"http://127.0.0.1:{HA_PORT}"),
        rtdb=RTDB(session),
        hass=None,  # type: ignore[arg-type]  # set right below, once bring_up spawned it
    )
    try:
        await bring_up(opts, sup, admin=ADMIN, household=HOUSEHOLD, secret=SECRET)
    except BaseException:
        sup.stop_all()
        raise
    stack.hass = next(c for c in sup.children if c.name == "hass")
    return stack
