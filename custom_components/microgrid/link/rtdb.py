"""Firebase Realtime Database link: REST reads/writes and the SSE stream of one path."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
import json
import logging
import random
import re
import statistics
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from .errors import (
    FirebaseAuthError,
    FirebaseConnectionError,
    FirebaseError,
    FirebaseInvalidRequest,
    FirebaseInvalidURL,
    FirebaseStreamCancelled,
    SSEDecodeError,
    _AuthRejected,
)
from .url import parse_database_url

if TYPE_CHECKING:
    from .auth import TokenProvider

_LOGGER = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024 * 1024  # one SSE event (a full snapshot) may not exceed this
MAX_REDIRECTS = 5
_ERROR_BODY_BYTES = 4096
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_FORBIDDEN_KEY_CHARS = re.compile(r"[.#$\[\]\x00-\x1f\x7f]")
_MAX_KEY_BYTES = 768
# Firebase sends a keep-alive every 30 s on an idle stream: silence for twice that is a stall.
DEFAULT_READ_TIMEOUT_S = 60.0
# The watchdog learns the server's keep-alive cadence (median of the last gaps between two
# keep-alives) and fires after twice it, never sooner than this (loop jitter on a busy host).
MIN_WATCHDOG_S = 1.0
_CADENCE_GAPS = 5
_MIN_GAP_S = 0.05  # two keep-alives read in one chunk say nothing about the cadence


def split_path(path: str) -> tuple[str, ...]:
    """Validate a database path ("a/b", "/a/b/", "" for the root) and return its keys."""
    if not isinstance(path, str):
        raise FirebaseInvalidRequest(f"a path must be a string, not {type(path).__name__}")
    stripped = path.strip("/")
    if not stripped:
        return ()
    segments = tuple(stripped.split("/"))
    for seg in segments:
        _check_key(seg)
    return segments


def _check_key(key: str) -> None:
    """Reject a key the database would refuse."""
    if not key:
        raise FirebaseInvalidRequest("a path may not contain an empty key ('//')")
    if _FORBIDDEN_KEY_CHARS.search(key):
        raise FirebaseInvalidRequest(f"key {key!r} contains one of . # $ [ ] or a control char")
    if len(key.encode()) > _MAX_KEY_BYTES:
        raise FirebaseInvalidRequest(f"key longer than {_MAX_KEY_BYTES} bytes")


def _encode(value: Any) -> bytes:
    """Serialise a value as the database accepts it (no NaN/Infinity)."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as err:
        raise FirebaseInvalidRequest(f"value is not storable JSON: {err}") from err


# --- mirror of the streamed tree -----------------------------------------------------------------


def _event_segments(path: str) -> tuple[str, ...]:
    """Split a server-sent event path (already valid) into keys."""
    return tuple(seg for seg in path.split("/") if seg)


def _is_empty(value: Any) -> bool:
    """The database stores neither null nor empty objects."""
    return value is None or (isinstance(value, dict | list) and not value)


def _as_dict(node: Any) -> dict[str, Any]:
    """Return a fresh dict of a node's children (arrays are objects keyed by index)."""
    if isinstance(node, dict):
        return dict(node)
    if isinstance(node, list):
        return {str(i): v for i, v in enumerate(node) if v is not None}
    return {}


type _Update = tuple[tuple[str, ...], Any]


def _merge(tree: Any, updates: list[_Update]) -> Any:
    """Return tree with each (keys, value) applied in order (None deletes).

    Only the dicts on the updated paths are copied, each once, so earlier mirrors stay intact
    and a wide patch costs O(size of the patch + width of the touched dicts).
    """
    groups: dict[str, list[_Update]] = {}
    for segments, value in updates:
        if segments:
            groups.setdefault(segments[0], []).append((segments[1:], value))
            continue
        tree = _merge_children(tree, groups)  # earlier updates first, then the replacement
        groups = {}
        tree = None if _is_empty(value) else value
    return _merge_children(tree, groups)


def _merge_children(tree: Any, groups: dict[str, list[_Update]]) -> Any:
    """Apply updates grouped by child key to a copy of tree."""
    if not groups:
        return tree
    node = _as_dict(tree)
    for head, sub in groups.items():
        child = _merge(node.get(head), sub)
        if _is_empty(child):
            node.pop(head, None)
        else:
            node[head] = child
    return node


def apply_put(mirror: Mapping[str, Any], path: str, data: Any) -> tuple[dict[str, Any], set[str]]:
    """Apply a `put` event; return the new mirror and the changed top-level keys."""
    segments = _event_segments(path)
    if not segments:
        new = dict(data) if isinstance(data, dict) else _as_dict(data)
        new = {k: v for k, v in new.items() if not _is_empty(v)}
        return new, set(mirror) | set(new)
    new = _merge(mirror, [(segments, data)])
    return (new if isinstance(new, dict) else {}), {segments[0]}


def apply_patch(
    mirror: Mapping[str, Any], path: str, data: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """Apply a `patch` event (merge of children at path); return new mirror and changed keys."""
    segments = _event_segments(path)
    updates = [(segments + _event_segments(key), value) for key, value in data.items()]
    updates = [(full, value) for full, value in updates if full]
    tree = _merge(mirror, updates)
    changed = {full[0] for full, _ in updates}
    return (tree if isinstance(tree, dict) else {}), changed


# --- SSE framing ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SSEEvent:
    """One server-sent event: its name and its (joined) data lines."""

    event: str
    data: str


class SSEDecoder:
    """Incremental SSE decoder over raw chunks; no line-length cap (snapshots are one line)."""

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        """Start with an empty buffer."""
        self._buf = bytearray()
        self._pending_cr = False
        self._max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return the events completed by them."""
        # A CRLF split across two chunks must not count as two line ends.
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._pending_cr = chunk[-1:] == b"\r"
        chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        scan = max(0, len(self._buf) - 1)
        self._buf += chunk
        events: list[SSEEvent] = []
        start = 0
        while (end := self._buf.find(b"\n\n", scan)) != -1:
            event = _parse_block(bytes(self._buf[start:end]))
            if event is not None:
                events.append(event)
            start = scan = end + 2
        if start:
            del self._buf[:start]
        if len(self._buf) > self._max_event_bytes:
            self._buf.clear()
            raise SSEDecodeError(f"an event exceeded {self._max_event_bytes} bytes")
        return events


def _parse_block(block: bytes) -> SSEEvent | None:
    """Parse the lines of one event block; None for a comment-only or empty block."""
    name = ""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"event":
            name = value.decode("utf-8", "replace")
        elif field == b"data":
            data.append(value)
    if not name and not data:
        return None
    return SSEEvent(event=name or "message", data=b"\n".join(data).decode("utf-8", "replace"))


# --- the link ------------------------------------------------------------------------------------


def _noop_bool(_up: bool) -> None:
    """Default on_connection."""


def _noop_str(_reason: str) -> None:
    """Default on_cancel."""


def _error_text(raw: bytes) -> str:
    """Return the database's error message from a response body, shortened."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    text = body.get("error") if isinstance(body, dict) else None
    if not isinstance(text, str):
        text = raw.decode("utf-8", "replace")
    return text.strip()[:200] or "no message"


def _status_error(status: int, raw: bytes, what: str) -> FirebaseError:
    """Map an HTTP error status to the link's error type."""
    message = f"{what}: HTTP {status}: {_error_text(raw)}"
    if status in (401, 403):
        return FirebaseAuthError(message)
    if status == 404:
        return FirebaseInvalidURL(message)
    if status == 400:
        return FirebaseInvalidRequest(message)
    if status in (408, 423, 429) or status >= 500:
        return FirebaseConnectionError(message)
    return FirebaseError(message)


def _describe(err: BaseException) -> str:
    """Describe a transport error in a few words (never with the request URL's query)."""
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, aiohttp.ClientConnectorError):
        return f"cannot connect: {err.os_error}"
    return type(err).__name__


class FirebaseLink:
    """One database: REST reads/writes and a self-healing SSE mirror of `stream_path`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        database_url: str,
        auth: TokenProvider,
        *,
        stream_path: str = "sensors",
        on_data: Callable[[dict[str, Any], set[str]], None],
        on_connection: Callable[[bool], None] = _noop_bool,
        on_cancel: Callable[[str], None] = _noop_str,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 120.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        request_timeout_s: float = 15.0,
    ) -> None:
        """Check the settings; nothing connects until a request or start()."""
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        if read_timeout_s <= 0 or request_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        self._session = session
        self._db = parse_database_url(database_url)
        self._auth = auth
        self._stream_path = stream_path
        self._stream_segments = split_path(stream_path)
        self._on_data = on_data
        self._on_connection = on_connection
        self._on_cancel = on_cancel
        self._read_timeout_s = read_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._rest_timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=request_timeout_s, sock_read=read_timeout_s
        )
        self._mirror: dict[str, Any] = {}
        self._connected = False
        self._reconnects = 0
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancels = 0
        self._keepalive_gaps: deque[float] = deque(maxlen=_CADENCE_GAPS)
        self._last_keepalive: float | None = None  # loop time, this connection
        self._synced = False  # this connection delivered its opening snapshot
        self._stalled_after_s = read_timeout_s
        self._malformed_logged = False

    # --- state ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Return True while the stream is open and in sync."""
        return self._connected

    @property
    def reconnects(self) -> int:
        """Return how many reconnect attempts followed a loss or a failed open."""
        return self._reconnects

    @property
    def last_error(self) -> str | None:
        """Return the most recent stream failure (kept after recovery, for diagnostics)."""
        return self._last_error

    @property
    def cancels(self) -> int:
        """Return how many times the server cancelled the stream."""
        return self._cancels

    @property
    def watchdog_s(self) -> float:
        """Return how long the open stream may stay silent before it counts as stalled."""
        if len(self._keepalive_gaps) < 2:
            return self._read_timeout_s
        cadence = statistics.median(self._keepalive_gaps)
        return min(self._read_timeout_s, max(MIN_WATCHDOG_S, 2 * cadence))

    # --- REST ----------------------------------------------------------------------------------

    async def async_get(self, path: str, *, shallow: bool = False) -> Any:
        """Read a path (shallow: its keys mapped to True)."""
        params = {"shallow": "true"} if shallow else {}
        return await self._rest("GET", split_path(path), params=params)

    async def async_put(self, path: str, value: Any) -> None:
        """Replace the value at a path."""
        await self._rest("PUT", split_path(path), params={"print": "silent"}, body=_encode(value))

    async def async_validate(self) -> list[str]:
        """Read the stream path's keys once (authenticated, shallow); raise on any failure."""
        value = await self.async_get(self._stream_path, shallow=True)
        return sorted(value) if isinstance(value, dict) else []

    async def _rest(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        params: dict[str, str],
        body: bytes | None = None,
    ) -> Any:
        """Send one REST request; retry once with a fresh token after a 401."""
        what = f"{method} /{'/'.join(segments)}"
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in range(2):
            token = await self._auth.async_get_token()
            try:
                async with self._open(
                    method,
                    self._db.url_for(segments),
                    token=token,
                    params=params,
                    headers=headers,
                    body=body,
                    client_timeout=self._rest_timeout,
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as err:
                raise FirebaseConnectionError(f"{what}: {_describe(err)}") from None
            if status == 401 and attempt == 0:
                _LOGGER.debug("%s: 401, retrying with a fresh token", what)
                self._auth.invalidate()
                continue
            if status >= 300:
                raise _status_error(status, raw, what)
            if method != "GET":
                return None
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                raise FirebaseConnectionError(f"{what}: the answer is not JSON") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _auth_query(self, token: str) -> dict[str, str]:
        """Return the query that authenticates an emulator request."""
        return {"ns": self._db.namespace, "auth": token} if self._db.emulator else {}

    def _auth_headers(self, token: str) -> dict[str, str]:
        """Return the headers that authenticate a Firebase request (OAuth2 bearer)."""
        # A header rather than access_token= keeps the token out of URLs, hence out of logs.
        return {} if self._db.emulator else {"Authorization": f"Bearer {token}"}

    @asynccontextmanager
    async def _open(
        self,
        method: str,
        url: URL,
        *,
        token: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes | None,
        client_timeout: aiohttp.ClientTimeout,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a response, following redirects only to hosts that may see the token."""
        all_headers = {**headers, **self._auth_headers(token)}
        for _ in range(MAX_REDIRECTS + 1):
            resp = await self._session.request(
                method,
                url.update_query({**params, **self._auth_query(token)}),
                headers=all_headers,
                data=body,
                timeout=client_timeout,
                allow_redirects=False,
            )
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECT_STATUSES or not location:
                try:
                    yield resp
                finally:
                    resp.release()  # closes the connection when the body was not read to the end
                return
            resp.release()
            try:
                target = url.join(URL(location))
            except ValueError:
                raise FirebaseConnectionError("redirect to an invalid URL") from None
            if not self._db.may_redirect_to(target):
                raise FirebaseConnectionError(f"refused a redirect to {target.host}")
            url = target
        raise FirebaseConnectionError("too many redirects")

    # --- stream --------------------------------------------------------------------------------

    def start(self, create_task: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]) -> None:
        """Start the stream loop as a task made by the caller (HA: a background task)."""
        if self._task is not None and not self._task.done():
            return
        self._task = create_task(self._run())

    async def async_stop(self) -> None:
        """Stop the stream now; never waits for the socket."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        self._connected = False  # no on_connection: the owner is shutting down

    def _set_connected(self, up: bool) -> None:
        """Report connection transitions only."""
        if up == self._connected:
            return
        self._connected = up
        try:
            self._on_connection(up)
        except Exception:
            _LOGGER.exception("on_connection callback failed")

    def _backoff_s(self, attempt: int) -> float:
        """Return a full-jitter delay: uniform(0, min(max, initial * 2**attempt))."""
        ceiling = min(self._backoff_max_s, self._backoff_initial_s * 2 ** min(attempt, 32))
        return self._rng.uniform(0.0, ceiling)

    async def _run(self) -> None:
        """Keep the stream open until stopped, whatever the server does; never raises."""
        attempt = 0
        fast_auth_retry = True
        failures_in_row = 0
        while True:
            auth_failed = cancelled = False
            try:
                await self._stream_once()
                error = "stream closed by the server"
            except FirebaseStreamCancelled as err:
                # Usually the rules deny the read. Re-subscribe with the growing backoff: the
                # rules may be fixed at any time, and a cancel that comes back at once after
                # each opening snapshot must not turn into a tight loop.
                cancelled = True
                self._stream_cancelled(str(err))
                error = f"cancelled by the server: {err}"
            except _AuthRejected as err:
                self._auth.invalidate()
                auth_failed = True
                error = f"authentication rejected ({err})"
            except aiohttp.ConnectionTimeoutError:
                error = "timed out connecting"
            except TimeoutError:
                error = f"stalled: no data for {self._stalled_after_s:g} s (watchdog)"
            except FirebaseError as err:
                error = str(err)
            except aiohttp.ClientError as err:
                error = _describe(err)
            except Exception as err:  # the loop must survive anything
                _LOGGER.exception("unexpected error in the %s stream", self._stream_path)
                error = type(err).__name__
            if self._synced and not cancelled:
                attempt, fast_auth_retry, failures_in_row = 0, True, 0
            self._last_error = error
            self._reconnects += 1
            if auth_failed and fast_auth_retry:
                # OAuth tokens expire hourly and the server then sends auth_revoked: a routine
                # refresh, so reconnect at once and stay "connected" unless that fails too.
                fast_auth_retry = False
                _LOGGER.debug("Firebase stream of %s: %s; new token", self._stream_path, error)
                continue
            self._set_connected(False)
            failures_in_row += 1
            self._log_failure(error, failures_in_row)
            delay = self._backoff_s(attempt)
            attempt += 1
            await self._sleep(delay)

    def _log_failure(self, error: str, failures_in_row: int) -> None:
        """Warn on the first failure of an outage; later ones go to debug."""
        if failures_in_row == 1:
            _LOGGER.warning("Firebase stream of %s is down: %s", self._stream_path, error)
        else:
            _LOGGER.debug("Firebase stream of %s still down: %s", self._stream_path, error)

    def _stream_cancelled(self, reason: str) -> None:
        """Report a server `cancel` to the owner; the loop re-subscribes after a backoff."""
        self._set_connected(False)
        self._cancels += 1
        try:
            self._on_cancel(reason)
        except Exception:
            _LOGGER.exception("on_cancel callback failed")

    async def _stream_once(self) -> None:
        """Open the stream and apply events until it ends; raises why it ended."""
        self._synced = False
        self._malformed_logged = False
        self._last_keepalive = None
        token = await self._auth.async_get_token()
        async with self._open(
            "GET",
            self._db.url_for(self._stream_segments),
            token=token,
            params={},
            headers={"Accept": "text/event-stream"},
            body=None,
            client_timeout=self._stream_timeout,
        ) as resp:
            if resp.status == 401:
                raise _AuthRejected("HTTP 401")
            if resp.status != 200:
                async with asyncio.timeout(self._read_timeout_s):
                    raw = await resp.content.read(_ERROR_BODY_BYTES)
                raise _status_error(resp.status, raw, f"stream /{self._stream_path}")
            if not resp.content_type.startswith("text/event-stream"):
                raise FirebaseConnectionError(f"not an event stream ({resp.content_type})")
            decoder = SSEDecoder()
            while True:
                self._stalled_after_s = self.watchdog_s
                async with asyncio.timeout(self._stalled_after_s):
                    chunk = await resp.content.readany()
                if not chunk:
                    return
                for event in decoder.feed(chunk):
                    self._handle_event(event)

    def _handle_event(self, event: SSEEvent) -> None:
        """Apply one event to the mirror, or raise to end the connection."""
        if event.event in ("put", "patch"):
            self._apply(event)
        elif event.event == "cancel":
            raise FirebaseStreamCancelled(_reason(event.data, "cancelled"))
        elif event.event == "auth_revoked":
            raise _AuthRejected(_reason(event.data, "credential revoked"))
        elif event.event == "keep-alive":
            self._keepalive()
        else:
            _LOGGER.debug("ignoring SSE event %r", event.event)

    def _keepalive(self) -> None:
        """Learn the server's keep-alive cadence from the gap since the previous one."""
        now = asyncio.get_running_loop().time()
        if self._last_keepalive is not None and now - self._last_keepalive >= _MIN_GAP_S:
            self._keepalive_gaps.append(now - self._last_keepalive)
        self._last_keepalive = now

    def _apply(self, event: SSEEvent) -> None:
        """Apply a put/patch; a malformed one is logged and skipped."""
        try:
            payload = json.loads(event.data)
        except ValueError:
            self._malformed(event, "data is not JSON")
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
            self._malformed(event, "no path")
            return
        data = payload.get("data")
        if event.event == "put":
            self._mirror, changed = apply_put(self._mirror, payload["path"], data)
        elif isinstance(data, dict):
            self._mirror, changed = apply_patch(self._mirror, payload["path"], data)
        else:
            self._malformed(event, "patch data is not an object")
            return
        if not self._synced:
            self._synced = True
            if not self._connected and self._reconnects:
                _LOGGER.info("Firebase stream of %s restored", self._stream_path)
            self._set_connected(True)
        try:
            self._on_data(self._mirror, changed)
        except Exception:
            _LOGGER.exception("on_data callback failed")

    def _malformed(self, event: SSEEvent, why: str) -> None:
        """Log a skipped event: a warning once per connection, then debug."""
        log = _LOGGER.debug if self._malformed_logged else _LOGGER.warning
        self._malformed_logged = True
        log("skipping malformed %s event (%s): %.120s", event.event, why, event.data)


def _reason(data: str, default: str) -> str:
    """Return the reason carried by a cancel/auth_revoked event (JSON string or plain text)."""
    try:
        value = json.loads(data)
    except ValueError:
        value = data
    if value is None or value == "":
        return default
    return value if isinstance(value, str) else json.dumps(value)
