"""The learning manager in Home Assistant: training, stored models, forecast, sustain time,
anomalies, and what it hands to the entities, the planner and the bus."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
import subprocess
import sys
import threading
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import Unauthorized
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.microgrid.const import CONF_BATTERY_CAPACITY_WH, DOMAIN
from custom_components.microgrid.learning.manager import EVENT_ANOMALY, TRAIN_DAYS
from custom_components.microgrid.ml import store
from custom_components.microgrid.ml.anomaly import AnomalyDetector
from custom_components.microgrid.ml.demand import DemandForecaster
from custom_components.microgrid.ml.store import read_models, write_models
from sim.rtdb import RTDBServer
from tests.components.microgrid.conftest import board_record, entity_id, wait_for

from .conftest import (
    ZONE_IDS,
    ml_of,
    set_boards,
    started,
    synthetic_history,
    until,
)


def test_importing_the_integration_does_not_import_sklearn() -> None:
    """Every platform and the learning module import without scikit-learn (a fresh process)."""
    code = (
        "import sys\n"
        "import custom_components.microgrid as m\n"
        "import custom_components.microgrid.learning.manager, custom_components.microgrid.sensor\n"
        "import custom_components.microgrid.learning.recorder\n"
        "import custom_components.microgrid.binary_sensor\n"
        "import custom_components.microgrid.services\n"
        "bad = sorted(x for x in sys.modules if x.split('.')[0] == 'sklearn')\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).parents[4]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


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

    watch(store, "loads")
    watch(store, "dumps")
    watch(DemandForecaster, "fit")
    watch(DemandForecaster, "predict")
    watch(AnomalyDetector, "fit")
    watch(AnomalyDetector, "score")
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await started(hass, mock_config_entry)
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
    ml = ml_of(entry)
    call = {"config_entry": entry.entry_id}
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN, "retrain", call, blocking=True, context=Context(user_id=household_user.id)
        )
    before = dt_util.utcnow()
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
    # Trained by this call (no wall-clock bound: the machine may be slow).
    assert trained_at is not None and before <= trained_at <= dt_util.utcnow()
    back = await hass.async_add_executor_job(read_models, ml.model_path)
    assert back is not None and back.report == ml.models.report
    await hass.async_block_till_done()
    health = hass.states.get(entity_id(hass, entry, "model_health", "sensor"))
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
    await started(hass, mock_config_entry)
    assert ml_of(mock_config_entry).models is not None
    assert await hass.config_entries.async_remove(mock_config_entry.entry_id)
    assert not await hass.async_add_executor_job(path.exists)


async def test_models_train_at_start_when_missing_and_then_weekly(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    synthetic_loader: list,
    init_integration: MockConfigEntry,
) -> None:
    """No stored model: training starts at once; a week later the timer trains again."""
    ml = ml_of(init_integration)
    await started(hass, init_integration)
    assert ml.trainings == 1 and ml.models is not None
    assert synthetic_loader[0][1] - synthetic_loader[0][0] == timedelta(days=TRAIN_DAYS)
    freezer.tick(timedelta(days=7, minutes=1))
    async_fire_time_changed(hass)
    # Interval timers run as background jobs, which block_till_done does not wait for.
    await until(hass, lambda: ml.trainings == 2)


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
    await started(hass, mock_config_entry)
    assert "unusable" in caplog.text
    ml = ml_of(mock_config_entry)
    assert ml.models is not None and synthetic_loader
    assert store.loads(path.read_bytes()).report == ml.models.report
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


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
    await started(hass, mock_config_entry)
    coordinator = mock_config_entry.runtime_data.coordinator
    await set_boards(rtdb, coordinator, soc=30.0, solar=0.0, power=100.0)
    await coordinator.ml.async_refresh()
    await hass.async_block_till_done()
    state = hass.states.get(entity_id(hass, mock_config_entry, "sustain_time", "sensor"))
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
    await set_boards(rtdb, coordinator)  # healthy again now; the past slots still count
    await coordinator.ml.async_refresh()
    await coordinator.ml.async_refresh()
    await hass.async_block_till_done()
    stuck = hass.states.get(entity_id(hass, entry, "Zone3_anomaly", "binary_sensor"))
    assert stuck is not None and stuck.state == "on"
    assert stuck.attributes["type"] == "relay_off_power_flow"
    assert stuck.attributes["score"] > 1
    for zone_id in ("Zone1", "Zone2", "Zone4"):
        other = hass.states.get(entity_id(hass, entry, f"{zone_id}_anomaly", "binary_sensor"))
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
    silent = hass.states.get(entity_id(hass, entry, "Zone4_anomaly", "binary_sensor"))
    assert silent is not None and silent.state == "on"
    assert silent.attributes["type"] == "board_silent"
    awake = hass.states.get(entity_id(hass, entry, "Zone1_anomaly", "binary_sensor"))
    assert awake is not None and awake.state == "off"


async def test_get_forecast_covers_the_planner_horizon(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The action returns 288 five-minute slots from now: site, PV and every zone."""
    entry = init_integration
    await ml_of(entry).async_refresh()
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
    sensor = hass.states.get(entity_id(hass, entry, "demand_forecast", "sensor"))
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
    health = hass.states.get(entity_id(hass, entry, "model_health", "sensor"))
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
    state = hass.states.get(entity_id(hass, entry, "Zone2_anomaly", "binary_sensor"))
    assert state is not None and state.state == "on"
    assert state.attributes["type"] == "impossible_value"
