"""Slot means of live samples for the last days, as a History (the recorder may keep less)."""

from __future__ import annotations

from collections.abc import Mapping
import math

import numpy as np

from .history import History, empty_history, slot_grid
from .series import history_of_roles, roles_of


class SampleBuffer:
    """Means of the samples in each `slot_s` slot, for the last `keep_s` seconds."""

    def __init__(self, *, slot_s: float, keep_s: float) -> None:
        """Empty."""
        self.slot_s = slot_s
        self.keep_s = keep_s
        # slot start (epoch s) -> role -> [sum, count]
        self._slots: dict[float, dict[str, list[float]]] = {}

    def __len__(self) -> int:
        """Number of slots held."""
        return len(self._slots)

    def add(self, now_s: float, values: Mapping[str, float | None]) -> None:
        """Add one sample (series by role, as in `ml.series`) to its slot."""
        # Samples come every 5 s tick and on every reading, so a plain mean is close enough to
        # a time-weighted one.
        start = math.floor(now_s / self.slot_s) * self.slot_s
        slot = self._slots.get(start)
        if slot is None:
            slot = self._slots[start] = {}
            self._prune(start)
        for key, value in values.items():
            if value is None or not math.isfinite(value):
                continue
            acc = slot.setdefault(key, [0.0, 0.0])
            acc[0] += value
            acc[1] += 1.0

    def _prune(self, now_slot: float) -> None:
        """Forget slots older than `keep_s`."""
        oldest = now_slot - self.keep_s
        for start in [s for s in self._slots if s < oldest]:
            del self._slots[start]

    def seed(self, history: History, *, before_s: float) -> int:
        """Fill slots before `before_s` that hold nothing yet from a recorded history."""
        added = 0
        roles = roles_of(history)
        for i, start in enumerate(history.timestamps.tolist()):
            if start >= before_s or start in self._slots:
                continue
            slot = {k: [float(v[i]), 1.0] for k, v in roles.items() if math.isfinite(v[i])}
            if slot:
                self._slots[start] = slot
                added += 1
        self._slots = dict(sorted(self._slots.items()))
        if self._slots:
            self._prune(max(self._slots))
        return added

    def history(self, zones: tuple[str, ...]) -> History:
        """The buffer as a History on the slot grid (missing slots NaN)."""
        if not self._slots:
            return empty_history(zones)
        starts = sorted(self._slots)
        grid = slot_grid(starts[0], starts[-1], self.slot_s)
        index = {s: i for i, s in enumerate(grid.tolist())}
        columns: dict[str, np.ndarray] = {}
        # One pass over the slots (this runs on the event loop every refresh).
        for start, slot in self._slots.items():
            i = index.get(start)
            if i is None:
                continue
            for key, (total, count) in slot.items():
                if count > 0:
                    if key not in columns:
                        columns[key] = np.full(grid.shape, np.nan)
                    columns[key][i] = total / count
        return history_of_roles(
            grid, zones, lambda role: columns.get(role, np.full(grid.shape, np.nan))
        )
