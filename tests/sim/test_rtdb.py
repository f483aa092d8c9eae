"""Wire-level behaviour of the loopback RTDB server, driven with aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json

import aiohttp
import pytest

from sim.rtdb import RTDBServer
from sim.sse import SSEEvent, iter_events

OWNER = {"Authorization": "Bearer owner"}
STREAM = {**OWNER, "Accept": "text/event-stream"}


@pytest.fixture
async def server(socket_enabled: None) -> AsyncIterator[RTDBServer]:
    """A started server, stopped after the test."""
    srv = RTDBServer()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session."""
    async with aiohttp.ClientSession() as sess:
        yield sess


class Reader:
    """Collects a stream's events into a queue from a background task."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        """Start reading."""
        self.response = response
        self.events: asyncio.Queue[SSEEvent | None] = asyncio.Queue()
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in iter_events(self.response):
                self.events.put_nowait(event)
        except aiohttp.ClientError as err:
            self.error = err
        self.events.put_nowait(None)  # end of stream

    async def next(self, wait_s: float = 5.0) -> SSEEvent | None:
        """The next event, or None at the end of the stream."""
        return await asyncio.wait_for(self.events.get(), wait_s)

    async def close(self) -> None:
        """Stop reading and release the connection."""
        self.response.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def open_stream(server: RTDBServer, session: aiohttp.ClientSession) -> AsyncIterator:
    """Factory: open a stream at a path; every reader is closed after the test."""
    readers: list[Reader] = []

    async def _open(path: str, headers: dict[str, str] | None = None) -> Reader:
        resp = await session.get(f"{server.url}/{path}.json", headers=headers or STREAM)
        assert resp.status == 200
        reader = Reader(resp)
        readers.append(reader)
        return reader

    yield _open
    for reader in readers:
        await reader.close()


def _data(event: SSEEvent | None) -> object:
    assert event is not None
    return json.loads(event.data)


async def test_rest_verbs_and_namespaces(
    server: RTDBServer, session: aiohttp.ClientSession
) -> None:
    """PUT/GET/PATCH/POST/DELETE work per namespace; ns also comes from the Host label."""
    url = server.url
    resp = await session.put(f"{url}/a/b.json?ns=one", json={"x": 1.5}, headers=OWNER)
    assert (resp.status, await resp.json()) == (200, {"x": 1.5})
    resp = await session.get(f"{url}/a.json?ns=two", headers=OWNER)
    assert await resp.json() is None
    resp = await session.get(
        f"{url}/a.json", headers={**OWNER, "Host": f"one.localhost:{server.port}"}
    )
    assert await resp.json() == {"b": {"x": 1.5}}
    resp = await session.patch(f"{url}/a.json?ns=one", json={"b/y": "s", "c": True}, headers=OWNER)
    assert resp.status == 200
    assert server.get_value("a", ns="one") == {"b": {"x": 1.5, "y": "s"}, "c": True}
    resp = await session.post(f"{url}/log.json?ns=one", json={"n": 1}, headers=OWNER)
    name = (await resp.json())["name"]
    assert server.get_value(f"log/{name}", ns="one") == {"n": 1}
    resp = await session.delete(f"{url}/a.json?ns=one", headers=OWNER)
    assert (resp.status, await resp.json()) == (200, None)
    assert server.get_value("a", ns="one") is None
    assert ("PATCH", "/a.json") in server.requests


async def test_auth_rules(server: RTDBServer, session: aiohttp.ClientSession) -> None:
    """No token / unknown token get 401; added tokens work via query or header until revoked."""
    resp = await session.get(f"{server.url}/a.json")
    assert (resp.status, await resp.json()) == (401, {"error": "Permission denied"})
    resp = await session.get(f"{server.url}/a.json?auth=guess")
    assert (resp.status, await resp.json()) == (401, {"error": "Unauthorized request."})
    server.add_token("t1")
    for suffix, headers in (
        ("?auth=t1", {}),
        ("?access_token=t1", {}),
        ("", {"Authorization": "Bearer t1"}),
    ):
        resp = await session.get(f"{server.url}/a.json{suffix}", headers=headers)
        assert resp.status == 200
    server.revoke_token("t1")
    resp = await session.get(f"{server.url}/a.json?auth=t1")
    assert resp.status == 401
    server.require_auth = False
    resp = await session.get(f"{server.url}/a.json")
    assert resp.status == 200


async def test_bad_input_gets_400(server: RTDBServer, session: aiohttp.ClientSession) -> None:
    """Bad JSON, non-object PATCH, invalid keys and overlapping update paths are refused."""
    resp = await session.put(f"{server.url}/a.json", data=b"{nope", headers=OWNER)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("Invalid data; couldn't parse JSON object")
    resp = await session.patch(f"{server.url}/a.json", json=[1, 2], headers=OWNER)
    assert resp.status == 400
    resp = await session.put(f"{server.url}/a.json", json={"bad.key": 1}, headers=OWNER)
    assert resp.status == 400
    resp = await session.patch(f"{server.url}/a.json", json={"x": 1, "x/y": 2}, headers=OWNER)
    assert resp.status == 400
    resp = await session.get(f"{server.url}/a", headers=OWNER)
    assert resp.status == 404
    assert server.get_value("/") is None


async def test_shallow_silent_and_arrays(
    server: RTDBServer, session: aiohttp.ClientSession
) -> None:
    """shallow=true maps keys to true; print=silent answers 204; dense int keys read as arrays."""
    server.set_value("s", {"a": {"deep": 1}, "b": 2, "list": [10, 20, 30]})
    resp = await session.get(f"{server.url}/s.json?shallow=true", headers=OWNER)
    assert await resp.json() == {"a": True, "b": True, "list": True}
    resp = await session.get(f"{server.url}/s/b.json?shallow=true", headers=OWNER)
    assert await resp.json() == 2
    resp = await session.put(f"{server.url}/s/b.json?print=silent", json=3, headers=OWNER)
    assert resp.status == 204
    assert await resp.read() == b""
    assert server.get_value("s/b") == 3
    assert server.get_value("s/list") == [10, 20, 30]
    server.set_value("sparse", {"0": "a", "7": "b"})
    assert server.get_value("sparse") == {"0": "a", "7": "b"}


async def test_etag_if_match(server: RTDBServer, session: aiohttp.ClientSession) -> None:
    """ETag on request; if-match mismatch answers 412 with the current ETag and value."""
    etag_headers = {**OWNER, "X-Firebase-ETag": "true"}
    resp = await session.get(f"{server.url}/c.json", headers=etag_headers)
    null_etag = resp.headers["ETag"]
    resp = await session.get(f"{server.url}/other.json", headers=etag_headers)
    assert resp.headers["ETag"] == null_etag  # null has one stable etag
    resp = await session.put(
        f"{server.url}/c.json", json=1, headers={**OWNER, "if-match": null_etag}
    )
    assert resp.status == 200
    etag_1 = resp.headers["ETag"]
    assert etag_1 != null_etag
    resp = await session.put(
        f"{server.url}/c.json", json=5, headers={**OWNER, "if-match": null_etag}
    )
    assert resp.status == 412
    assert resp.headers["ETag"] == etag_1
    assert await resp.json() == 1
    assert server.get_value("c") == 1
    # Same content, same etag (a content hash, not a version counter).
    server.set_value("d", 1)
    resp = await session.get(f"{server.url}/d.json", headers=etag_headers)
    assert resp.headers["ETag"] == etag_1


async def test_stream_put_patch_relative_paths(server: RTDBServer, open_stream) -> None:
    """A stream opens with the snapshot and then sees writes below and above it."""
    server.set_value("sensors/Zone1", {"relayState": True})
    reader = await open_stream("sensors")
    assert (await reader.next()).event == "put"
    server.set_value("sensors/Zone2/relayState", False)
    event = await reader.next()
    assert (event.event, _data(event)) == ("put", {"path": "/Zone2/relayState", "data": False})
    server.update_value("sensors", {"Zone1/relayState": False, "Zone3": {"x": 1}})
    event = await reader.next()
    assert event.event == "patch"
    assert _data(event) == {"path": "/", "data": {"Zone1/relayState": False, "Zone3": {"x": 1}}}
    # A write above the stream arrives as a put of the stream's new value.
    server.set_value("/", {"sensors": {"Zone9": 1}, "other": 2})
    event = await reader.next()
    assert _data(event) == {"path": "/", "data": {"Zone9": 1}}
    # A write elsewhere, or one that changes nothing, sends nothing.
    server.set_value("other", 3)
    server.set_value("sensors/Zone9", 1)
    server.set_value("sensors/Zone9", 2)
    assert _data(await reader.next()) == {"path": "/Zone9", "data": 2}


async def test_concurrent_patches_lose_nothing(
    server: RTDBServer, session: aiohttp.ClientSession
) -> None:
    """Many concurrent PATCHes to different children all land."""
    await asyncio.gather(
        *(
            session.patch(f"{server.url}/m.json", json={f"k{i}": i}, headers=OWNER)
            for i in range(40)
        )
    )
    assert server.get_value("m") == {f"k{i}": i for i in range(40)}


async def test_keepalive(server: RTDBServer, open_stream) -> None:
    """An idle stream gets keep-alive events carrying null."""
    server.keepalive_interval_s = 0.05
    reader = await open_stream("x")
    await reader.next()
    event = await reader.next()
    assert (event.event, event.data) == ("keep-alive", "null")


async def test_drop_streams_closes_without_event(server: RTDBServer, open_stream) -> None:
    """drop_streams ends every stream abruptly; nothing else arrives."""
    reader = await open_stream("x")
    await reader.next()
    server.drop_streams()
    assert await reader.next() is None
    assert server.stream_count() == 0


async def test_cancel_streams_by_prefix(server: RTDBServer, open_stream) -> None:
    """cancel_streams sends `cancel` to streams under the prefix only, then closes them."""
    hit = await open_stream("sensors/Zone1")
    miss = await open_stream("commands")
    await hit.next()
    await miss.next()
    server.cancel_streams("sensors")
    event = await hit.next()
    assert (event.event, _data(event)) == ("cancel", "Permission denied")
    assert await hit.next() is None
    assert server.stream_count() == 1
    server.set_value("commands/Zone1", 1)
    assert _data(await miss.next()) == {"path": "/Zone1", "data": 1}


async def test_revoke_token_sends_auth_revoked(server: RTDBServer, open_stream) -> None:
    """Streams opened with a revoked token get `auth_revoked` and close; others stay."""
    server.add_token("t1")
    revoked = await open_stream("a", {"Accept": "text/event-stream", "Authorization": "Bearer t1"})
    kept = await open_stream("a")
    await revoked.next()
    await kept.next()
    server.revoke_token("t1")
    event = await revoked.next()
    assert (event.event, event.data) == ("auth_revoked", "credential is no longer valid")
    assert await revoked.next() is None
    assert server.stream_count() == 1


async def test_stall_streams_delays_everything(server: RTDBServer, open_stream) -> None:
    """During a stall neither events nor keep-alives are sent; queued events follow after."""
    server.keepalive_interval_s = 0.02
    reader = await open_stream("x")
    await reader.next()
    server.stall_streams(0.4)
    server.set_value("x", 1)
    with pytest.raises(TimeoutError):
        await reader.next(wait_s=0.2)
    event = await reader.next()
    assert _data(event) == {"path": "/", "data": 1}


async def test_fail_next(server: RTDBServer, session: aiohttp.ClientSession) -> None:
    """The next N data requests fail with the given status, then service resumes."""
    server.fail_next(2, 500)
    statuses = []
    for _ in range(3):
        resp = await session.get(f"{server.url}/a.json", headers=OWNER)
        statuses.append(resp.status)
    assert statuses == [500, 500, 200]
    with pytest.raises(ValueError):
        server.fail_next(1, 200)


async def test_fault_hooks_over_http(
    server: RTDBServer, session: aiohttp.ClientSession, open_stream
) -> None:
    """POST /.sim/faults/* work with the owner token only."""
    reader = await open_stream("x")
    await reader.next()
    fault = f"{server.url}/.sim/faults"
    resp = await session.post(f"{fault}/fail_next", json={"count": 1, "status": 503})
    assert resp.status == 401
    resp = await session.post(f"{fault}/fail_next", json={"count": 1, "status": 503}, headers=OWNER)
    assert resp.status == 200
    resp = await session.get(f"{server.url}/x.json", headers=OWNER)
    assert resp.status == 503
    resp = await session.post(f"{fault}/stall_streams", json={"seconds": "soon"}, headers=OWNER)
    assert resp.status == 400
    resp = await session.post(f"{fault}/nope", json={}, headers=OWNER)
    assert resp.status == 404
    resp = await session.post(f"{fault}/cancel_streams", json={"path_prefix": "/x"}, headers=OWNER)
    assert resp.status == 200
    assert (await reader.next()).event == "cancel"
    reader2 = await open_stream("y")
    await reader2.next()
    resp = await session.post(f"{fault}/drop_streams", headers=OWNER)
    assert resp.status == 200
    assert await reader2.next() is None
    server.add_token("t2")
    resp = await session.post(f"{fault}/revoke_auth", json={"token": "t2"}, headers=OWNER)
    assert resp.status == 200
    resp = await session.get(f"{server.url}/x.json?auth=t2")
    assert resp.status == 401


async def test_server_values(server: RTDBServer, session: aiohttp.ClientSession) -> None:
    """{".sv": "timestamp"} and {".sv": {"increment": n}} resolve on the server."""
    await session.put(f"{server.url}/n.json", json={".sv": {"increment": 2}}, headers=OWNER)
    await session.put(f"{server.url}/n.json", json={".sv": {"increment": 3}}, headers=OWNER)
    assert server.get_value("n") == 5
    await session.put(f"{server.url}/t.json", json={".sv": "timestamp"}, headers=OWNER)
    assert isinstance(server.get_value("t"), int)


async def test_stop_closes_open_streams(
    socket_enabled: None, session: aiohttp.ClientSession
) -> None:
    """stop() ends open streams promptly even with a long keep-alive."""
    srv = RTDBServer()
    await srv.start()
    resp = await session.get(f"{srv.url}/x.json", headers=STREAM)
    reader = Reader(resp)
    await reader.next()
    await asyncio.wait_for(srv.stop(), 5)
    assert await reader.next() is None
    await reader.close()


def test_loopback_only() -> None:
    """Binding anything but loopback is refused."""
    with pytest.raises(ValueError):
        RTDBServer("0.0.0.0")


@pytest.mark.parametrize(
    "query",
    [
        "limitToFirst=1",
        "orderBy=height",
        'orderBy="$key"&startAt=3',
        'orderBy="h"&limitToFirst=1&limitToLast=1',
        'orderBy="h"&limitToFirst=-1',
        'orderBy="$priority"',
    ],
)
async def test_bad_queries_get_400(
    server: RTDBServer, session: aiohttp.ClientSession, query: str
) -> None:
    """Filters without orderBy, unencoded values and impossible limits are refused."""
    server.set_value("q", {"a": {"h": 1}})
    resp = await session.get(f"{server.url}/q.json?{query}", headers=OWNER)
    assert resp.status == 400
    assert "error" in await resp.json()
