"""The microgrid integration: a solar + battery site with critical loads, run by Home Assistant."""

from __future__ import annotations

from functools import partial

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.typing import ConfigType

from .const import (
    CONF_COMMAND_SECRET,
    CONF_DATABASE_URL,
    CONF_SERVICE_ACCOUNT,
    DOMAIN,
    PATH_SENSORS,
    SIGNAL_INBOX,
)
from .control.coordinator import MicrogridCoordinator
from .control.webhook import async_register_webhook
from .learning.manager import model_path
from .link.auth import auth_for
from .link.errors import FirebaseAuthError
from .link.rtdb import FirebaseLink
from .ml.store import remove_models
from .people.audit import AuditLog
from .people.inbox import Inbox
from .runtime import MicrogridConfigEntry, MicrogridRuntimeData
from .services import async_setup_services
from .services.alerts import async_setup_alerts
from .services.report import async_setup_reporter
from .site import site_config

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
    return True


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
    inbox = Inbox(
        hass,
        entry.entry_id,
        on_change=lambda: async_dispatcher_send(hass, SIGNAL_INBOX.format(entry.entry_id)),
    )
    await inbox.async_load()
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
    entry.runtime_data = MicrogridRuntimeData(
        coordinator=coordinator, link=link, audit=audit, inbox=inbox
    )
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    await async_setup_alerts(hass, entry)
    await async_setup_reporter(hass, entry)
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
        await entry.runtime_data.inbox.async_flush()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: MicrogridConfigEntry) -> None:
    """A removed site takes its trained models with it."""
    await hass.async_add_executor_job(remove_models, model_path(hass, entry.entry_id))
