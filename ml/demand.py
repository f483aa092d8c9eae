"""Demand forecast for the site and each zone: a robust seasonal profile plus a gradient-boosted
correction learned from lags and calendar.

Until enough history exists it falls back on seasonal persistence (the same slot on past days).
scikit-learn is imported only inside `fit`, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import logging
from typing import Any

import numpy as np

from .features import (
    TEMPERATURE_COLUMNS,
    SeriesContext,
    anchor_profile,
    demand_features,
    nanmean_rows,
    normalise_load,
    seasonal_persistence,
)
from .history import SECONDS_PER_DAY, History, resample

_LOGGER = logging.getLogger(__name__)

METHOD_REGRESSION = "regression"
METHOD_PERSISTENCE = "seasonal_persistence"
SITE = "site"
BACKTEST_DAYS = 7.0
TEMPERATURE_MIN_GAIN = 0.03  # back-test MAE the temperature features must save to be used


@dataclass(frozen=True, kw_only=True)
class FitReport:
    """What a training run used and how well it back-tested (MAE in W on the last week)."""

    rows: int
    mae_backtest: float | None
    trained_at: float
    method: str = METHOD_REGRESSION
    mae_backtest_by_series: Mapping[str, float] = field(default_factory=dict)
    history_days: float = 0.0
    mae_persistence_backtest: float | None = None  # the fallback's MAE on the same week
    # Temperature features are used only when the site's back-test week says they help.
    uses_temperature: bool = False
    mae_backtest_without_temperature: float | None = None

    @property
    def skill(self) -> float | None:
        """1 - MAE / fallback MAE on the back-test week (< 0: the model is worse; repair)."""
        if not self.mae_backtest or not self.mae_persistence_backtest:
            return None
        return 1.0 - self.mae_backtest / self.mae_persistence_backtest


@dataclass(frozen=True, kw_only=True)
class Forecast:
    """Forecast mean power per slot: `slot_start` epoch seconds, site and per-zone watts."""

    slot_start: np.ndarray
    site_w: np.ndarray
    zone_w: Mapping[str, np.ndarray]
    method: str
    slot_minutes: int


def series_contexts(
    history: History, *, slot_minutes: int, utc_offset_s: float = 0.0
) -> dict[str, SeriesContext]:
    """One context per forecast series ("site" and each zone) from a raw history."""
    grid = resample(history, slot_minutes)
    n = grid.size
    relays = [v for v in grid.zone_relay_on.values() if v.size]
    # The share of zones on: the mean of the relay states measured in each slot.
    site_relay = nanmean_rows(np.vstack(relays).T) if relays else np.full(n, np.nan)
    start = float(grid.timestamps[0]) if n else 0.0
    common = {
        "grid_start_s": start,
        "slot_s": slot_minutes * 60.0,
        "pv_w": grid.pv_w,
        "temperature_c": grid.temperature_c,
        "utc_offset_s": utc_offset_s,
    }
    out = {SITE: SeriesContext(load_w=grid.site_load_w, relay_on_fraction=site_relay, **common)}
    for zone in grid.zones:
        out[zone] = SeriesContext(
            load_w=grid.zone_power_w.get(zone, np.full(n, np.nan)),
            relay_on_fraction=grid.zone_relay_on.get(zone, np.full(n, np.nan)),
            **common,
        )
    return out


def _extend(ctx: SeriesContext, length: int) -> SeriesContext:
    """Pad (or cut) every series of `ctx` with NaN to `length` slots."""

    def fit_len(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        if a.shape[0] >= length:
            return a[:length]
        return np.concatenate([a, np.full(length - a.shape[0], np.nan)])

    return SeriesContext(
        grid_start_s=ctx.grid_start_s,
        slot_s=ctx.slot_s,
        load_w=fit_len(ctx.load_w),
        pv_w=fit_len(ctx.pv_w),
        relay_on_fraction=fit_len(ctx.relay_on_fraction),
        temperature_c=fit_len(ctx.temperature_c),
        utc_offset_s=ctx.utc_offset_s,
    )


def training_pairs(
    ctx: SeriesContext, *, horizon_slots: int, max_rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sampled (origin, step) pairs whose target is measured, origins at least a day in."""
    n = ctx.load_w.shape[0]
    d = ctx.slots_per_day
    stride = max(1, round(3600.0 / ctx.slot_s))
    origins = np.arange(d, n - 1, stride, dtype=np.int64)
    if origins.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    total = origins.size * horizon_slots
    flat = (
        np.arange(total, dtype=np.int64)
        if total <= max_rows
        else rng.choice(total, size=max_rows, replace=False)
    )
    o = origins[flat // horizon_slots]
    s = flat % horizon_slots + 1
    keep = (o + s < n) & np.isfinite(ctx.load_w[np.minimum(o + s, n - 1)])
    return o[keep], s[keep]


_CONTROLLER: list[Any] = []


def single_thread() -> Any:
    """Limit BLAS/OpenMP to one thread: on a busy 2-core box spinning threads cost 10x."""
    if not _CONTROLLER:
        # The OpenMP runtime must be loaded before it can be found; scanning the loaded
        # libraries takes ~10 ms, so it is done once.
        import sklearn.ensemble  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)


def _new_regressor(max_iter: int, seed: int, loss: str) -> Any:
    """The regressor (imports scikit-learn, so only call it off the event loop)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    # Small, few trees: the profile carries the shape, the trees only correct it. Bigger ones
    # fit the noise of half-hourly household load (worse MAE on every held-out split tried).
    return HistGradientBoostingRegressor(
        loss=loss,
        max_iter=max_iter,
        learning_rate=0.08,
        max_leaf_nodes=15,
        min_samples_leaf=150,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def informative_columns(x: np.ndarray) -> np.ndarray:
    """Indices of columns with at least two distinct finite values (others carry nothing)."""
    cols = []
    for j in range(x.shape[1]):
        col = x[:, j][np.isfinite(x[:, j])]
        if col.size and np.ptp(col) > 0:
            cols.append(j)
    return np.asarray(cols, dtype=np.int64)


@dataclass(frozen=True, kw_only=True)
class SeriesModel:
    """A fitted regressor of the load's departure from its seasonal anchor profile."""

    columns: np.ndarray
    estimator: Any
    normalise: bool = False  # trained on loads divided by the series' recent level

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted watts for full feature rows."""
        xs, scale = _in_level_units(x, normalise=self.normalise)
        return (self.estimator.predict(xs[:, self.columns]) + anchor_profile(xs)) * scale


def _in_level_units(x: np.ndarray, *, normalise: bool) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows divided by their level (and that level), or as they are with level 1."""
    return normalise_load(x) if normalise else (x, np.ones(x.shape[0]))


def regression_target(
    x: np.ndarray, load_w: np.ndarray, *, normalise: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(features, target) for training: the load minus its anchor, in level units if asked."""
    xs, scale = _in_level_units(x, normalise=normalise)
    return xs, load_w / scale - anchor_profile(xs)


class DemandForecaster:
    """Forecasts site and zone demand; regression once `min_history_days` of history exist."""

    def __init__(
        self,
        *,
        slot_minutes: int = 30,
        horizon_hours: float = 24.0,
        min_history_days: float = 7.0,
        utc_offset_s: float = 0.0,
        max_rows: int = 40_000,
        max_iter: int = 40,
        backtest_days: float = BACKTEST_DAYS,
        loss: str = "absolute_error",
        half_life_days: float = 0.0,
        normalise: bool = True,
        seed: int = 0,
    ) -> None:
        """Configure the model grid (`slot_minutes`) and the trained horizon."""
        if slot_minutes <= 0 or horizon_hours <= 0:
            raise ValueError("slot_minutes and horizon_hours must be positive")
        self.slot_minutes = int(slot_minutes)
        self.horizon_hours = float(horizon_hours)
        self.min_history_days = float(min_history_days)
        self.utc_offset_s = float(utc_offset_s)
        self.max_rows = int(max_rows)
        self.max_iter = int(max_iter)
        self.backtest_days = float(backtest_days)
        self.loss = loss
        self.half_life_days = float(half_life_days)
        self.normalise = bool(normalise)
        self.seed = int(seed)
        self.models: dict[str, Any] = {}
        self.report: FitReport | None = None
        self._dropped: tuple[int, ...] = TEMPERATURE_COLUMNS  # feature columns left out

    @property
    def method(self) -> str:
        """The method `predict` uses now."""
        return METHOD_REGRESSION if self.models else METHOD_PERSISTENCE

    @property
    def _horizon_slots(self) -> int:
        return max(1, round(self.horizon_hours * 60 / self.slot_minutes))

    def _fit_series(
        self, ctx: SeriesContext, rng: np.random.Generator, *, zone: bool = False
    ) -> tuple[Any, int]:
        # Zones get half the rows and rounds: they are many, and smaller errors in watts.
        max_rows = self.max_rows // 2 if zone else self.max_rows
        max_iter = max(20, self.max_iter // 2) if zone else self.max_iter
        o, s = training_pairs(ctx, horizon_slots=self._horizon_slots, max_rows=max_rows, rng=rng)
        if o.size < 50:
            return None, 0
        x, target = regression_target(
            demand_features(ctx, o, s), ctx.load_w[o + s], normalise=self.normalise
        )
        model = SeriesModel(
            columns=np.setdiff1d(informative_columns(x), self._dropped),
            estimator=_new_regressor(max_iter, self.seed, self.loss),
            normalise=self.normalise,
        )
        weight = None
        if self.half_life_days > 0:
            # Recent behaviour (season, occupants) matters more than last winter's.
            age_days = (o.max() - o) / ctx.slots_per_day
            weight = 0.5 ** (age_days / self.half_life_days)
        model.estimator.fit(x[:, model.columns], target, sample_weight=weight)
        return model, int(o.size)

    def fit(self, history: History, *, now: float) -> FitReport:
        """Train on the history before `now`; back-test on its last week when there is room."""
        past = history.before(now)
        days = past.span_s() / SECONDS_PER_DAY
        if days < self.min_history_days:
            self.models = {}
            self.report = FitReport(
                rows=0,
                mae_backtest=None,
                trained_at=float(now),
                method=METHOD_PERSISTENCE,
                history_days=days,
            )
            return self.report
        contexts = series_contexts(
            past, slot_minutes=self.slot_minutes, utc_offset_s=self.utc_offset_s
        )
        rng = np.random.default_rng(self.seed)
        maes: dict[str, float] = {}
        models: dict[str, Any] = {}
        rows = 0
        self._dropped = TEMPERATURE_COLUMNS
        without: float | None = None
        with single_thread():
            if self.backtest_days > 0 and days >= self.min_history_days + self.backtest_days:
                before = rng.bit_generator.state
                maes = self._backtest(contexts, rng)
                site = contexts.get(SITE)
                if site is not None and _measured(site.temperature_c) and SITE in maes:
                    # Temperature is in: keep its features only if the held-out week says they
                    # help, by a margin (the same training rows, so only the columns differ).
                    without = maes[SITE]
                    self._dropped = ()
                    twin = np.random.default_rng()
                    twin.bit_generator.state = before
                    with_temperature = self._backtest(contexts, twin)
                    if with_temperature.get(SITE, np.inf) < (1.0 - TEMPERATURE_MIN_GAIN) * without:
                        maes = with_temperature
                    else:
                        self._dropped = TEMPERATURE_COLUMNS
            for name, ctx in contexts.items():
                model, n = self._fit_series(ctx, rng, zone=name != SITE)
                if model is not None:
                    models[name] = model
                    rows += n
        self.models = models
        self.report = FitReport(
            rows=rows,
            mae_backtest=maes.get(SITE),
            mae_persistence_backtest=maes.get(f"{SITE}_persistence"),
            trained_at=float(now),
            method=self.method,
            mae_backtest_by_series=maes,
            history_days=days,
            uses_temperature=not self._dropped,
            mae_backtest_without_temperature=without,
        )
        return self.report

    def _backtest(
        self, contexts: Mapping[str, SeriesContext], rng: np.random.Generator
    ) -> dict[str, float]:
        """MAE (W) of models trained without the last week, forecasting that week hourly
        (and of seasonal persistence on the same points, keyed "<series>_persistence")."""
        maes = {}
        # The site series only: zone back-tests would double the training time for a figure
        # nobody acts on.
        ctx = contexts.get(SITE)
        if ctx is None:
            return maes
        split = ctx.load_w.shape[0] - round(self.backtest_days * ctx.slots_per_day)
        model, _ = self._fit_series(_extend(ctx, split), rng)
        if model is None:
            return maes
        h = self._horizon_slots
        stride = max(1, round(3600.0 / ctx.slot_s))
        origins = np.arange(split - 1, ctx.load_w.shape[0] - 1, stride)
        o = np.repeat(origins, h)
        s = np.tile(np.arange(1, h + 1), origins.size)
        keep = o + s < ctx.load_w.shape[0]
        o, s = o[keep], s[keep]
        y = ctx.load_w[o + s]
        ok = np.isfinite(y)
        if ok.sum() == 0:
            return maes
        pred = np.maximum(model.predict(demand_features(ctx, o[ok], s[ok])), 0.0)
        maes[SITE] = float(np.mean(np.abs(pred - y[ok])))
        base = seasonal_persistence(ctx, o[ok], s[ok])
        fine = np.isfinite(base)
        if fine.any():
            maes[f"{SITE}_persistence"] = float(np.mean(np.abs(base[fine] - y[ok][fine])))
        return maes

    def predict(
        self, history_recent: History, *, now: float, horizon_slots: int, slot_minutes: int
    ) -> Forecast:
        """Mean power for `horizon_slots` slots of `slot_minutes` from the slot holding `now`."""
        if horizon_slots <= 0 or slot_minutes <= 0:
            raise ValueError("horizon_slots and slot_minutes must be positive")
        past = history_recent.before(now)
        if past.size == 0:
            raise ValueError("no history before now: nothing to forecast from")
        model_slot_s = self.slot_minutes * 60.0
        contexts = series_contexts(
            past, slot_minutes=self.slot_minutes, utc_offset_s=self.utc_offset_s
        )
        out_slot_s = slot_minutes * 60.0
        out_start = np.floor(now / out_slot_s) * out_slot_s + out_slot_s * np.arange(horizon_slots)
        first = np.floor(min(now, out_start[0]) / model_slot_s) * model_slot_s
        end = out_start[-1] + out_slot_s
        n_steps = max(1, int(np.ceil((end - first) / model_slot_s)))
        values = {}
        for name, ctx in contexts.items():
            origin = round((first - ctx.grid_start_s) / model_slot_s) - 1
            ctx_full = _extend(ctx, origin + 1)
            o = np.full(n_steps, origin, dtype=np.int64)
            s = np.arange(1, n_steps + 1, dtype=np.int64)
            model = self.models.get(name)
            if model is not None:
                with single_thread():
                    pred = model.predict(demand_features(ctx_full, o, s))
            else:
                pred = seasonal_persistence(ctx_full, o, s)
            if not np.all(np.isfinite(pred)):
                level = ctx.load_w[np.isfinite(ctx.load_w)]
                fill = float(level.mean()) if level.size else 0.0
                if not level.size:
                    # Normal for a zone that has not run yet (a pump waiting for its first job):
                    # it comes every forecast run, so debug, not a warning. The integration
                    # plans such a zone with its own fallback, not this 0 W.
                    _LOGGER.debug("no measurements for %s: forecasting 0 W", name)
                pred = np.where(np.isfinite(pred), pred, fill)
            values[name] = _rebin(
                np.maximum(pred, 0.0),
                model_start=first + model_slot_s * np.arange(n_steps),
                model_slot_s=model_slot_s,
                out_start=out_start,
                out_slot_s=out_slot_s,
            )
        return Forecast(
            slot_start=out_start,
            site_w=values.pop(SITE),
            zone_w=values,
            method=self.method,
            slot_minutes=slot_minutes,
        )


def _measured(series: np.ndarray | None) -> bool:
    """Whether a series holds any measurement."""
    return series is not None and bool(np.isfinite(series).any())


def _rebin(
    values: np.ndarray,
    *,
    model_start: np.ndarray,
    model_slot_s: float,
    out_start: np.ndarray,
    out_slot_s: float,
) -> np.ndarray:
    """Time-weighted mean of model-grid values over each output slot."""
    lo = np.maximum(model_start[None, :], out_start[:, None])
    hi = np.minimum(model_start[None, :] + model_slot_s, out_start[:, None] + out_slot_s)
    w = np.clip(hi - lo, 0.0, None)
    return (w @ values) / np.maximum(w.sum(axis=1), 1e-9)
