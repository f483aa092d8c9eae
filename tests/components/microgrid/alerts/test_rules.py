"""The pure alert rules: battery thresholds once per descent, with hysteresis."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from custom_components.microgrid.alerts.model import AlertType
from custom_components.microgrid.alerts.rules import battery_levels, battery_step
from custom_components.microgrid.optimizer.model import Thresholds

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
