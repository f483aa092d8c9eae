"""Boards whose battery readings keep disagreeing with the fused battery."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from ..const import LOGGER
from ..device import BoardReading
from ..optimizer.fusion import FusedBattery

# A board is flagged as an outlier once this many of its records in a row, over at least this
# long, disagree with the fused battery (a record or two behind a genuine change is no fault).
OUTLIER_AFTER_RECORDS = 2
OUTLIER_AFTER = timedelta(seconds=30)


class OutlierTracker:
    """Flags and unflags boards; the flagged ones are left out of the fusion and site PV."""

    def __init__(self) -> None:
        """Nobody flagged."""
        self.flagged: dict[str, str] = {}  # zone -> why
        # zone -> (its last disagreeing record's arrival, how many in a row, since when)
        self._records: dict[str, tuple[datetime, int, datetime]] = {}

    def track(
        self, now: datetime, battery: FusedBattery | None, live: Mapping[str, BoardReading]
    ) -> list[tuple[str, str, BoardReading]]:
        """Count each online board's disagreement; return the boards flagged now as
        (zone, reason, its record). A board that agrees again is unflagged (logged)."""
        newly: list[tuple[str, str, BoardReading]] = []
        for zone_id, reading in live.items():
            reason = battery.outliers.get(zone_id) if battery else None
            if reason is None:
                self._records.pop(zone_id, None)
                if self.flagged.pop(zone_id, None) is not None:
                    LOGGER.info("Board %s agrees with the others again", zone_id)
                continue
            seen_at, count, since = self._records.get(zone_id, (None, 0, now))
            if seen_at != reading.received_at:
                count += 1
                self._records[zone_id] = (reading.received_at, count, since)
            if (
                count >= OUTLIER_AFTER_RECORDS
                and now - since >= OUTLIER_AFTER
                and zone_id not in self.flagged
            ):
                self.flagged[zone_id] = reason
                newly.append((zone_id, reason, reading))
        return newly
