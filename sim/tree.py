"""Pure JSON-tree operations with Firebase Realtime Database semantics.

Trees are persistent: a write returns a new root and never mutates a dict already in a tree,
so an old root stays a valid snapshot (streams compare before/after without deep copies).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
import hashlib
import itertools
import json
import math
import random
from typing import Any

NULL_ETAG = "null_etag"
INVALID_KEY_CHARS = frozenset(".$#[]/")
MAX_KEY_BYTES = 768
PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

type Json = bool | int | float | str | dict[str, Json] | list[Json] | None
type Path = tuple[str, ...]


class InvalidDataError(ValueError):
    """A value or path that the Realtime Database would refuse (answered with 400)."""


def split_path(path: str) -> Path:
    """Split "/a/b/" into ("a", "b"); validate every label."""
    labels = tuple(label for label in path.split("/") if label)
    for label in labels:
        _check_key(label)
    return labels


def join_path(labels: Path) -> str:
    """Render labels as an absolute path ("/" for the root)."""
    return "/" + "/".join(labels)


def _check_key(key: str) -> None:
    """Raise InvalidDataError for a key the RTDB refuses."""
    if not key or any(ch in INVALID_KEY_CHARS for ch in key) or any(ord(ch) < 32 for ch in key):
        raise InvalidDataError(f"Invalid key {key!r}: keys must be non-empty, without . $ # [ ] /")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidDataError(f"Invalid key: longer than {MAX_KEY_BYTES} bytes")


def normalize(value: Any, *, now_ms: int, current: Json = None) -> Json:
    """Return the stored form of a written value: nulls and empty objects vanish, arrays become
    objects keyed "0", "1", …, server values ({".sv": …}) are resolved against `current`."""
    if isinstance(value, dict):
        if ".sv" in value:
            return _server_value(value[".sv"], now_ms=now_ms, current=current)
        out: dict[str, Json] = {}
        for key, child in value.items():
            if not isinstance(key, str):
                raise InvalidDataError("Invalid data; object keys must be strings")
            if key == ".priority":
                continue  # priorities are not modelled; accepted and dropped
            _check_key(key)
            cur_child = current.get(key) if isinstance(current, dict) else None
            stored = normalize(child, now_ms=now_ms, current=cur_child)
            if stored is not None:
                out[key] = stored
        return out or None
    if isinstance(value, list):
        return normalize(
            {str(i): child for i, child in enumerate(value)}, now_ms=now_ms, current=current
        )
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDataError("Invalid data; numbers must be finite")
        return value
    raise InvalidDataError(f"Invalid data; unsupported type {type(value).__name__}")


def _server_value(spec: Any, *, now_ms: int, current: Json) -> Json:
    """Resolve a server value: "timestamp" or {"increment": n}."""
    if spec == "timestamp":
        return now_ms
    if isinstance(spec, dict) and set(spec) == {"increment"}:
        delta = spec["increment"]
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise InvalidDataError("Invalid data; increment must be a number")
        base = current if isinstance(current, (int, float)) and not isinstance(current, bool) else 0
        return base + delta
    raise InvalidDataError(f"Invalid data; unknown server value {spec!r}")


def get_at(root: Json, labels: Path) -> Json:
    """Return the value at `labels` (None when absent)."""
    node = root
    for label in labels:
        if not isinstance(node, dict):
            return None
        node = node.get(label)
    return node


def set_at(root: Json, labels: Path, value: Json) -> Json:
    """Return a new root with the (already normalized) value at `labels`; empty parents vanish."""
    if not labels:
        return value
    if not isinstance(root, dict) and value is None:
        return root  # deleting below a leaf (or nothing) changes nothing
    head, rest = labels[0], labels[1:]
    base: dict[str, Json] = dict(root) if isinstance(root, dict) else {}
    child = set_at(base.get(head), rest, value)
    if child is None:
        base.pop(head, None)
    else:
        base[head] = child
    return base or None


def parse_updates(updates: Mapping[str, Any]) -> list[tuple[Path, Any]]:
    """Validate a multi-path update's keys; refuse one path that is an ancestor of another."""
    parsed = [(split_path(key), value) for key, value in updates.items()]
    for labels, _ in parsed:
        if not labels:
            raise InvalidDataError("Invalid data; an update path must not be empty")
    ordered = sorted(labels for labels, _ in parsed)
    for left, right in itertools.pairwise(ordered):
        if right[: len(left)] == left:
            raise InvalidDataError(
                f"Invalid data; path {join_path(left)} is an ancestor of {join_path(right)}"
            )
    return parsed


def apply_update(root: Json, base: Path, updates: Mapping[str, Any], *, now_ms: int) -> Json:
    """Return a new root with a PATCH (multi-path update) at `base` applied."""
    for labels, value in parse_updates(updates):
        target = base + labels
        root = set_at(root, target, normalize(value, now_ms=now_ms, current=get_at(root, target)))
    return root


def render(value: Json) -> Json:
    """Render a stored value for output: objects keyed like a dense array come out as arrays."""
    if not isinstance(value, dict):
        return value
    rendered = {key: render(child) for key, child in value.items()}
    indices = [int(key) for key in rendered if key.isdigit() and (key == "0" or key[0] != "0")]
    if indices and len(indices) == len(rendered):
        top = max(indices)
        # Firebase's rule: all keys are integers and more than half of 0..max are present.
        if len(indices) * 2 > top + 1:
            return [rendered.get(str(i)) for i in range(top + 1)]
    return rendered


def shallow(value: Json) -> Json:
    """Return the shallow form: an object's keys mapped to true, other values unchanged."""
    if isinstance(value, dict):
        return dict.fromkeys(value, True)
    return value


def canonical_json(value: Json) -> str:
    """Serialize compactly with sorted keys (the input of an ETag)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def etag_of(value: Json) -> str:
    """Return a stable content hash of a stored value ("null_etag" for null)."""
    if value is None:
        return NULL_ETAG
    digest = hashlib.sha1(canonical_json(render(value)).encode()).digest()
    return base64.b64encode(digest).decode()


def is_prefix(prefix: Path, labels: Path) -> bool:
    """True when `prefix` is `labels` or one of its ancestors."""
    return labels[: len(prefix)] == prefix


class PushIdGenerator:
    """Firebase-style push ids: 8 time chars + 12 random chars, ordered even within one ms."""

    def __init__(self, rng: random.Random | None = None) -> None:
        """Start with no previous id."""
        self._rng = rng or random.Random()
        self._last_ms = -1
        self._last_rand: list[int] = [0] * 12

    def next_id(self, now_ms: int) -> str:
        """Return the next id for the given time (milliseconds since the epoch)."""
        if now_ms == self._last_ms:
            # Same millisecond: increment the random part so ids stay strictly ordered.
            i = 11
            while i >= 0 and self._last_rand[i] == 63:
                self._last_rand[i] = 0
                i -= 1
            if i >= 0:
                self._last_rand[i] += 1
        else:
            self._last_ms = now_ms
            self._last_rand = [self._rng.randrange(64) for _ in range(12)]
        time_chars = []
        stamp = now_ms
        for _ in range(8):
            time_chars.append(PUSH_CHARS[stamp % 64])
            stamp //= 64
        return "".join(reversed(time_chars)) + "".join(PUSH_CHARS[i] for i in self._last_rand)


UNSET: Any = object()  # a query bound that was not given (null is a valid bound)


# ----- queries (orderBy / startAt / endAt / equalTo / limitToFirst / limitToLast) ------------


def _key_rank(key: str) -> tuple[int, int, str]:
    """Firebase key order: 32-bit integer keys numerically first, then strings."""
    if key.lstrip("-").isdigit() and -(2**31) <= int(key) < 2**31 and str(int(key)) == key:
        return (0, int(key), "")
    return (1, 0, key)


def _value_rank(value: Json) -> tuple[int, Any]:
    """Firebase value order: null < false < true < numbers < strings < objects."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, 0)


def query(
    value: Json,
    *,
    order_by: str,
    start_at: Any = UNSET,
    end_at: Any = UNSET,
    equal_to: Any = UNSET,
    limit_first: int | None = None,
    limit_last: int | None = None,
) -> Json:
    """Filter an object's children like the RTDB REST query parameters (result unordered)."""
    if not isinstance(value, dict):
        return value
    if order_by == "$priority":
        raise InvalidDataError("orderBy $priority is not supported by the simulator")
    if equal_to is not UNSET:
        start_at = end_at = equal_to
    if order_by == "$key":
        for bound in (start_at, end_at):
            if bound is not UNSET and not isinstance(bound, str):
                raise InvalidDataError("Query by key: startAt, endAt and equalTo must be strings")

        def sort_key(item: tuple[str, Json]) -> tuple[Any, ...]:
            return _key_rank(item[0])

        def bound_key(bound: Json) -> tuple[Any, ...]:
            return _key_rank(str(bound))
    else:
        child = () if order_by == "$value" else split_path(order_by)

        def sort_key(item: tuple[str, Json]) -> tuple[Any, ...]:
            return (*_value_rank(get_at(item[1], child)), _key_rank(item[0]))

        def bound_key(bound: Json) -> tuple[Any, ...]:
            return _value_rank(bound)

    items = sorted(value.items(), key=sort_key)
    if start_at is not UNSET:
        low = bound_key(start_at)
        items = [it for it in items if sort_key(it)[: len(low)] >= low]
    if end_at is not UNSET:
        high = bound_key(end_at)
        items = [it for it in items if sort_key(it)[: len(high)] <= high]
    if limit_first is not None:
        items = items[:limit_first]
    if limit_last is not None:
        items = items[-limit_last:] if limit_last else []
    return dict(items) or None
