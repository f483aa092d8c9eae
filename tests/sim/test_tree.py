"""Pure tree operations: Firebase semantics for writes, reads, ETags and push ids."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
import pytest

from sim.tree import (
    NULL_ETAG,
    InvalidDataError,
    PushIdGenerator,
    apply_update,
    etag_of,
    get_at,
    normalize,
    render,
    set_at,
    shallow,
    split_path,
)

keys = st.text(alphabet="abcdefgXYZ_-019 ", min_size=1, max_size=6)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
)
values = st.recursive(
    scalars, lambda children: st.dictionaries(keys, children, max_size=4), max_leaves=12
)
paths = st.lists(keys, min_size=1, max_size=3).map(tuple)


def _compact(value):
    """What the RTDB keeps of a value: empty objects pruned."""
    if isinstance(value, dict):
        kept = {k: _compact(v) for k, v in value.items()}
        kept = {k: v for k, v in kept.items() if v is not None}
        return kept or None
    return value


@settings(max_examples=60, deadline=None)
@given(root=values, path=paths, value=values)
def test_set_then_get_returns_the_stored_value(root, path, value) -> None:
    """What was written is what is read back, and siblings are untouched."""
    base = normalize(root, now_ms=0) if isinstance(root, dict) else None
    stored = normalize(value, now_ms=0)
    new_root = set_at(base, path, stored)
    assert get_at(new_root, path) == _compact(value)
    if isinstance(base, dict) and path[0] not in base:
        assert {k: v for k, v in new_root.items() if k != path[0]} == base


@settings(max_examples=60, deadline=None)
@given(root=values, path=paths, value=values)
def test_writes_never_mutate_the_old_root(root, path, value) -> None:
    """Persistence: the previous root is a valid snapshot after a write."""
    base = normalize(root, now_ms=0)
    before = repr(base)
    set_at(base, path, normalize(value, now_ms=0))
    set_at(base, path, None)
    assert repr(base) == before


@settings(max_examples=60, deadline=None)
@given(path=paths, value=values)
def test_delete_restores_an_absent_path(path, value) -> None:
    """Writing then deleting a path leaves no empty parents behind."""
    root = {"other": 1}
    written = set_at(root, path, normalize(value, now_ms=0))
    if path[0] != "other":
        assert set_at(written, path, None) == root


def test_nulls_and_empty_objects_vanish() -> None:
    """null children and {} are not stored."""
    assert normalize({"a": None, "b": {}, "c": {"d": None}}, now_ms=0) is None
    assert normalize({"a": 1, "b": {"c": {}}}, now_ms=0) == {"a": 1}


def test_arrays_are_objects_rendered_back() -> None:
    """Lists are stored keyed by index and rendered as lists when dense."""
    stored = normalize([1, None, 3], now_ms=0)
    assert stored == {"0": 1, "2": 3}
    assert render(stored) == [1, None, 3]
    assert render({"0": 1, "9": 2}) == {"0": 1, "9": 2}
    assert render({"01": 1}) == {"01": 1}


def test_multi_path_update() -> None:
    """Slash keys write deep, others replace a child; overlapping paths are refused."""
    root = {"a": {"x": 1, "y": 2}, "b": 1}
    assert apply_update(root, (), {"a/x": 5, "b": None, "c": {"d": 1}}, now_ms=0) == {
        "a": {"x": 5, "y": 2},
        "c": {"d": 1},
    }
    with pytest.raises(InvalidDataError):
        apply_update(root, (), {"a": 1, "a/x": 2}, now_ms=0)


@pytest.mark.parametrize("bad", ["a.b", "a$", "a#", "a[", "a]", "\x01"])
def test_invalid_keys(bad: str) -> None:
    """Keys with forbidden characters are refused."""
    with pytest.raises(InvalidDataError):
        normalize({bad: 1}, now_ms=0)
    with pytest.raises(InvalidDataError):
        split_path(f"/ok/{bad}")


def test_non_finite_numbers_refused() -> None:
    """NaN and infinities are not JSON numbers the RTDB stores."""
    with pytest.raises(InvalidDataError):
        normalize(float("nan"), now_ms=0)


def test_server_values() -> None:
    """timestamp and increment resolve against the clock and the current value."""
    assert normalize({".sv": "timestamp"}, now_ms=123) == 123
    assert normalize({".sv": {"increment": 2}}, now_ms=0, current=5) == 7
    assert normalize({".sv": {"increment": 2}}, now_ms=0, current="x") == 2
    with pytest.raises(InvalidDataError):
        normalize({".sv": "nope"}, now_ms=0)


@settings(max_examples=60, deadline=None)
@given(a=values, b=values)
def test_etag_is_a_content_hash(a, b) -> None:
    """Equal content, equal etag; different content, different etag."""
    na, nb = normalize(a, now_ms=0), normalize(b, now_ms=0)
    assert etag_of(na) == etag_of(normalize(a, now_ms=0))
    if na != nb:  # (1 == 1.0 in Python, yet different JSON: no claim either way)
        assert etag_of(na) != etag_of(nb)
    assert etag_of(None) == NULL_ETAG


def test_shallow() -> None:
    """Objects map keys to true; scalars stay."""
    assert shallow({"a": {"b": 1}, "c": 2}) == {"a": True, "c": True}
    assert shallow(3) == 3


def test_push_ids_ordered_within_and_across_milliseconds() -> None:
    """Ids are 20 chars, strictly increasing for the same and later milliseconds."""
    gen = PushIdGenerator()
    ids = [gen.next_id(1_700_000_000_000) for _ in range(200)]
    ids += [gen.next_id(1_700_000_000_001) for _ in range(3)]
    assert all(len(i) == 20 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
