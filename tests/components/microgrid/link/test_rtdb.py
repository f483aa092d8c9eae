"""Tests for the Firebase RTDB link against the loopback RTDB server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import copy
import itertools
import json
import math
import random
import re
from typing import Any

import aiohttp
from aiohttp import web
from hypothesis import given, settings, strategies as st
import pytest

from custom_components.microgrid.link.auth import EmulatorAuth
from custom_components.microgrid.link.errors import (
    FirebaseAuthError,
    FirebaseConnectionError,
    FirebaseError,
    FirebaseInvalidRequest,
    FirebaseInvalidURL,
    SSEDecodeError,
)
from custom_components.microgrid.link.rtdb import (
    FirebaseLink,
    SSEDecoder,
    SSEEvent,
    apply_patch,
    apply_put,
    split_path,
)
from custom_components.microgrid.link.url import DatabaseURL, parse_database_url
from sim.rtdb import RTDBServer

GUARD_S = 10.0  # hang guard only: every wait below ends on an observed event long before this

ZONES = {
    "Zone1": {"batteryPercentage": 85.2, "relayState": True, "outputPower": 38.7},
    "Zone2": {"batteryPercentage": 84.9, "relayState": False, "outputPower": 0.0},
}


# --- helpers -------------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Yield to the loop until predicate() holds (fails the test if it never does)."""
    try:
        async with asyncio.timeout(GUARD_S):
            # Predicates span link, server and recorder state: no single event to await.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


class Recorder:
    """Collects every callback of a link."""

    def __init__(self) -> None:
        self.data: list[tuple[dict[str, Any], set[str]]] = []
        self.connection: list[bool] = []
        self.cancels: list[str] = []
        self.delays: list[float] = []
        self.after_data: Callable[[], None] | None = None  # a test's reaction to each event

    def on_data(self, mirror: dict[str, Any], keys: set[str]) -> None:
        self.data.append((mirror, set(keys)))
        if self.after_data is not None:
            self.after_data()

    @property
    def mirror(self) -> dict[str, Any]:
        """The mirror the link handed over with its last event."""
        return self.data[-1][0] if self.data else {}

    async def sleep(self, seconds: float) -> None:
        """Injected backoff sleep: record the delay, do not wait."""
        self.delays.append(seconds)
        await asyncio.sleep(0)


class SeqAuth:
    """A token provider handing out the next token of a list after each invalidate()."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.index = 0
        self.issued: list[str] = []
        self.invalidations = 0

    async def async_get_token(self) -> str:
        token = self.tokens[min(self.index, len(self.tokens) - 1)]
        self.issued.append(token)
        return token

    def invalidate(self) -> None:
        self.invalidations += 1
        self.index += 1


class CeilingRng(random.Random):
    """Jitter source that always picks the top of the range (makes the ceiling visible)."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
async def server(socket_enabled: None) -> AsyncIterator[RTDBServer]:
    """A loopback RTDB with fast keep-alives."""
    srv = RTDBServer()
    srv.keepalive_interval_s = 0.05
    await srv.start()
    srv.set_value("sensors", ZONES)
    yield srv
    await srv.stop()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session (HA's shared one in production)."""
    async with aiohttp.ClientSession() as sess:
        yield sess


@pytest.fixture
def rec() -> Recorder:
    """Callback recorder."""
    return Recorder()


@pytest.fixture
async def make_link(
    session: aiohttp.ClientSession, server: RTDBServer, rec: Recorder
) -> AsyncIterator[Callable[..., FirebaseLink]]:
    """Build links wired to the recorder; stops every started link at the end."""
    links: list[FirebaseLink] = []

    def _make(**kwargs: Any) -> FirebaseLink:
        kwargs.setdefault("auth", EmulatorAuth())
        kwargs.setdefault("read_timeout_s", 5.0)
        kwargs.setdefault("rng", random.Random(1))
        link = FirebaseLink(
            session,
            kwargs.pop("database_url", server.database_url()),
            kwargs.pop("auth"),
            on_data=rec.on_data,
            on_connection=rec.connection.append,
            on_cancel=rec.cancels.append,
            sleep=rec.sleep,
            **kwargs,
        )
        links.append(link)
        return link

    yield _make
    for link in links:
        await link.async_stop()


async def started(link: FirebaseLink, rec: Recorder) -> FirebaseLink:
    """Start a link and wait for its opening snapshot."""
    link.start(asyncio.get_running_loop().create_task)
    await wait_until(lambda: link.connected and rec.data, "opening snapshot")
    return link


# --- stream --------------------------------------------------------------------------------------


async def test_initial_snapshot(make_link: Callable[..., FirebaseLink], rec: Recorder) -> None:
    """The opening put "/" fills the mirror and reports every key once connected."""
    link = await started(make_link(), rec)
    assert rec.mirror == ZONES
    assert rec.data == [(ZONES, {"Zone1", "Zone2"})]
    assert rec.connection == [True]
    assert link.reconnects == 0
    assert link.last_error is None


async def test_put_patch_delete_propagate(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """Leaf puts, multi-path patches and deletes reach the mirror with the changed keys."""
    link = await started(make_link(), rec)

    await link.async_put("sensors/Zone1/relayState", False)
    await wait_until(lambda: len(rec.data) == 2, "put event")
    assert rec.data[-1][1] == {"Zone1"}
    assert rec.mirror["Zone1"]["relayState"] is False

    server.update_value("sensors", {"Zone2/outputPower": 12.5, "Zone3/relayState": True})
    await wait_until(lambda: len(rec.data) == 3, "patch event")
    assert rec.data[-1][1] == {"Zone2", "Zone3"}
    assert rec.mirror["Zone2"]["outputPower"] == 12.5
    assert rec.mirror["Zone3"] == {"relayState": True}

    await link.async_put("sensors/Zone1", None)
    await wait_until(lambda: len(rec.data) == 4, "delete event")
    assert rec.data[-1][1] == {"Zone1"}
    assert "Zone1" not in rec.mirror
    assert rec.mirror == server.get_value("sensors")


async def test_mirrors_handed_out_are_never_mutated(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """A consumer may keep an earlier mirror: later events build new dicts."""
    await started(make_link(), rec)
    first = rec.data[0][0]
    server.set_value("sensors/Zone1/relayState", False)
    await wait_until(lambda: len(rec.data) == 2, "put event")
    assert first["Zone1"]["relayState"] is True
    assert rec.mirror["Zone1"]["relayState"] is False


async def test_snapshot_larger_than_a_megabyte(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """A >1 MB snapshot arrives as one SSE line; it must not hit aiohttp's line cap."""
    big = {f"Zone{i}": {"note": "x" * 600, "outputPower": float(i)} for i in range(2000)}
    server.set_value("sensors", big)
    assert len(json.dumps(big)) > 1_000_000
    await started(make_link(), rec)
    assert rec.mirror == big
    assert rec.data[0][1] == set(big)


async def test_drop_reconnects_and_resyncs(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """After a dropped connection the new snapshot reports added and vanished keys."""
    link = await started(make_link(), rec)
    server.drop_streams()
    # Written while the link is down (no await between the drop and these writes).
    server.set_value("sensors/Zone1", None)
    server.set_value("sensors/Zone9", {"relayState": True})

    await wait_until(lambda: "Zone9" in rec.mirror and link.connected, "resync")
    assert rec.mirror == {"Zone2": ZONES["Zone2"], "Zone9": {"relayState": True}}
    assert rec.data[-1][1] == {"Zone1", "Zone2", "Zone9"}
    assert rec.connection == [True, False, True]
    assert link.reconnects == 1
    assert len(rec.delays) == 1
    assert 0.0 <= rec.delays[0] <= 1.0
    assert link.last_error is not None


async def test_watchdog_reconnects_a_silent_stream(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """No byte (not even keep-alive) for read_timeout_s: the link reconnects by itself."""
    link = await started(make_link(read_timeout_s=0.3), rec)
    server.stall_streams(30.0)
    await wait_until(lambda: link.reconnects == 1 and link.connected, "watchdog reconnect")
    assert "watchdog" in (link.last_error or "")
    assert rec.connection == [True, False, True]
    server.set_value("sensors/Zone2/relayState", True)
    await wait_until(lambda: rec.mirror["Zone2"]["relayState"] is True, "event after reconnect")


async def test_watchdog_learns_the_keepalive_cadence(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """A stall is noticed within twice the server's keep-alive interval, not the 60 s default."""
    server.keepalive_interval_s = 0.6
    link = await started(make_link(read_timeout_s=60.0), rec)
    assert link.watchdog_s == 60.0  # nothing learned yet
    await wait_until(lambda: link.watchdog_s < 60.0, "cadence learned from keep-alives")
    assert 1.0 <= link.watchdog_s <= 2 * 0.6 * 1.5  # twice the cadence (scheduling slack)
    server.stall_streams(30.0)
    await wait_until(lambda: rec.connection[-1:] == [False], "stall noticed")
    match = re.search(r"stalled: no data for ([0-9.]+) s", link.last_error or "")
    assert match is not None
    assert float(match.group(1)) <= 2 * 0.6 * 1.5  # the learned watchdog fired, not 60 s
    await wait_until(lambda: link.connected, "reconnected after the stall")


async def test_keepalives_keep_the_watchdog_quiet(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """Keep-alives every 0.05 s hold a 0.5 s watchdog off while no data changes."""
    link = await started(make_link(read_timeout_s=0.5), rec)
    opens = len(server.stream_opens)
    await asyncio.sleep(1.5)  # three watchdog periods with only keep-alives
    assert link.connected
    assert link.reconnects == 0
    assert len(server.stream_opens) == opens
    assert len(rec.data) == 1


async def test_auth_revoked_refreshes_token_and_reconnects_at_once(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """`auth_revoked`: invalidate, take the next token, reconnect without backoff."""
    server.add_token("t1")
    server.add_token("t2")
    auth = SeqAuth(["t1", "t2"])
    link = await started(make_link(auth=auth), rec)
    server.revoke_token("t1")

    await wait_until(lambda: link.reconnects == 1 and link.connected, "reconnect after revoke")
    assert auth.invalidations == 1
    assert auth.issued == ["t1", "t2"]
    assert rec.delays == []
    assert rec.connection == [True]  # a routine token refresh is not reported as an outage
    assert rec.data[-1][1] == {"Zone1", "Zone2"}  # the new stream resynced
    assert "credential is no longer valid" in (link.last_error or "")
    server.set_value("sensors/Zone1/relayState", False)
    await wait_until(lambda: rec.mirror["Zone1"]["relayState"] is False, "event on new token")


async def test_repeated_auth_rejection_backs_off(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """A 401 on every token: one immediate retry, then the capped backoff (no tight loop)."""
    auth = SeqAuth(["bad1", "bad2", "bad3", "bad4", "good"])
    server.add_token("good")
    link = make_link(auth=auth, rng=CeilingRng(), backoff_initial_s=1.0, backoff_max_s=4.0)
    link.start(asyncio.get_running_loop().create_task)
    await wait_until(lambda: link.connected, "connected with the good token")
    assert auth.invalidations == 4
    assert rec.delays == [1.0, 2.0, 4.0]  # the first rejection retried at once
    assert rec.connection == [True]


async def test_failed_refresh_after_revoke_reports_the_outage(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """auth_revoked and then a 401 on the new token: the link reports down and backs off."""
    server.add_token("t1")
    server.add_token("t3")  # t2 is refused
    auth = SeqAuth(["t1", "t2", "t3"])
    link = await started(make_link(auth=auth, rng=CeilingRng()), rec)
    server.revoke_token("t1")
    await wait_until(lambda: link.reconnects == 2 and link.connected, "back with t3")
    assert rec.connection == [True, False, True]
    assert rec.delays == [1.0]
    assert auth.issued == ["t1", "t2", "t3"]


async def test_cancel_resubscribes_with_backoff(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """`cancel`: on_cancel(reason), down, then the link re-subscribes by itself after a backoff."""
    link = await started(make_link(rng=CeilingRng()), rec)
    opens = len(server.stream_opens)
    server.cancel_streams("sensors")
    await wait_until(lambda: rec.cancels == ["Permission denied"], "on_cancel")
    server.set_value("sensors/Zone5", {"relayState": True})
    await wait_until(lambda: link.connected and "Zone5" in rec.mirror, "re-subscribed")
    assert rec.connection == [True, False, True]
    assert rec.delays == [1.0]  # backed off before re-subscribing
    assert len(server.stream_opens) == opens + 1
    assert link.cancels == 1
    assert "Permission denied" in (link.last_error or "")


async def test_repeated_cancel_backs_off_without_a_tight_loop(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """A cancel after every opening snapshot: the backoff keeps growing (a synced stream that
    is cancelled does not reset it), so a denying rule cannot make a tight reconnect loop."""
    link = await started(make_link(rng=CeilingRng(), backoff_max_s=8.0), rec)

    def cancel_after_sync() -> None:
        if len(rec.cancels) < 5:
            server.cancel_streams("sensors")

    rec.after_data = cancel_after_sync
    server.cancel_streams("sensors")
    await wait_until(lambda: len(rec.cancels) == 5 and link.connected, "five cancels, then up")
    assert rec.delays == [1.0, 2.0, 4.0, 8.0, 8.0]


async def test_stream_backoff_grows_and_is_capped(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """Failed stream opens back off 1, 2, 4, 8, 8 (ceiling) and reset after success."""
    server.fail_next(6, 503)
    link = make_link(rng=CeilingRng(), backoff_initial_s=1.0, backoff_max_s=8.0)
    link.start(asyncio.get_running_loop().create_task)
    await wait_until(lambda: link.connected, "connected after failures")
    assert rec.delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert "503" in (link.last_error or "")
    assert rec.connection == [True]  # never up before, so no False transition

    server.drop_streams()
    await wait_until(lambda: len(rec.delays) == 7 and link.connected, "reconnect after drop")
    assert rec.delays[-1] == 1.0  # a healthy connection resets the backoff


async def test_stream_backoff_is_jittered(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """Full jitter: each delay lies in [0, min(max, initial * 2**n)] and they differ."""
    server.fail_next(8, 503)
    link = make_link(rng=random.Random(7), backoff_initial_s=0.5, backoff_max_s=4.0)
    link.start(asyncio.get_running_loop().create_task)
    await wait_until(lambda: link.connected, "connected after failures")
    ceilings = [min(4.0, 0.5 * 2**n) for n in range(8)]
    assert len(rec.delays) == 8
    assert all(0.0 <= d <= c for d, c in zip(rec.delays, ceilings))
    assert len(set(rec.delays)) == 8
    assert any(d < c for d, c in zip(rec.delays, ceilings))


async def test_async_stop_returns_while_the_stream_is_silent(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """Stopping never waits for the next byte (firebase-admin's listen() does)."""
    server.keepalive_interval_s = 3600.0
    link = await started(make_link(), rec)
    await wait_until(lambda: server.stream_count("sensors") == 1, "server sees the stream")
    async with asyncio.timeout(GUARD_S):
        await link.async_stop()
    assert not link.connected
    await wait_until(lambda: server.stream_count("sensors") == 0, "server sees it closed")
    assert rec.connection == [True]  # shutdown is not reported as an outage


async def test_callback_errors_do_not_kill_the_stream(
    session: aiohttp.ClientSession, server: RTDBServer
) -> None:
    """A raising on_data is logged; later events still arrive."""
    seen: list[set[str]] = []

    def on_data(mirror: dict[str, Any], keys: set[str]) -> None:
        seen.append(keys)
        raise RuntimeError("consumer bug")

    link = FirebaseLink(session, server.database_url(), EmulatorAuth(), on_data=on_data)
    link.start(asyncio.get_running_loop().create_task)
    try:
        await wait_until(lambda: len(seen) == 1, "snapshot")
        server.set_value("sensors/Zone1/relayState", False)
        await wait_until(lambda: len(seen) == 2, "next event")
        assert link.connected
        assert link.reconnects == 0
    finally:
        await link.async_stop()


async def test_start_twice_keeps_one_stream(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """A second start() while running is ignored."""
    link = await started(make_link(), rec)
    link.start(asyncio.get_running_loop().create_task)
    await asyncio.sleep(0.05)
    assert server.stream_count("sensors") == 1


async def test_eager_start_and_restart_after_stop(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, rec: Recorder
) -> None:
    """HA creates background tasks eagerly; a stopped link can be started again."""
    loop = asyncio.get_running_loop()
    link = make_link()
    link.start(lambda coro: asyncio.eager_task_factory(loop, coro))
    await wait_until(lambda: link.connected, "eager start")
    await link.async_stop()
    server.set_value("sensors/Zone7", {"relayState": False})
    link.start(loop.create_task)
    await wait_until(lambda: link.connected and "Zone7" in rec.mirror, "second start")
    assert link.reconnects == 0


# --- malformed streams (hand-written server) -----------------------------------------------------


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve an app on a loopback port; return the runner and an emulator database URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/?ns=demo"


async def test_malformed_events_are_skipped(
    session: aiohttp.ClientSession, socket_enabled: None, rec: Recorder
) -> None:
    """Bad JSON, a missing path, a non-object patch and unknown events do not end the stream."""
    frames = [
        b": comment line\r\n\r\n",
        b"event: put\r\ndata: {not json\r\n\r\n",
        b'event: put\ndata: {"data": 1}\n\n',
        b'event: patch\ndata: {"path": "/", "data": 5}\n\n',
        b"event: rules_debug\ndata: whatever\n\n",
        b'event: put\ndata: {"path": "/", "data": {"Zone1": {"relayState": true}}}\r',
        b"\n\r\n",  # CRLF split across chunks
        b'event: patch\ndata: {"path": "/Zone1", "data": {"outputPower": 3}}\n\n',
    ]
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for frame in frames:
            await resp.write(frame)
            await asyncio.sleep(0.01)
        await release.wait()
        return resp

    app = web.Application()
    app.router.add_get("/sensors.json", handler)
    runner, url = await serve(app)
    link = FirebaseLink(session, url, EmulatorAuth(), on_data=rec.on_data, sleep=rec.sleep)
    link.start(asyncio.get_running_loop().create_task)
    try:
        await wait_until(lambda: len(rec.data) == 2, "the two valid events")
        assert rec.mirror == {"Zone1": {"relayState": True, "outputPower": 3}}
        assert link.connected
        assert link.reconnects == 0
    finally:
        release.set()
        await link.async_stop()
        await runner.cleanup()


async def test_non_stream_answer_is_a_connection_failure(
    session: aiohttp.ClientSession, socket_enabled: None, rec: Recorder
) -> None:
    """A 200 that is not text/event-stream is retried with backoff, not parsed."""

    async def not_a_stream(request: web.Request) -> web.Response:
        return web.json_response({"a": 1})

    app = web.Application()
    app.router.add_get("/sensors.json", not_a_stream)
    runner, url = await serve(app)
    link = FirebaseLink(session, url, EmulatorAuth(), on_data=rec.on_data, sleep=rec.sleep)
    link.start(asyncio.get_running_loop().create_task)
    try:
        await wait_until(lambda: len(rec.delays) >= 2, "two backoffs")
        assert "not an event stream" in (link.last_error or "")
        assert rec.data == []
    finally:
        await link.async_stop()
        await runner.cleanup()


async def test_redirects_keep_auth_only_on_the_same_host(
    session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """A same-host redirect is followed with auth re-attached; a foreign one is refused."""
    seen: list[dict[str, str]] = []

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/moved/sensors.json?ns=demo")

    async def target(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"Zone1": True})

    async def foreign(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("http://127.0.0.2:1/sensors.json")

    app = web.Application()
    app.router.add_get("/sensors.json", moved)
    app.router.add_get("/moved/sensors.json", target)
    app.router.add_get("/away.json", foreign)
    runner, url = await serve(app)
    link = FirebaseLink(session, url, EmulatorAuth(), on_data=lambda m, k: None)
    try:
        assert await link.async_validate() == ["Zone1"]
        assert seen == [{"ns": "demo", "auth": "owner", "shallow": "true"}]
        with pytest.raises(FirebaseConnectionError, match="redirect"):
            await link.async_get("away")
    finally:
        await runner.cleanup()


async def test_oauth_tokens_travel_in_a_header_not_the_url(
    session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """Real Firebase: Bearer header (kept out of URLs and logs), no ns/auth query."""
    seen: list[tuple[dict[str, str], str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((dict(request.query), request.headers.get("Authorization")))
        return web.json_response({"Zone1": True})

    app = web.Application()
    app.router.add_get("/sensors.json", handler)
    runner, url = await serve(app)
    link = FirebaseLink(session, url, SeqAuth(["ya29.abc"]), on_data=lambda m, k: None)
    # Point the https code path at the loopback server (TLS is not what is tested here).
    link._db = DatabaseURL(base=url.split("/?")[0], namespace="demo", emulator=False)
    try:
        assert await link.async_validate() == ["Zone1"]
        assert seen == [({"shallow": "true"}, "Bearer ya29.abc")]
    finally:
        await runner.cleanup()


# --- REST ----------------------------------------------------------------------------------------


async def test_rest_round_trip(make_link: Callable[..., FirebaseLink], server: RTDBServer) -> None:
    """put (silent), get and shallow validate against the server."""
    link = make_link()
    await link.async_put("commands/Zone1", {"command": "ON", "seq": 2})
    await link.async_put("commands/Zone2", {"command": "OFF"})
    assert await link.async_get("commands/Zone1") == {"command": "ON", "seq": 2}
    assert await link.async_get("commands", shallow=True) == {"Zone1": True, "Zone2": True}
    assert await link.async_get("nothing/here") is None
    assert await link.async_validate() == ["Zone1", "Zone2"]
    puts = [r for r in server.requests if r[0] == "PUT"]
    assert puts == [("PUT", "/commands/Zone1.json"), ("PUT", "/commands/Zone2.json")]


async def test_validate_on_an_empty_database(
    make_link: Callable[..., FirebaseLink], server: RTDBServer
) -> None:
    """No sensors yet: validate succeeds with no nodes."""
    server.set_value("sensors", None)
    assert await make_link().async_validate() == []


async def test_rest_server_error_is_a_connection_error(
    make_link: Callable[..., FirebaseLink], server: RTDBServer
) -> None:
    """fail_next(503) -> FirebaseConnectionError (no retry); the next call works."""
    link = make_link()
    server.fail_next(1, 503)
    with pytest.raises(FirebaseConnectionError, match="503"):
        await link.async_put("commands/Zone1", {"command": "ON"})
    assert len(server.requests) == 1
    await link.async_put("commands/Zone1", {"command": "ON"})
    assert server.get_value("commands/Zone1") == {"command": "ON"}


async def test_rest_unreachable_is_a_connection_error(session: aiohttp.ClientSession) -> None:
    """Nothing listening: FirebaseConnectionError, with no token in the message."""
    srv = RTDBServer()
    await srv.start()
    url = srv.database_url()
    await srv.stop()
    link = FirebaseLink(session, url, EmulatorAuth("s3cret"), on_data=lambda m, k: None)
    with pytest.raises(FirebaseConnectionError) as err:
        await link.async_get("sensors")
    assert "s3cret" not in str(err.value)


async def test_rest_401_retries_once_with_a_fresh_token(
    make_link: Callable[..., FirebaseLink], server: RTDBServer
) -> None:
    """The first 401 invalidates the token and retries; the second succeeds."""
    server.add_token("good")
    auth = SeqAuth(["stale", "good"])
    link = make_link(auth=auth)
    await link.async_put("commands/Zone1", {"command": "OFF"})
    assert auth.invalidations == 1
    assert auth.issued == ["stale", "good"]
    assert server.requests == [("PUT", "/commands/Zone1.json")] * 2
    assert server.get_value("commands/Zone1") == {"command": "OFF"}


async def test_rest_401_twice_is_an_auth_error(
    make_link: Callable[..., FirebaseLink], server: RTDBServer
) -> None:
    """Still 401 after one retry: FirebaseAuthError; exactly two requests sent."""
    auth = SeqAuth(["bad1", "bad2", "bad3"])
    link = make_link(auth=auth)
    with pytest.raises(FirebaseAuthError, match="401"):
        await link.async_validate()
    assert auth.invalidations == 1
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, FirebaseInvalidRequest),
        (403, FirebaseAuthError),
        (404, FirebaseInvalidURL),
        (412, FirebaseError),
        (429, FirebaseConnectionError),
        (500, FirebaseConnectionError),
    ],
)
async def test_rest_status_mapping(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, status: int, error: type
) -> None:
    """Each error status maps to the error the caller can act on."""
    server.fail_next(1, status)
    with pytest.raises(error, match=str(status)):
        await make_link().async_get("sensors")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("sensors/Zone.1", 1),
        ("sensors/Zone#1", 1),
        ("sensors//Zone1", 1),
        ("sensors/$x", 1),
        ("sensors/Zone1", math.nan),
        ("sensors/Zone1", {"a": object()}),
    ],
)
async def test_bad_writes_are_refused_before_sending(
    make_link: Callable[..., FirebaseLink], server: RTDBServer, path: str, value: Any
) -> None:
    """Invalid keys or values raise FirebaseInvalidRequest and send nothing."""
    with pytest.raises(FirebaseInvalidRequest):
        await make_link().async_put(path, value)
    assert server.requests == []


def test_bad_settings_raise(session: aiohttp.ClientSession) -> None:
    """Nonsense timeouts, backoff, stream path or URL fail at construction."""
    url = "http://127.0.0.1:9000/?ns=demo"

    def build(**kw: Any) -> FirebaseLink:
        return FirebaseLink(session, kw.pop("url", url), EmulatorAuth(), on_data=print, **kw)

    with pytest.raises(ValueError):
        build(backoff_initial_s=10.0, backoff_max_s=1.0)
    with pytest.raises(ValueError):
        build(read_timeout_s=0)
    with pytest.raises(FirebaseInvalidRequest):
        build(stream_path="a.b")
    with pytest.raises(FirebaseInvalidURL):
        build(url="http://example.com/?ns=demo")


# --- pure parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base", "namespace", "emulator"),
    [
        ("https://my-site.firebaseio.com", "https://my-site.firebaseio.com", "my-site", False),
        ("https://my-site.firebaseio.com/", "https://my-site.firebaseio.com", "my-site", False),
        (
            " https://site-default-rtdb.europe-west1.firebasedatabase.app/ ",
            "https://site-default-rtdb.europe-west1.firebasedatabase.app",
            "site-default-rtdb",
            False,
        ),
        ("http://127.0.0.1:9000/?ns=demo", "http://127.0.0.1:9000", "demo", True),
        ("http://127.0.0.1:9000?ns=demo", "http://127.0.0.1:9000", "demo", True),
        ("http://localhost:9000/?ns=site-1", "http://localhost:9000", "site-1", True),
        ("http://[::1]:9000/?ns=demo", "http://[::1]:9000", "demo", True),
    ],
)
def test_parse_database_url_accepts(url: str, base: str, namespace: str, emulator: bool) -> None:
    """Real Firebase over https and loopback emulators over http."""
    parsed = parse_database_url(url)
    assert (parsed.base, parsed.namespace, parsed.emulator) == (base, namespace, emulator)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "my-site.firebaseio.com",
        "http://my-site.firebaseio.com",  # real Firebase only over https
        "https://firebaseio.com",
        "https://a.b.firebaseio.com",
        "https://my-site.firebaseio.com/sensors",
        "https://my-site.firebaseio.com:8443",
        "https://my-site.firebaseio.com/?ns=other",
        "https://my-site.firebaseio.com.evil.net",
        "https://site.firebasedatabase.app",
        "https://My_Site.firebaseio.com",
        "https://127.0.0.1:9000/?ns=demo",
        "http://127.0.0.1:9000/",  # no namespace
        "http://127.0.0.1:9000/?ns=",
        "http://127.0.0.1:9000/?ns=a&ns=b",
        "http://127.0.0.1:9000/?ns=demo&auth=owner",
        "http://192.168.1.10:9000/?ns=demo",  # http only on loopback
        "http://example.com:9000/?ns=demo",
        "ftp://127.0.0.1/?ns=demo",
        "http://user:pw@127.0.0.1:9000/?ns=demo",
    ],
)
def test_parse_database_url_rejects(url: str) -> None:
    """Anything else is FirebaseInvalidURL."""
    with pytest.raises(FirebaseInvalidURL):
        parse_database_url(url)


def test_parse_database_url_rejects_non_strings() -> None:
    """A non-string is rejected, not crashed on."""
    with pytest.raises(FirebaseInvalidURL):
        parse_database_url(None)  # type: ignore[arg-type]


def test_split_path() -> None:
    """Slashes at either end are ignored; the root is ()."""
    assert split_path("/sensors/Zone1/") == ("sensors", "Zone1")
    assert split_path("") == ()
    assert split_path("/") == ()
    with pytest.raises(FirebaseInvalidRequest):
        split_path("a/b[0]")
    with pytest.raises(FirebaseInvalidRequest):
        split_path(3)  # type: ignore[arg-type]


def test_apply_put_semantics() -> None:
    """put "/" replaces (all old and new keys change); leaf put sets; null deletes and prunes."""
    mirror = {"A": {"x": 1, "y": 2}, "B": {"x": 3}}
    new, keys = apply_put(mirror, "/", {"B": {"x": 4}, "C": 1})
    assert new == {"B": {"x": 4}, "C": 1}
    assert keys == {"A", "B", "C"}
    new, keys = apply_put(mirror, "/A/x", 9)
    assert new == {"A": {"x": 9, "y": 2}, "B": {"x": 3}} and keys == {"A"}
    new, keys = apply_put(mirror, "/B/x", None)
    assert new == {"A": {"x": 1, "y": 2}} and keys == {"B"}
    new, keys = apply_put(mirror, "/A/x/deep", True)  # a leaf becomes an object
    assert new["A"] == {"x": {"deep": True}, "y": 2}
    new, keys = apply_put(mirror, "/", None)
    assert new == {} and keys == {"A", "B"}
    assert mirror == {"A": {"x": 1, "y": 2}, "B": {"x": 3}}  # inputs untouched


def test_apply_patch_semantics() -> None:
    """patch merges children at path; nested keys and nulls apply; others survive."""
    mirror = {"A": {"x": 1, "y": 2}, "B": {"x": 3}}
    new, keys = apply_patch(mirror, "/A", {"x": 5, "y": None, "z": {"q": 1}})
    assert new == {"A": {"x": 5, "z": {"q": 1}}, "B": {"x": 3}} and keys == {"A"}
    new, keys = apply_patch(mirror, "/", {"B/x": 7, "C": {"k": 1}, "A": None})
    assert new == {"B": {"x": 7}, "C": {"k": 1}} and keys == {"A", "B", "C"}
    assert new["B"] is not mirror["B"]
    assert mirror == {"A": {"x": 1, "y": 2}, "B": {"x": 3}}


def test_apply_put_into_an_array() -> None:
    """Arrays are objects keyed by index once a child is written."""
    new, _ = apply_put({"A": [1, None, 3]}, "/A/1", 2)
    assert new == {"A": {"0": 1, "1": 2, "2": 3}}


def _reference_set(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    """Naive in-place model of the database: set, delete, prune empty parents."""
    if len(keys) == 1:
        if value is None or value == {}:
            tree.pop(keys[0], None)
        else:
            tree[keys[0]] = copy.deepcopy(value)
        return
    child = tree.get(keys[0])
    if not isinstance(child, dict):
        child = {}
    _reference_set(child, keys[1:], value)
    if child:
        tree[keys[0]] = child
    else:
        tree.pop(keys[0], None)


_KEY = st.sampled_from(["A", "B", "C"])
_LEAF = st.one_of(st.none(), st.integers(-3, 3), st.booleans())
_VALUE = st.recursive(_LEAF, lambda inner: st.dictionaries(_KEY, inner, max_size=3), max_leaves=6)
_PATH = st.lists(_KEY, min_size=1, max_size=3)


@settings(max_examples=80, deadline=None)
@given(
    start=st.dictionaries(_KEY, _VALUE, max_size=3),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("put"), _PATH, _VALUE),
            st.tuples(st.just("patch"), st.lists(_KEY, max_size=2), st.dictionaries(_KEY, _VALUE)),
        ),
        max_size=5,
    ),
)
def test_mirror_matches_a_naive_model(
    start: dict[str, Any], ops: list[tuple[str, list[str], Any]]
) -> None:
    """put/patch agree with an in-place model and never touch an earlier mirror."""
    model: dict[str, Any] = {}
    for key, value in start.items():
        _reference_set(model, [key], value)
    mirror, _ = apply_put({}, "/", copy.deepcopy(model))
    for kind, keys, value in ops:
        before, frozen = mirror, copy.deepcopy(mirror)
        path = "/" + "/".join(keys)
        if kind == "put":
            mirror, changed = apply_put(mirror, path, value)
            _reference_set(model, keys, value)
            assert changed == {keys[0]}
        else:
            mirror, changed = apply_patch(mirror, path, value)
            for child, child_value in value.items():
                _reference_set(model, [*keys, child], child_value)
            assert changed == ({keys[0]} if keys and value else set(value))
        assert mirror == model
        assert before == frozen


def test_sse_decoder_fields_and_comments() -> None:
    """Event name, multi-line data, comments and a default event name."""
    decoder = SSEDecoder()
    events = decoder.feed(
        b': hello\n\nevent: put\ndata: {"a":\ndata: 1}\n\ndata:raw\n\nevent: keep-alive\n'
    )
    assert events == [
        SSEEvent(event="put", data='{"a":\n1}'),
        SSEEvent(event="message", data="raw"),
    ]
    assert decoder.feed(b"data: null\n\n") == [SSEEvent(event="keep-alive", data="null")]


def test_sse_decoder_crlf_split_between_chunks() -> None:
    """A CRLF cut between \\r and \\n is one line end, not a blank line."""
    decoder = SSEDecoder()
    assert decoder.feed(b"event: put\r") == []
    assert decoder.feed(b"\ndata: 1\r") == []
    assert decoder.feed(b"\n\r") == [SSEEvent(event="put", data="1")]
    assert decoder.feed(b"\nevent: patch\rdata: 2\r\r") == [SSEEvent(event="patch", data="2")]


def test_sse_decoder_caps_an_endless_event() -> None:
    """An event that never ends is an error, not unbounded memory."""
    decoder = SSEDecoder(max_event_bytes=1000)
    decoder.feed(b"event: put\ndata: " + b"x" * 900)
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"x" * 200)


_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["put", "patch", "keep-alive", "cancel"]),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
            max_size=40,
        ),
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(events=_EVENTS, cuts=st.lists(st.integers(min_value=0, max_value=400)), crlf=st.booleans())
def test_sse_decoder_is_independent_of_chunking(
    events: list[tuple[str, str]], cuts: list[int], crlf: bool
) -> None:
    """However the bytes are split, the same events come out."""
    nl = "\r\n" if crlf else "\n"
    stream = "".join(f"event: {name}{nl}data: {data}{nl}{nl}" for name, data in events).encode()
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = SSEDecoder()
    out: list[SSEEvent] = []
    for start, end in itertools.pairwise(bounds):
        out.extend(decoder.feed(stream[start:end]))
    expected = [SSEEvent(event=name, data=data) for name, data in events]
    assert out == expected
    byte_by_byte = SSEDecoder()
    assert [e for i in range(len(stream)) for e in byte_by_byte.feed(stream[i : i + 1])] == expected
