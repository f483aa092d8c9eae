"""Learning inside Home Assistant: training, stored models, forecast, sustain time, anomalies."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
import math
from pathlib import Path
import subprocess
import sys
import threading
import time
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant, State
from homeassistant.exceptions import Unauthorized
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.microgrid.const import (
    CONF_BATTERY_CAPACITY_WH,
    CONF_TEMPERATURE_ENTITY,
    DOMAIN,
)
from custom_components.microgrid.learning import manager as learning
from custom_components.microgrid.learning.manager import (
    EVENT_ANOMALY,
    MLManager,
    SampleBuffer,
    demand_view,
    history_from_series,
    step_means,
    temperature_c,
    train,
    write_models,
)
from custom_components.microgrid.ml import store
from custom_components.microgrid.ml.history import History
from sim.rtdb import RTDBServer

from .conftest import ZONES, board_record, wait_for

DAY_S = 86_400.0
ZONE_IDS = tuple(z for z, *_ in ZONES)


def synthetic_history(end_s: float, *, days: float = 9.0, seed: int = 0) -> History:
    """A clean 5-minute site history ending at `end_s`: daily-shaped zone loads, PV, battery."""
    rng = np.random.default_rng(seed)
    end = math.floor(end_s / 300.0) * 300.0
    t = end - 300.0 * np.arange(int(days * DAY_S / 300.0), 0, -1)
    hour = (t % DAY_S) / 3600.0
    shape = 1.0 + 0.8 * np.exp(-(((hour - 19.0) / 2.5) ** 2))
    power = {
        z: np.maximum((60.0 + 30.0 * i) * shape + rng.normal(0.0, 8.0, t.size), 0.0)
        for i, z in enumerate(ZONE_IDS)
    }
    load = np.sum(list(power.values()), axis=0)
    pv = 900.0 * np.clip(np.sin((hour - 6.0) / 12.0 * np.pi), 0.0, None)
    soc = np.clip(55.0 + 25.0 * np.sin((hour - 9.0) / 24.0 * 2 * np.pi), 0, 100)
    voltage = 11.8 + 1.4 * soc / 100.0 + rng.normal(0.0, 0.01, t.size)
    return History(
        timestamps=t,
        site_load_w=load,
        pv_w=pv,
        soc_pct=soc,
        voltage_v=voltage,
        zone_power_w=power,
        zone_relay_on={z: np.ones(t.size) for z in ZONE_IDS},
    )


@pytest.fixture(scope="module")
def trained() -> store.TrainedModels:
    """Models trained once on nine synthetic days ending now (regression, not persistence)."""
    now = datetime.now(UTC).timestamp()
    return train(synthetic_history(now), now_s=now, capacity_wh=5000.0, utc_offset_s=0.0)


@pytest.fixture(autouse=True)
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Stored models go to a temporary config directory."""
    hass.config.config_dir = str(tmp_path)
    return tmp_path


@pytest.fixture
def synthetic_loader(monkeypatch: pytest.MonkeyPatch) -> list[tuple[datetime, datetime]]:
    """The recorder history replaced by synthetic days ending at the asked end."""
    asked: list[tuple[datetime, datetime]] = []

    async def fake(self: MLManager, start: datetime, end: datetime) -> History:
        asked.append((start, end))
        return synthetic_history(end.timestamp()).before(end.timestamp())

    monkeypatch.setattr(MLManager, "async_recorded_history", fake)
    return asked


def _entity(hass: HomeAssistant, entry: MockConfigEntry, key: str, domain: str) -> str:
    found = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{entry.entry_id}_{key}")
    assert found
    return found


def _ml(entry: MockConfigEntry) -> MLManager:
    return entry.runtime_data.coordinator.ml


async def _until(hass: HomeAssistant, predicate: Any, rounds: int = 1500) -> None:
    """Poll while executor work (training) runs; the loop clock may be frozen."""
    for _ in range(rounds):
        if predicate():
            return
        await hass.async_add_executor_job(time.sleep, 0.02)
    raise AssertionError("condition not reached")


async def _started(entry: MockConfigEntry) -> None:
    """Wait for the learning start (seed, load, maybe train) to finish."""
    task = _ml(entry).started
    assert task is not None
    await task


# ---- pure pieces ------------------------------------------------------------------------


def test_step_means_weigh_each_value_by_how_long_it_held() -> None:
    """A value holds until the next; unavailable time carries no weight."""
    grid = np.array([0.0, 300.0, 600.0])
    times = np.array([0.0, 150.0, 300.0, 450.0])
    values = np.array([100.0, 200.0, np.nan, 50.0])
    out = step_means(times, values, grid_s=grid, slot_s=300.0, end_s=700.0)
    assert out[0] == pytest.approx(150.0)  # half at 100, half at 200
    assert out[1] == pytest.approx(50.0)  # unavailable half ignored
    assert out[2] == pytest.approx(50.0)  # the last value holds to the end
    assert np.isnan(
        step_means(np.array([900.0]), np.array([1.0]), grid_s=grid, slot_s=300.0, end_s=1000.0)
    ).all()


def test_recorded_series_become_a_trimmed_history() -> None:
    """Roles map to History fields; slots before the first measurement are dropped."""
    series = {
        "load": (np.array([1000.0, 1900.0]), np.array([400.0, 500.0])),
        "soc": (np.array([1000.0]), np.array([60.0])),
        "power:Zone1": (np.array([1000.0]), np.array([120.0])),
        "relay:Zone1": (np.array([1000.0, 2000.0]), np.array([1.0, 0.0])),
    }
    h = history_from_series(series, zones=("Zone1", "Zone2"), start_s=0.0, end_s=2400.0)
    assert h.timestamps[0] == 900.0 and h.timestamps[-1] == 2100.0
    assert h.zone_power_w["Zone1"][1] == pytest.approx(120.0)
    assert np.isnan(h.zone_power_w["Zone2"]).all() and np.isnan(h.pv_w).all()
    assert h.zone_relay_on["Zone1"][-1] == pytest.approx(0.0)


def test_demand_view_is_the_draw_while_on() -> None:
    """Off slots say nothing about demand; a half-on slot is scaled up to the on-draw."""
    h = History(
        timestamps=np.array([0.0, 300.0, 600.0]),
        site_load_w=np.array([100.0, 50.0, 0.0]),
        pv_w=np.zeros(3),
        soc_pct=np.full(3, 50.0),
        voltage_v=np.full(3, 12.5),
        zone_power_w={"Zone1": np.array([100.0, 50.0, 0.0])},
        zone_relay_on={"Zone1": np.array([1.0, 0.5, 0.0])},
    )
    view = demand_view(h)
    np.testing.assert_allclose(view.zone_power_w["Zone1"][:2], [100.0, 100.0])
    assert np.isnan(view.zone_power_w["Zone1"][2])
    np.testing.assert_array_equal(view.site_load_w, h.site_load_w)


def test_sample_buffer_averages_slots_and_seeds_only_the_past() -> None:
    """Samples average within their 5-minute slot; a recorded seed never overwrites live data."""
    buffer = SampleBuffer()
    buffer.add(600.0, {"load": 100.0, "power:Zone1": 10.0, "soc": None})
    buffer.add(700.0, {"load": 300.0, "power:Zone1": math.nan})
    seed = synthetic_history(900.0, days=0.01)
    assert buffer.seed(seed, before_s=600.0) == 1  # only the slot at 300 s
    h = buffer.history(("Zone1",))
    assert h.timestamps.tolist() == [300.0, 600.0]
    assert h.site_load_w[1] == pytest.approx(200.0)
    assert h.zone_power_w["Zone1"][1] == pytest.approx(10.0)


def test_importing_the_integration_does_not_import_sklearn() -> None:
    """Every platform and the learning module import without scikit-learn (a fresh process)."""
    code = (
        "import sys\n"
        "import custom_components.microgrid as m\n"
        "import custom_components.microgrid.learning.manager, custom_components.microgrid.sensor\n"
        "import custom_components.microgrid.binary_sensor\n"
        "import custom_components.microgrid.services\n"
        "bad = sorted(x for x in sys.modules if x.split('.')[0] == 'sklearn')\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


# ---- in Home Assistant ------------------------------------------------------------------


async def test_sklearn_work_never_runs_on_the_event_loop(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    trained: store.TrainedModels,
    config_dir: Path,
    synthetic_loader: list,
    admin_user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading, training, storing, forecasting and scoring all run in executor threads."""
    path = config_dir / ".storage" / f"{DOMAIN}.{mock_config_entry.entry_id}.models"
    write_models(str(path), trained)
    threads: list[tuple[str, bool]] = []

    def watch(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            threads.append((name, threading.get_ident() == hass.loop_thread_id))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    watch(learning.store, "loads")
    watch(learning.store, "dumps")
    watch(learning.DemandForecaster, "fit")
    watch(learning.DemandForecaster, "predict")
    watch(learning.AnomalyDetector, "fit")
    watch(learning.AnomalyDetector, "score")
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await _started(mock_config_entry)
    await hass.services.async_call(
        DOMAIN,
        "retrain",
        {"config_entry": mock_config_entry.entry_id},
        blocking=True,
        return_response=True,
        context=Context(user_id=admin_user.id),
    )
    names = {name for name, _ in threads}
    assert names == {"loads", "dumps", "fit", "predict", "score"}
    assert not [name for name, on_loop in threads if on_loop]
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_retrain_is_admin_only_and_stores_a_model_that_loads_back(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    synthetic_loader: list,
    admin_user: User,
    household_user: User,
) -> None:
    """A household cannot retrain; an admin's retrain answers with its figures, stores a
    loadable file and shows on the model-health sensor."""
    entry = init_integration
    ml = _ml(entry)
    call = {"config_entry": entry.entry_id}
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN, "retrain", call, blocking=True, context=Context(user_id=household_user.id)
        )
    result = await hass.services.async_call(
        DOMAIN,
        "retrain",
        call,
        blocking=True,
        return_response=True,
        context=Context(user_id=admin_user.id),
    )
    assert result["method"] == "regression" and result["rows"] > 1000
    assert result["history_days"] > 8
    # No temperature entity configured: nothing to try.
    assert result["uses_temperature"] is False and result["mae_without_temperature_w"] is None
    trained_at = dt_util.parse_datetime(result["trained_at"])
    assert trained_at is not None and abs(trained_at - dt_util.utcnow()) < timedelta(seconds=5)
    back = await hass.async_add_executor_job(learning.read_models, ml.model_path)
    assert back is not None and back.report == ml.models.report
    await hass.async_block_till_done()
    health = hass.states.get(_entity(hass, entry, "model_health", "sensor"))
    # A timestamp sensor shows whole seconds.
    assert health is not None
    assert dt_util.parse_datetime(health.state) == trained_at.replace(microsecond=0)
    assert health.attributes["rows"] == result["rows"]
    assert entry.runtime_data.audit.query(action="retrain")


async def test_removing_the_site_removes_its_models(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    trained: store.TrainedModels,
    config_dir: Path,
) -> None:
    """No trained model outlives its site."""
    path = config_dir / ".storage" / f"{DOMAIN}.{mock_config_entry.entry_id}.models"
    await hass.async_add_executor_job(write_models, str(path), trained)
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await _started(mock_config_entry)
    assert _ml(mock_config_entry).models is not None
    assert await hass.config_entries.async_remove(mock_config_entry.entry_id)
    assert not await hass.async_add_executor_job(path.exists)


async def test_models_train_at_start_when_missing_and_then_weekly(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    synthetic_loader: list,
    init_integration: MockConfigEntry,
) -> None:
    """No stored model: training starts at once; a week later the timer trains again."""
    ml = _ml(init_integration)
    await _started(init_integration)
    assert ml.trainings == 1 and ml.models is not None
    assert synthetic_loader[0][1] - synthetic_loader[0][0] == timedelta(days=learning.TRAIN_DAYS)
    freezer.tick(timedelta(days=7, minutes=1))
    async_fire_time_changed(hass)
    # Interval timers run as background jobs, which block_till_done does not wait for.
    await _until(hass, lambda: ml.trainings == 2)


@pytest.mark.parametrize(
    "content",
    [b"garbage", store.MAGIC + b'{"format_version": 0}\n' + b"\x80\x05N."],
    ids=["corrupt", "old_version"],
)
async def test_an_unusable_model_file_is_logged_and_retrained(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    config_dir: Path,
    synthetic_loader: list,
    content: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Setup survives a corrupt or old model file: it says so, retrains and stores anew."""
    path = config_dir / ".storage" / f"{DOMAIN}.{mock_config_entry.entry_id}.models"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await _started(mock_config_entry)
    assert "unusable" in caplog.text
    ml = _ml(mock_config_entry)
    assert ml.models is not None and synthetic_loader
    assert store.loads(path.read_bytes()).report == ml.models.report
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def _set_boards(rtdb: RTDBServer, coordinator: Any, **record: Any) -> None:
    """Every board reports `record` now; wait until the coordinator has them all."""
    now = dt_util.utcnow()
    for zone_id in ZONE_IDS:
        rtdb.set_value(f"sensors/{zone_id}", board_record(at=now, **record))
    await wait_for(
        lambda: all(
            (r := coordinator.readings.get(z)) is not None
            and r.soc_pct == record.get("soc", 80.0)
            and abs((r.received_at - now).total_seconds()) < 1
            for z in ZONE_IDS
        )
    )


@pytest.mark.parametrize("capacity_wh", [5000.0, 10000.0])
async def test_sustain_time_scales_with_capacity(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    capacity_wh: float,
) -> None:
    """Polar night, 400 W of load, 30 % SoC: hours to the 10 % band = 20 % of capacity / 400 W."""
    freezer.move_to("2026-01-15T06:02:00+00:00")
    hass.config.latitude, hass.config.longitude = 80.0, 0.0  # the sun never rises today
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry,
        data={**mock_config_entry.data, CONF_BATTERY_CAPACITY_WH: capacity_wh},
    )
    for zone_id in ZONE_IDS:
        rtdb.set_value(f"sensors/{zone_id}", board_record(soc=30.0, solar=0.0, power=100.0))
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await _started(mock_config_entry)
    coordinator = mock_config_entry.runtime_data.coordinator
    await _set_boards(rtdb, coordinator, soc=30.0, solar=0.0, power=100.0)
    await coordinator.ml.async_refresh()
    await hass.async_block_till_done()
    state = hass.states.get(_entity(hass, mock_config_entry, "sustain_time", "sensor"))
    assert state is not None
    expected_h = capacity_wh * (30.0 - 10.0) / 100.0 / 400.0
    assert float(state.state) == pytest.approx(expected_h, rel=0.01)
    assert state.attributes["unit_of_measurement"] == "h"
    assert state.attributes["hours_to_empty_p50"] == pytest.approx(
        capacity_wh * 0.30 / 400.0, rel=0.01
    )
    # Untrained: the prior spread (ml.sustain.PRIOR_SPREAD) around the plain energy balance.
    assert state.attributes["p10_h"] < float(state.state) < state.attributes["p90_h"]
    assert (
        state.attributes["hours_to_empty_p10"]
        < state.attributes["hours_to_empty_p50"]
        < state.attributes["hours_to_empty_p90"]
    )
    assert state.attributes["beyond_horizon"] is False
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_a_stuck_relay_raises_the_zone_anomaly_and_one_event(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """relayState false while outputPower flows, for three slots: the zone's problem sensor
    turns on with its type and score, and `microgrid_anomaly` fires once."""
    entry = init_integration
    coordinator = entry.runtime_data.coordinator
    events = async_capture_events(hass, EVENT_ANOMALY)
    for _ in range(3):
        now = dt_util.utcnow()
        for zone_id in ZONE_IDS:
            record = board_record(at=now)
            if zone_id == "Zone3":
                record = {**record, "relayState": False, "outputPower": 150.0}
            rtdb.set_value(f"sensors/{zone_id}", record)
        await wait_for(
            lambda now=now: (
                (r := coordinator.readings["Zone3"]).relay_on is False
                and abs((r.received_at - now).total_seconds()) < 1
            )
        )
        freezer.tick(timedelta(minutes=5))
    await _set_boards(rtdb, coordinator)  # healthy again now; the past slots still count
    await coordinator.ml.async_refresh()
    await coordinator.ml.async_refresh()
    await hass.async_block_till_done()
    stuck = hass.states.get(_entity(hass, entry, "Zone3_anomaly", "binary_sensor"))
    assert stuck is not None and stuck.state == "on"
    assert stuck.attributes["type"] == "relay_off_power_flow"
    assert stuck.attributes["score"] > 1
    for zone_id in ("Zone1", "Zone2", "Zone4"):
        other = hass.states.get(_entity(hass, entry, f"{zone_id}_anomaly", "binary_sensor"))
        assert other is not None and other.state == "off"
    fired = [e.data for e in events if e.data["type"] == "relay_off_power_flow"]
    assert len(fired) == 1
    assert fired[0]["zone"] == "Zone3" and fired[0]["entry_id"] == entry.entry_id
    assert fired[0]["score"] > 1 and dt_util.parse_datetime(fired[0]["at"]) is not None


async def test_a_board_that_stops_reporting_is_an_anomaly(
    hass: HomeAssistant,
    rtdb: RTDBServer,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The pump's board goes quiet for 20 minutes while the others report: board_silent."""
    entry = init_integration
    coordinator = entry.runtime_data.coordinator
    for _ in range(4):
        freezer.tick(timedelta(minutes=5))
        now = dt_util.utcnow()
        for zone_id in ("Zone1", "Zone2", "Zone3"):
            rtdb.set_value(f"sensors/{zone_id}", board_record(at=now))
        await wait_for(
            lambda now=now: (
                abs((coordinator.readings["Zone3"].received_at - now).total_seconds()) < 1
            )
        )
    await coordinator.ml.async_refresh()
    await hass.async_block_till_done()
    silent = hass.states.get(_entity(hass, entry, "Zone4_anomaly", "binary_sensor"))
    assert silent is not None and silent.state == "on"
    assert silent.attributes["type"] == "board_silent"
    awake = hass.states.get(_entity(hass, entry, "Zone1_anomaly", "binary_sensor"))
    assert awake is not None and awake.state == "off"


async def test_get_forecast_covers_the_planner_horizon(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The action returns 288 five-minute slots from now: site, PV and every zone."""
    entry = init_integration
    await _ml(entry).async_refresh()
    result = await hass.services.async_call(
        DOMAIN,
        "get_forecast",
        {"config_entry": entry.entry_id},
        blocking=True,
        return_response=True,
    )
    assert result["method"] == "seasonal_persistence" and result["slot_minutes"] == 5
    assert len(result["slot_start"]) == len(result["site_w"]) == len(result["pv_w"]) == 288
    assert set(result["zones_w"]) == set(ZONE_IDS)
    assert all(len(v) == 288 for v in result["zones_w"].values())
    first = dt_util.parse_datetime(result["slot_start"][0])
    assert first is not None and timedelta(0) <= dt_util.utcnow() - first < timedelta(minutes=5)
    # Four boards at 100 W and nothing older to repeat: the level seen so far.
    assert result["site_w"][0] == pytest.approx(400.0)
    await hass.async_block_till_done()
    sensor = hass.states.get(_entity(hass, entry, "demand_forecast", "sensor"))
    assert sensor is not None and float(sensor.state) == pytest.approx(400.0)
    assert len(sensor.attributes["hourly_w"]) == 24


async def test_a_trained_model_feeds_the_planner_until_it_degrades(
    hass: HomeAssistant, init_integration: MockConfigEntry, trained: store.TrainedModels
) -> None:
    """With a trained forecaster the plan's zone demand is the learned series; a model that
    back-tests worse than persistence gives way to it, and clearly worse raises a repair."""
    entry = init_integration
    coordinator = entry.runtime_data.coordinator
    ml = coordinator.ml
    now = dt_util.utcnow()
    ml.buffer.seed(synthetic_history(now.timestamp()), before_s=now.timestamp() - 300)
    ml._install(store.loads(store.dumps(trained)))
    await ml.async_refresh()
    assert ml.forecast is not None and ml.forecast.method == "regression"
    inp = coordinator.planner.build_input(dt_util.utcnow())
    assert inp is not None
    offset = ml._fresh_offset(inp.now)
    learned = ml.forecast.zone_w["Zone2"][offset : offset + inp.horizon_slots]
    np.testing.assert_allclose(inp.demand_w["Zone2"], learned)
    # The synthetic Zone2 draws ~90-160 W; its rating is 200 W.
    assert max(inp.demand_w["Zone2"]) < 200.0
    issue_id = f"model_degraded_{entry.entry_id}"
    bad = store.loads(store.dumps(trained))
    bad.demand.report = replace(bad.report, mae_backtest=120.0, mae_persistence_backtest=100.0)
    ml._install(bad)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None and issue.translation_key == "model_degraded"
    assert issue.translation_placeholders["skill"] == "-0.20"
    await ml.async_refresh()
    inp = coordinator.planner.build_input(dt_util.utcnow())
    # back on persistence: what Zone2 has drawn while on so far (no yesterday yet), flat
    drawn = coordinator.planner.history.mean_on_w("Zone2", default=-1.0)
    assert drawn > 0
    assert inp is not None and inp.demand_w["Zone2"] == (drawn,) * inp.horizon_slots
    assert not np.allclose(inp.demand_w["Zone2"], learned)
    await hass.async_block_till_done()
    health = hass.states.get(_entity(hass, entry, "model_health", "sensor"))
    assert health is not None and health.attributes["degraded"] is True
    # Slightly worse than persistence (within noise): persistence forecasts, no repair issue.
    mild = store.loads(store.dumps(trained))
    mild.demand.report = replace(mild.report, mae_backtest=105.0, mae_persistence_backtest=100.0)
    ml._install(mild)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    await ml.async_refresh()
    assert ml.forecast.method == "seasonal_persistence"
    ml._install(store.loads(store.dumps(trained)))
    await ml.async_refresh()
    assert ml.forecast.method == "regression"


async def test_rejected_impossible_values_are_anomalies(
    hass: HomeAssistant, rtdb: RTDBServer, init_integration: MockConfigEntry
) -> None:
    """A record the protocol refuses as impossible marks the zone's anomaly sensor."""
    entry = init_integration
    coordinator = entry.runtime_data.coordinator
    rtdb.set_value("sensors/Zone2", {**board_record(), "batteryPercentage": 180.0})
    await wait_for(lambda: sum(coordinator.rejections.values()) >= 1)
    await coordinator.ml.async_refresh()
    await hass.async_block_till_done()
    state = hass.states.get(_entity(hass, entry, "Zone2_anomaly", "binary_sensor"))
    assert state is not None and state.state == "on"
    assert state.attributes["type"] == "impossible_value"


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Let a test in this module set up the recorder (its patches must precede `hass`)."""


async def test_training_history_is_read_from_the_recorder(
    recorder_mock: Any,
    hass: HomeAssistant,
    rtdb: RTDBServer,
    mock_config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The site's own entities, found by unique id, come back as 5-minute means; so does the
    configured weather entity's temperature (an attribute, in °F), in °C."""
    freezer.move_to("2026-03-02T09:59:59+00:00")
    for zone_id in ZONE_IDS:
        rtdb.set_value(f"sensors/{zone_id}", board_record())
    weather = {"temperature_unit": "°F"}
    hass.states.async_set("weather.home", "sunny", {**weather, "temperature": 68.0})
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, options={CONF_TEMPERATURE_ENTITY: "weather.home"}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await _started(mock_config_entry)
    coordinator = mock_config_entry.runtime_data.coordinator
    ml = coordinator.ml
    await _set_boards(rtdb, coordinator)
    await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=1))
    start = dt_util.utcnow()  # a slot boundary: what held before counts from here
    freezer.tick(timedelta(minutes=5))
    # Zone1 draws 300 W for the next slot, then its relay opens (no power); the other boards
    # keep reporting (a silent board's sensors go unavailable: NaN).
    # 25 °C with the same condition (only the attribute changes), then 15 °C and cloudy.
    steps = (({"power": 300.0}, "sunny", 77.0), ({"relay": False}, "cloudy", 59.0))
    for zone1, condition, fahrenheit in steps:
        hass.states.async_set("weather.home", condition, {**weather, "temperature": fahrenheit})
        now = dt_util.utcnow()
        for zone_id in ZONE_IDS:
            rtdb.set_value(
                f"sensors/{zone_id}", board_record(at=now, **(zone1 if zone_id == "Zone1" else {}))
            )
        await wait_for(
            lambda now=now: all(
                abs((coordinator.readings[z].received_at - now).total_seconds()) < 1
                for z in ZONE_IDS
            )
        )
        await hass.async_block_till_done()
        freezer.tick(timedelta(minutes=5))
    await async_wait_recording_done(hass)
    roles = ml.entity_roles()
    assert set(roles) >= {"load", "pv", "soc", "voltage", "power:Zone1", "relay:Zone4"}
    h = await ml.async_recorded_history(start, dt_util.utcnow())
    assert h.timestamps[0] == start.timestamp() and np.all(np.diff(h.timestamps) == 300.0)
    np.testing.assert_allclose(h.zone_power_w["Zone1"][:3], [100.0, 300.0, 0.0])
    np.testing.assert_allclose(h.zone_relay_on["Zone1"][:3], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(h.zone_power_w["Zone2"][:3], [100.0] * 3)
    np.testing.assert_allclose(h.soc_pct[:3], [80.0] * 3)
    np.testing.assert_allclose(h.site_load_w[:2], [400.0, 600.0])
    assert h.temperature_c is not None
    np.testing.assert_allclose(h.temperature_c[:3], [20.0, 25.0, 15.0])
    # The live buffer samples it too, with every board reading.
    recent = ml.recent_history().temperature_c
    assert recent is not None
    np.testing.assert_allclose(recent[np.isfinite(recent)][-2:], [25.0, 15.0])
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


def test_outdoor_temperature_from_a_weather_entity_or_a_sensor() -> None:
    """°C from either source, converted from its own unit; None when it cannot be known."""
    weather = State("weather.home", "rainy", {"temperature": 50.0, "temperature_unit": "°F"})
    assert temperature_c(weather) == pytest.approx(10.0)
    assert temperature_c(State("sensor.out", "21.5", {"unit_of_measurement": "°C"})) == 21.5
    assert temperature_c(State("sensor.out", "300.15", {"unit_of_measurement": "K"})) == (
        pytest.approx(27.0)
    )
    for unknown in (
        None,
        State("sensor.out", "unavailable", {"unit_of_measurement": "°C"}),
        State("sensor.out", "21.5", {}),  # no unit: not a temperature we can read
        State("sensor.out", "21.5", {"unit_of_measurement": "W"}),
        State("weather.home", "sunny", {"temperature_unit": "°C"}),  # no temperature
        State("weather.home", "sunny", {"temperature": "nan", "temperature_unit": "°C"}),
    ):
        assert temperature_c(unknown) is None
