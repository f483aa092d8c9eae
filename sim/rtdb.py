"""A loopback server speaking the Firebase Realtime Database REST and streaming protocol.

Good enough that the unmodified firebase-admin SDK (emulator mode, token "owner") works against
it, with fault hooks (drop, cancel, revoke, stall, fail) for tests and the demo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
import ipaddress
import json
import logging
import time
from typing import Any

from aiohttp import web

from .tree import (
    UNSET,
    InvalidDataError,
    Json,
    Path,
    PushIdGenerator,
    apply_update,
    etag_of,
    get_at,
    is_prefix,
    join_path,
    normalize,
    parse_updates,
    query,
    render,
    set_at,
    shallow,
    split_path,
)

_LOGGER = logging.getLogger(__name__)

OWNER_TOKEN = "owner"
DEFAULT_NS = "demo"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
BAD_JSON = "Invalid data; couldn't parse JSON object, array, or value."
AUTH_REVOKED_DATA = "credential is no longer valid"  # sent bare: firebase-admin compares it raw
CANCEL_DATA = "Permission denied"
CONTROL_PREFIX = "/.sim/"
REQUEST_LOG_MAX = 100_000

type ControlHandler = Callable[[dict[str, Any]], Any | Awaitable[Any]]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sse_frame(event: str, data: Any, *, raw: bool = False) -> bytes:
    """Encode one server-sent event (data is JSON unless `raw`)."""
    payload = data if raw else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


KEEPALIVE_FRAME = sse_frame("keep-alive", None)


class _Close:
    """Queue sentinel: end the stream (gracefully, or by dropping the connection)."""

    def __init__(self, *, abrupt: bool) -> None:
        """Remember how to close."""
        self.abrupt = abrupt


@dataclass(eq=False, kw_only=True)
class _Stream:
    """One open SSE stream."""

    ns: str
    labels: Path
    token: str | None
    request: web.Request
    queue: asyncio.Queue[bytes | _Close] = field(default_factory=asyncio.Queue)
    stalled_until: float = 0.0
    task: asyncio.Task[Any] | None = None


class _HTTPError(Exception):
    """Answer the request with this status and {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        """Keep status and message."""
        super().__init__(message)
        self.status = status
        self.message = message


class RTDBServer:
    """An in-process Firebase RTDB look-alike on aiohttp.web (loopback only)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        default_ns: str = DEFAULT_NS,
    ) -> None:
        """Configure; nothing binds before start()."""
        if not is_loopback(host):
            raise ValueError(f"RTDBServer binds loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.require_auth = True
        self.keepalive_interval_s = 30.0
        self.requests: list[tuple[str, str]] = []
        self.stream_opens: list[str] = []
        self._clock = clock
        self._default_ns = default_ns
        self._roots: dict[str, Json] = {}
        self._tokens: set[str] = set()
        self._streams: set[_Stream] = set()
        self._fail_count = 0
        self._fail_status = 503
        self._push_ids = PushIdGenerator()
        self._runner: web.AppRunner | None = None
        self._controls: dict[str, ControlHandler] = {
            "faults/drop_streams": lambda args: self.drop_streams(),
            "faults/cancel_streams": lambda args: self.cancel_streams(
                str(args.get("path_prefix", ""))
            ),
            "faults/revoke_auth": lambda args: self.revoke_token(str(args["token"])),
            "faults/stall_streams": lambda args: self.stall_streams(float(args["seconds"])),
            "faults/fail_next": lambda args: self.fail_next(
                int(args["count"]), int(args.get("status", 503))
            ),
        }

    # ----- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:9000."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def database_url(self, ns: str = DEFAULT_NS) -> str:
        """The emulator-style database URL firebase-admin accepts."""
        return f"{self.url}/?ns={ns}"

    async def start(self) -> None:
        """Bind and serve; self.port holds the real port afterwards."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # the only way to learn an ephemeral port
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        _LOGGER.debug("RTDB server listening on %s", self.url)

    async def stop(self) -> None:
        """Close every stream at once, then the listener."""
        for stream in list(self._streams):
            self._abort(stream)
            if stream.task is not None:
                stream.task.cancel()
        self._streams.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----- direct data access ----------------------------------------------------------------

    def get_value(self, path: str, ns: str = DEFAULT_NS) -> Any:
        """Return the rendered value at path (None when absent)."""
        return render(get_at(self._roots.get(ns), split_path(path)))

    def set_value(self, path: str, value: Any, ns: str = DEFAULT_NS) -> None:
        """Replace the value at path (None deletes), notifying streams."""
        self._put(ns, split_path(path), value)

    def update_value(self, path: str, value: dict, ns: str = DEFAULT_NS) -> None:
        """Apply a multi-path update at path (PATCH semantics), notifying streams."""
        if not isinstance(value, dict):
            raise InvalidDataError("update_value needs a dict")
        self._patch(ns, split_path(path), value)

    # ----- auth ------------------------------------------------------------------------------

    def add_token(self, token: str) -> None:
        """Accept this token from now on (besides the admin token "owner")."""
        self._tokens.add(token)

    def revoke_token(self, token: str) -> None:
        """Stop accepting the token; its open streams get `auth_revoked` and close.

        "owner" stays valid (emulator convention), but its streams still get the event, so a
        client's token-refresh path can be exercised against the emulator token too.
        """
        self._tokens.discard(token)
        for stream in list(self._streams):
            if stream.token == token:
                stream.queue.put_nowait(sse_frame("auth_revoked", AUTH_REVOKED_DATA, raw=True))
                stream.queue.put_nowait(_Close(abrupt=False))
                self._streams.discard(stream)

    def _authorized(self, token: str | None) -> bool:
        """True when the token may read and write everything."""
        return token == OWNER_TOKEN or (token is not None and token in self._tokens)

    # ----- fault hooks -----------------------------------------------------------------------

    def drop_streams(self) -> None:
        """Close every open stream's connection abruptly (no event)."""
        for stream in list(self._streams):
            self._abort(stream)
            stream.queue.put_nowait(_Close(abrupt=True))
        self._streams.clear()

    def cancel_streams(self, path_prefix: str = "") -> None:
        """Send `cancel` ("Permission denied") to streams at or under path_prefix, then close."""
        prefix = split_path(path_prefix)
        for stream in list(self._streams):
            if is_prefix(prefix, stream.labels):
                stream.queue.put_nowait(sse_frame("cancel", CANCEL_DATA))
                stream.queue.put_nowait(_Close(abrupt=False))
                self._streams.discard(stream)

    def stall_streams(self, seconds: float) -> None:
        """Send nothing at all (not even keep-alive) on the open streams for `seconds`."""
        until = asyncio.get_running_loop().time() + max(0.0, seconds)
        for stream in self._streams:
            stream.stalled_until = until

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` data requests (REST or stream opens) with `status`."""
        if count < 0 or not 400 <= status <= 599:
            raise ValueError("fail_next needs count >= 0 and an error status 400-599")
        self._fail_count = count
        self._fail_status = status

    def add_control(self, name: str, handler: ControlHandler) -> None:
        """Expose handler(args) as POST /.sim/<name> (owner token only)."""
        self._controls[name.strip("/")] = handler

    def stream_count(self, path_prefix: str = "", ns: str | None = None) -> int:
        """How many streams are open at or under path_prefix."""
        prefix = split_path(path_prefix)
        return sum(
            1 for s in self._streams if is_prefix(prefix, s.labels) and (ns is None or s.ns == ns)
        )

    # ----- HTTP ------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route control, stream and REST requests; turn errors into RTDB-style answers."""
        try:
            if request.path.startswith(CONTROL_PREFIX):
                return await self._handle_control(request)
            return await self._handle_data(request)
        except _HTTPError as err:
            return _json_response(err.status, {"error": err.message})
        except InvalidDataError as err:
            return _json_response(400, {"error": str(err)})

    async def _handle_control(self, request: web.Request) -> web.Response:
        """POST /.sim/<name> with a JSON object of arguments."""
        if request.method != "POST":
            raise _HTTPError(405, "Control endpoints take POST")
        if _token_of(request) != OWNER_TOKEN:
            raise _HTTPError(401, "Unauthorized request.")
        name = request.path[len(CONTROL_PREFIX) :].strip("/")
        handler = self._controls.get(name)
        if handler is None:
            raise _HTTPError(404, f"Unknown control {name!r}")
        body = await request.read()
        try:
            args = json.loads(body) if body.strip() else {}
        except ValueError as err:
            raise _HTTPError(400, BAD_JSON) from err
        if not isinstance(args, dict):
            raise _HTTPError(400, "Control arguments must be a JSON object")
        try:
            result = handler(args)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
        except (KeyError, TypeError, ValueError) as err:
            raise _HTTPError(400, f"Bad arguments for {name}: {err}") from err
        return _json_response(200, {"ok": True, "result": result})

    async def _handle_data(self, request: web.Request) -> web.StreamResponse:
        """Serve /<path>.json: REST verbs and SSE streams."""
        method = _effective_method(request)
        if len(self.requests) >= REQUEST_LOG_MAX:
            del self.requests[: REQUEST_LOG_MAX // 2]  # a long demo run must not grow forever
        self.requests.append((method, request.path))
        if self._fail_count > 0:
            self._fail_count -= 1
            raise _HTTPError(self._fail_status, "Simulated failure")
        if not request.path.endswith(".json"):
            raise _HTTPError(404, "Paths end in .json (e.g. /sensors.json)")
        labels = split_path(request.path[: -len(".json")])
        ns = self._namespace(request)
        token = _token_of(request)
        if self.require_auth and not self._authorized(token):
            raise _HTTPError(401, "Permission denied" if token is None else "Unauthorized request.")
        streaming = "text/event-stream" in request.headers.get("Accept", "")
        if method == "GET" and streaming:
            return await self._serve_stream(request, ns, labels, token)
        body = await request.read() if method in {"PUT", "PATCH", "POST"} else b""
        # From here on no await: the tree is read and written in one step.
        return self._handle_rest(request, method, ns, labels, body)

    def _handle_rest(
        self, request: web.Request, method: str, ns: str, labels: Path, body: bytes
    ) -> web.Response:
        """Answer one REST request synchronously."""
        params = request.query
        want_etag = request.headers.get("X-Firebase-ETag", "").lower() == "true"
        silent = params.get("print") == "silent"
        root = self._roots.get(ns)
        current = get_at(root, labels)
        headers: dict[str, str] = {}
        if method == "GET":
            is_shallow = params.get("shallow") == "true"
            if is_shallow and want_etag:
                raise _HTTPError(400, "shallow and ETag cannot be combined")
            if_none_match = request.headers.get("if-none-match")
            if if_none_match is not None and if_none_match == etag_of(current):
                return web.Response(status=304, headers={"ETag": etag_of(current)})
            if want_etag:
                headers["ETag"] = etag_of(current)
            filtered = _apply_query(current, params)
            value = shallow(filtered) if is_shallow else render(filtered)
            return _json_response(204 if silent else 200, value, headers, params.get("print"))
        if method not in {"PUT", "PATCH", "POST", "DELETE"}:
            raise _HTTPError(405, f"Method {method} not supported")
        if_match = request.headers.get("if-match")
        if if_match is not None and if_match != etag_of(current):
            return _json_response(412, render(current), {"ETag": etag_of(current)})
        data = _parse_body(body) if method != "DELETE" else None
        if method in {"PUT", "DELETE"}:
            self._put(ns, labels, data)
            result: Json = render(get_at(self._roots.get(ns), labels))
        elif method == "PATCH":
            if not isinstance(data, dict):
                raise _HTTPError(400, BAD_JSON)
            self._patch(ns, labels, data)
            result = data
        else:
            push_id = self._push_ids.next_id(self._now_ms())
            self._put(ns, (*labels, push_id), data)
            result = {"name": push_id}
        if want_etag or if_match is not None:
            headers["ETag"] = etag_of(get_at(self._roots.get(ns), labels))
        return _json_response(204 if silent else 200, result, headers, params.get("print"))

    def _namespace(self, request: web.Request) -> str:
        """The `ns` query parameter, else the Host's first label (emulator style)."""
        ns = request.query.get("ns")
        if ns:
            return ns
        host = (request.host or "").rsplit(":", 1)[0].strip("[]")
        if host and not is_loopback(host) and "." in host:
            return host.split(".", 1)[0]
        return self._default_ns

    # ----- writes and notification -----------------------------------------------------------

    def _now_ms(self) -> int:
        """Server time in milliseconds."""
        return int(self._clock() * 1000)

    def _put(self, ns: str, labels: Path, value: Any) -> None:
        """Replace the value at labels and notify streams (synchronous)."""
        old_root = self._roots.get(ns)
        stored = normalize(value, now_ms=self._now_ms(), current=get_at(old_root, labels))
        new_root = set_at(old_root, labels, stored)
        self._roots[ns] = new_root
        self._notify(ns, labels, old_root, new_root, patch_keys=None)

    def _patch(self, ns: str, labels: Path, updates: dict[str, Any]) -> None:
        """Apply a multi-path update at labels and notify streams (synchronous)."""
        keys = [join_path(labels_) for labels_, _ in parse_updates(updates)]
        old_root = self._roots.get(ns)
        new_root = apply_update(old_root, labels, updates, now_ms=self._now_ms())
        self._roots[ns] = new_root
        self._notify(ns, labels, old_root, new_root, patch_keys=keys)

    def _notify(
        self,
        ns: str,
        labels: Path,
        old_root: Json,
        new_root: Json,
        *,
        patch_keys: list[str] | None,
    ) -> None:
        """Queue put/patch events for every stream that sees a change."""
        old_at = get_at(old_root, labels)
        new_at = get_at(new_root, labels)
        for stream in self._streams:
            if stream.ns != ns:
                continue
            if is_prefix(stream.labels, labels):
                if old_at is new_at or old_at == new_at:
                    continue
                rel = join_path(labels[len(stream.labels) :])
                if patch_keys is None:
                    frame = sse_frame("put", {"path": rel, "data": render(new_at)})
                else:
                    data = {
                        key.lstrip("/"): render(get_at(new_at, split_path(key)))
                        for key in patch_keys
                    }
                    frame = sse_frame("patch", {"path": rel, "data": data})
                stream.queue.put_nowait(frame)
            elif is_prefix(labels, stream.labels):
                old_s = get_at(old_root, stream.labels)
                new_s = get_at(new_root, stream.labels)
                if old_s is not new_s and old_s != new_s:
                    stream.queue.put_nowait(sse_frame("put", {"path": "/", "data": render(new_s)}))

    # ----- streams ---------------------------------------------------------------------------

    async def _serve_stream(
        self, request: web.Request, ns: str, labels: Path, token: str | None
    ) -> web.StreamResponse:
        """Open an SSE stream: full snapshot first, then every change under labels."""
        if len(self.stream_opens) >= REQUEST_LOG_MAX:
            del self.stream_opens[: REQUEST_LOG_MAX // 2]
        self.stream_opens.append(join_path(labels))
        stream = _Stream(
            ns=ns, labels=labels, token=token, request=request, task=asyncio.current_task()
        )
        # Snapshot and registration in one synchronous step: no write can fall in between.
        snapshot = render(get_at(self._roots.get(ns), labels))
        stream.queue.put_nowait(sse_frame("put", {"path": "/", "data": snapshot}))
        self._streams.add(stream)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "Access-Control-Allow-Origin": "*",
            }
        )
        try:
            await response.prepare(request)
            await self._pump(stream, response)
        except ConnectionError:
            pass
        finally:
            self._streams.discard(stream)
        return response

    async def _pump(self, stream: _Stream, response: web.StreamResponse) -> None:
        """Write queued frames and keep-alives until the stream is closed."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                item = await asyncio.wait_for(stream.queue.get(), self.keepalive_interval_s)
            except TimeoutError:
                item = KEEPALIVE_FRAME
            stall_s = stream.stalled_until - loop.time()
            if stall_s > 0:
                await asyncio.sleep(stall_s)
            if isinstance(item, _Close):
                if item.abrupt:
                    self._abort(stream)
                    raise ConnectionResetError("stream dropped")
                await response.write_eof()
                return
            await response.write(item)

    @staticmethod
    def _abort(stream: _Stream) -> None:
        """Close the stream's TCP connection without a word."""
        transport = stream.request.transport
        if transport is not None:
            transport.abort()


def _effective_method(request: web.Request) -> str:
    """The HTTP method, honouring X-HTTP-Method-Override on POST (as the RTDB does)."""
    override = request.headers.get("X-HTTP-Method-Override") or request.query.get(
        "x-http-method-override"
    )
    if request.method == "POST" and override:
        return override.upper()
    return request.method.upper()


def _token_of(request: web.Request) -> str | None:
    """The token from ?auth=, ?access_token= or Authorization: Bearer."""
    token = request.query.get("auth") or request.query.get("access_token")
    if token:
        return token
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in {"bearer", "firebase"} and value.strip():
        return value.strip()
    return None


QUERY_PARAMS = ("startAt", "endAt", "equalTo", "limitToFirst", "limitToLast")


def _apply_query(value: Json, params: Mapping[str, str]) -> Json:
    """Apply orderBy/startAt/endAt/equalTo/limitToFirst/limitToLast (JSON-encoded values)."""
    given = {name: params[name] for name in QUERY_PARAMS if name in params}
    if "orderBy" not in params:
        if given:
            raise _HTTPError(400, "orderBy must be defined when other query parameters are defined")
        return value
    try:
        order_by = json.loads(params["orderBy"])
        decoded = {name: json.loads(raw) for name, raw in given.items()}
    except ValueError as err:
        raise _HTTPError(400, "Query parameters must be JSON encoded") from err
    if not isinstance(order_by, str) or not order_by:
        raise _HTTPError(400, "orderBy must be a valid JSON encoded path")
    limits = {}
    for name in ("limitToFirst", "limitToLast"):
        if name in decoded:
            limit = decoded[name]
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise _HTTPError(400, f"{name} must be a non-negative integer")
            limits[name] = limit
    if len(limits) == 2:
        raise _HTTPError(400, "limitToFirst and limitToLast cannot both be set")
    return query(
        value,
        order_by=order_by,
        start_at=decoded.get("startAt", UNSET),
        end_at=decoded.get("endAt", UNSET),
        equal_to=decoded.get("equalTo", UNSET),
        limit_first=limits.get("limitToFirst"),
        limit_last=limits.get("limitToLast"),
    )


def _parse_body(body: bytes) -> Any:
    """Decode a JSON request body or raise a 400 like the RTDB."""
    try:
        return json.loads(body)
    except ValueError as err:
        raise _HTTPError(400, BAD_JSON) from err


def _json_response(
    status: int, value: Any, headers: dict[str, str] | None = None, print_mode: str | None = None
) -> web.Response:
    """A JSON answer (no body for 204)."""
    if status == 204:
        return web.Response(status=204, headers=headers)
    if print_mode == "pretty":
        text = json.dumps(value, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return web.Response(status=status, text=text, content_type="application/json", headers=headers)
