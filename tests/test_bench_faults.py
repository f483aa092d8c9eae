"""The fault benchmark's pure parts: fault names, statistics, losses, tables, the watcher's
bookkeeping of websocket events. No Home Assistant runs here."""

from __future__ import annotations

import pytest

from bench.faults.cli import parse_args
from bench.faults.figures import (
    FAULTS,
    FaultReport,
    count_changes,
    counters_lost,
    entries_lost,
    find_key,
    fmt_s,
    fmt_spread,
    format_table,
    parse_only,
    percentile,
    spread,
)
from bench.faults.stack import Watcher


def test_parse_only_keeps_run_order_and_rejects_unknown_names() -> None:
    assert parse_only(None) == list(FAULTS)
    assert parse_only("") == list(FAULTS)
    assert parse_only("restart, drop,drop") == ["drop", "restart"]
    with pytest.raises(ValueError, match="unknown fault"):
        parse_only("drop,explode")


def test_command_line_options() -> None:
    args = parse_args(["--only", "stall,burst", "--stall-seconds", "20", "--burst-seconds", "5"])
    assert args.faults == ["stall", "burst"]
    assert (args.stall_s, args.burst_s, args.burst_rate) == (20.0, 5.0, 1000.0)
    assert args.json is None
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])
    with pytest.raises(SystemExit):
        parse_args(["--stall-seconds", "0"])


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)
    assert percentile([5.0, 1.0], 100) == 5.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_spread_and_its_text() -> None:
    stats = spread([0.1, 0.2, 0.3])
    assert stats["n"] == 3
    assert stats["max"] == 0.3
    assert fmt_spread(stats) == "p50 0.200 s, p99 0.298 s, max 0.300 s (n=3)"
    assert fmt_spread(spread([])) == "no samples"


def test_seconds_text() -> None:
    assert fmt_s(None) == "never"
    assert fmt_s(None, never="never (> 60 s)") == "never (> 60 s)"
    assert fmt_s(0.0213) == "0.021 s"
    assert fmt_s(92.04) == "92.0 s"


def test_count_changes() -> None:
    assert count_changes([]) == 0
    assert count_changes(["a"]) == 0
    assert count_changes(["a", "a", "b", "a", "a"]) == 2


def test_entries_lost_is_a_multiset_difference() -> None:
    before = [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"x": 3}]
    assert entries_lost(before, [{"b": 2, "a": 1}, {"x": 3}, {"new": 1}]) == 1
    assert entries_lost(before, [*before, {"new": 1}]) == 0
    assert entries_lost(before, []) == 3


def test_counters_lost_reports_only_falls() -> None:
    before = {"s.a": "1.5", "s.b": "2.0", "s.c": "unknown", "s.d": "3"}
    after = {"s.a": "1.6", "s.b": "0.5", "s.c": "1", "s.d": "unavailable"}
    assert counters_lost(before, after) == {"s.b": 1.5, "s.d": 3.0}


def test_find_key_searches_depth_first() -> None:
    tree = {"data": {"state": {"overrides": {"Zone4": {"on": False}}}, "list": [{"requests": 1}]}}
    assert find_key(tree, "overrides") == {"Zone4": {"on": False}}
    assert find_key(tree, "requests") == 1
    assert find_key(tree, "missing") is None
    assert find_key(None, "x") is None


def test_table_lists_rows_and_notes() -> None:
    report = FaultReport("drop", "drop every stream")
    report.add("HA reflects", "0.020 s", "reflect_s", 0.02)
    report.add("two lines", "first\nsecond")
    report.notes.append("something odd")
    text = format_table(report)
    assert text.splitlines()[0] == "== drop: drop every stream"
    assert "| HA reflects | 0.020 s" in text
    assert "|             | second" in text
    assert text.endswith("note: something odd")
    assert report.data == {"reflect_s": 0.02}


def test_watcher_applies_subscribe_entities_events() -> None:
    watcher = Watcher(entity_ids=["sensor.b", "event.alerts"], alert_entity="event.alerts")
    watcher._apply(
        1.0,
        {
            "a": {
                "sensor.b": {"s": "80.0", "a": {"unit": "%"}},
                "event.alerts": {"s": "unknown", "a": {}},
            }
        },
    )
    watcher._apply(2.0, {"c": {"sensor.b": {"+": {"s": "8.0"}}}})
    watcher._apply(3.0, {"c": {"sensor.b": {"+": {"s": "unavailable"}}}})
    watcher._apply(
        4.0,
        {"c": {"event.alerts": {"+": {"s": "2026-01-01T00:00:00", "a": {"severity": "critical"}}}}},
    )
    watcher._apply(
        5.0, {"c": {"sensor.b": {"+": {"s": "7.5", "a": {"x": 1}}, "-": {"a": ["unit"]}}}}
    )
    assert watcher.state == {"sensor.b": "7.5", "event.alerts": "2026-01-01T00:00:00"}
    assert watcher.attrs["sensor.b"] == {"x": 1}
    assert watcher.first("sensor.b", watcher.below(10), since=0) == 2.0
    assert watcher.states_of("sensor.b", since=2.5) == ["8.0", "unavailable", "7.5"]
    assert [a["severity"] for _, a in watcher.alerts] == ["critical"]
    assert watcher.unavailable_window(0.0, 6.0) == (1, pytest.approx(2.0))
