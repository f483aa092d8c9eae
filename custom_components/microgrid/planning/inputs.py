"""The integration's side of `optimizer.controller`: the configured site where Home Assistant
says it is, and the deferrable zones' daily jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from homeassistant.core_config import Config
from homeassistant.util import dt as dt_util

from ..optimizer.controller import Site
from ..optimizer.model import PriorityClass, Zone
from ..optimizer.plan_model import DeferrableJob
from ..site import SiteConfig
from .history import SLOT_MINUTES

# A deferrable zone with no job given runs this long a day (a pump, a washer) by default.
DEFAULT_DEFERRABLE_HOURS = 4.0
DEFERRABLE_DEADLINE_HOUR = 20  # local time by which the day's deferrable energy should be in


def controller_site(
    site: SiteConfig, config: Config, zones: tuple[Zone, ...] | None = None
) -> Site:
    """The site as the controller sees it: configured zones (or `zones`), battery, thresholds
    and power limit, at Home Assistant's location (the sun rule)."""
    return Site(
        zones=site.zones if zones is None else zones,
        capacity_wh=site.capacity_wh,
        inverter_limit_w=site.power_limit_w,
        thresholds=site.thresholds,
        latitude_deg=config.latitude,
        longitude_deg=config.longitude,
        elevation_m=float(config.elevation or 0),
    )


def daily_jobs(
    now: datetime,
    zones: tuple[Zone, ...],
    slots: int,
    energy_today_wh: Callable[[str, datetime], float],
) -> tuple[DeferrableJob, ...]:
    """Each deferrable zone's remaining energy for today, due by the evening."""
    local = dt_util.as_local(now)
    deadline = local.replace(hour=DEFERRABLE_DEADLINE_HOUR, minute=0, second=0, microsecond=0)
    if deadline <= local:
        deadline += timedelta(days=1)
    horizon_end = now + timedelta(minutes=SLOT_MINUTES * slots)
    deadline_utc = min(dt_util.as_utc(deadline), horizon_end)
    jobs = []
    for zone in zones:
        if zone.priority is not PriorityClass.DEFERRABLE or zone.rated_w <= 0:
            continue
        remaining = zone.rated_w * DEFAULT_DEFERRABLE_HOURS - energy_today_wh(zone.zone_id, now)
        if remaining <= 1.0 or deadline_utc <= now:
            continue
        jobs.append(
            DeferrableJob(
                zone_id=zone.zone_id,
                energy_wh=remaining,
                earliest=now,
                deadline=deadline_utc,
                splittable=True,
                job_id=f"{zone.zone_id} daily",
            )
        )
    return tuple(jobs)
