"""Tests for bench/datasets.py: the shipped load series and the pvlib-derived PV."""

import numpy as np
import pandas as pd
import pytest

from bench import datasets


@pytest.fixture(scope="module")
def load() -> pd.Series:
    return datasets.household_load()


def test_load_has_documented_period_and_cadence(load: pd.Series) -> None:
    assert load.index[0] == pd.Timestamp("2022-06-21T22:00:00Z")
    assert load.index[-1] == pd.Timestamp("2023-02-16T22:00:00Z")
    assert str(load.index.tz) == "UTC"
    steps = load.index.to_series().diff().dropna().unique()
    assert list(steps) == [pd.Timedelta(minutes=30)]
    assert load.name == "load_w"


def test_load_has_no_nan_and_plausible_watts(load: pd.Series) -> None:
    assert not load.isna().any()
    assert (load >= 0).all()
    # A house, in W (not kW): mean of ~1 kW, peaks of several kW, never a substation.
    assert 200 < load.mean() < 5_000
    assert 2_000 < load.max() < 20_000
    daily_kwh = load.mean() * 24 / 1000
    print(f"household load: mean {load.mean():.0f} W, {daily_kwh:.1f} kWh/day")
    assert 3 < daily_kwh < 60


def test_load_is_a_copy() -> None:
    mine = datasets.household_load()
    mine.iloc[0] = -1.0
    assert datasets.household_load().iloc[0] >= 0


@pytest.mark.parametrize("slot_minutes", [5, 10, 15, 30, 60])
def test_load_resampling_preserves_energy(load: pd.Series, slot_minutes: int) -> None:
    resampled = datasets.household_load_resampled(slot_minutes)
    step = resampled.index.to_series().diff().dropna().unique()
    assert list(step) == [pd.Timedelta(minutes=slot_minutes)]
    assert resampled.index[0] == load.index[0]
    assert (resampled >= 0).all()
    energy_wh = resampled.sum() * slot_minutes / 60
    # 60-min drops the lone trailing 30-min slot; compare like with like.
    covered = load.loc[: resampled.index[-1] + pd.Timedelta(minutes=slot_minutes - 1)]
    assert energy_wh == pytest.approx(covered.sum() * 0.5, rel=0.01)


def test_load_upsampling_keeps_each_measured_interval_mean(load: pd.Series) -> None:
    fine = datasets.household_load_resampled(5)
    back = fine.to_numpy().reshape(-1, 6).mean(axis=1)
    np.testing.assert_allclose(back, load.to_numpy(), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("bad", [0, 7, 45, 120, -5])
def test_bad_slot_minutes_are_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match="slot_minutes"):
        datasets.household_load_resampled(bad)
    with pytest.raises(ValueError, match="slot_minutes"):
        datasets.pv_per_kwp(bad)


def test_pv_stations_lists_bundled_tmy3_files() -> None:
    stations = datasets.pv_stations()
    assert "723170" in stations
    assert all(len(s) == 6 and s.isdigit() for s in stations)


def test_unknown_station_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown TMY3 station"):
        datasets.pv_per_kwp(5, "999999")


@pytest.mark.parametrize("station", datasets.pv_stations())
def test_pv_night_noon_and_annual_yield(station: str) -> None:
    pv = datasets.pv_per_kwp(5, station)
    assert pv.index.tz is not None
    assert len(pv) == 365 * 288
    assert not pv.isna().any()
    assert (pv >= 0).all()
    # Never above the PVWatts AC rating of a 1 kWp array at DC/AC 1.2.
    assert pv.max() <= 1000 / 1.2 + 1e-6
    hour = pv.index.hour
    assert (pv[(hour < 3) | (hour >= 23)] == 0).all()
    midday = pv[(hour >= 11) & (hour < 15)]
    assert midday.groupby(midday.index.dayofyear).max().gt(0).all()
    yield_kwh = pv.sum() * 5 / 60 / 1000
    info = datasets.pv_station_info(station)
    print(f"PV {station} {info['Name']}: {yield_kwh:.0f} kWh/kWp/yr")
    assert 700 < yield_kwh < 2_500


def test_greensboro_yield_is_in_the_published_band() -> None:
    # A fixed south array in central North Carolina yields roughly 1,300-1,450 kWh/kWp/yr.
    yield_kwh = datasets.pv_per_kwp(60, "723170").sum() / 1000
    assert 1_150 < yield_kwh < 1_650


@pytest.mark.parametrize("slot_minutes", [5, 10, 15, 30])
def test_pv_resampling_preserves_energy(slot_minutes: int) -> None:
    hourly = datasets.pv_per_kwp(60)
    fine = datasets.pv_per_kwp(slot_minutes)
    assert fine.sum() * slot_minutes / 60 == pytest.approx(hourly.sum(), rel=0.01)
    per_hour = fine.to_numpy().reshape(-1, 60 // slot_minutes).mean(axis=1)
    np.testing.assert_allclose(per_hour, hourly.to_numpy(), atol=1e-6)


def test_aligned_days_pairs_share_an_index_and_match_the_load() -> None:
    load = datasets.household_load_resampled(5)
    days = datasets.aligned_days(3, 5, start="2022-07-01")
    assert len(days) == 3
    for offset, (load_day, pv_day) in enumerate(days):
        day = pd.Timestamp("2022-07-01", tz="UTC") + pd.Timedelta(days=offset)
        assert load_day.index[0] == day
        assert len(load_day) == 288
        assert load_day.index.equals(pv_day.index)
        pd.testing.assert_series_equal(load_day, load.loc[load_day.index], check_freq=False)
        assert pv_day.iloc[:36].eq(0).all()  # 00:00-03:00 UTC is night in solar time
        assert pv_day.between_time("10:00", "14:00").max() > 0


def test_aligned_days_map_pv_by_day_of_year() -> None:
    ((_, summer),) = datasets.aligned_days(1, 30, start="2022-06-30")
    ((_, winter),) = datasets.aligned_days(1, 30, start="2022-12-21")
    assert (summer > 0).sum() > (winter > 0).sum()  # longer day in June in the north
    pv = datasets.pv_per_kwp(30)
    june_30 = pv[pv.index.dayofyear == pd.Timestamp("2001-06-30").dayofyear]
    assert summer.sum() == pytest.approx(june_30.sum(), rel=1e-9)


def test_aligned_days_default_start_and_full_span() -> None:
    days = datasets.aligned_days(1, 30)
    assert days[0][0].index[0] == pd.Timestamp("2022-06-22", tz="UTC")
    assert len(datasets.aligned_days(239, 60)) == 239
    assert len(datasets.aligned_days(np.int64(2), 60)) == 2


@pytest.mark.parametrize(
    ("n_days", "start", "match"),
    [
        (0, None, "n_days"),
        (2.5, None, "n_days"),
        (240, None, "whole load days"),
        (1, "2021-01-01", "whole load days"),
        (1, "not a date", "start"),
    ],
)
def test_aligned_days_rejects_bad_requests(n_days, start, match) -> None:
    with pytest.raises(ValueError, match=match):
        datasets.aligned_days(n_days, 30, start=start)
