"""The site's history from Home Assistant: its own entities (found by unique id) and the
outdoor temperature, read from the recorder off the event loop, as slot means.

The recorder is optional: without it (or before its database is ready) the history is empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
import math
from typing import Any

from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, Platform, UnitOfTemperature
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.util.unit_conversion import TemperatureConverter
import numpy as np

from ..const import DOMAIN
from ..ml.history import History, empty_history
from ..ml.series import history_from_series

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


def recorder_ready(hass: HomeAssistant) -> bool:
    """Whether the recorder is loaded (it is optional)."""
    return "recorder" in hass.config.components


def entity_roles(hass: HomeAssistant, entry_id: str, zones: tuple[str, ...]) -> dict[str, str]:
    """Role -> entity id of the site's own entities, found by unique id."""
    registry = er.async_get(hass)
    wanted = {role: (Platform.SENSOR, f"{entry_id}_{key}") for role, key in SITE_ROLES.items()}
    for zone in zones:
        wanted[f"power:{zone}"] = (Platform.SENSOR, f"{entry_id}_{zone}_power")
        wanted[f"relay:{zone}"] = (Platform.SWITCH, f"{entry_id}_{zone}_relay")
    roles = {}
    for role, (domain, unique_id) in wanted.items():
        entity_id = registry.async_get_entity_id(domain, DOMAIN, unique_id)
        if entity_id:
            roles[role] = entity_id
    return roles


async def async_recorded_history(
    hass: HomeAssistant,
    *,
    entry_id: str,
    zones: tuple[str, ...],
    temperature_entity_id: str | None,
    start: datetime,
    end: datetime,
    slot_s: float,
) -> History:
    """The site's recorded history in [start, end) as `slot_s` slot means."""
    if not recorder_ready(hass):
        return empty_history(zones)
    from homeassistant.components.recorder import get_instance

    roles = entity_roles(hass, entry_id, zones)
    if not roles:
        return empty_history(zones)
    instance = get_instance(hass)
    # At start the recorder may still be migrating its database.
    if not await instance.async_db_ready:
        return empty_history(zones)

    def read() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        series = _recorded_series(hass, roles, start, end)
        if temperature_entity_id:
            series["temperature"] = _recorded_temperature(hass, temperature_entity_id, start, end)
        return series

    series = await instance.async_add_executor_job(read)
    return await hass.async_add_executor_job(
        lambda: history_from_series(
            series, zones=zones, start_s=start.timestamp(), end_s=end.timestamp(), slot_s=slot_s
        )
    )


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
