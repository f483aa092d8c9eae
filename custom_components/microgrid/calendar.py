"""A calendar of the day plan's deferrable runs (the pump, the washer)."""

from __future__ import annotations

from datetime import datetime

from homeassistant.components.calendar import CalendarEntity, CalendarEvent
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .entity import MicrogridEntity
from .optimizer.model import PriorityClass
from .planning.manager import plan_runs
from .runtime import MicrogridConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MicrogridConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One planned-runs calendar per site."""
    async_add_entities([PlannedRunsCalendar(entry.runtime_data.coordinator)])


class PlannedRunsCalendar(MicrogridEntity, CalendarEntity):
    """Planned runs of the deferrable zones, from the current plan."""

    _attr_translation_key = "planned_runs"

    def __init__(self, coordinator) -> None:  # type: ignore[no-untyped-def]
        """Key `planned_runs`."""
        super().__init__(coordinator, "planned_runs")

    def _events(self) -> list[CalendarEvent]:
        """Every planned run of every deferrable zone, in time order."""
        result = self.coordinator.planner.plan
        if result is None:
            return []
        events = []
        for zone in self.coordinator.site.zones:
            if zone.priority is not PriorityClass.DEFERRABLE:
                continue
            for start, end in plan_runs(result, zone.zone_id):
                events.append(
                    CalendarEvent(
                        start=start,
                        end=end,
                        summary=zone.name,
                        description=f"{zone.zone_id}: planned run",
                        uid=f"{zone.zone_id}-{start.isoformat()}",
                    )
                )
        return sorted(events, key=lambda e: e.start_datetime_local)

    @property
    def event(self) -> CalendarEvent | None:
        """The run going on now, or the next one."""
        now = dt_util.utcnow()
        upcoming = [e for e in self._events() if e.end_datetime_local > now]
        return upcoming[0] if upcoming else None

    async def async_get_events(
        self, hass: HomeAssistant, start_date: datetime, end_date: datetime
    ) -> list[CalendarEvent]:
        """Runs overlapping the window."""
        return [
            e
            for e in self._events()
            if e.end_datetime_local > start_date and e.start_datetime_local < end_date
        ]
