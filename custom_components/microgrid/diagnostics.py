"""Diagnostics: the site's state for a bug report, with every secret redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .alerts.manager import DATA_ALERTS
from .const import (
    CONF_COMMAND_SECRET,
    CONF_DATABASE_URL,
    CONF_FCM_TOKENS,
    CONF_SERVICE_ACCOUNT,
    CONF_SMS_TARGETS,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
)
from .runtime import MicrogridConfigEntry

TO_REDACT = {
    CONF_COMMAND_SECRET,
    CONF_DATABASE_URL,
    CONF_SERVICE_ACCOUNT,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_SMS_TARGETS,
    CONF_FCM_TOKENS,
    "private_key",
    "sig",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: MicrogridConfigEntry
) -> dict[str, Any]:
    """Entry, subentries and the coordinator's state, redacted."""
    coordinator = entry.runtime_data.coordinator
    return {
        "entry": async_redact_data(
            {"title": entry.title, "data": dict(entry.data), "options": dict(entry.options)},
            TO_REDACT,
        ),
        "subentries": [
            {"type": s.subentry_type, "title": s.title, "data": dict(s.data)}
            for s in entry.subentries.values()
        ],
        "state": async_redact_data(coordinator.diagnostics(), TO_REDACT),
        "audit_entries": len(entry.runtime_data.audit),
        "alerts": (
            manager.query(limit=50)
            if (manager := hass.data.get(DATA_ALERTS, {}).get(entry.entry_id))
            else []
        ),
    }
