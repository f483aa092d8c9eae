"""The microgrid integration: a solar + battery site with critical loads, run by Home Assistant."""

from __future__ import annotations

from functools import partial

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .alerts import async_setup_alert_services, async_setup_alerts
from .audit import AuditLog
from .auth import auth_for
from .const import (
    CONF_BATTERY_CAPACITY_WH,
    CONF_COMMAND_SECRET,
    CONF_CONSERVATION_PCT,
    CONF_CONTROL_MODE,
    CONF_CRITICAL_ALERT_PCT,
    CONF_DATABASE_URL,
    CONF_EMERGENCY_PCT,
    CONF_HYSTERESIS_PCT,
    CONF_MEMBERS,
    CONF_MIN_OFF_S,
    CONF_MIN_ON_S,
    CONF_NAME,
    CONF_NOMINAL_VOLTAGE_V,
    CONF_POWER_LIMIT_W,
    CONF_SERVICE_ACCOUNT,
    CONF_SITE_NAME,
    CONF_TEMPERATURE_ENTITY,
    CONTROL_MODE_AUTO,
    DEFAULT_OPTIONS,
    DOMAIN,
    PATH_SENSORS,
    SUBENTRY_HOUSEHOLD,
    SUBENTRY_ZONE,
)
from .coordinator import MicrogridCoordinator
from .firebase import FirebaseAuthError, FirebaseLink
from .learning import model_path, remove_models
from .models import MicrogridConfigEntry, MicrogridRuntimeData, SiteConfig, zone_from_subentry
from .optimizer.model import Thresholds
from .services import async_setup_services
from .webhook import async_register_webhook

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.CALENDAR,
    Platform.EVENT,
    Platform.SENSOR,
    Platform.SWITCH,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions once."""
    async_setup_services(hass)
    async_setup_alert_services(hass)
    return True


def site_config(entry: MicrogridConfigEntry) -> SiteConfig:
    """The site as configured in the entry's data, options and subentries."""
    options = {**DEFAULT_OPTIONS, **entry.options}
    zones = []
    zone_subentry = {}
    households: dict[str, frozenset[str]] = {}
    for subentry in entry.subentries.values():
        if subentry.subentry_type == SUBENTRY_ZONE:
            zone = zone_from_subentry(dict(subentry.data))
            zones.append(zone)
            zone_subentry[zone.zone_id] = subentry.subentry_id
        elif subentry.subentry_type == SUBENTRY_HOUSEHOLD:
            households[subentry.data[CONF_NAME]] = frozenset(subentry.data.get(CONF_MEMBERS, []))
    zones.sort(key=lambda z: z.zone_id)
    return SiteConfig(
        site_name=entry.data.get(CONF_SITE_NAME) or entry.title,
        capacity_wh=float(entry.data[CONF_BATTERY_CAPACITY_WH]),
        nominal_voltage_v=float(entry.data[CONF_NOMINAL_VOLTAGE_V]),
        power_limit_w=float(entry.data[CONF_POWER_LIMIT_W]),
        thresholds=Thresholds(
            conservation_pct=float(options[CONF_CONSERVATION_PCT]),
            emergency_pct=float(options[CONF_EMERGENCY_PCT]),
            critical_alert_pct=float(options[CONF_CRITICAL_ALERT_PCT]),
            hysteresis_pct=float(options[CONF_HYSTERESIS_PCT]),
            min_on_s=float(options[CONF_MIN_ON_S]),
            min_off_s=float(options[CONF_MIN_OFF_S]),
        ),
        control_auto=options[CONF_CONTROL_MODE] == CONTROL_MODE_AUTO,
        zones=tuple(zones),
        zone_subentry=zone_subentry,
        households=households,
        temperature_entity_id=options.get(CONF_TEMPERATURE_ENTITY) or None,
    )


async def async_setup_entry(hass: HomeAssistant, entry: MicrogridConfigEntry) -> bool:
    """Connect to the site's database, start the stream and the decisions."""
    site = site_config(entry)
    session = async_get_clientsession(hass)
    try:
        # auth_for parses and checks the key's JSON text itself. Loading and checking the PEM
        # key is CPU work: off the event loop, like the signing.
        auth = await hass.async_add_executor_job(
            partial(
                auth_for,
                session,
                entry.data[CONF_DATABASE_URL],
                entry.data.get(CONF_SERVICE_ACCOUNT) or None,
                run_blocking=hass.async_add_executor_job,
            )
        )
    except (ValueError, FirebaseAuthError) as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    audit = AuditLog(hass, entry.entry_id, site.site_name)
    await audit.async_load()
    coordinator: MicrogridCoordinator
    link = FirebaseLink(
        session,
        entry.data[CONF_DATABASE_URL],
        auth,
        stream_path=PATH_SENSORS,
        on_data=lambda mirror, keys: coordinator.on_data(mirror, keys),  # noqa: PLW0108
        on_connection=lambda up: coordinator.on_connection(up),  # noqa: PLW0108
        on_cancel=lambda reason: coordinator.on_cancel(reason),  # noqa: PLW0108
    )
    coordinator = MicrogridCoordinator(
        hass, entry, site=site, link=link, audit=audit, secret=entry.data[CONF_COMMAND_SECRET]
    )
    await coordinator.async_load_state()
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = MicrogridRuntimeData(coordinator=coordinator, link=link, audit=audit)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    await async_setup_alerts(hass, entry)
    coordinator.async_start()
    await async_register_webhook(hass, coordinator, entry.data[CONF_COMMAND_SECRET])
    entry.async_on_unload(link.async_stop)
    entry.async_on_unload(entry.add_update_listener(_async_reload_on_change))
    return True


async def _async_reload_on_change(hass: HomeAssistant, entry: MicrogridConfigEntry) -> None:
    """Options or subentries changed: audit changed options, then reload so every layer sees
    one configuration."""
    entry.runtime_data.audit.note_options(entry.options)
    hass.config_entries.async_schedule_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: MicrogridConfigEntry) -> bool:
    """Stop everything the entry started and flush its records."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.audit.async_flush()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: MicrogridConfigEntry) -> None:
    """A removed site takes its trained models with it."""
    await hass.async_add_executor_job(remove_models, model_path(hass, entry.entry_id))
