"""The sun at the site: its elevation, whether it is up, and the shape of a clear-sky PV day.

NOAA's solar position (the algorithm of its solar calculator, which astral and so Home
Assistant's sun helpers use too): sunrise and sunset agree with theirs to seconds. One rule for
the whole controller: dispatch's `sun_up` (street lights on a night schedule) and the plan's
schedule mask both ask `sun_up`; the PV prior asks `clear_sky_shape`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
import math

import numpy as np

# The sun is up while its upper limb is above the horizon: its centre less than its apparent
# radius below, less the refraction there (about 31' at sea level). The horizon dips below the
# horizontal seen from above sea level. Radius, Earth radius and refraction formula are astral's,
# which Home Assistant's sun helpers use, so sunrise and sunset agree with `sun.sun` and
# `homeassistant.helpers.sun.is_up` (about -0.79 degrees at sea level; almanacs say -0.833).
SUN_APPARENT_RADIUS_DEG = 16.0 / 60.0
EARTH_RADIUS_M = 6356900.0


def sine_of_elevation(times: Sequence[datetime], latitude_deg: float, longitude_deg: float):
    """The sine of the sun's geometric elevation at each instant (an array)."""
    return sine_of_elevation_s(
        np.asarray([t.timestamp() for t in times], dtype=float), latitude_deg, longitude_deg
    )


def sine_of_elevation_s(seconds: np.ndarray, latitude_deg: float, longitude_deg: float):
    """`sine_of_elevation` at instants given as seconds since the epoch (an array)."""
    # Julian centuries since J2000.0 (the epoch is 2000-01-01 12:00 UTC).
    jc = (seconds / 86400.0 - 10957.5) / 36525.0
    mean_long = np.radians((280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360.0)
    anomaly = np.radians(357.52911 + jc * (35999.05029 - 0.0001537 * jc))
    eccentricity = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    centre = (
        np.sin(anomaly) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * anomaly) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * anomaly) * 0.000289
    )
    omega = np.radians(125.04 - 1934.136 * jc)
    apparent_long = np.radians(np.degrees(mean_long) + centre - 0.00569 - 0.00478 * np.sin(omega))
    obliquity = np.radians(
        23.0
        + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
        + 0.00256 * np.cos(omega)
    )
    declination = np.arcsin(np.sin(obliquity) * np.sin(apparent_long))
    y = np.tan(obliquity / 2.0) ** 2
    eqtime_min = 4.0 * np.degrees(
        y * np.sin(2 * mean_long)
        - 2 * eccentricity * np.sin(anomaly)
        + 4 * eccentricity * y * np.sin(anomaly) * np.cos(2 * mean_long)
        - 0.5 * y * y * np.sin(4 * mean_long)
        - 1.25 * eccentricity * eccentricity * np.sin(2 * anomaly)
    )
    solar_min = (seconds % 86400.0) / 60.0 + eqtime_min + 4.0 * longitude_deg
    hour_angle = np.radians(solar_min / 4.0 - 180.0)
    lat = math.radians(latitude_deg)
    return np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(
        hour_angle
    )


def horizon_dip_deg(elevation_m: float) -> float:
    """How far below the horizontal the horizon lies seen from `elevation_m` above sea level."""
    if not elevation_m > 0:
        return 0.0
    return math.degrees(math.acos(EARTH_RADIUS_M / (EARTH_RADIUS_M + elevation_m)))


def refraction_deg(elevation_deg: float) -> float:
    """How much the atmosphere lifts a body seen at this elevation (NOAA's approximation)."""
    if elevation_deg >= 85.0:
        return 0.0
    te = math.tan(math.radians(elevation_deg))
    if elevation_deg > 5.0:
        arcsec = 58.1 / te - 0.07 / te**3 + 0.000086 / te**5
    elif elevation_deg > -0.575:
        e = elevation_deg
        arcsec = 1735.0 + e * (-518.2 + e * (103.4 + e * (-12.79 + e * 0.711)))
    else:
        arcsec = -20.774 / te
    return arcsec / 3600.0


def sunrise_elevation_deg(elevation_m: float = 0.0) -> float:
    """The sun's geometric elevation at sunrise and sunset seen from `elevation_m`."""
    depression = SUN_APPARENT_RADIUS_DEG + horizon_dip_deg(elevation_m)
    return -(depression + refraction_deg(-depression))


def sun_up(
    now: datetime, latitude_deg: float, longitude_deg: float, elevation_m: float = 0.0
) -> bool:
    """Whether the sun is up at the site now (between sunrise and sunset)."""
    return sun_up_at([now], latitude_deg, longitude_deg, elevation_m)[0]


def sun_up_at(
    times: Sequence[datetime],
    latitude_deg: float,
    longitude_deg: float,
    elevation_m: float = 0.0,
) -> list[bool]:
    """`sun_up` for each instant."""
    limit = math.sin(math.radians(sunrise_elevation_deg(elevation_m)))
    return [bool(v) for v in sine_of_elevation(times, latitude_deg, longitude_deg) > limit]


def clear_sky_shape(
    times: Sequence[datetime], latitude_deg: float, longitude_deg: float
) -> list[float]:
    """Sine of the sun's elevation (0 at night) per time: the shape of a clear-sky PV day."""
    return [max(0.0, float(v)) for v in sine_of_elevation(times, latitude_deg, longitude_deg)]
