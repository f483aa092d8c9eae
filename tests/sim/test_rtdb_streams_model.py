"""Model check: a client folding a stream's events always ends equal to the server's value."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from sim.rtdb import RTDBServer, _Close, _Stream
from sim.tree import InvalidDataError, apply_update, normalize, set_at, split_path

labels = st.sampled_from(["a", "b", "c"])
paths = st.lists(labels, min_size=0, max_size=3).map("/".join)
leaves = st.one_of(st.none(), st.integers(0, 3), st.booleans(), st.text("xy", max_size=2))
values = st.recursive(leaves, lambda kids: st.dictionaries(labels, kids, max_size=3), max_leaves=6)
ops = st.one_of(
    st.tuples(st.just("put"), paths, values),
    st.tuples(
        st.just("patch"),
        paths,
        st.dictionaries(st.lists(labels, min_size=1, max_size=2).map("/".join), values, max_size=3),
    ),
)
STREAM_PATHS = ("", "a", "a/b", "b/c/a")


def _fold(local, frame: bytes):
    """Apply one SSE frame to a client's copy, as a Firebase client does."""
    head, data_line = frame.decode().strip().split("\n")
    event = head.removeprefix("event: ")
    payload = json.loads(data_line.removeprefix("data: "))
    where = split_path(payload["path"])
    if event == "put":
        return set_at(local, where, normalize(payload["data"], now_ms=0))
    assert event == "patch"
    return apply_update(local, where, payload["data"], now_ms=0)


@settings(max_examples=80, deadline=None)
@given(sequence=st.lists(ops, min_size=1, max_size=10))
def test_stream_events_reproduce_the_server_state(sequence) -> None:
    """Any sequence of PUT/PATCH: every stream's folded events equal the server's value."""
    server = RTDBServer()
    # In-process streams without HTTP: the same objects the SSE handler registers.
    streams = {}
    for path in STREAM_PATHS:
        stream = _Stream(ns="demo", labels=split_path(path), token="owner", request=None)
        server._streams.add(stream)
        streams[path] = [stream, None]
    for kind, path, value in sequence:
        try:
            if kind == "put":
                server.set_value(path, value)
            else:
                server.update_value(path, value)
        except InvalidDataError:
            continue  # overlapping multi-path keys are refused, nothing changes
        for entry in streams.values():
            stream = entry[0]
            while not stream.queue.empty():
                frame = stream.queue.get_nowait()
                assert not isinstance(frame, _Close)
                entry[1] = _fold(entry[1], frame)
        for stream_path, (_, local) in streams.items():
            assert local == normalize(server.get_value(stream_path), now_ms=0), (stream_path, kind)
