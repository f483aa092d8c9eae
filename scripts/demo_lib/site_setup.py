"""Configure the running Home Assistant: users, the microgrid entry (flow API), the household."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import time
from typing import Any

from .ha_api import HAClient, HAError, HAWebSocket

DOMAIN = "microgrid"
HOUSEHOLD_GROUP = "system-users"  # HA's non-admin group


@dataclass(frozen=True, kw_only=True)
class ZoneSpec:
    """How the demo configures one zone (a Firebase node) in the config flow."""

    zone_id: str
    name: str
    priority: str
    rated_w: float
    schedule: str
    household: str = ""
    essential_service: bool = False  # a clinic or hospital: the ladder reaches the authorities


@dataclass(frozen=True, kw_only=True)
class SiteSpec:
    """What the demo types into the connection step, and its zones."""

    site_name: str
    battery_capacity_wh: float
    nominal_voltage_v: float
    power_limit_w: float
    zones: tuple[ZoneSpec, ...]
    household_name: str


SITE_NAME = "Demo village"
HOUSEHOLD_NAME = "Homes"
HOUSEHOLD_ZONES = frozenset({"Zone3"})  # the zones the household "Homes" may switch
ESSENTIAL_ZONES = frozenset({"Zone1"})  # the clinic & emergency lights


def demo_site_spec() -> SiteSpec:
    """Describe sim/site.py's DEMO_SITE as an installer would type it into the config flow."""
    from sim.site import DEMO_POWER_LIMIT_W, DEMO_SITE

    return SiteSpec(
        site_name=SITE_NAME,
        battery_capacity_wh=DEMO_SITE.battery.capacity_wh,
        nominal_voltage_v=DEMO_SITE.battery.nominal_voltage_v,
        power_limit_w=DEMO_POWER_LIMIT_W,
        household_name=HOUSEHOLD_NAME,
        zones=tuple(
            ZoneSpec(
                zone_id=zone.zone_id,
                name=zone.name,
                priority=zone.priority,
                rated_w=zone.rated_w,
                schedule=zone.schedule,
                household=HOUSEHOLD_NAME if zone.zone_id in HOUSEHOLD_ZONES else "",
                essential_service=zone.zone_id in ESSENTIAL_ZONES,
            )
            for zone in DEMO_SITE.zones
        ),
    )


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """Login of one demo user."""

    username: str
    password: str


def fill_form(schema: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """Return the values for the fields a flow form declares (unknown fields keep defaults)."""
    names = {field["name"] for field in schema}
    return {key: value for key, value in values.items() if key in names and value != ""}


def zone_for_step(step: dict[str, Any], zones: tuple[ZoneSpec, ...], index: int) -> ZoneSpec:
    """Pick the zone a `zone` step asks about: by the node in its placeholders, else by order."""
    placeholders = step.get("description_placeholders") or {}
    by_id = {zone.zone_id: zone for zone in zones}
    for value in placeholders.values():
        if value in by_id:
            return by_id[value]
    if index >= len(zones):
        raise HAError(f"config flow asked for zone #{index + 1}; the demo site has {len(zones)}")
    return zones[index]


def _check_form(step: dict[str, Any]) -> None:
    """Raise on a form that came back with errors."""
    if step.get("errors"):
        raise HAError(f"config flow step {step.get('step_id')!r} errors: {step['errors']}")


async def add_microgrid_entry(
    client: HAClient,
    token: str,
    *,
    site: SiteSpec,
    database_url: str,
    command_secret: str,
) -> str:
    """Run the microgrid config flow over REST; return the created entry id."""
    step = await client.rest(
        "POST", "/api/config/config_entries/flow", token=token, json={"handler": DOMAIN}
    )
    connection = {
        "site_name": site.site_name,
        "database_url": database_url,
        "battery_capacity_wh": site.battery_capacity_wh,
        "nominal_voltage_v": site.nominal_voltage_v,
        "power_limit_w": site.power_limit_w,
        "command_secret": command_secret,
    }
    zones_done = 0
    for _ in range(20):
        kind = step.get("type")
        if kind == "create_entry":
            return str(step["result"]["entry_id"])
        if kind != "form":
            raise HAError(f"config flow ended with {kind}: {step.get('reason') or step}")
        if step["step_id"] == "user":
            _check_form(step)
            data = fill_form(step["data_schema"], connection)
        elif step["step_id"] == "zone":
            zone = zone_for_step(step, site.zones, zones_done)
            zones_done += 1
            data = fill_form(
                step["data_schema"],
                {
                    "name": zone.name,
                    "priority": zone.priority,
                    "rated_w": zone.rated_w,
                    "schedule": zone.schedule,
                    "household": zone.household,
                    "essential_service": zone.essential_service,
                },
            )
        else:
            raise HAError(f"config flow step {step['step_id']!r} is unknown to the demo")
        step = await client.rest(
            "POST", f"/api/config/config_entries/flow/{step['flow_id']}", token=token, json=data
        )
        if step.get("type") == "form" and step.get("errors"):
            _check_form(step)
    raise HAError("config flow did not finish in 20 steps")


async def add_household(
    client: HAClient, token: str, *, entry_id: str, name: str, member_ids: list[str]
) -> None:
    """Add a household subentry (name + member user ids) through the subentry flow REST API."""
    step = await client.rest(
        "POST",
        "/api/config/config_entries/subentries/flow",
        token=token,
        json={"handler": [entry_id, "household"]},
    )
    if step.get("type") != "form":
        raise HAError(f"household flow did not offer a form: {step}")
    step = await client.rest(
        "POST",
        f"/api/config/config_entries/subentries/flow/{step['flow_id']}",
        token=token,
        json=fill_form(step["data_schema"], {"name": name, "members": member_ids}),
    )
    if step.get("type") != "create_entry":
        raise HAError(f"household flow ended with {step.get('type')}: {step.get('errors') or step}")


async def create_household_user(ws: HAWebSocket, *, name: str, creds: Credentials) -> str:
    """Create a non-admin user with a password login and a person; return the user id."""
    user = (await ws.call("config/auth/create", name=name, group_ids=[HOUSEHOLD_GROUP]))["user"]
    await ws.call(
        "config/auth_provider/homeassistant/create",
        user_id=user["id"],
        username=creds.username,
        password=creds.password,
    )
    try:
        await ws.call("person/create", name=name, user_id=user["id"])
    except HAError:
        pass  # a person is a nicety for the UI; the login works without it
    return str(user["id"])


async def confirm_http_config(ws: HAWebSocket) -> bool:
    """Confirm the demo's `http:` settings (127.0.0.1, its port); return whether one was pending.

    Since HA 2026.8 `http:` from YAML is staged as a *pending* config: unless an admin confirms
    it within 5 minutes, HA reverts to the stable one (all interfaces) and restarts itself, which
    would end the demo. Older HA has no such command (HAError): nothing to confirm there.
    """
    try:
        status = await ws.call("http/config")
    except HAError:
        return False
    if not status.get("pending"):
        return False
    await ws.call("http/config/promote")
    return True


async def zone_switches(ws: HAWebSocket) -> list[dict[str, Any]]:
    """Return the entity registry entries of the microgrid switches."""
    entries = await ws.call("config/entity_registry/list")
    return [
        e
        for e in entries
        if e.get("platform") == DOMAIN and str(e.get("entity_id", "")).startswith("switch.")
    ]


async def wait_for_zone_switches(ws: HAWebSocket, *, count: int, timeout_s: float) -> int:
    """Wait until `count` microgrid switches show a relay state (on/off); return how many do."""
    deadline = time.monotonic() + timeout_s
    while True:
        registered = {e["entity_id"] for e in await zone_switches(ws)}
        states = await ws.call("get_states")
        live = sum(
            1 for st in states if st["entity_id"] in registered and st["state"] in ("on", "off")
        )
        if live >= count or time.monotonic() >= deadline:
            return live
        await asyncio.sleep(0.5)


async def zone_switch_map(admin_ws: HAWebSocket) -> dict[str, str]:
    """Map zone node (Zone1..) -> switch entity id, via the zone subentries."""
    entries = await admin_ws.call("config_entries/get", domain="microgrid")
    entry_id = entries[0]["entry_id"]
    subentries = await admin_ws.call("config_entries/subentries/list", entry_id=entry_id)
    node_of = {s["subentry_id"]: s["unique_id"] for s in subentries if s["subentry_type"] == "zone"}
    states = {s["entity_id"]: s for s in await admin_ws.call("get_states")}
    found: dict[str, str] = {}
    for e in await admin_ws.call("config/entity_registry/list"):
        if e["platform"] != "microgrid" or not e["entity_id"].startswith("switch."):
            continue
        node = node_of.get(e.get("config_subentry_id") or "") or (
            states.get(e["entity_id"], {}).get("attributes", {}).get("zone_id")
        )
        if node:
            found[node] = e["entity_id"]
    return found


def energy_prefs(registry: list[dict[str, Any]], states: list[dict[str, Any]]) -> dict[str, Any]:
    """Energy dashboard prefs: the site's solar energy and its battery (charge and discharge) as
    sources, each zone's energy as a device."""
    device_class = {s["entity_id"]: s["attributes"].get("device_class") for s in states}
    energy = [
        e
        for e in registry
        if e.get("platform") == DOMAIN and device_class.get(e["entity_id"]) == "energy"
    ]

    def site(key: str) -> str | None:
        found = [
            e["entity_id"]
            for e in energy
            if not e.get("config_subentry_id") and str(e.get("unique_id", "")).endswith(f"_{key}")
        ]
        return found[0] if found else None

    zones = sorted(e["entity_id"] for e in energy if e.get("config_subentry_id"))
    prefs: dict[str, Any] = {"device_consumption": [{"stat_consumption": z} for z in zones]}
    sources: list[dict[str, Any]] = []
    if solar := site("solar_energy"):
        sources.append(
            {"type": "solar", "stat_energy_from": solar, "config_entry_solar_forecast": None}
        )
    charge, discharge = site("battery_charge_energy"), site("battery_discharge_energy")
    if charge and discharge:
        sources.append({"type": "battery", "stat_energy_from": discharge, "stat_energy_to": charge})
    if sources:
        prefs["energy_sources"] = sources
    return prefs


async def configure_energy_dashboard(ws: HAWebSocket) -> dict[str, Any]:
    """Point the Energy dashboard at the microgrid's energy sensors; return the saved prefs."""
    prefs = energy_prefs(await ws.call("config/entity_registry/list"), await ws.call("get_states"))
    return dict(await ws.call("energy/save_prefs", **prefs))
