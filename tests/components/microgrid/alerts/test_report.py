"""The daily report: the admins' notify targets get the site's day, each household its own part
in its inbox, once per day."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from homeassistant.core import HomeAssistant
from homeassistant.helpers.translation import async_get_translations
from pytest_homeassistant_custom_component.common import async_mock_service

from custom_components.microgrid.alerts.report import DailyReporter
from custom_components.microgrid.const import DOMAIN
from custom_components.microgrid.control.ledger import DayLedger, ZoneSample
from custom_components.microgrid.optimizer.model import (
    Band,
    PriorityClass,
    Thresholds,
    Zone,
)
from custom_components.microgrid.people.inbox import Inbox
from custom_components.microgrid.site import SiteConfig

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SITE = SiteConfig(
    site_name="Village",
    capacity_wh=5000,
    nominal_voltage_v=12,
    power_limit_w=1000,
    thresholds=Thresholds(),
    control_auto=True,
    zones=(
        Zone(zone_id="Zone1", name="Clinic", priority=PriorityClass.CRITICAL, rated_w=150),
        Zone(
            zone_id="Zone3",
            name="Homes",
            priority=PriorityClass.NON_CRITICAL,
            rated_w=400,
            household="Okafor",
        ),
    ),
    zone_subentry={},
    households={"Okafor": frozenset({"u1"}), "Mensah": frozenset({"u2"})},
)


def _day_with_a_shed_hour() -> DayLedger:
    """An hour of the homes shed in emergency, the clinic drawing 150 W, then midnight."""
    ledger = DayLedger(UTC)
    for minute in range(0, 61, 5):
        now = T0 + timedelta(minutes=minute)
        zones = {
            "Zone1": ZoneSample(
                priority=PriorityClass.CRITICAL,
                household=None,
                relay_on=True,
                decided_on=True,
                reason="critical_always_on",
                expected_w=150.0,
            ),
            "Zone3": ZoneSample(
                priority=PriorityClass.NON_CRITICAL,
                household="Okafor",
                relay_on=False,
                decided_on=False,
                reason="battery_emergency",
                expected_w=400.0,
            ),
        }
        served = {"Zone1": 150.0 * minute / 60, "Zone3": 0.0}
        ledger.observe(now, soc_pct=9.0, band=Band.EMERGENCY, zones=zones, served_wh=served)
    midnight = datetime(2026, 6, 2, 0, 0, tzinfo=UTC)
    assert ledger.observe(midnight, soc_pct=9.0, band=Band.EMERGENCY, zones={}, served_wh=served)
    return ledger


async def test_the_report_reaches_admins_and_each_household_its_part(hass: HomeAssistant) -> None:
    """The admin's notify gets the site's numbers; Okafor's inbox gets its shed hour; Mensah
    (no zone) gets nothing; a second send the same day sends nothing."""
    calls = async_mock_service(hass, "notify", "ops")
    ledger = _day_with_a_shed_hour()
    inbox = Inbox(hass, "entry1")
    await inbox.async_load()
    reporter = DailyReporter(
        hass,
        site=SITE,
        strings=await async_get_translations(hass, "en", "exceptions", [DOMAIN]),
        report_of=ledger.report,
        alerts_between=lambda start, end: 2,
        overrides_between=lambda start, end: 1,
        inbox=inbox,
        notify_targets=("notify.ops",),
        at=time(7, 0),
    )
    sent = await reporter.async_send(datetime(2026, 6, 2, 7, 0, tzinfo=UTC))
    assert sent is not None and sent.day == T0.date()
    assert len(calls) == 1
    message = calls[0].data["message"]
    assert calls[0].data["title"] == "Village: energy report for 2026-06-01"
    assert "Served 0.15 kWh" in message and "about 0.40 kWh" in message
    assert "Lowest battery 9 %" in message
    assert "critical 0.15/0.00" in message and "non-critical 0.00/0.40" in message
    assert "Alerts: 2" in message and "overrides: 1" in message
    [okafor] = inbox.messages(["Okafor"])
    assert "about 0.40 kWh could not be given (1.0 h" in okafor.message
    assert inbox.messages(["Mensah"]) == []
    assert await reporter.async_send(datetime(2026, 6, 2, 7, 1, tzinfo=UTC)) is None
    assert len(calls) == 1
    response = reporter.response(sent)
    assert response["alerts"] == 2 and response["zones"]["Zone3"]["unserved_wh"] == 400.0
