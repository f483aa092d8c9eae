"""Learning inside Home Assistant: train from the recorder, forecast, sustain time, anomalies.

The models are pure (`ml/`); this module gathers their history (the recorder's states of the
integration's own entities and of the optional outdoor-temperature entity, plus 5-minute means
kept in memory), runs every scikit-learn call in
an executor, stores the trained models under `.storage`, and hands results to the entities, the
planner and the bus. Importing it never imports scikit-learn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
import math
import os
from typing import TYPE_CHECKING, Any

from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, Platform, UnitOfTemperature
from homeassistant.core import HomeAssistant, State, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util
from homeassistant.util.unit_conversion import TemperatureConverter
import numpy as np

from ..const import DOMAIN, LOGGER
from ..ml import store
from ..ml.anomaly import IMPOSSIBLE_VALUE, Anomaly, AnomalyDetector, ZoneStats
from ..ml.demand import METHOD_REGRESSION, DemandForecaster, FitReport, Forecast
from ..ml.history import History, empty_history, slot_grid
from ..ml.sustain import SustainEstimate, fit_sustain_correction, sustain_time, with_prior_spread
from ..optimizer.model import Zone
from ..planning.manager import HORIZON_SLOTS, SLOT_MINUTES
from ..snapshot import MLView

if TYPE_CHECKING:
    from ..control.coordinator import MicrogridCoordinator

EVENT_ANOMALY = "microgrid_anomaly"
SAMPLE_MINUTES = SLOT_MINUTES  # the planner's slots: the buffer, the recorder history, forecasts
SAMPLE_S = SAMPLE_MINUTES * 60.0
# Forecast features look up to three weeks back (the same slot over the last 7 days and on the
# same weekday 2 and 3 weeks ago); the buffer keeps that much even when the recorder keeps less.
RECENT_DAYS = 22
ANOMALY_DAYS = 8  # anomaly scoring compares the last days with the days just before them
TRAIN_DAYS = 28  # recorder lookback for training (the recorder keeps 10 days by default)
MIN_TRAIN_SLOTS = 288  # a day of 5-minute slots before training is worth its CPU
MODEL_SLOT_MINUTES = 30  # the forecaster's own grid (what bench/ml.py measures)
MODEL_HORIZON_HOURS = 24.0
FORECAST_SLOTS = 49 * 60 // SAMPLE_MINUTES  # covers a 48 h what-if started up to an hour late
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
# A weather entity's attributes (homeassistant.components.weather's ATTR_WEATHER_TEMPERATURE and
# ATTR_WEATHER_TEMPERATURE_UNIT; not imported, so loading this module does not load weather).
ATTR_WEATHER_TEMPERATURE = "temperature"
ATTR_WEATHER_TEMPERATURE_UNIT = "temperature_unit"

SITE_ROLES = {
    "load": "load_power",
    "pv": "solar_power",
    "soc": "battery_soc",
    "voltage": "battery_voltage",
}


# ---- pure helpers -------------------------------------------------------------------------


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


def state_value(state: str | None, *, relay: bool = False) -> float:
    """A recorded state as a number: on/off for relays, a float for sensors, NaN otherwise."""
    if relay:
        return {"on": 1.0, "off": 0.0}.get(state or "", math.nan)
    try:
        value = float(state)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def temperature_c(state: State | None) -> float | None:
    """Outdoor temperature in °C from a weather entity (its `temperature` attribute, in its
    `temperature_unit`) or a temperature sensor (its state, in its unit); None when unknown."""
    if state is None:
        return None
    # Not `state.domain`: the recorder's lazy states do not set it.
    if state.entity_id.startswith("weather."):
        value = state.attributes.get(ATTR_WEATHER_TEMPERATURE)
        unit = state.attributes.get(ATTR_WEATHER_TEMPERATURE_UNIT)
    else:
        value = state.state
        unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    number = state_value(value if isinstance(value, str) else str(value))
    if math.isnan(number) or unit not in TemperatureConverter.VALID_UNITS:
        return None
    return TemperatureConverter.convert(number, unit, UnitOfTemperature.CELSIUS)


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
) -> History:
    """A 5-minute History from step series keyed by role ("load", "pv", "soc", "voltage",
    "power:<zone>", "relay:<zone>"); trimmed to the slots with any measurement."""
    grid = slot_grid(start_s, end_s, SAMPLE_S)
    if end_s <= start_s or grid.size == 0:
        return empty_history(zones)

    def means(role: str) -> np.ndarray:
        t, v = series.get(role, (np.empty(0), np.empty(0)))
        return step_means(t, v, grid_s=grid, slot_s=SAMPLE_S, end_s=end_s)

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


def physics_stats(detector: AnomalyDetector, zones: tuple[str, ...]) -> AnomalyDetector:
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
                sample_interval_s=SAMPLE_S,
            )
    return detector


def train(
    history: History, *, now_s: float, capacity_wh: float, utc_offset_s: float
) -> store.TrainedModels:
    """Train every model (blocking, imports scikit-learn: executor only).

    Like `ml.store.train_all`, except that the forecaster learns zone demand while on (see
    `demand_view`); anomalies and the sustain correction learn from what was measured.
    """
    past = history.before(now_s)
    demand = DemandForecaster(
        slot_minutes=MODEL_SLOT_MINUTES,
        horizon_hours=MODEL_HORIZON_HOURS,
        utc_offset_s=utc_offset_s,
    )
    demand.fit(demand_view(past), now=now_s)
    return store.TrainedModels(
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


def write_models(path: str, models: store.TrainedModels) -> int:
    """Serialise and write atomically (blocking: executor); returns the size in bytes."""
    data = store.dumps(models)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return len(data)


def model_path(hass: HomeAssistant, entry_id: str) -> str:
    """Where a site's trained models are stored."""
    return hass.config.path(".storage", f"{DOMAIN}.{entry_id}.models")


def remove_models(path: str) -> None:
    """Delete stored models if there are any (blocking: executor)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def read_models(path: str) -> store.TrainedModels | None:
    """The stored models, None if there are none (blocking: executor; ModelFormatError if bad)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    return store.loads(data)


@dataclass(frozen=True, kw_only=True)
class RefreshResult:
    """What one 5-minute run computed in the executor."""

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
) -> RefreshResult:
    """Forecast demand on the 5-minute grid and score recent history (blocking: executor)."""
    error = None
    forecast = None
    drawn = demand_view(recent)
    measured_on = frozenset(z for z, v in drawn.zone_power_w.items() if np.isfinite(v).any())
    try:
        forecast = forecaster.predict(
            drawn,
            now=now_s,
            horizon_slots=FORECAST_SLOTS,
            slot_minutes=SAMPLE_MINUTES,
        )
    except ValueError as err:
        error = str(err)
    scored = recent.select(recent.timestamps > now_s - ANOMALY_DAYS * 86_400.0)
    anomalies = detector.score(scored, now=now_s)
    return RefreshResult(
        forecast=forecast, anomalies=anomalies, error=error, measured_on=measured_on
    )


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


# ---- the in-memory buffer -----------------------------------------------------------------


class SampleBuffer:
    """5-minute means of what the coordinator sees, for the last RECENT_DAYS days."""

    def __init__(self) -> None:
        """Empty."""
        # slot start (epoch s) -> column -> [sum, count]
        self._slots: dict[float, dict[str, list[float]]] = {}

    def __len__(self) -> int:
        """Number of slots held."""
        return len(self._slots)

    def add(self, now_s: float, values: Mapping[str, float | None]) -> None:
        """Add one sample (columns as in `history_from_series` roles) to its slot."""
        # Samples come every 5 s tick and on every reading, so a plain mean is close enough to
        # a time-weighted one.
        start = math.floor(now_s / SAMPLE_S) * SAMPLE_S
        slot = self._slots.get(start)
        if slot is None:
            slot = self._slots[start] = {}
            self._prune(start)
        for key, value in values.items():
            if value is None or not math.isfinite(value):
                continue
            acc = slot.setdefault(key, [0.0, 0.0])
            acc[0] += value
            acc[1] += 1.0

    def _prune(self, now_slot: float) -> None:
        """Forget slots older than RECENT_DAYS."""
        oldest = now_slot - RECENT_DAYS * 86_400.0
        for start in [s for s in self._slots if s < oldest]:
            del self._slots[start]

    def seed(self, history: History, *, before_s: float) -> int:
        """Fill slots before `before_s` that hold nothing yet from a recorded history."""
        added = 0
        roles = roles_of(history)
        for i, start in enumerate(history.timestamps.tolist()):
            if start >= before_s or start in self._slots:
                continue
            slot = {k: [float(v[i]), 1.0] for k, v in roles.items() if math.isfinite(v[i])}
            if slot:
                self._slots[start] = slot
                added += 1
        self._slots = dict(sorted(self._slots.items()))
        if self._slots:
            self._prune(max(self._slots))
        return added

    def history(self, zones: tuple[str, ...]) -> History:
        """The buffer as a History on the 5-minute grid (missing slots NaN)."""
        if not self._slots:
            return empty_history(zones)
        starts = sorted(self._slots)
        grid = slot_grid(starts[0], starts[-1], SAMPLE_S)
        index = {s: i for i, s in enumerate(grid.tolist())}
        columns: dict[str, np.ndarray] = {}
        # One pass over the slots (this runs on the event loop every refresh).
        for start, slot in self._slots.items():
            i = index.get(start)
            if i is None:
                continue
            for key, (total, count) in slot.items():
                if count > 0:
                    if key not in columns:
                        columns[key] = np.full(grid.shape, np.nan)
                    columns[key][i] = total / count
        return history_of_roles(
            grid, zones, lambda role: columns.get(role, np.full(grid.shape, np.nan))
        )


# ---- the recorder -------------------------------------------------------------------------


def _recorded_series(
    hass: HomeAssistant, roles: dict[str, str], start: datetime, end: datetime
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Step series per role from the recorder, a day at a time (blocking: recorder executor)."""
    by_entity = {entity_id: role for role, entity_id in roles.items()}
    times: dict[str, list[float]] = {role: [] for role in roles}
    values: dict[str, list[float]] = {role: [] for role in roles}
    for floor_s, found in _daily_states(
        hass,
        list(by_entity),
        start,
        end,
        minimal_response=True,
        no_attributes=True,
        compressed_state_format=True,
    ):
        for entity_id, rows in found.items():
            role = by_entity.get(entity_id)
            if role is None:
                continue
            relay = role.startswith("relay:")
            for row in rows:
                if isinstance(row, State):
                    state, at = row.state, row.last_changed_timestamp
                else:
                    state, at = row.get("s"), row.get("lc", row.get("lu"))
                if at is None:
                    continue
                # The state holding at the chunk's start counts from that start only.
                times[role].append(max(float(at), floor_s))
                values[role].append(state_value(state, relay=relay))
    out = {}
    for role in roles:
        out[role] = _sorted_series(times[role], values[role])
    return out


def _sorted_series(times: list[float], values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) as arrays in time order."""
    t = np.asarray(times, dtype=float)
    order = np.argsort(t, kind="stable")
    return t[order], np.asarray(values, dtype=float)[order]


def _recorded_temperature(
    hass: HomeAssistant, entity_id: str, start: datetime, end: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """The outdoor temperature (°C) step series from the recorder (blocking: recorder executor).

    A weather entity keeps its temperature in an attribute, so this reads full states, by
    last update (an attribute change leaves `last_changed` alone).
    """
    times: list[float] = []
    values: list[float] = []
    for floor_s, found in _daily_states(hass, [entity_id], start, end):
        for row in found.get(entity_id, []):
            if not isinstance(row, State):
                continue
            value = temperature_c(row)
            times.append(max(row.last_updated_timestamp, floor_s))
            values.append(math.nan if value is None else value)
    return _sorted_series(times, values)


def _daily_states(
    hass: HomeAssistant, entity_ids: list[str], start: datetime, end: datetime, **options: Any
) -> Iterator[tuple[float, dict[str, list[Any]]]]:
    """(chunk start in epoch s, states by entity) from the recorder a day at a time, each with
    the state holding at the chunk's start (blocking: recorder executor)."""
    from homeassistant.components.recorder import history as rec_history

    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + timedelta(days=1), end)
        found = rec_history.get_significant_states(
            hass,
            chunk_start,
            chunk_end,
            entity_ids,
            include_start_time_state=True,
            significant_changes_only=False,
            **options,
        )
        yield chunk_start.timestamp(), found
        chunk_start = chunk_end


# ---- the manager --------------------------------------------------------------------------


class MLManager:
    """Owns one site's models, forecast, sustain estimate and anomalies."""

    def __init__(self, hass: HomeAssistant, coordinator: MicrogridCoordinator) -> None:
        """Nothing trained yet: seasonal persistence and the physical checks only."""
        self.hass = hass
        self.coordinator = coordinator
        entry_id = coordinator.config_entry.entry_id
        self.model_path = model_path(hass, entry_id)
        self.buffer = SampleBuffer()
        self.models: store.TrainedModels | None = None
        self.forecast: Forecast | None = None
        self.forecast_pv_w: np.ndarray | None = None
        self.forecast_at: datetime | None = None
        self.anomalies: list[Anomaly] = []
        self.last_error: str | None = None
        self.training = False
        self.trainings = 0
        self.started: asyncio.Task[None] | None = None  # the background start, once begun
        self.measured_on: frozenset[str] = frozenset()  # zones seen drawing while on
        self._sustain_cache: tuple[tuple[Any, ...], SustainEstimate | None] | None = None
        self._view_cache: tuple[tuple[Any, ...], MLView] | None = None

    # ---- lifecycle --------------------------------------------------------------------

    @property
    def zones(self) -> tuple[str, ...]:
        """The configured zone ids."""
        return tuple(z.zone_id for z in self.coordinator.site.zones)

    @callback
    def async_start(self) -> None:
        """Timers (stopped with the entry) and the background start: seed, load, maybe train."""
        entry = self.coordinator.config_entry
        entry.async_on_unload(
            async_track_time_interval(self.hass, self._async_weekly, RETRAIN_INTERVAL)
        )
        entry.async_on_unload(
            async_track_time_interval(self.hass, self._async_periodic, REFRESH_INTERVAL)
        )
        self.started = entry.async_create_background_task(
            self.hass, self._async_startup(), f"{DOMAIN} ml start"
        )

    async def _async_weekly(self, _now: datetime) -> None:
        """The weekly retrain."""
        await self._async_retrain_logged("schedule")

    async def _async_periodic(self, _now: datetime) -> None:
        """The 5-minute forecast and anomaly run."""
        await self.async_refresh()

    async def _async_startup(self) -> None:
        """Seed recent history from the recorder, load stored models, retrain when due."""
        now = dt_util.utcnow()
        if self._recorder_ready():
            try:
                recent = await self.async_recorded_history(now - timedelta(days=RECENT_DAYS), now)
                self.buffer.seed(recent, before_s=math.floor(now.timestamp() / SAMPLE_S) * SAMPLE_S)
            except Exception as err:
                # The recorder is optional: live samples still fill the buffer.
                LOGGER.warning("Could not read recent history from the recorder: %s", err)
        try:
            models = await self.hass.async_add_executor_job(read_models, self.model_path)
        except (store.ModelFormatError, OSError) as err:
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

    def _recorder_ready(self) -> bool:
        """Whether the recorder is loaded (it is optional)."""
        return "recorder" in self.hass.config.components

    # ---- history ----------------------------------------------------------------------

    def entity_roles(self) -> dict[str, str]:
        """Role -> entity id of the site's own entities, found by unique id."""
        registry = er.async_get(self.hass)
        entry_id = self.coordinator.config_entry.entry_id
        wanted = {role: (Platform.SENSOR, f"{entry_id}_{key}") for role, key in SITE_ROLES.items()}
        for zone in self.zones:
            wanted[f"power:{zone}"] = (Platform.SENSOR, f"{entry_id}_{zone}_power")
            wanted[f"relay:{zone}"] = (Platform.SWITCH, f"{entry_id}_{zone}_relay")
        roles = {}
        for role, (domain, unique_id) in wanted.items():
            entity_id = registry.async_get_entity_id(domain, DOMAIN, unique_id)
            if entity_id:
                roles[role] = entity_id
        return roles

    async def async_recorded_history(self, start: datetime, end: datetime) -> History:
        """The site's recorded history in [start, end) on the 5-minute grid."""
        if not self._recorder_ready():
            return empty_history(self.zones)
        from homeassistant.components.recorder import get_instance

        roles = self.entity_roles()
        if not roles:
            return empty_history(self.zones)
        instance = get_instance(self.hass)
        # At start the recorder may still be migrating its database.
        if not await instance.async_db_ready:
            return empty_history(self.zones)
        temperature_entity = self.coordinator.site.temperature_entity_id

        def read() -> dict[str, tuple[np.ndarray, np.ndarray]]:
            series = _recorded_series(self.hass, roles, start, end)
            if temperature_entity:
                series["temperature"] = _recorded_temperature(
                    self.hass, temperature_entity, start, end
                )
            return series

        series = await instance.async_add_executor_job(read)
        return await self.hass.async_add_executor_job(
            lambda: history_from_series(
                series, zones=self.zones, start_s=start.timestamp(), end_s=end.timestamp()
            )
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
        """One sample of the site (roles as in `history_from_series`)."""
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
                        capacity_wh=self.coordinator.site.capacity_wh,
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
    def _install(self, models: store.TrainedModels) -> None:
        """Use these models from now on; raise or clear the degraded-model repair issue."""
        physics_stats(models.anomaly, self.zones)
        self.models = models
        self._sustain_cache = None
        issue_id = f"model_degraded_{self.coordinator.config_entry.entry_id}"
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
                    "site": self.coordinator.site.site_name,
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
        return DemandForecaster(
            slot_minutes=MODEL_SLOT_MINUTES,
            horizon_hours=MODEL_HORIZON_HOURS,
            utc_offset_s=(dt_util.now().utcoffset() or timedelta()).total_seconds(),
        )

    def detector(self, seen: tuple[str, ...]) -> AnomalyDetector:
        """The trained detector, else the physical checks for the zones `seen` reporting (a
        board that never reported since start is the board-online sensor's business)."""
        if self.models is not None:
            return self.models.anomaly
        return physics_stats(AnomalyDetector(), seen)

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
                    self.forecaster, self.detector(recent.zones), recent, now_s=now.timestamp()
                )
            )
        except (ValueError, ArithmeticError, IndexError) as err:
            # Keep the last forecast and anomalies: it ages out of the planner by itself.
            LOGGER.warning("Forecast and anomaly run failed: %s", err)
            return
        if result.forecast is not None:
            site = self.coordinator.site
            # The planner's own PV forecast (ml/ forecasts demand only).
            pv, _ = self.coordinator.planner.history.forecast(
                now,
                FORECAST_SLOTS,
                zones=(),
                latitude=self.hass.config.latitude,
                longitude=self.hass.config.longitude,
                pv_peak_prior_w=site.limit_w(),
            )
            self.forecast = result.forecast
            self.forecast_pv_w = np.asarray(pv, dtype=float)
            self.forecast_at = now
            self._sustain_cache = None
            self.measured_on = result.measured_on
        elif result.error:
            LOGGER.debug("No demand forecast: %s", result.error)
        self._publish_anomalies(now, result.anomalies + self._rejected_as_anomalies(now))
        coordinator = self.coordinator
        if coordinator.data is not None:
            coordinator.async_set_updated_data(
                replace(coordinator.data, ml=self.view(now, coordinator.data.soc_pct))
            )

    def _rejected_as_anomalies(self, now: datetime) -> list[Anomaly]:
        """Impossible values the protocol refused (they never reach the history)."""
        window = self.detector(()).config.window_s
        found: dict[str, Anomaly] = {}
        for item in self.coordinator.recent_rejections:
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
                    "entry_id": self.coordinator.config_entry.entry_id,
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
        start = math.floor(now.timestamp() / SAMPLE_S) * SAMPLE_S
        offset = round((start - float(self.forecast.slot_start[0])) / SAMPLE_S)
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
        site = self.coordinator.site
        end = offset + HORIZON_SLOTS
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
                slot_minutes=SAMPLE_MINUTES,
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
            per_hour = 60 // SAMPLE_MINUTES
            hourly = ahead[: FORECAST_HOURLY * per_hour]
            forecast_attrs = {
                "method": forecast.method,
                "slot_start": dt_util.utc_from_timestamp(
                    float(forecast.slot_start[offset + 1 if ahead.size > 1 else offset])
                ).isoformat(),
                "computed_at": self.forecast_at.isoformat() if self.forecast_at else None,
                "next_24h_wh": round(float(hourly.sum()) * SAMPLE_MINUTES / 60.0, 1),
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
            "slot_minutes": SAMPLE_MINUTES,
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
