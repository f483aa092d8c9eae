"""Learning inside Home Assistant: train from the recorder, forecast, sustain time, anomalies.

The models are pure (`ml/`); this module gathers their history (the recorder's, through
`learning.recorder`, plus slot means kept in memory), runs every scikit-learn call in an
executor, stores the trained models under `.storage`, and offers its results: a view for the
entities, zone demand for the planner, events on the bus. It never writes the coordinator's
data: `on_update` tells the coordinator to publish again. Importing it never imports
scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
import math
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util
import numpy as np

from ..const import DOMAIN, LOGGER
from ..ml.anomaly import IMPOSSIBLE_VALUE, Anomaly, AnomalyDetector
from ..ml.buffer import SampleBuffer
from ..ml.demand import METHOD_REGRESSION, DemandForecaster, FitReport, Forecast
from ..ml.history import History, empty_history
from ..ml.pipeline import new_forecaster, physics_stats, predict_and_score, train
from ..ml.store import (
    ModelFormatError,
    TrainedModels,
    read_models,
    write_models,
)
from ..ml.sustain import SustainEstimate, sustain_time, with_prior_spread
from ..optimizer.model import Zone
from ..site import SiteConfig
from ..snapshot import MLView
from .recorder import async_recorded_history, recorder_ready

EVENT_ANOMALY = "microgrid_anomaly"
# Forecast features look up to three weeks back (the same slot over the last 7 days and on the
# same weekday 2 and 3 weeks ago); the buffer keeps that much even when the recorder keeps less.
RECENT_DAYS = 22
TRAIN_DAYS = 28  # recorder lookback for training (the recorder keeps 10 days by default)
MIN_TRAIN_SLOTS = 288  # a day of 5-minute slots before training is worth its CPU
FORECAST_HOURS = 49  # covers a 48 h what-if started up to an hour late
FORECAST_FRESH = timedelta(minutes=15)  # older forecasts do not feed the planner or sustain
RETRAIN_INTERVAL = timedelta(days=7)
REFRESH_INTERVAL = timedelta(minutes=5)
# Back-test skill = 1 - MAE / seasonal persistence's MAE on the same held-out week. Below 0 the
# forecasts fall back on persistence; below -0.1 (10 % worse, beyond week-to-week noise) a repair
# issue asks for attention.
DEGRADED_SKILL = -0.1
# Rejected board records whose values are impossible count as impossible-value anomalies.
IMPOSSIBLE_REASONS = frozenset({"out_of_range", "not_finite"})
FORECAST_HOURLY = 24  # hourly means in the forecast sensor's (unrecorded) attribute


def model_path(hass: HomeAssistant, entry_id: str) -> str:
    """Where a site's trained models are stored."""
    return hass.config.path(".storage", f"{DOMAIN}.{entry_id}.models")


def report_attrs(report: FitReport | None) -> dict[str, Any]:
    """A fit report as JSON-friendly attributes."""
    if report is None:
        return {}
    skill = report.skill
    return {
        "rows": report.rows,
        "mae_w": None if report.mae_backtest is None else round(report.mae_backtest, 1),
        "mae_persistence_w": None
        if report.mae_persistence_backtest is None
        else round(report.mae_persistence_backtest, 1),
        "skill": None if skill is None else round(skill, 3),
        "method": report.method,
        "history_days": round(report.history_days, 2),
        "trained_at": dt_util.utc_from_timestamp(report.trained_at).isoformat(),
        # Whether the outdoor temperature made the held-out week's forecasts better (and so is
        # used), and the MAE without it when it was tried.
        "uses_temperature": report.uses_temperature,
        "mae_without_temperature_w": None
        if report.mae_backtest_without_temperature is None
        else round(report.mae_backtest_without_temperature, 1),
    }


def _finite(value: float) -> float | None:
    """Hours for an attribute: None when not reached within the horizon."""
    return round(value, 2) if math.isfinite(value) else None


class MLManager:
    """Owns one site's models, forecast, sustain estimate and anomalies."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        entry_id: str,
        site: SiteConfig,
        slot_minutes: int,
        horizon_slots: int,
        pv_forecast: Callable[[datetime, int], Sequence[float]],
        rejections: Callable[[], Iterable[Mapping[str, Any]]],
        create_task: Callable[[Coroutine[Any, Any, None], str], object],
        on_update: Callable[[], None],
    ) -> None:
        """Nothing trained yet: seasonal persistence and the physical checks only.

        `slot_minutes` and `horizon_slots` are the planner's grid and horizon (the buffer,
        the recorded history and the forecasts use its slots); `pv_forecast(now, slots)` is
        the planner's PV forecast from the slot holding `now` (ml/ forecasts demand only);
        `rejections()` the board records refused lately; `create_task(coro, name)` starts a
        task that ends with the entry; `on_update()` asks for the results to be published.
        """
        self.hass = hass
        self.entry_id = entry_id
        self.site = site
        self.slot_minutes = slot_minutes
        self.slot_s = slot_minutes * 60.0
        self.horizon_slots = horizon_slots
        self.forecast_slots = FORECAST_HOURS * 60 // slot_minutes
        self._pv_forecast = pv_forecast
        self._rejections = rejections
        self._create_task = create_task
        self._on_update = on_update
        self.model_path = model_path(hass, entry_id)
        self.buffer = SampleBuffer(slot_s=self.slot_s, keep_s=RECENT_DAYS * 86_400.0)
        self.models: TrainedModels | None = None
        self.forecast: Forecast | None = None
        self.forecast_pv_w: np.ndarray | None = None
        self.forecast_at: datetime | None = None
        self.anomalies: list[Anomaly] = []
        self.last_error: str | None = None
        self.training = False
        self.trainings = 0
        self.started_up = False  # the start (seed, load, maybe train, first forecast) is over
        self.measured_on: frozenset[str] = frozenset()  # zones seen drawing while on
        self._sustain_cache: tuple[tuple[Any, ...], SustainEstimate | None] | None = None
        self._view_cache: tuple[tuple[Any, ...], MLView] | None = None

    # ---- lifecycle --------------------------------------------------------------------

    @property
    def zones(self) -> tuple[str, ...]:
        """The configured zone ids."""
        return tuple(z.zone_id for z in self.site.zones)

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Timers and the background start (seed, load, maybe train); returns what stops the
        timers (call it on unload)."""
        cancel_weekly = async_track_time_interval(self.hass, self._async_weekly, RETRAIN_INTERVAL)
        cancel_periodic = async_track_time_interval(
            self.hass, self._async_periodic, REFRESH_INTERVAL
        )
        self._create_task(self._async_startup(), f"{DOMAIN} ml start")

        @callback
        def stop() -> None:
            cancel_weekly()
            cancel_periodic()

        return stop

    async def _async_weekly(self, _now: datetime) -> None:
        """The weekly retrain."""
        await self._async_retrain_logged("schedule")

    async def _async_periodic(self, _now: datetime) -> None:
        """The 5-minute forecast and anomaly run."""
        await self.async_refresh()

    async def _async_startup(self) -> None:
        """Seed recent history from the recorder, load stored models, retrain when due; then
        `started_up` (diagnostics) is True."""
        try:
            await self._async_startup_steps()
        finally:
            self.started_up = True

    async def _async_startup_steps(self) -> None:
        now = dt_util.utcnow()
        if recorder_ready(self.hass):
            try:
                recent = await self.async_recorded_history(now - timedelta(days=RECENT_DAYS), now)
                slot_s = self.slot_s
                self.buffer.seed(recent, before_s=math.floor(now.timestamp() / slot_s) * slot_s)
            except Exception as err:
                # The recorder is optional: live samples still fill the buffer.
                LOGGER.warning("Could not read recent history from the recorder: %s", err)
        try:
            models = await self.hass.async_add_executor_job(read_models, self.model_path)
        except (ModelFormatError, OSError) as err:
            LOGGER.warning("Stored models %s are unusable (%s); retraining", self.model_path, err)
            models = None
        if models is not None:
            self._install(models)
        age = now.timestamp() - models.trained_at if models else math.inf
        if age >= RETRAIN_INTERVAL.total_seconds():
            await self._async_retrain_logged("start")
        await self.async_refresh()

    async def _async_retrain_logged(self, trigger: str) -> None:
        """Retrain from a timer: failures are logged, never raised."""
        try:
            await self.async_retrain(trigger)
        except HomeAssistantError as err:
            LOGGER.info("No retrain (%s): %s", trigger, err)

    # ---- history ----------------------------------------------------------------------

    async def async_recorded_history(self, start: datetime, end: datetime) -> History:
        """The site's recorded history in [start, end) on the slot grid."""
        return await async_recorded_history(
            self.hass,
            entry_id=self.entry_id,
            zones=self.zones,
            temperature_entity_id=self.site.temperature_entity_id,
            start=start,
            end=end,
            slot_s=self.slot_s,
        )

    def recent_history(self) -> History:
        """What the buffer holds, zones with at least one power sample only."""
        h = self.buffer.history(self.zones)
        seen = tuple(z for z in self.zones if np.isfinite(h.zone_power_w[z]).any())
        return replace(
            h,
            zone_power_w={z: h.zone_power_w[z] for z in seen},
            zone_relay_on={z: h.zone_relay_on[z] for z in seen},
        )

    @callback
    def observe(self, now: datetime, values: Mapping[str, float | None]) -> None:
        """One sample of the site (series by role, as in `ml.series`)."""
        self.buffer.add(now.timestamp(), values)

    # ---- training ---------------------------------------------------------------------

    async def async_retrain(self, trigger: str) -> FitReport:
        """Train on the recorded history (else the buffer) in the executor; store the models."""
        if self.training:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="training_busy")
        self.training = True
        try:
            now = dt_util.utcnow()
            try:
                history = await self.async_recorded_history(now - timedelta(days=TRAIN_DAYS), now)
            except Exception as err:
                # Database errors come in many types; the buffer may still be enough.
                LOGGER.warning("Could not read the recorded history (%s): %s", trigger, err)
                history = empty_history(self.zones)
            if history.size < MIN_TRAIN_SLOTS:
                buffered = self.buffer.history(self.zones)
                history = buffered if buffered.size > history.size else history
            if history.size < MIN_TRAIN_SLOTS:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="not_enough_history",
                    translation_placeholders={
                        "slots": str(history.size),
                        "needed": str(MIN_TRAIN_SLOTS),
                    },
                )
            utc_offset_s = (dt_util.now().utcoffset() or timedelta()).total_seconds()
            try:
                models = await self.hass.async_add_executor_job(
                    lambda: train(
                        history,
                        now_s=now.timestamp(),
                        capacity_wh=self.site.capacity_wh,
                        utc_offset_s=utc_offset_s,
                    )
                )
                size = await self.hass.async_add_executor_job(write_models, self.model_path, models)
            except (ValueError, ArithmeticError, OSError) as err:
                self.last_error = str(err)
                LOGGER.warning("Training (%s) failed: %s", trigger, err)
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="training_failed",
                    translation_placeholders={"error": str(err)},
                ) from err
        finally:
            self.training = False
        self.trainings += 1
        self.last_error = None
        LOGGER.info(
            "Trained (%s) on %d slots: %s, %d rows, %d bytes stored",
            trigger,
            history.size,
            models.report.method,
            models.report.rows,
            size,
        )
        self._install(models)
        await self.async_refresh()
        return models.report

    @callback
    def _install(self, models: TrainedModels) -> None:
        """Use these models from now on; raise or clear the degraded-model repair issue."""
        physics_stats(models.anomaly, self.zones, sample_interval_s=self.slot_s)
        self.models = models
        self._sustain_cache = None
        issue_id = f"model_degraded_{self.entry_id}"
        if self.degraded:
            report = models.report
            LOGGER.warning(
                "The demand model back-tests worse than seasonal persistence (skill %.2f)",
                report.skill,
            )
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="model_degraded",
                translation_placeholders={
                    "site": self.site.site_name,
                    "mae": f"{report.mae_backtest or 0:.0f}",
                    "persistence_mae": f"{report.mae_persistence_backtest or 0:.0f}",
                    "skill": f"{report.skill or 0:.2f}",
                },
            )
        else:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)

    @property
    def degraded(self) -> bool:
        """The trained demand model back-tests clearly worse than seasonal persistence."""
        if self.models is None:
            return False
        skill = self.models.report.skill
        return skill is not None and skill < DEGRADED_SKILL

    @property
    def prefer_persistence(self) -> bool:
        """The trained demand model back-tested worse than seasonal persistence."""
        if self.models is None:
            return True
        skill = self.models.report.skill
        return skill is not None and skill < 0.0

    @property
    def forecaster(self) -> DemandForecaster:
        """The trained forecaster, or seasonal persistence (no scikit-learn) until there is one
        that beats it."""
        if self.models is not None and not self.prefer_persistence:
            return self.models.demand
        return new_forecaster((dt_util.now().utcoffset() or timedelta()).total_seconds())

    def detector(self, seen: tuple[str, ...]) -> AnomalyDetector:
        """The trained detector, else the physical checks for the zones `seen` reporting (a
        board that never reported since start is the board-online sensor's business)."""
        if self.models is not None:
            return self.models.anomaly
        return physics_stats(AnomalyDetector(), seen, sample_interval_s=self.slot_s)

    # ---- the 5-minute run -------------------------------------------------------------

    async def async_refresh(self) -> None:
        """Forecast and score anomalies in the executor; publish, fire events for new ones."""
        now = dt_util.utcnow()
        recent = self.recent_history()
        if recent.size == 0:
            return
        try:
            result = await self.hass.async_add_executor_job(
                lambda: predict_and_score(
                    self.forecaster,
                    self.detector(recent.zones),
                    recent,
                    now_s=now.timestamp(),
                    horizon_slots=self.forecast_slots,
                    slot_minutes=self.slot_minutes,
                )
            )
        except (ValueError, ArithmeticError, IndexError) as err:
            # Keep the last forecast and anomalies: it ages out of the planner by itself.
            LOGGER.warning("Forecast and anomaly run failed: %s", err)
            return
        if result.forecast is not None:
            self.forecast = result.forecast
            self.forecast_pv_w = np.asarray(
                self._pv_forecast(now, self.forecast_slots), dtype=float
            )
            self.forecast_at = now
            self._sustain_cache = None
            self.measured_on = result.measured_on
        elif result.error:
            LOGGER.debug("No demand forecast: %s", result.error)
        self._publish_anomalies(now, result.anomalies + self._rejected_as_anomalies(now))
        self._on_update()

    def _rejected_as_anomalies(self, now: datetime) -> list[Anomaly]:
        """Impossible values the protocol refused (they never reach the history)."""
        window = self.detector(()).config.window_s
        found: dict[str, Anomaly] = {}
        for item in self._rejections():
            if item["reason"] not in IMPOSSIBLE_REASONS:
                continue
            at = dt_util.parse_datetime(item["at"])
            if at is None or (now - at).total_seconds() > window:
                continue
            found[item["zone_id"]] = Anomaly(
                zone_id=item["zone_id"],
                type=IMPOSSIBLE_VALUE,
                score=2.0,
                at=at.timestamp(),
                detail={"rejected": item["reason"], "value": item["detail"]},
            )
        return list(found.values())

    @callback
    def _publish_anomalies(self, now: datetime, anomalies: list[Anomaly]) -> None:
        """Keep the active anomalies; an event for each (zone, type) not active before."""
        before = {(a.zone_id, a.type) for a in self.anomalies}
        best: dict[tuple[str | None, str], Anomaly] = {}
        for a in anomalies:
            key = (a.zone_id, a.type)
            if key not in best or a.score > best[key].score:
                best[key] = a
        self.anomalies = sorted(best.values(), key=lambda a: -a.score)
        for a in self.anomalies:
            if (a.zone_id, a.type) in before:
                continue
            LOGGER.warning(
                "Anomaly %s on %s (score %.1f)", a.type, a.zone_id or "the site", a.score
            )
            self.hass.bus.async_fire(
                EVENT_ANOMALY,
                {
                    "entry_id": self.entry_id,
                    "zone": a.zone_id,
                    "type": a.type,
                    "score": round(a.score, 2),
                    "at": dt_util.utc_from_timestamp(a.at).isoformat(),
                    "detail": dict(a.detail),
                },
            )

    # ---- consumers --------------------------------------------------------------------

    def _fresh_offset(self, now: datetime) -> int | None:
        """Index of the slot holding `now` in the fresh forecast (None: none fresh)."""
        if self.forecast is None or self.forecast_at is None:
            return None
        if now - self.forecast_at > FORECAST_FRESH:
            return None
        start = math.floor(now.timestamp() / self.slot_s) * self.slot_s
        offset = round((start - float(self.forecast.slot_start[0])) / self.slot_s)
        return offset if 0 <= offset < self.forecast.slot_start.size else None

    def planner_demand(
        self, now: datetime, slots: int, zones: tuple[Zone, ...]
    ) -> dict[str, tuple[float, ...]] | None:
        """Per-zone demand while on from the trained forecaster (None: keep persistence).

        Only zones measured while on in the recent history get one; others keep persistence.
        """
        if self.prefer_persistence or self.forecast is None:
            return None
        if self.forecast.method != METHOD_REGRESSION:
            return None
        offset = self._fresh_offset(now)
        if offset is None or offset + slots > self.forecast.slot_start.size:
            return None
        out = {}
        for zone in zones:
            series = self.forecast.zone_w.get(zone.zone_id)
            if series is None or zone.zone_id not in self.measured_on:
                continue
            out[zone.zone_id] = tuple(float(v) for v in series[offset : offset + slots])
        return out or None

    def sustain(self, now: datetime, soc_pct: float | None) -> SustainEstimate | None:
        """Hours to the emergency band and to empty under the forecast net load (cached)."""
        offset = self._fresh_offset(now)
        if soc_pct is None or offset is None or self.forecast_pv_w is None:
            return None
        key = (id(self.forecast), offset, round(soc_pct, 1), int(now.timestamp() // 60))
        if self._sustain_cache and self._sustain_cache[0] == key:
            return self._sustain_cache[1]
        site = self.site
        end = offset + self.horizon_slots
        pv = self.forecast_pv_w[offset:end]
        net = self.forecast.site_w[offset:end] - pv
        try:
            estimate = sustain_time(
                now=now.timestamp(),
                capacity_wh=site.capacity_wh,
                soc_pct=min(max(soc_pct, 0.0), 100.0),
                emergency_pct=site.thresholds.emergency_pct,
                forecast_net_w=net,
                forecast_pv_w=pv,
                slot_minutes=self.slot_minutes,
                # Untrained, the prior spread keeps P10/P90 honest (never a point estimate).
                correction=with_prior_spread(self.models.sustain if self.models else None),
            )
        except ValueError as err:
            LOGGER.debug("No sustain estimate: %s", err)
            estimate = None
        self._sustain_cache = (key, estimate)
        return estimate

    def view(self, now: datetime, soc_pct: float | None) -> MLView:
        """What the learning entities show (cached: the coordinator asks on every reading)."""
        offset = self._fresh_offset(now)
        key = (
            id(self.forecast),
            offset,
            None if soc_pct is None else round(soc_pct, 1),
            int(now.timestamp() // 60),
            id(self.models),
            id(self.anomalies),
            self.training,
            self.last_error,
        )
        if self._view_cache and self._view_cache[0] == key:
            return self._view_cache[1]
        view = self._build_view(now, soc_pct, offset)
        self._view_cache = (key, view)
        return view

    def _build_view(self, now: datetime, soc_pct: float | None, offset: int | None) -> MLView:
        """The view, uncached."""
        estimate = self.sustain(now, soc_pct)
        forecast = self.forecast
        next_w = None
        forecast_attrs = None
        if forecast is not None and offset is not None:
            ahead = forecast.site_w[offset:]
            next_w = round(float(ahead[1] if ahead.size > 1 else ahead[0]), 1)
            per_hour = 60 // self.slot_minutes
            hourly = ahead[: FORECAST_HOURLY * per_hour]
            forecast_attrs = {
                "method": forecast.method,
                "slot_start": dt_util.utc_from_timestamp(
                    float(forecast.slot_start[offset + 1 if ahead.size > 1 else offset])
                ).isoformat(),
                "computed_at": self.forecast_at.isoformat() if self.forecast_at else None,
                "next_24h_wh": round(float(hourly.sum()) * self.slot_minutes / 60.0, 1),
                "hourly_w": [
                    round(float(v), 1)
                    for v in hourly[: hourly.size // per_hour * per_hour]
                    .reshape(-1, per_hour)
                    .mean(axis=1)
                ],
            }
        sustain_h = None
        sustain_attrs = None
        if estimate is not None:
            beyond = not math.isfinite(estimate.hours_to_emergency_p50)
            sustain_h = round(estimate.horizon_h if beyond else estimate.hours_to_emergency_p50, 2)
            sustain_attrs = {
                "p10_h": _finite(estimate.hours_to_emergency_p10),
                "p90_h": _finite(estimate.hours_to_emergency_p90),
                "hours_to_empty_p10": _finite(estimate.hours_to_empty_p10),
                "hours_to_empty_p50": _finite(estimate.hours_to_empty_p50),
                "hours_to_empty_p90": _finite(estimate.hours_to_empty_p90),
                "beyond_horizon": beyond,
                "horizon_h": round(estimate.horizon_h, 2),
                "usable_wh": round(estimate.usable_wh, 1),
                "method": forecast.method if forecast else None,
            }
        report = self.models.report if self.models else None
        zone_anomalies: dict[str, dict[str, Any]] = {}
        site_anomaly = None
        for zone_id in {a.zone_id for a in self.anomalies}:
            found = [a for a in self.anomalies if a.zone_id == zone_id]
            top = found[0]
            attrs = {
                "score": round(top.score, 2),
                "type": top.type,
                "types": [a.type for a in found],
                "at": dt_util.utc_from_timestamp(top.at).isoformat(),
            }
            if zone_id is None:
                site_anomaly = attrs
            else:
                zone_anomalies[zone_id] = attrs
        return MLView(
            sustain_h=sustain_h,
            sustain_attrs=sustain_attrs,
            forecast_next_w=next_w,
            forecast_attrs=forecast_attrs,
            trained_at=dt_util.utc_from_timestamp(report.trained_at) if report else None,
            health_attrs={
                **report_attrs(report),
                "degraded": self.degraded,
                "training": self.training,
                "last_error": self.last_error,
            },
            zone_anomalies=zone_anomalies,
            site_anomaly=site_anomaly,
        )

    def forecast_response(self, now: datetime, slots: int) -> dict[str, Any] | None:
        """The full forecast from the slot holding `now` (None: no fresh forecast)."""
        offset = self._fresh_offset(now)
        forecast = self.forecast
        if forecast is None or offset is None or self.forecast_pv_w is None:
            return None
        end = offset + slots

        def rounded(values: np.ndarray) -> list[float]:
            return [round(float(v), 1) for v in values[offset:end]]

        return {
            "method": forecast.method,
            "computed_at": self.forecast_at.isoformat() if self.forecast_at else None,
            "slot_minutes": self.slot_minutes,
            "slot_start": [
                dt_util.utc_from_timestamp(float(s)).isoformat()
                for s in forecast.slot_start[offset:end]
            ],
            "site_w": rounded(forecast.site_w),
            "pv_w": rounded(self.forecast_pv_w),
            # Zones: the draw while on (what the planner needs); the site: the measured load.
            "zones_w": {z: rounded(v) for z, v in forecast.zone_w.items()},
        }

    def diagnostics(self) -> dict[str, Any]:
        """Internal state for the diagnostics dump."""
        return {
            "started_up": self.started_up,
            "buffer_slots": len(self.buffer),
            "report": report_attrs(self.models.report if self.models else None),
            "degraded": self.degraded,
            "trainings": self.trainings,
            "last_error": self.last_error,
            "forecast_at": self.forecast_at.isoformat() if self.forecast_at else None,
            "anomalies": [
                {"zone": a.zone_id, "type": a.type, "score": round(a.score, 2)}
                for a in self.anomalies
            ],
        }
