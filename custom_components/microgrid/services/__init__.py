"""Every action of the integration, registered once from `async_setup`: one module per group.

zones (override_zone, clear_override), audit (get_audit_log, verify_audit_log), plan
(optimize, get_schedule, simulate, apply_schedule), learning (retrain, get_forecast), alerts
(send_alert, get_alerts, acknowledge_alert), messages (send_message, get_notifications,
mark_notifications_read), report (get_daily_report). Each action
finds its site with `entry.loaded_entry` and its caller with `caller.async_action_admin` /
`caller.async_action_caller`.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback

from .alerts import async_setup_alert_services
from .audit import async_setup_audit_services
from .learning import async_setup_learning_services
from .messages import async_setup_message_services
from .plan import async_setup_plan_services
from .report import async_setup_report_services
from .zones import async_setup_zone_services


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register every action group."""
    async_setup_zone_services(hass)
    async_setup_audit_services(hass)
    async_setup_plan_services(hass)
    async_setup_learning_services(hass)
    async_setup_alert_services(hass)
    async_setup_message_services(hass)
    async_setup_report_services(hass)
