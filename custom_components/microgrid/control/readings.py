"""The boards' latest valid records: ingest with logged rejections, staleness, site power."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..const import CLOCK_SKEW_TOLERANCE, LOGGER, STALE_AFTER
from ..device import BoardReading, InvalidReading, parse_board_record
from ..site import SiteConfig
from .energy import EnergyCounters, trapezoid_kwh, zone_key

MAX_UNKNOWN_ZONES_KEPT = 100
MAX_REJECTIONS_KEPT = 50


class BoardReadings:
    """What the boards said last, per configured zone, and what was refused."""

    def __init__(self, site: SiteConfig, energy: EnergyCounters) -> None:
        """No reading yet; zone energy is integrated into `energy`."""
        self.site = site
        self.energy = energy
        self.latest: dict[str, BoardReading] = {}
        self.relay_changed_at: dict[str, datetime] = {}
        self.rejections: Counter[str] = Counter()
        self.recent_rejections: deque[dict[str, Any]] = deque(maxlen=MAX_REJECTIONS_KEPT)
        self.unknown_zones: set[str] = set()

    def ingest(
        self, now: datetime, mirror: Mapping[str, Any], keys: set[str]
    ) -> list[BoardReading]:
        """Validate and keep the boards' records (rejecting bad ones with a logged reason);
        return the new readings."""
        changed: list[BoardReading] = []
        for zone_id in keys:
            raw = mirror.get(zone_id)
            if raw is None:
                continue  # deleted node: keep the last good reading until it goes stale
            if self.site.zone(zone_id) is None:
                self._note_unknown(zone_id)
                continue
            try:
                reading = parse_board_record(zone_id, raw, now)
            except InvalidReading as err:
                self._reject(now, zone_id, err)
                continue
            if self._accept(reading):
                changed.append(reading)
        return changed

    def _note_unknown(self, zone_id: str) -> None:
        """A board that is not a configured zone: logged once, remembered (bounded)."""
        if zone_id in self.unknown_zones or len(self.unknown_zones) >= MAX_UNKNOWN_ZONES_KEPT:
            return  # a flood of made-up nodes must not grow memory
        self.unknown_zones.add(zone_id)
        LOGGER.warning("Board %s reports but is not a configured zone; add it as a zone", zone_id)

    def _reject(self, now: datetime, zone_id: str, err: InvalidReading) -> None:
        """Count and log a rejected record (once per zone and reason until it recovers)."""
        key = f"{zone_id}:{err.reason}"
        if self.rejections[key] == 0:
            LOGGER.warning("Rejected a record from %s: %s", zone_id, err)
        else:
            LOGGER.debug("Rejected a record from %s: %s", zone_id, err)
        self.rejections[key] += 1
        self.recent_rejections.append(
            {"at": now.isoformat(), "zone_id": zone_id, "reason": err.reason, "detail": err.detail}
        )

    def _accept(self, reading: BoardReading) -> bool:
        """Keep a valid reading: track relay changes and integrate the zone's energy.
        False when it repeats the last one."""
        previous = self.latest.get(reading.zone_id)
        if previous is not None and replace(previous, received_at=reading.received_at) == reading:
            # A resync replays unchanged records: the same reading again is not a fresh one.
            return False
        if (
            previous is not None
            and previous.measured_at - CLOCK_SKEW_TOLERANCE
            <= reading.measured_at
            < previous.measured_at
        ):
            # Older than the board's last record: a poll answered after the stream moved on,
            # or a replay. Far older is a board clock reset and goes through (staleness judges).
            return False
        if previous is not None:
            if previous.relay_on != reading.relay_on:
                self.relay_changed_at[reading.zone_id] = reading.received_at
            dt_s = (reading.received_at - previous.received_at).total_seconds()
            self.energy.add(
                zone_key(reading.zone_id),
                trapezoid_kwh(previous.output_power_w, reading.output_power_w, dt_s),
            )
        self.latest[reading.zone_id] = reading
        return True

    def is_online(self, zone_id: str, now: datetime) -> bool:
        """A board is online while its last record is fresh (by arrival and by its own clock)."""
        reading = self.latest.get(zone_id)
        if reading is None:
            return False
        return (
            now - reading.received_at <= STALE_AFTER
            and now - reading.measured_at <= STALE_AFTER + CLOCK_SKEW_TOLERANCE
        )

    def live(self, now: datetime) -> dict[str, BoardReading]:
        """The records of the boards online now, by zone."""
        return {z: r for z, r in self.latest.items() if self.is_online(z, now)}


def site_power(
    live: Mapping[str, BoardReading], outliers: Mapping[str, str]
) -> tuple[float | None, float | None]:
    """(solar W, load W): PV from the freshest board not flagged as an outlier (every board
    sees the same panels), the load summed over the online zones."""
    trusted = [r for z, r in live.items() if z not in outliers] or list(live.values())
    freshest = max(trusted, key=lambda r: r.received_at, default=None)
    if freshest is None:
        return None, None
    return freshest.solar_w, sum(r.output_power_w for r in live.values())
