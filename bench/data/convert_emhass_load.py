"""Convert EMHASS's pickled load training series to bench/data/emhass_load_30min.csv (once)."""

import argparse
from pathlib import Path

import pandas as pd

SLOT = pd.Timedelta(minutes=30)
SHORT_GAP_SLOTS = 4  # up to 2 h: linear interpolation is a fair guess for a house load
WEEK = pd.Timedelta(days=7)


def load_pickle(path: Path) -> pd.Series:
    """Return the load column as a float Series (the pickle holds a (DataFrame, name) tuple)."""
    frame, column = pd.read_pickle(path)
    series = frame[column].astype(float)
    if series.index.tz is None:
        raise ValueError(f"{path}: index is not tz-aware")
    return series.tz_convert("UTC").rename("load_w")


def fill_gaps(series_w: pd.Series) -> pd.Series:
    """Interpolate short gaps; fill long ones from the same slot a week earlier (or later)."""
    full = series_w.reindex(pd.date_range(series_w.index[0], series_w.index[-1], freq=SLOT))
    missing = full.isna()
    run_id = (missing != missing.shift()).cumsum()
    run_len = missing.groupby(run_id).transform("sum")
    short = missing & (run_len <= SHORT_GAP_SLOTS)
    interpolated = full.interpolate(method="time", limit_area="inside")
    filled = full.where(~short, interpolated)
    # Long gaps (up to ~20 h here) would become a flat ramp; a week-old slot keeps the daily shape.
    filled = filled.fillna(filled.shift(freq=WEEK).reindex(filled.index))
    filled = filled.fillna(filled.shift(freq=-WEEK).reindex(filled.index))
    if filled.isna().any():
        raise ValueError("gaps remain after filling")
    return filled


def convert(pkl: Path, out_csv: Path) -> pd.Series:
    """Read, fill gaps, clip negatives to 0 W and write the CSV; return the result."""
    raw = load_pickle(pkl)
    print(
        f"raw: {len(raw)} slots {raw.index[0]} .. {raw.index[-1]}, "
        f"NaN {int(raw.isna().sum())}, negative {int((raw < 0).sum())} (min {raw.min():.1f} W)"
    )
    # Negatives are artefacts of "load minus deferrable loads" sensor subtraction, not export.
    clean = fill_gaps(raw).clip(lower=0.0).round(1)
    frame = clean.to_frame()
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.index.name = "timestamp_utc"
    frame.to_csv(out_csv)
    print(
        f"wrote {out_csv}: {len(clean)} slots, mean {clean.mean():.1f} W, "
        f"{clean.sum() * 0.5 / 1000:.1f} kWh"
    )
    return clean


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pkl", type=Path)
    parser.add_argument("out_csv", type=Path)
    args = parser.parse_args()
    convert(args.pkl, args.out_csv)
