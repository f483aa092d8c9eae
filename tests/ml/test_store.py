"""Training entry point and the versioned model format."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from ml.store import (
    FORMAT_VERSION,
    MAGIC,
    ModelFormatError,
    dumps,
    loads,
    read_header,
    read_models,
    remove_models,
    train_all,
    write_models,
)

from .synth import site_history


@pytest.fixture(scope="module")
def trained():
    h = site_history(days=9, slot_s=900.0)
    now = h.timestamps[-1] + 900.0
    return h, now, train_all(h, now=now, capacity_wh=5_000.0, slot_minutes=30)


def test_train_all_trains_every_model(trained) -> None:
    _, now, models = trained
    assert models.trained_at == now
    assert models.report.method == "regression" and models.report.rows > 0
    assert models.anomaly.fitted and models.anomaly.forest is not None
    assert models.sustain.knots_h and models.sustain.soc_rate_factor == pytest.approx(1.0, rel=0.05)


def test_round_trip_gives_identical_predictions(trained) -> None:
    h, now, models = trained
    data = dumps(models)
    assert read_header(data)["format_version"] == FORMAT_VERSION
    back = loads(data)
    a = models.demand.predict(h, now=now, horizon_slots=24, slot_minutes=30)
    b = back.demand.predict(h, now=now, horizon_slots=24, slot_minutes=30)
    np.testing.assert_array_equal(a.site_w, b.site_w)
    for z in a.zone_w:
        np.testing.assert_array_equal(a.zone_w[z], b.zone_w[z])
    assert back.sustain == models.sustain
    assert back.report == models.report
    assert models.anomaly.score(h, now=now) == back.anomaly.score(h, now=now)


def _with_header(data: bytes, **changes) -> bytes:
    header = {**read_header(data), **changes}
    rest = data[data.find(b"\n", len(MAGIC)) + 1 :]
    return MAGIC + json.dumps(header).encode() + b"\n" + rest


def test_other_versions_and_garbage_are_refused_clearly(trained) -> None:
    data = dumps(trained[2])
    other = FORMAT_VERSION + 1
    with pytest.raises(ModelFormatError, match=f"format version {other}"):
        loads(_with_header(data, format_version=other))
    with pytest.raises(ModelFormatError, match="format version 1"):
        loads(_with_header(data, format_version=1))
    with pytest.raises(ModelFormatError, match=r"scikit-learn 0\.1"):
        loads(_with_header(data, sklearn="0.1"))
    with pytest.raises(ModelFormatError, match="magic"):
        loads(b"garbage")
    with pytest.raises(ModelFormatError, match="corrupt"):
        loads(data[:-100])


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


class _SklearnFunction:
    def __reduce__(self):
        from sklearn.utils import shuffle

        return (shuffle, ([1, 2],))


def test_a_payload_naming_arbitrary_code_is_refused(trained) -> None:
    data = dumps(trained[2])
    head = data[: data.find(b"\n", len(MAGIC)) + 1]
    with pytest.raises(ModelFormatError, match=r"forbidden posix\.system"):
        loads(head + pickle.dumps({"demand": _Evil()}))
    # Even scikit-learn's own functions are refused: only its classes may be rebuilt.
    with pytest.raises(ModelFormatError, match="forbidden sklearn"):
        loads(head + pickle.dumps({"demand": _SklearnFunction()}))


def test_train_all_without_capacity_does_not_guess_a_rate(trained) -> None:
    h, now, _ = trained
    short = h.before(h.timestamps[0] + 2 * 86_400)
    models = train_all(short, now=now)
    assert models.report.method == "seasonal_persistence"
    assert models.sustain.soc_rate_factor == 1.0


def test_models_are_written_read_back_and_removed(trained, tmp_path) -> None:
    """The file holds the byte format; no file reads as no models; removing twice is fine."""
    _, _, models = trained
    path = str(tmp_path / ".storage" / "site.models")
    assert read_models(path) is None
    size = write_models(path, models)
    assert size == len(dumps(models))
    back = read_models(path)
    assert back is not None and back.report == models.report
    remove_models(path)
    remove_models(path)
    assert read_models(path) is None
