"""The daily energy report: yesterday as it happened, to the admins' notify targets at a set
time, and each household's own part to its inbox."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_time_change
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, LOGGER
from ..control.ledger import DayReport
from ..optimizer.model import PriorityClass
from ..people.inbox import Inbox
from ..site import SiteConfig
from .channels.notify import NotifyChannel
from .model import Alert, AlertType, Severity

DEFAULT_REPORT_TIME: Final = time(7, 0)
BANDS: Final = ("normal", "conservation", "emergency")
CLASS_PLACEHOLDERS: Final = tuple(f"{c.value}_kwh" for c in PriorityClass)


def _kwh(wh: float) -> str:
    return f"{wh / 1000:.2f}"


def site_summary(report: DayReport) -> dict[str, str]:
    """The placeholders of the site's report message."""
    served = sum(z.served_wh for z in report.zones.values())
    unserved = sum(z.unserved_wh for z in report.zones.values())
    classes = report.by_class()
    return {
        "day": report.day.isoformat(),
        "served_kwh": _kwh(served),
        "unserved_kwh": _kwh(unserved),
        "min_soc": "-" if report.min_soc_pct is None else f"{report.min_soc_pct:.0f}",
        **{f"hours_{band}": f"{report.band_h.get(band, 0.0):.1f}" for band in BANDS},
        **{
            f"{cls}_kwh": f"{_kwh(v['served_wh'])}/{_kwh(v['unserved_wh'])}"
            for cls, v in classes.items()
        },
    }


def household_summary(report: DayReport, household: str) -> dict[str, str]:
    """The placeholders of one household's part."""
    part = report.for_household(household)
    return {
        "household": household,
        "day": report.day.isoformat(),
        "served_kwh": _kwh(sum(z.served_wh for z in part.zones.values())),
        "unserved_kwh": _kwh(sum(z.unserved_wh for z in part.zones.values())),
        "shed_h": f"{sum(z.shed_h for z in part.zones.values()):.1f}",
    }


class DailyReporter:
    """Sends the last complete day's report once, at the configured local time."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        site: SiteConfig,
        strings: Mapping[str, str],
        report_of: Callable[[date | None], DayReport | None],
        alerts_between: Callable[[datetime, datetime], int],
        overrides_between: Callable[[datetime, datetime], int],
        inbox: Inbox,
        notify_targets: tuple[str, ...],
        at: time = DEFAULT_REPORT_TIME,
    ) -> None:
        """Nothing sent yet."""
        self._hass = hass
        self._site = site
        self._strings = strings
        self._report_of = report_of
        self._alerts_between = alerts_between
        self._overrides_between = overrides_between
        self._inbox = inbox
        self._targets = notify_targets
        self._at = at
        self.sent_day: date | None = None

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Arm the daily timer; the returned callback disarms it."""
        return async_track_time_change(
            self._hass, self._async_at_time, hour=self._at.hour, minute=self._at.minute, second=0
        )

    async def _async_at_time(self, now: datetime) -> None:
        await self.async_send(dt_util.as_utc(now))

    def _text(self, key: str, placeholders: Mapping[str, str]) -> str:
        template = self._strings.get(f"component.{DOMAIN}.exceptions.{key}.message", key)
        try:
            return template.format(**placeholders)
        except (KeyError, IndexError, ValueError):
            LOGGER.warning("The %s text does not fit its placeholders", key)
            return key

    def response(self, report: DayReport) -> dict[str, Any]:
        """The report with the alerts and overrides of its day (action response)."""
        return {
            **report.as_dict(),
            "alerts": self._alerts_between(report.start, report.end),
            "overrides": self._overrides_between(report.start, report.end),
        }

    async def async_send(self, now: datetime) -> DayReport | None:
        """Send the last complete day's report unless it was sent; returns what was sent."""
        report = self._report_of(None)
        if report is None or report.day == self.sent_day:
            return None
        self.sent_day = report.day
        placeholders = {
            **dict.fromkeys(CLASS_PLACEHOLDERS, "0.00/0.00"),  # a class without zones
            **site_summary(report),
            "site": self._site.site_name,
            "alerts": str(self._alerts_between(report.start, report.end)),
            "overrides": str(self._overrides_between(report.start, report.end)),
        }
        alert = Alert(
            alert_id=f"daily_report_{report.day.isoformat()}",
            alert_type=AlertType.CUSTOM,
            severity=Severity.INFO,
            title=self._text("daily_report_title", placeholders),
            message=self._text("daily_report_message", placeholders),
            created_at=now,
        )
        for target in self._targets:
            try:
                await NotifyChannel(self._hass, target).async_send(alert, escalated=False)
            except (HomeAssistantError, TimeoutError) as err:
                LOGGER.warning("The daily report to %s failed: %s", target, err)
        for household in self._site.households:
            part = household_summary(report, household)
            if part["served_kwh"] == part["unserved_kwh"] == "0.00":
                continue  # no zone of its own, or nothing happened
            self._inbox.post(
                now=now,
                household=household,
                title=self._text("daily_report_title", placeholders),
                message=self._text("daily_report_household", part),
            )
        return report
