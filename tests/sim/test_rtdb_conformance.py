"""The unmodified firebase-admin SDK (emulator mode) works against the loopback RTDB server."""

from __future__ import annotations

from collections.abc import Iterator
import queue
import threading
import uuid

import firebase_admin
from firebase_admin import db
import pytest

from sim.threaded import ThreadedRTDBServer

NS = "conformance"


@pytest.fixture
def rtdb(socket_enabled: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedRTDBServer]:
    """A server on its own thread; short keep-alives so listener close() returns fast."""
    monkeypatch.delenv("FIREBASE_DATABASE_EMULATOR_HOST", raising=False)
    with ThreadedRTDBServer() as srv:
        srv.server.keepalive_interval_s = 0.2
        yield srv


def _app(database_url: str) -> firebase_admin.App:
    """A fresh firebase-admin app with no credential (emulator mode)."""
    return firebase_admin.initialize_app(
        options={"databaseURL": database_url}, name=f"sim-{uuid.uuid4().hex}"
    )


@pytest.fixture
def app(rtdb: ThreadedRTDBServer) -> Iterator[firebase_admin.App]:
    """An app pointed at the server by an emulator URL (?ns=)."""
    app = _app(rtdb.server.database_url(NS))
    yield app
    firebase_admin.delete_app(app)


def test_set_get_round_trips_types(app: firebase_admin.App, rtdb: ThreadedRTDBServer) -> None:
    """Numbers, bools, strings, nested objects and arrays come back as written."""
    value = {
        "batteryVoltage": 12.5,
        "count": 3,
        "relayState": True,
        "name": "Zone 1 · clinic",
        "nested": {"a": {"b": [1, 2, 3]}},
    }
    ref = db.reference("sensors/Zone1", app=app)
    ref.set(value)
    assert ref.get() == value
    assert db.reference("sensors", app=app).get() == {"Zone1": value}
    assert rtdb.call(rtdb.server.get_value, "sensors/Zone1", NS) == value
    # Another namespace does not see it.
    assert rtdb.call(rtdb.server.get_value, "sensors/Zone1", "other") is None


def test_null_writes_delete_and_empty_objects_vanish(app: firebase_admin.App) -> None:
    """Setting a child to None deletes it; an emptied parent disappears."""
    root = db.reference("/", app=app)
    root.set({"a": {"b": {"c": 1}}, "keep": 1})
    db.reference("a", app=app).update({"b": None})
    assert root.get() == {"keep": 1}
    db.reference("x", app=app).set({"empty": {}})
    assert db.reference("x", app=app).get() is None


def test_update_and_multi_path_update(app: firebase_admin.App) -> None:
    """update() merges children; slash keys write deep paths in one request."""
    ref = db.reference("site", app=app)
    ref.set({"a": {"x": 1, "y": 2}, "b": 1})
    ref.update({"a/x": 10, "c": {"d": True}, "b": None})
    assert ref.get() == {"a": {"x": 10, "y": 2}, "c": {"d": True}}


def test_push_ids_are_ordered(app: firebase_admin.App) -> None:
    """push() creates 20-character, time-ordered children."""
    log = db.reference("log", app=app)
    refs = [log.push({"i": i}) for i in range(5)]
    keys = [r.key for r in refs]
    assert all(len(k) == 20 for k in keys)
    assert keys == sorted(keys)
    assert len(set(keys)) == 5
    assert [log.child(k).get()["i"] for k in keys] == list(range(5))


def test_delete(app: firebase_admin.App) -> None:
    """delete() removes the node."""
    ref = db.reference("commands/Zone1", app=app)
    ref.set({"command": "ON"})
    ref.delete()
    assert ref.get() is None
    assert db.reference("/", app=app).get() is None


def test_etag_and_conditional_set(app: firebase_admin.App) -> None:
    """get(etag=True) and set_if_unchanged follow the ETag protocol (412 on mismatch)."""
    ref = db.reference("counter", app=app)
    ref.set(1)
    value, etag = ref.get(etag=True)
    assert value == 1
    ok, _, new_etag = ref.set_if_unchanged(etag, 2)
    assert ok
    assert new_etag != etag
    ok, snapshot, current_etag = ref.set_if_unchanged(etag, 3)
    assert not ok
    assert snapshot == 2
    assert current_etag == new_etag
    changed, value, _ = ref.get_if_changed(current_etag)
    assert (changed, value) == (False, None)


def test_transactions_under_contention_lose_nothing(app: firebase_admin.App) -> None:
    """Several threads incrementing one counter end at the exact total."""
    ref = db.reference("tx/counter", app=app)
    threads_n, per_thread = 4, 8
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(per_thread):
                ref.transaction(lambda current: (current or 0) + 1)
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ref.get() == threads_n * per_thread


# firebase-admin's close() shuts the response under its reader thread, which then raises.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_listen_gets_snapshot_then_changes(app: firebase_admin.App) -> None:
    """listen() sees the initial snapshot, then puts and patches with relative paths."""
    db.reference("sensors", app=app).set({"Zone1": {"relayState": True}})
    events: queue.Queue[db.Event] = queue.Queue()
    registration = db.reference("sensors", app=app).listen(events.put)
    try:
        first = events.get(timeout=5)
        assert (first.event_type, first.path, first.data) == (
            "put",
            "/",
            {"Zone1": {"relayState": True}},
        )
        db.reference("sensors/Zone2", app=app).set({"relayState": False})
        second = events.get(timeout=5)
        assert (second.event_type, second.path, second.data) == (
            "put",
            "/Zone2",
            {"relayState": False},
        )
        db.reference("sensors/Zone1", app=app).update({"relayState": False})
        third = events.get(timeout=5)
        assert (third.event_type, third.path, third.data) == (
            "patch",
            "/Zone1",
            {"relayState": False},
        )
    finally:
        registration.close()


def test_emulator_host_env_var(rtdb: ThreadedRTDBServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """FIREBASE_DATABASE_EMULATOR_HOST with a production URL uses the host's first label as ns."""
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", f"127.0.0.1:{rtdb.server.port}")
    app = _app("https://envdb.firebaseio.com")
    try:
        db.reference("a", app=app).set(1)
        assert rtdb.call(rtdb.server.get_value, "a", "envdb") == 1
    finally:
        firebase_admin.delete_app(app)


def test_unknown_token_is_refused(rtdb: ThreadedRTDBServer) -> None:
    """A request with a token the server does not know gets 401 through the SDK."""
    import requests

    resp = requests.get(f"{rtdb.server.url}/a.json?ns={NS}&auth=nope", timeout=5)
    assert resp.status_code == 401
    assert resp.json() == {"error": "Unauthorized request."}


def test_queries(app: firebase_admin.App) -> None:
    """order_by_child/key/value with ranges and limits filter like the RTDB."""
    people = db.reference("people", app=app)
    people.set(
        {
            "ann": {"height": 160, "team": "b"},
            "bob": {"height": 180, "team": "a"},
            "cyd": {"height": 170, "team": "a"},
            "dan": {"team": "c"},
        }
    )
    tallest = people.order_by_child("height").limit_to_last(2).get()
    assert list(tallest) == ["cyd", "bob"]
    ranged = people.order_by_child("height").start_at(165).end_at(175).get()
    assert list(ranged) == ["cyd"]
    assert list(people.order_by_child("team").equal_to("a").get()) == ["bob", "cyd"]
    # A child that lacks the ordered field sorts first (null).
    assert list(people.order_by_child("height").limit_to_first(1).get()) == ["dan"]
    assert list(people.order_by_key().start_at("b").end_at("c~").get()) == ["bob", "cyd"]
    scores = db.reference("scores", app=app)
    scores.set({"x": 3, "y": 1, "z": 2})
    assert list(scores.order_by_value().limit_to_first(2).get()) == ["y", "z"]
