"""The daily report as an action, over a real local midnight: admins get the site, a household
member only their own zones."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import push, site_records

from .conftest import call


async def test_the_day_closes_at_local_midnight_and_is_reported(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    admin_user: User,
    household_user: User,
) -> None:
    """Ten minutes before local midnight the site drops into emergency (homes shed); after
    midnight the closed day shows the clinic's served energy as its counter says, the homes'
    shed time and estimated shortfall, and the lowest SoC; Asha sees only Homes."""
    site = {"config_entry": init_integration.entry_id}
    coordinator = init_integration.runtime_data.coordinator
    local_midnight = dt_util.start_of_local_day(dt_util.now() + timedelta(days=1))
    freezer.move_to(local_midnight - timedelta(minutes=10))
    with pytest.raises(ServiceValidationError):
        await call(hass, "get_daily_report", {**site, "day": "2020-01-01"}, admin_user)
    clinic_start = None
    for minute in range(0, 16):  # 23:50 .. 00:05, a record a minute
        await push(init_integration, rtdb, site_records(8.0, at=dt_util.utcnow()))
        if clinic_start is None:
            clinic_start = coordinator.energy_kwh.get("zone:Zone1", 0.0)
        if minute == 10:
            clinic_at_midnight = coordinator.energy_kwh.get("zone:Zone1", 0.0)
        freezer.tick(timedelta(minutes=1))
    day = (local_midnight - timedelta(minutes=10)).date().isoformat()
    report = await call(hass, "get_daily_report", site, admin_user)
    assert report["day"] == day
    assert report["min_soc_pct"] == 8.0
    assert report["band_h"]["emergency"] == pytest.approx(10 / 60, abs=0.02)
    clinic, homes = report["zones"]["Zone1"], report["zones"]["Zone3"]
    assert clinic["served_wh"] == pytest.approx(1000 * (clinic_at_midnight - clinic_start), abs=0.2)
    assert clinic["served_wh"] > 0 and clinic["unserved_wh"] == 0
    assert homes["shed_h"] == pytest.approx(10 / 60, abs=0.02) and homes["unserved_wh"] > 0
    assert report["alerts"] >= 1  # the emergency alert
    mine = await call(hass, "get_daily_report", {**site, "day": day}, household_user)
    assert set(mine["zones"]) == {"Zone3"} and mine["households"] == ["Homes"]
