"""Real data for the benchmarks: a measured household load (EMHASS) and TMY3 PV per kWp (pvlib).

Every series is indexed by the *start* of its slot and holds the mean power over that slot, so
energy in Wh is ``value_w * slot_minutes / 60``. See bench/data/README.md for provenance.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
import re

import numpy as np
import pandas as pd
import pvlib
from pvlib import atmosphere, iam, inverter, irradiance, pvsystem, solarposition, temperature
from pvlib.iotools import read_tmy3

DATA_DIR = Path(__file__).parent / "data"
LOAD_CSV = DATA_DIR / "emhass_load_30min.csv"
LOAD_SLOT_MINUTES = 30
SLOT_MINUTES_ALLOWED = (5, 10, 15, 30, 60)
DEFAULT_STATION = "723170"
PVLIB_DATA_DIR = Path(pvlib.__file__).parent / "data"
# TMY3 files are named <USAF id>TY.csv or <USAF id>TYA.CSV.
_TMY3_NAME = re.compile(r"^(\d{6})TYA?\.csv$", re.IGNORECASE)
# A TMY year stitches months from different years; label it with one non-leap year.
TMY_NOMINAL_YEAR = 2001
HOURS_PER_TMY_YEAR = 8760


@dataclass(frozen=True, kw_only=True)
class PvArrayModel:
    """A fixed, equator-facing array modelled the PVWatts way, 1 kWp DC."""

    tilt_deg: float = 25.0
    dc_nameplate_w: float = 1000.0
    gamma_pdc_per_c: float = -0.0037  # PVWatts v8 "standard" module
    dc_ac_ratio: float = 1.2  # PVWatts default
    eta_inverter_nominal: float = 0.96  # PVWatts default
    system_losses_pct: float = float(pvsystem.pvwatts_losses())  # PVWatts defaults, ~14.1 %
    temperature_model: str = "open_rack_glass_polymer"  # SAPM cell temperature parameters


PV_ARRAY = PvArrayModel()


def _check_slot_minutes(slot_minutes: int) -> None:
    """Reject slot lengths the series cannot be cut into."""
    if slot_minutes not in SLOT_MINUTES_ALLOWED:
        raise ValueError(
            f"slot_minutes must be one of {SLOT_MINUTES_ALLOWED}, got {slot_minutes!r}"
        )


def _upsample_mean_preserving(
    means: np.ndarray,
    factor: int,
    mask: np.ndarray | None = None,
    cap: float | None = None,
) -> np.ndarray:
    """Split interval means into `factor` slots each: linear between midpoints, means kept."""
    n_intervals = len(means)
    if factor == 1:
        return means.astype(float).copy()
    interval_mid = np.arange(n_intervals) + 0.5
    slot_mid = (np.arange(n_intervals * factor) + 0.5) / factor
    shaped = np.interp(slot_mid, interval_mid, means)
    if mask is not None:
        shaped = shaped * mask
    shaped = shaped.reshape(n_intervals, factor)
    sums = shaped.sum(axis=1)
    safe_sums = np.where(sums > 0, sums, 1.0)
    scale = np.where(sums > 0, means * factor / safe_sums, 0.0)
    out = shaped * scale[:, None]
    # An interval with energy but no shape left (e.g. twilight diffuse) keeps a flat profile.
    flat = (sums <= 0) & (means > 0)
    out[flat] = means[flat, None]
    if cap is not None:
        # Rescaling can lift a peak past the inverter limit: cut it and refill the other
        # producing slots of that interval in proportion to their headroom.
        out = np.minimum(out, cap)
        deficit = means * factor - out.sum(axis=1)
        room = np.where(out > 0, cap - out, 0.0)
        room_sum = room.sum(axis=1)
        fill = np.where(room_sum > 0, deficit / np.where(room_sum > 0, room_sum, 1.0), 0.0)
        out = out + room * fill[:, None]
    return out.reshape(-1)


def _downsample_mean(series: pd.Series, factor: int) -> pd.Series:
    """Average `factor` consecutive slots, dropping an incomplete trailing group."""
    n_whole = len(series) // factor * factor
    values = series.to_numpy()[:n_whole].reshape(-1, factor).mean(axis=1)
    return pd.Series(values, index=series.index[:n_whole:factor], name=series.name)


@cache
def _household_load_cached() -> pd.Series:
    """Read the shipped 30-min load CSV once."""
    frame = pd.read_csv(LOAD_CSV)
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True), freq="30min")
    series = pd.Series(frame["load_w"].to_numpy(dtype=float), index=index, name="load_w")
    if series.isna().any() or (series < 0).any():
        raise ValueError(f"{LOAD_CSV} holds NaN or negative load; re-run the conversion")
    return series


def household_load() -> pd.Series:
    """Measured household load in W, UTC, 30-min slots (EMHASS training data, gaps filled)."""
    return _household_load_cached().copy()


def household_load_resampled(slot_minutes: int) -> pd.Series:
    """Household load in W at `slot_minutes`, energy-preserving (shape interpolated when finer)."""
    _check_slot_minutes(slot_minutes)
    load = _household_load_cached()
    if slot_minutes >= LOAD_SLOT_MINUTES:
        out = _downsample_mean(load, slot_minutes // LOAD_SLOT_MINUTES)
    else:
        factor = LOAD_SLOT_MINUTES // slot_minutes
        values = _upsample_mean_preserving(load.to_numpy(), factor)
        index = pd.date_range(load.index[0], periods=len(values), freq=f"{slot_minutes}min")
        out = pd.Series(values, index=index, name=load.name)
    out.index.freq = f"{slot_minutes}min"
    return out


def pv_stations() -> list[str]:
    """USAF ids of the TMY3 weather files bundled with pvlib."""
    return sorted(
        match.group(1)
        for path in PVLIB_DATA_DIR.iterdir()
        if (match := _TMY3_NAME.match(path.name))
    )


def _station_file(station: str) -> Path:
    """Path of one bundled TMY3 file, or a clear error."""
    for path in PVLIB_DATA_DIR.iterdir():
        match = _TMY3_NAME.match(path.name)
        if match and match.group(1) == station:
            return path
    raise ValueError(f"unknown TMY3 station {station!r}; bundled: {pv_stations()}")


def _tmy_slot_starts(tz: object, slot_minutes: int) -> pd.DatetimeIndex:
    """Slot starts of the nominal TMY year in the station's local standard time."""
    periods = HOURS_PER_TMY_YEAR * 60 // slot_minutes
    return pd.date_range(
        f"{TMY_NOMINAL_YEAR}-01-01", periods=periods, freq=f"{slot_minutes}min", tz=tz
    )


@cache
def _pv_hourly(station: str, array: PvArrayModel = PV_ARRAY) -> tuple[pd.Series, dict]:
    """Hourly mean AC power per kWp (hour-start index, local standard time) and the metadata."""
    weather, meta = read_tmy3(_station_file(station), map_variables=True)
    if len(weather) != HOURS_PER_TMY_YEAR:
        raise ValueError(f"station {station}: {len(weather)} hours, expected {HOURS_PER_TMY_YEAR}")
    # TMY3 stamps the end of each hour, in order from Jan 1 01:00 to Dec 31 24:00.
    starts = _tmy_slot_starts(weather.index.tz, 60)
    mids = starts + pd.Timedelta(minutes=30)
    lat, lon = meta["latitude"], meta["longitude"]
    azimuth_deg = 180.0 if lat >= 0 else 0.0
    temp_air = weather["temp_air"].to_numpy(dtype=float)
    sun = solarposition.get_solarposition(
        mids, lat, lon, altitude=meta["altitude"], temperature=temp_air
    )
    zenith = sun["apparent_zenith"].to_numpy()
    sun_azimuth = sun["azimuth"].to_numpy()
    albedo = weather["albedo"].to_numpy(dtype=float)
    albedo = np.where(np.isfinite(albedo) & (albedo > 0) & (albedo < 1), albedo, 0.2)
    poa = irradiance.get_total_irradiance(
        array.tilt_deg,
        azimuth_deg,
        zenith,
        sun_azimuth,
        dni=weather["dni"].to_numpy(dtype=float),
        ghi=weather["ghi"].to_numpy(dtype=float),
        dhi=weather["dhi"].to_numpy(dtype=float),
        dni_extra=weather["dni_extra"].to_numpy(dtype=float),
        airmass=atmosphere.get_relative_airmass(zenith),
        albedo=albedo,
        model="perez",
    )
    aoi = irradiance.aoi(array.tilt_deg, azimuth_deg, zenith, sun_azimuth)
    poa_direct = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=float)).clip(min=0)
    poa_diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=float)).clip(min=0)
    effective = poa_direct * np.nan_to_num(np.asarray(iam.physical(aoi))) + poa_diffuse
    params = temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][array.temperature_model]
    temp_cell = temperature.sapm_cell(
        poa_direct + poa_diffuse, temp_air, weather["wind_speed"].to_numpy(dtype=float), **params
    )
    dc_w = pvsystem.pvwatts_dc(effective, temp_cell, array.dc_nameplate_w, array.gamma_pdc_per_c)
    dc_w = np.asarray(dc_w) * (1.0 - array.system_losses_pct / 100.0)
    inverter_dc_limit_w = array.dc_nameplate_w / array.dc_ac_ratio / array.eta_inverter_nominal
    ac_w = inverter.pvwatts(dc_w, inverter_dc_limit_w, eta_inv_nom=array.eta_inverter_nominal)
    ac_w = np.nan_to_num(np.asarray(ac_w, dtype=float)).clip(min=0)
    per_kwp = ac_w * 1000.0 / array.dc_nameplate_w
    return pd.Series(per_kwp, index=starts, name="pv_w_per_kwp"), meta


@cache
def _pv_cached(slot_minutes: int, station: str) -> pd.Series:
    """PV per kWp at `slot_minutes`, computed once per (slot, station)."""
    hourly, meta = _pv_hourly(station)
    factor = 60 // slot_minutes
    starts = _tmy_slot_starts(hourly.index.tz, slot_minutes)
    mask = None
    if factor > 1:
        # Keep the interpolated shape to the slots when the sun is actually up.
        sun = solarposition.get_solarposition(
            starts + pd.Timedelta(minutes=slot_minutes / 2),
            meta["latitude"],
            meta["longitude"],
            altitude=meta["altitude"],
            method="ephemeris",
        )
        mask = (sun["apparent_elevation"].to_numpy() > 0).astype(float)
    ac_limit_w_per_kwp = 1000.0 / PV_ARRAY.dc_ac_ratio
    values = _upsample_mean_preserving(hourly.to_numpy(), factor, mask, cap=ac_limit_w_per_kwp)
    return pd.Series(values, index=starts, name="pv_w_per_kwp")


def pv_per_kwp(slot_minutes: int = 5, station: str = DEFAULT_STATION) -> pd.Series:
    """AC W per kWp DC for one TMY3 year, station local standard time, `slot_minutes` slots."""
    _check_slot_minutes(slot_minutes)
    return _pv_cached(slot_minutes, str(station)).copy()


def pv_station_info(station: str = DEFAULT_STATION) -> dict:
    """TMY3 header of a station: USAF, Name, State, TZ, latitude, longitude, altitude."""
    info = dict(_pv_hourly(str(station))[1])
    info["Name"] = str(info["Name"]).strip('"')
    return info


def pv_solar_time(slot_minutes: int, station: str = DEFAULT_STATION) -> np.ndarray:
    """PV per kWp for the TMY year re-clocked from local standard time to mean solar time."""
    info = pv_station_info(station)
    offset_minutes = (info["longitude"] / 15.0 - info["TZ"]) * 60.0
    # Solar time = standard time + offset; the year's ends are night, so wrapping is harmless.
    shift_slots = round(offset_minutes / slot_minutes)
    return np.roll(pv_per_kwp(slot_minutes, station).to_numpy(), shift_slots)


def _day_of_tmy_year(day: pd.Timestamp) -> int:
    """0-based day index in the non-leap TMY year with the same month and day (Feb 29 -> 28)."""
    day_of_month = 28 if (day.month, day.day) == (2, 29) else day.day
    return pd.Timestamp(year=TMY_NOMINAL_YEAR, month=day.month, day=day_of_month).dayofyear - 1


def _parse_start_day(start: str) -> pd.Timestamp:
    """A UTC midnight from a date string, or a clear error."""
    try:
        day = pd.Timestamp(start)
    except (ValueError, TypeError) as err:
        raise ValueError(f"start must be a date like '2022-07-01', got {start!r}") from err
    if day is pd.NaT or pd.isna(day):
        raise ValueError(f"start must be a date like '2022-07-01', got {start!r}")
    day = day.tz_localize("UTC") if day.tz is None else day.tz_convert("UTC")
    return day.normalize()


def aligned_days(
    n_days: int, slot_minutes: int, start: str | None = None, *, station: str = DEFAULT_STATION
) -> list[tuple[pd.Series, pd.Series]]:
    """Consecutive whole UTC days of (load W, PV W per kWp) on one index, PV by day of year.

    The PV day is taken in the station's mean solar time and laid on the load's UTC clock, so
    solar noon lands near 12:00 UTC; the load's home (France) has solar noon ~11:30-11:50 UTC.
    """
    _check_slot_minutes(slot_minutes)
    if not isinstance(n_days, int | np.integer) or isinstance(n_days, bool) or n_days < 1:
        raise ValueError(f"n_days must be a positive int, got {n_days!r}")
    load = household_load_resampled(slot_minutes)
    slots_per_day = 24 * 60 // slot_minutes
    counts = load.groupby(load.index.normalize()).size()
    whole_days = counts.index[counts == slots_per_day]
    first = whole_days[0] if start is None else _parse_start_day(start)
    wanted = pd.date_range(first, periods=n_days, freq="D")
    missing = wanted.difference(whole_days)
    if len(missing):
        raise ValueError(
            f"{n_days} days from {first.date()} need whole load days that do not exist "
            f"(first missing {missing[0].date()}); whole days run "
            f"{whole_days[0].date()} .. {whole_days[-1].date()} ({len(whole_days)} days)"
        )
    pv_by_day = pv_solar_time(slot_minutes, station).reshape(-1, slots_per_day)
    pairs = []
    for day in wanted:
        load_day = load.loc[day : day + pd.Timedelta(days=1) - pd.Timedelta(minutes=1)]
        pv_day = pd.Series(
            pv_by_day[_day_of_tmy_year(day)].copy(), index=load_day.index, name="pv_w_per_kwp"
        )
        pairs.append((load_day.copy(), pv_day))
    return pairs
