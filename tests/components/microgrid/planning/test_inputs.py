"""The integration's side of the controller's inputs: the site at Home Assistant's location
and the deferrable zones' daily jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from custom_components.microgrid.optimizer.model import PriorityClass, Thresholds, Zone
from custom_components.microgrid.planning.inputs import controller_site, daily_jobs
from custom_components.microgrid.site import SiteConfig

ZONES = (
    Zone(zone_id="C", name="clinic", priority=PriorityClass.CRITICAL, rated_w=150),
    Zone(zone_id="P", name="pump", priority=PriorityClass.DEFERRABLE, rated_w=300),
)


async def test_controller_site_is_the_configured_site_where_home_assistant_is(
    hass: HomeAssistant,
) -> None:
    """Zones, capacity, thresholds and the one power limit from the entry; the location (the
    sun rule) from Home Assistant's configuration; a what-if may pass other zones."""
    hass.config.latitude, hass.config.longitude, hass.config.elevation = -1.3, 36.8, 1700
    thresholds = Thresholds(conservation_pct=30)
    site = SiteConfig(
        site_name="s",
        capacity_wh=5000,
        nominal_voltage_v=24,
        power_limit_w=1200,
        thresholds=thresholds,
        control_auto=True,
        zones=ZONES,
        zone_subentry={},
        households={},
    )
    out = controller_site(site, hass.config)
    assert (out.zones, out.capacity_wh, out.inverter_limit_w) == (ZONES, 5000, 1200)
    assert out.thresholds is thresholds
    assert (out.latitude_deg, out.longitude_deg, out.elevation_m) == (-1.3, 36.8, 1700.0)
    assert out.max_charge_w is None and out.max_discharge_w is None  # the one limit
    assert controller_site(site, hass.config, ZONES[:1]).zones == ZONES[:1]


async def test_daily_jobs_are_what_is_left_of_the_day_by_the_evening(hass: HomeAssistant) -> None:
    """A deferrable zone runs 4 h of its rating a day, due 20:00 local (tomorrow's once that
    passed), less what it already drew today; none once it is done."""
    await hass.config.async_set_time_zone("UTC")
    now = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    (job,) = daily_jobs(now, ZONES, 288, lambda _zone, _now: 200.0)
    assert (job.zone_id, job.energy_wh, job.earliest) == ("P", 1000.0, now)
    assert job.deadline == dt_util.as_utc(datetime(2025, 3, 1, 20, 0, tzinfo=UTC))
    assert job.splittable and job.job_id == "P daily"
    evening = datetime(2025, 3, 1, 21, 0, tzinfo=UTC)
    (job,) = daily_jobs(evening, ZONES, 288, lambda _zone, _now: 0.0)
    assert job.deadline == evening + timedelta(hours=23)
    assert daily_jobs(now, ZONES, 288, lambda _zone, _now: 1200.0) == ()
