"""The site an action names: its loaded config entry and its zones, or a translated error."""

from __future__ import annotations

from typing import Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import ServiceCall
from homeassistant.helpers import selector
import voluptuous as vol

from ..const import DOMAIN
from ..people.permissions import BadRequest
from ..runtime import MicrogridConfigEntry
from ..site import SiteConfig

ATTR_CONFIG_ENTRY: Final = "config_entry"
ATTR_ZONE: Final = "zone"  # a zone id or name, resolved by zone_id()

# Every action names its site; the selector lists the integration's entries in the UI.
ENTRY_FIELD: Final = {
    vol.Required(ATTR_CONFIG_ENTRY): selector.ConfigEntrySelector({"integration": DOMAIN})
}
ENTRY_SCHEMA: Final = vol.Schema(ENTRY_FIELD)


def loaded_entry(call: ServiceCall) -> MicrogridConfigEntry:
    """The loaded site entry named by the call's `config_entry`, or a translated BadRequest."""
    entry_id: str = call.data[ATTR_CONFIG_ENTRY]
    entry: MicrogridConfigEntry | None = call.hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="invalid_config_entry",
            translation_placeholders={"config_entry": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise not_loaded(entry)
    return entry


def not_loaded(entry: MicrogridConfigEntry) -> BadRequest:
    """The error for a site that is not (or not fully) loaded."""
    return BadRequest(
        translation_domain=DOMAIN,
        translation_key="unloaded_config_entry",
        translation_placeholders={"config_entry": entry.title},
    )


def zone_id(site: SiteConfig, value: str) -> str:
    """A zone id from a zone id or its name (case-insensitive), or a translated BadRequest."""
    for zone in site.zones:
        if value == zone.zone_id or value.casefold() == zone.name.casefold():
            return zone.zone_id
    raise BadRequest(
        translation_domain=DOMAIN,
        translation_key="unknown_zone",
        translation_placeholders={"zone": value},
    )
