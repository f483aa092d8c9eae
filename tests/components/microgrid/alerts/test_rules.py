"""The pure alert rules: battery thresholds once per descent, with hysteresis; a failing
critical zone restarted before it alerts; essential services; active anomalies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings, strategies as st

from custom_components.microgrid.alerts.model import AlertType
from custom_components.microgrid.alerts.rules import (
    ZoneFailureAction,
    active_anomaly_keys,
    anomaly_key,
    battery_levels,
    battery_step,
    concerns_essential_service,
    essential_zones_unpowered,
    zone_failure_action,
)
from custom_components.microgrid.optimizer.model import PriorityClass, Thresholds, Zone
from custom_components.microgrid.snapshot import ZoneSnapshot

THRESHOLDS = Thresholds(
    conservation_pct=20.0,
    emergency_pct=10.0,
    critical_alert_pct=5.0,
    hysteresis_pct=2.0,
    min_on_s=300,
    min_off_s=300,
)


def run(socs: list[float], armed: frozenset[AlertType] | None = None) -> list[AlertType | None]:
    """The alert (or None) each reading gives."""
    state = frozenset(AlertType) if armed is None else armed
    fired: list[AlertType | None] = []
    for soc in socs:
        step = battery_step(soc, state, battery_levels(THRESHOLDS), THRESHOLDS.hysteresis_pct)
        state = step.armed
        fired.append(step.fire.alert_type if step.fire else None)
    return fired


def test_battery_step_once_per_descent_with_hysteresis() -> None:
    """20 → 19 → 21 → 19 alerts once; 23 re-arms; 19 alerts again; a plunge sends the worst."""
    low = AlertType.BATTERY_LOW
    assert run([20, 19, 21, 19, 23, 19]) == [None, low, None, None, None, low]
    assert run([15, 9.9, 4]) == [low, AlertType.BATTERY_EMERGENCY, AlertType.BATTERY_CRITICAL]
    assert run([25, 4, 6.9, 4]) == [None, AlertType.BATTERY_CRITICAL, None, None]
    # re-armed exactly at threshold + hysteresis (as the operating band climbs back)
    emergency = AlertType.BATTERY_EMERGENCY
    assert run([9, 11.9, 9, 12, 9]) == [emergency, None, None, None, emergency]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=40))
def test_battery_step_properties(socs: list[float]) -> None:
    """Never two alerts of a level without a recovery past its hysteresis between them, and a
    reading below an armed level always alerts (that level or a worse one)."""
    state = frozenset(AlertType)
    levels = battery_levels(THRESHOLDS)
    recovered = {level.alert_type: True for level in levels}
    for soc in socs:
        step = battery_step(soc, state, levels, THRESHOLDS.hysteresis_pct)
        for level in levels:
            if level.alert_type in state and soc < level.threshold_pct:
                assert step.fire is not None and step.fire.threshold_pct <= level.threshold_pct
            if soc >= level.threshold_pct + THRESHOLDS.hysteresis_pct:
                recovered[level.alert_type] = True
        if step.fire is not None:
            assert recovered[step.fire.alert_type]
            for level in levels:
                if level.alert_type in step.crossed:
                    recovered[level.alert_type] = False
        state = step.armed


T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


def test_zone_failure_restarts_first_then_alerts() -> None:
    """Unpowered 30 s: restart (once); the alert 60 s into the failure and 30 s after the
    restart; without a restart (monitor mode) the alert after 60 s alone."""
    restart, alert = ZoneFailureAction.RESTART, ZoneFailureAction.ALERT

    def act(at_s: float, restarted_s: float | None, *, can: bool = True) -> Any:
        return zone_failure_action(
            T0,
            T0 + at_s * SEC,
            restarted_at=None if restarted_s is None else T0 + restarted_s * SEC,
            can_restart=can and restarted_s is None,
        )

    assert act(29, None) is None
    assert act(30, None) is restart
    assert act(59, 30) is None
    assert act(60, 30) is alert
    # Seen late (the first reading in 90 s): restart now, alert only 30 s later.
    assert act(90, None) is restart
    assert act(100, 90) is None and act(120, 90) is alert
    assert act(59, None, can=False) is None and act(60, None, can=False) is alert


def zone_snapshot(
    zone: Zone, *, online: bool = True, relay: bool | None = True, desired: bool = True
) -> ZoneSnapshot:
    """A zone as the coordinator shows it."""
    return ZoneSnapshot(
        zone=zone,
        reading=None,
        online=online,
        relay_on=relay,
        desired_on=desired,
        reason=None,
        forced=False,
        pending=None,
        energy_kwh=0.0,
    )


def test_essential_service_affected() -> None:
    """Only zones marked clinic/hospital count: off, silent, or about to be cut off."""
    clinic = Zone(
        zone_id="Zone1",
        name="Clinic",
        priority=PriorityClass.CRITICAL,
        rated_w=150,
        essential_service=True,
    )
    lights = Zone(zone_id="Zone2", name="Lights", priority=PriorityClass.CRITICAL, rated_w=50)
    assert (
        essential_zones_unpowered([zone_snapshot(clinic), zone_snapshot(lights, relay=False)]) == ()
    )
    for off in ({"relay": False}, {"online": False}, {"desired": False}):
        assert essential_zones_unpowered([zone_snapshot(clinic, **off)]) == ("Zone1",), off
    failure = AlertType.CRITICAL_ZONE_FAILURE
    assert concerns_essential_service(failure, clinic)
    assert not concerns_essential_service(failure, lights)
    assert not concerns_essential_service(failure, None)
    assert concerns_essential_service(AlertType.COMMAND_FAILED, clinic, command="ON")
    assert not concerns_essential_service(AlertType.COMMAND_FAILED, clinic, command="OFF")


def test_active_anomaly_keys() -> None:
    """Every active type of every zone, and the site's, keyed by zone and type."""
    keys = active_anomaly_keys(
        {
            "Zone3": {
                "type": "relay_off_power_flow",
                "types": ["relay_off_power_flow", "battery_outlier"],
            },
            "Zone4": {"type": "sensor_spike"},
        },
        {"type": "base_load_drift", "types": ["base_load_drift"]},
    )
    assert keys == {
        anomaly_key("Zone3", "relay_off_power_flow"),
        anomaly_key("Zone3", "battery_outlier"),
        anomaly_key("Zone4", "sensor_spike"),
        anomaly_key(None, "base_load_drift"),
    }
    assert active_anomaly_keys({}, None) == frozenset()
