"""Training entry point and the versioned byte format the integration stores its models in.

Layout: a magic line, one JSON header line (format version, library versions), then a pickle of
plain data: dicts, lists, floats, numpy arrays and the scikit-learn estimators (pickle is
scikit-learn's own persistence). Loading refuses another format version or another scikit-learn
version (retrain instead), and unpickles through an allow-list (numpy's reconstruction helpers,
scikit-learn classes), so a tampered file cannot name arbitrary callables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import io
import json
import os
import pickle
from typing import Any

import numpy as np

from .anomaly import AnomalyConfig, AnomalyDetector, VoltageModel, ZoneStats
from .demand import DemandForecaster, FitReport, SeriesModel
from .history import History
from .sustain import SustainCorrection, fit_sustain_correction

FORMAT_VERSION = 4  # 4: temperature features (feature columns moved)
# 3: sustain spread as load/PV error quantiles; drift 3-of-4 rule
# 2: drift settings per zone (AnomalyConfig without drift_rel)
MAGIC = b"MICROGRID-ML\n"


class ModelFormatError(ValueError):
    """Stored models that this code cannot (or must not) load: retrain."""


@dataclass(frozen=True, kw_only=True)
class TrainedModels:
    """Everything one training run produces."""

    demand: DemandForecaster
    anomaly: AnomalyDetector
    sustain: SustainCorrection
    trained_at: float

    @property
    def report(self) -> FitReport:
        """The demand forecaster's fit report (rows, back-test MAE, trained_at)."""
        assert self.demand.report is not None
        return self.demand.report


def train_all(
    history: History,
    *,
    now: float,
    capacity_wh: float | None = None,
    slot_minutes: int = 30,
    horizon_hours: float = 24.0,
    utc_offset_s: float = 0.0,
) -> TrainedModels:
    """Train every model on the history before `now` (blocking: run it in an executor)."""
    past = history.before(now)
    demand = DemandForecaster(
        slot_minutes=slot_minutes, horizon_hours=horizon_hours, utc_offset_s=utc_offset_s
    )
    demand.fit(past, now=now)
    anomaly = AnomalyDetector().fit(past)
    sustain = fit_sustain_correction(
        past,
        capacity_wh=capacity_wh if capacity_wh else 1.0,
        slot_minutes=slot_minutes,
        utc_offset_s=utc_offset_s,
    )
    if not capacity_wh:
        # Without a capacity the SoC rate cannot be compared with the energy balance.
        sustain = SustainCorrection(**{**asdict(sustain), "soc_rate_factor": 1.0, "rows": 0})
    return TrainedModels(demand=demand, anomaly=anomaly, sustain=sustain, trained_at=float(now))


def _demand_state(f: DemandForecaster) -> dict[str, Any]:
    return {
        "config": {
            "slot_minutes": f.slot_minutes,
            "horizon_hours": f.horizon_hours,
            "min_history_days": f.min_history_days,
            "utc_offset_s": f.utc_offset_s,
            "max_rows": f.max_rows,
            "max_iter": f.max_iter,
            "backtest_days": f.backtest_days,
            "loss": f.loss,
            "half_life_days": f.half_life_days,
            "normalise": f.normalise,
            "seed": f.seed,
        },
        "models": {
            k: {"columns": m.columns.tolist(), "estimator": m.estimator, "normalise": m.normalise}
            for k, m in f.models.items()
        },
        "report": None
        if f.report is None
        else {**asdict(f.report), "mae_backtest_by_series": dict(f.report.mae_backtest_by_series)},
    }


def _demand_from(state: dict[str, Any]) -> DemandForecaster:
    f = DemandForecaster(**state["config"])
    f.models = {
        k: SeriesModel(
            columns=np.asarray(m["columns"], dtype=np.int64),
            estimator=m["estimator"],
            normalise=bool(m["normalise"]),
        )
        for k, m in state["models"].items()
    }
    f.report = None if state["report"] is None else FitReport(**state["report"])
    return f


def _anomaly_state(d: AnomalyDetector) -> dict[str, Any]:
    return {
        "config": asdict(d.config),
        "seed": d.seed,
        "zone_stats": {z: asdict(s) for z, s in d.zone_stats.items()},
        "voltage_model": None if d.voltage_model is None else asdict(d.voltage_model),
        "pv_max_by_hour_w": d.pv_max_by_hour_w,
        "forest": d.forest,
        "forest_threshold": d.forest_threshold,
    }


def _anomaly_from(state: dict[str, Any]) -> AnomalyDetector:
    d = AnomalyDetector(config=AnomalyConfig(**state["config"]), seed=state["seed"])
    d.zone_stats = {z: ZoneStats(**s) for z, s in state["zone_stats"].items()}
    vm = state["voltage_model"]
    d.voltage_model = (
        None if vm is None else VoltageModel(coef=tuple(vm["coef"]), sigma_v=vm["sigma_v"])
    )
    d.pv_max_by_hour_w = state["pv_max_by_hour_w"]
    d.forest = state["forest"]
    d.forest_threshold = state["forest_threshold"]
    return d


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def dumps(models: TrainedModels) -> bytes:
    """Serialise trained models with a format version header (imports scikit-learn)."""
    header = {
        "format_version": FORMAT_VERSION,
        "sklearn": _sklearn_version(),
        "numpy": np.__version__,
        "trained_at": models.trained_at,
    }
    payload = {
        "demand": _demand_state(models.demand),
        "anomaly": _anomaly_state(models.anomaly),
        "sustain": asdict(models.sustain),
        "trained_at": models.trained_at,
    }
    return MAGIC + json.dumps(header).encode() + b"\n" + pickle.dumps(payload, protocol=5)


def read_header(data: bytes) -> dict[str, Any]:
    """The JSON header of stored models (no unpickling), or ModelFormatError."""
    if not data.startswith(MAGIC):
        raise ModelFormatError("not a microgrid model file (bad magic)")
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : end])
    except ValueError as err:
        raise ModelFormatError(f"unreadable model header: {err}") from err
    if not isinstance(header, dict):
        raise ModelFormatError("unreadable model header: not an object")
    return header


# numpy's array and generator reconstruction, by exact name (numpy.memmap, say, could write).
_NUMPY_ALLOWED = frozenset(
    (mod, name)
    for core in ("numpy.core", "numpy._core")
    for mod, name in (
        (f"{core}.multiarray", "_reconstruct"),
        (f"{core}.multiarray", "scalar"),
        (f"{core}.numeric", "_frombuffer"),
    )
) | {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
}


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy reconstruction helpers and scikit-learn/numpy.random
    classes: a tampered file cannot name a function such as os.system."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_ALLOWED:
            return super().find_class(module, name)
        if module.startswith(("sklearn.", "numpy.random.")):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise ModelFormatError(f"model file refers to forbidden {module}.{name}")


def loads(data: bytes) -> TrainedModels:
    """Load models saved by `dumps`; ModelFormatError for another version or a bad file."""
    header = read_header(data)
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"model format version {version!r}; this code reads {FORMAT_VERSION}: retrain"
        )
    if header.get("sklearn") != _sklearn_version():
        raise ModelFormatError(
            f"models were saved with scikit-learn {header.get('sklearn')}, this is "
            f"{_sklearn_version()}: retrain"
        )
    start = data.find(b"\n", len(MAGIC)) + 1
    try:
        payload = _AllowListUnpickler(io.BytesIO(data[start:])).load()
    except ModelFormatError:
        raise
    except Exception as err:
        raise ModelFormatError(f"corrupt model payload: {err}") from err
    try:
        return TrainedModels(
            demand=_demand_from(payload["demand"]),
            anomaly=_anomaly_from(payload["anomaly"]),
            sustain=SustainCorrection(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in payload["sustain"].items()}
            ),
            trained_at=float(payload["trained_at"]),
        )
    except (KeyError, TypeError) as err:
        raise ModelFormatError(f"model payload misses or mistypes {err}") from err


def write_models(path: str, models: TrainedModels) -> int:
    """Serialise and write atomically (blocking); returns the size in bytes."""
    data = dumps(models)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return len(data)


def read_models(path: str) -> TrainedModels | None:
    """The stored models, None if there are none (blocking; ModelFormatError if bad)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    return loads(data)


def remove_models(path: str) -> None:
    """Delete stored models if there are any (blocking)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
