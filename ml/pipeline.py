"""What the integration runs: one training, and the forecast-and-score run every few minutes.

Zones are forecast as drawn while on (`demand_view`): a zone the planner switches off still
has a demand. Anomalies and the sustain correction learn from what was measured. Every
function here that trains or predicts imports scikit-learn: run it in an executor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math

import numpy as np

from .anomaly import Anomaly, AnomalyDetector, ZoneStats
from .demand import DemandForecaster, Forecast
from .history import SECONDS_PER_DAY, History
from .store import TrainedModels
from .sustain import fit_sustain_correction

MODEL_SLOT_MINUTES = 30  # the forecaster's own grid (what bench/ml.py measures)
MODEL_HORIZON_HOURS = 24.0
ANOMALY_DAYS = 8  # anomaly scoring compares the last days with the days just before them


def demand_view(history: History) -> History:
    """Zone power as drawn while on (what the planner's demand means): NaN while the relay is
    off, scaled up by the on-share of a partly-on slot. The site load stays as measured."""
    power = {}
    for zone, p in history.zone_power_w.items():
        relay = history.zone_relay_on.get(zone)
        if relay is None:
            power[zone] = p
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = np.where(relay >= 0.5, p / np.maximum(relay, 0.5), np.nan)
        power[zone] = np.where(np.isfinite(relay), scaled, p)
    return replace(history, zone_power_w=power)


def physics_stats(
    detector: AnomalyDetector, zones: tuple[str, ...], *, sample_interval_s: float
) -> AnomalyDetector:
    """Give zones the detector has not learned the plain physical limits, so a relay reported
    off while power flows is caught from the first day (no spike, drift or pattern checks)."""
    for zone in zones:
        if zone not in detector.zone_stats:
            detector.zone_stats[zone] = ZoneStats(
                off_threshold_w=detector.config.relay_off_floor_w,
                spike_threshold_w=math.inf,
                base_w=math.nan,
                base_spread_w=0.0,
                scale_w=1.0,
                sample_interval_s=sample_interval_s,
            )
    return detector


def new_forecaster(utc_offset_s: float) -> DemandForecaster:
    """An untrained forecaster on the model grid: seasonal persistence, no scikit-learn."""
    return DemandForecaster(
        slot_minutes=MODEL_SLOT_MINUTES,
        horizon_hours=MODEL_HORIZON_HOURS,
        utc_offset_s=utc_offset_s,
    )


def train(
    history: History, *, now_s: float, capacity_wh: float, utc_offset_s: float
) -> TrainedModels:
    """Train every model (blocking, imports scikit-learn: executor only).

    Like `store.train_all`, except that the forecaster learns zone demand while on (see
    `demand_view`); anomalies and the sustain correction learn from what was measured.
    """
    past = history.before(now_s)
    demand = new_forecaster(utc_offset_s)
    demand.fit(demand_view(past), now=now_s)
    return TrainedModels(
        demand=demand,
        anomaly=AnomalyDetector().fit(past),
        sustain=fit_sustain_correction(
            past,
            capacity_wh=capacity_wh,
            slot_minutes=MODEL_SLOT_MINUTES,
            utc_offset_s=utc_offset_s,
        ),
        trained_at=float(now_s),
    )


@dataclass(frozen=True, kw_only=True)
class RefreshResult:
    """What one forecast-and-score run computed."""

    forecast: Forecast | None
    anomalies: list[Anomaly]
    error: str | None = None
    measured_on: frozenset[str] = frozenset()  # zones seen drawing while on


def predict_and_score(
    forecaster: DemandForecaster,
    detector: AnomalyDetector,
    recent: History,
    *,
    now_s: float,
    horizon_slots: int,
    slot_minutes: int,
) -> RefreshResult:
    """Forecast demand for `horizon_slots` slots of `slot_minutes` and score the recent
    history (blocking: executor)."""
    error = None
    forecast = None
    drawn = demand_view(recent)
    measured_on = frozenset(z for z, v in drawn.zone_power_w.items() if np.isfinite(v).any())
    try:
        forecast = forecaster.predict(
            drawn,
            now=now_s,
            horizon_slots=horizon_slots,
            slot_minutes=slot_minutes,
        )
    except ValueError as err:
        error = str(err)
    scored = recent.select(recent.timestamps > now_s - ANOMALY_DAYS * SECONDS_PER_DAY)
    anomalies = detector.score(scored, now=now_s)
    return RefreshResult(
        forecast=forecast, anomalies=anomalies, error=error, measured_on=measured_on
    )
