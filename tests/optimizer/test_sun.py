"""The sun rule: sunrise and sunset as Home Assistant's sun helpers (astral) put them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from astral import Observer
from astral.sun import sunrise, sunset
import pytest

from optimizer.sun import clear_sky_shape, sun_up

PLACES = (  # latitude, longitude, elevation (m)
    (12.0, 0.0, 0.0),
    (-1.3, 36.8, 1700.0),  # Nairobi
    (-33.9, 18.4, 0.0),
    (52.5, 13.4, 40.0),
    (60.0, -150.0, 0.0),
)


@pytest.mark.parametrize(("latitude", "longitude", "elevation"), PLACES)
def test_sunrise_and_sunset_match_home_assistants(
    latitude: float, longitude: float, elevation: float
) -> None:
    """A minute either side of astral's sunrise the sun is down, then up; around sunset the
    other way, through the year (so street lights switch when Home Assistant's sun does)."""
    observer = Observer(latitude=latitude, longitude=longitude, elevation=elevation)
    minute = timedelta(minutes=1)
    for week in range(0, 52, 3):
        day = date(2025, 1, 1) + timedelta(weeks=week)
        rise = sunrise(observer, day, tzinfo=UTC)
        set_ = sunset(observer, day, tzinfo=UTC)
        assert not sun_up(rise - minute, latitude, longitude, elevation), rise
        assert sun_up(rise + minute, latitude, longitude, elevation), rise
        assert sun_up(set_ - minute, latitude, longitude, elevation), set_
        assert not sun_up(set_ + minute, latitude, longitude, elevation), set_


def test_polar_day_and_night() -> None:
    """Above the Arctic circle the sun stays up in June and down in December."""
    june = [datetime(2025, 6, 21, h, tzinfo=UTC) for h in range(24)]
    december = [datetime(2025, 12, 21, h, tzinfo=UTC) for h in range(24)]
    assert all(sun_up(t, 80.0, 0.0) for t in june)
    assert not any(sun_up(t, 80.0, 0.0) for t in december)


def test_clear_sky_shape() -> None:
    """The sine of the sun's elevation: 0 at night, near 1 at an equinox noon on the equator."""
    night, noon = datetime(2025, 3, 20, 0, tzinfo=UTC), datetime(2025, 3, 20, 12, 7, tzinfo=UTC)
    assert clear_sky_shape([night, noon], 0.0, 0.0)[0] == 0.0
    assert clear_sky_shape([night, noon], 0.0, 0.0)[1] > 0.999
