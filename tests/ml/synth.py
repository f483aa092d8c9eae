"""Small synthetic site histories for the ml tests (never the benchmark data)."""

from __future__ import annotations

import numpy as np

from ml.history import History

DAY_S = 86_400.0
START_S = 1_700_006_400.0  # a UTC midnight (2023-11-15)


def site_history(
    *,
    days: float = 10.0,
    slot_s: float = 300.0,
    zones: tuple[str, ...] = ("Zone1", "Zone2"),
    seed: int = 0,
    noise_w: float = 20.0,
    capacity_wh: float = 5_000.0,
    start_s: float = START_S,
) -> History:
    """A clean site: daily-shaped zone loads, PV by day, a battery and its voltage."""
    rng = np.random.default_rng(seed)
    t = start_s + np.arange(int(days * DAY_S / slot_s)) * slot_s
    hour = (t % DAY_S) / 3600.0
    weekday = ((t // DAY_S) + 3) % 7
    evening = np.exp(-(((hour - 19.0) / 2.5) ** 2))
    morning = np.exp(-(((hour - 7.0) / 1.5) ** 2))
    shape = 1.0 + 0.8 * evening + 0.4 * morning
    shape = shape * (1.0 + 0.15 * (weekday >= 5))
    power = {}
    for i, z in enumerate(zones):
        base = 80.0 + 40.0 * i
        power[z] = np.maximum(base * shape + rng.normal(0.0, noise_w, t.size), 0.0)
    load = np.sum(list(power.values()), axis=0) if zones else 150.0 * shape
    pv = 900.0 * np.clip(np.sin((hour - 6.0) / 12.0 * np.pi), 0.0, None)
    net = load - pv
    soc = np.empty(t.size)
    s = 60.0
    for k in range(t.size):
        soc[k] = s
        s = float(np.clip(s - net[k] * slot_s / 3600.0 / capacity_wh * 100.0, 0.0, 100.0))
    voltage = 11.8 + 1.4 * soc / 100.0 - 0.0004 * net + rng.normal(0.0, 0.01, t.size)
    return History(
        timestamps=t,
        site_load_w=load,
        pv_w=pv,
        soc_pct=soc,
        voltage_v=voltage,
        zone_power_w=power,
        zone_relay_on={z: np.ones(t.size) for z in zones},
    )
