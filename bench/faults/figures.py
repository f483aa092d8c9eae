"""The pure parts of the fault benchmark: fault names, statistics, comparisons, the tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
import json
import math
from typing import Any

# In the order they run (the unclean restart last: it replaces the Home Assistant process).
FAULTS: tuple[str, ...] = (
    "drop",
    "stall",
    "fail_next",
    "revoke_auth",
    "cancel",
    "burst",
    "outlier",
    "restart",
)


def parse_only(text: str | None) -> list[str]:
    """`--only drop,stall` -> the faults in run order; None or "" means all of them."""
    if not text:
        return list(FAULTS)
    asked = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(asked - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return [name for name in FAULTS if name in asked]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between ranks; None when empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be within [0, 100]")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, p50, p99 and max of a sample."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def fmt_s(value: float | None, *, never: str = "never") -> str:
    """Seconds for a table cell: `1.23 s`, or the `never` text."""
    if value is None:
        return never
    return f"{value:.3f} s" if value < 1 else f"{value:.1f} s"


def fmt_spread(stats: Mapping[str, Any], *, unit: str = "s") -> str:
    """`p50 0.012 s, p99 0.140 s, max 0.2 s (n=600)`."""
    if not stats.get("n"):
        return "no samples"
    cells = [
        f"{key} {fmt_s(stats[key])}" if unit == "s" else f"{key} {stats[key]:.1f} {unit}"
        for key in ("p50", "p99", "max")
        if stats.get(key) is not None
    ]
    return f"{', '.join(cells)} (n={stats['n']})"


def count_changes(states: Iterable[Any]) -> int:
    """How many times a sequence of states changes value (`a a b a` -> 2)."""
    changes = 0
    previous: Any = object()
    first = True
    for state in states:
        if not first and state != previous:
            changes += 1
        previous, first = state, False
    return changes


def entry_key(entry: Any) -> str:
    """A stable identity for an audit entry (its whole JSON, keys sorted)."""
    return json.dumps(entry, sort_keys=True, default=str)


def entries_lost(before: Iterable[Any], after: Iterable[Any]) -> int:
    """How many entries present before are missing after (a multiset difference)."""
    remaining: dict[str, int] = {}
    for entry in after:
        key = entry_key(entry)
        remaining[key] = remaining.get(key, 0) + 1
    lost = 0
    for entry in before:
        key = entry_key(entry)
        if remaining.get(key, 0) > 0:
            remaining[key] -= 1
        else:
            lost += 1
    return lost


def as_number(state: Any) -> float | None:
    """A numeric entity state, or None (unknown, unavailable, text)."""
    try:
        number = float(state)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def counters_lost(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
    """Per counter, how much a total_increasing value fell between two snapshots (only falls)."""
    lost: dict[str, float] = {}
    for key, old in before.items():
        old_n, new_n = as_number(old), as_number(after.get(key))
        if old_n is None:
            continue
        if new_n is None:
            lost[key] = old_n  # gone or unknown after: all of it is missing
        elif new_n < old_n - 1e-9:
            lost[key] = old_n - new_n
    return lost


def find_key(tree: Any, key: str) -> Any:
    """The first value stored under `key` anywhere in a JSON tree (depth first), or None."""
    if isinstance(tree, Mapping):
        if key in tree:
            return tree[key]
        children: Iterable[Any] = tree.values()
    elif isinstance(tree, list):
        children = tree
    else:
        return None
    for child in children:
        if (found := find_key(child, key)) is not None:
            return found
    return None


@dataclass
class FaultReport:
    """The figures of one fault, in the order they print, plus free-text notes."""

    name: str
    what: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, label: str, text: str, key: str | None = None, value: Any = None) -> None:
        """One table row; `key`/`value` also go to the JSON output."""
        self.rows.append((label, text))
        if key is not None:
            self.data[key] = value


def format_table(report: FaultReport) -> str:
    """The fault's figures as a two-column text table."""
    width = max([len(label) for label, _ in report.rows] + [len("figure")])
    bar = f"+-{'-' * width}-+-{'-' * 60}"
    lines = [f"== {report.name}: {report.what}", bar]
    for label, text in report.rows:
        first, *rest = text.splitlines() or [""]
        lines.append(f"| {label:<{width}} | {first}")
        lines += [f"| {'':<{width}} | {more}" for more in rest]
    lines.append(bar)
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)
