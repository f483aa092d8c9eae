"""The site's measured series by role, and the 5-minute History built from them.

A role names one series: "load", "pv", "soc", "voltage", "temperature", "power:<zone>" and
"relay:<zone>" (1.0 on, 0.0 off). Recorded states arrive as step series (a value holds until
the next one); `history_from_series` turns them into slot means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .history import History, empty_history, slot_grid


def step_means(
    times_s: np.ndarray, values: np.ndarray, *, grid_s: np.ndarray, slot_s: float, end_s: float
) -> np.ndarray:
    """Time-weighted mean over each slot of a step series (a value holds until the next one).

    NaN values (unavailable, unknown) hold no weight; a slot with no valid time is NaN.
    """
    if times_s.size == 0 or grid_s.size == 0:
        return np.full(grid_s.shape, np.nan)
    t = np.append(times_s, max(end_s, float(times_s[-1])))
    ok = np.isfinite(values)
    dt = np.diff(t)
    value_int = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0) * dt)])
    valid_int = np.concatenate([[0.0], np.cumsum(np.where(ok, dt, 0.0))])
    edges = np.append(grid_s, grid_s[-1] + slot_s)
    d_value = np.diff(np.interp(edges, t, value_int))
    d_valid = np.diff(np.interp(edges, t, valid_int))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d_valid > 1e-6, d_value / np.maximum(d_valid, 1e-9), np.nan)


def history_of_roles(
    grid: np.ndarray, zones: tuple[str, ...], column: Callable[[str], np.ndarray]
) -> History:
    """A History on `grid` whose series are `column(role)` for each role ("load", "pv", "soc",
    "voltage", "temperature", "power:<zone>", "relay:<zone>")."""
    return History(
        timestamps=grid,
        site_load_w=column("load"),
        pv_w=column("pv"),
        soc_pct=column("soc"),
        voltage_v=column("voltage"),
        temperature_c=column("temperature"),
        zone_power_w={z: column(f"power:{z}") for z in zones},
        zone_relay_on={z: column(f"relay:{z}") for z in zones},
    )


def roles_of(history: History) -> dict[str, np.ndarray]:
    """The History's series by role (the inverse of `history_of_roles`)."""
    temperature = {} if history.temperature_c is None else {"temperature": history.temperature_c}
    return {
        "load": history.site_load_w,
        "pv": history.pv_w,
        "soc": history.soc_pct,
        "voltage": history.voltage_v,
        **temperature,
        **{f"power:{z}": v for z, v in history.zone_power_w.items()},
        **{f"relay:{z}": v for z, v in history.zone_relay_on.items()},
    }


def history_from_series(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    zones: tuple[str, ...],
    start_s: float,
    end_s: float,
    slot_s: float,
) -> History:
    """A History of `slot_s` slot means from step series keyed by role ("load", "pv", "soc",
    "voltage", "power:<zone>", "relay:<zone>"); trimmed to the slots with any measurement."""
    grid = slot_grid(start_s, end_s, slot_s)
    if end_s <= start_s or grid.size == 0:
        return empty_history(zones)

    def means(role: str) -> np.ndarray:
        t, v = series.get(role, (np.empty(0), np.empty(0)))
        return step_means(t, v, grid_s=grid, slot_s=slot_s, end_s=end_s)

    h = history_of_roles(grid, zones, means)
    any_value = np.isfinite(h.site_load_w) | np.isfinite(h.soc_pct)
    for z in zones:
        any_value |= np.isfinite(h.zone_power_w[z])
    idx = np.nonzero(any_value)[0]
    if idx.size == 0:
        return empty_history(zones)
    keep = np.zeros(h.size, dtype=bool)
    keep[idx[0] : idx[-1] + 1] = True
    return h.select(keep)
