"""Constants for the microgrid integration (one name for one thing across layers)."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "microgrid"
LOGGER = logging.getLogger(__package__)

# Config entry data (connection step).
CONF_SITE_NAME: Final = "site_name"
# https://<db>.firebaseio.com, or http://127.0.0.1:9000/?ns=<db> for the loopback server
CONF_DATABASE_URL: Final = "database_url"
# The service-account key JSON (text); absent in emulator mode.
CONF_SERVICE_ACCOUNT: Final = "service_account"
CONF_BATTERY_CAPACITY_WH: Final = "battery_capacity_wh"
CONF_NOMINAL_VOLTAGE_V: Final = "nominal_voltage_v"
CONF_POWER_LIMIT_W: Final = "power_limit_w"
CONF_COMMAND_SECRET: Final = "command_secret"  # per-site HS256 secret for signed commands

# Zone subentries (subentry type "zone"); unique_id of a subentry is its node (zone_id).
SUBENTRY_ZONE: Final = "zone"
CONF_ZONE_ID: Final = "zone_id"  # the Firebase node, e.g. "Zone1"
CONF_NAME: Final = "name"
CONF_PRIORITY: Final = "priority"  # optimizer.model.PriorityClass value
CONF_HOUSEHOLD: Final = "household"
CONF_RATED_W: Final = "rated_w"
CONF_SCHEDULE: Final = "schedule"  # optimizer.model.Schedule value
# A clinic or hospital: when it is affected, the escalation ladder reaches the authorities.
CONF_ESSENTIAL_SERVICE: Final = "essential_service"

# Household subentries (subentry type "household"): a name and the HA users who belong to it.
# A non-admin user may switch a zone only when the zone's household is one of theirs.
SUBENTRY_HOUSEHOLD: Final = "household"
CONF_MEMBERS: Final = "members"  # list of HA user ids

# Options.
CONF_CONSERVATION_PCT: Final = "conservation_pct"
CONF_EMERGENCY_PCT: Final = "emergency_pct"
CONF_CRITICAL_ALERT_PCT: Final = "critical_alert_pct"
CONF_HYSTERESIS_PCT: Final = "hysteresis_pct"
CONF_MIN_ON_S: Final = "min_on_s"
CONF_MIN_OFF_S: Final = "min_off_s"
CONF_CONTROL_MODE: Final = "control_mode"
CONTROL_MODE_MONITOR: Final = "monitor"  # decide and record, write nothing
CONTROL_MODE_AUTO: Final = "auto"  # write relay commands
# Outdoor temperature for the demand forecast: a weather entity or a temperature sensor.
CONF_TEMPERATURE_ENTITY: Final = "temperature_entity"
# Admin-set: below this state of charge even critical zones go off to save the battery.
# Unset (or 0): never.
CONF_DEEP_DISCHARGE_CUTOFF_PCT: Final = "deep_discharge_cutoff_pct"
# Local time the daily energy report is sent (to the notify targets and household inboxes).
CONF_REPORT_TIME: Final = "daily_report_time"

# Per-user rate limit on household control and on the actions of users who are not admins
# (token bucket: a burst, then so many a minute). Admins and automations are not limited.
CONF_RATE_LIMIT_BURST: Final = "rate_limit_burst"
CONF_RATE_LIMIT_PER_MINUTE: Final = "rate_limit_per_minute"
DEFAULT_RATE_LIMIT_BURST: Final = 10
DEFAULT_RATE_LIMIT_PER_MINUTE: Final = 6.0

DEFAULT_OPTIONS: Final = {
    CONF_CONSERVATION_PCT: 20.0,
    CONF_EMERGENCY_PCT: 10.0,
    CONF_CRITICAL_ALERT_PCT: 5.0,
    CONF_HYSTERESIS_PCT: 2.0,
    CONF_MIN_ON_S: 300,
    CONF_MIN_OFF_S: 300,
    CONF_CONTROL_MODE: CONTROL_MODE_AUTO,
}

# Firebase paths.
PATH_SENSORS: Final = "sensors"
PATH_COMMANDS: Final = "commands"

# Timing.
STALE_AFTER: Final = timedelta(minutes=2)  # a board silent this long is offline
# A board clock may be off by this much (a record stamped further ahead is rejected).
CLOCK_SKEW_TOLERANCE: Final = timedelta(minutes=10)
# A board that hears no valid command this long falls back on its own (README: Device protocol;
# = sim.fleet.FALLBACK_AFTER_S).
BOARD_FALLBACK_AFTER: Final = timedelta(minutes=10)
# Re-send the current command this often: one heartbeat may be lost outright and the next may
# need two retries (20 s + 40 s, +20 % jitter), each write up to a 5 s tick late, and it still
# lands before the fallback: 2 x 240 + 72 + 3 x 5 = 567 s < 600 s. Idle: 86,400 / 240 = 360
# writes per zone and day (the old 60 s heartbeat: 1,440).
HEARTBEAT_INTERVAL: Final = timedelta(minutes=4)
# A command's `expires`: the standing command stays valid until the next heartbeat (+ one tick
# and a first retry), so a board that reconnects or reboots in between can still accept it.
COMMAND_TTL: Final = timedelta(minutes=5)
ACK_TIMEOUT: Final = timedelta(seconds=20)  # relayState echo expected within this

# Events (for automations and the logbook).
EVENT_AUDIT: Final = "microgrid_audit"
# Dispatcher signal (format with the entry id): a household inbox changed.
SIGNAL_INBOX: Final = "microgrid_inbox_{}"
EVENT_BAND_CHANGED: Final = "microgrid_band_changed"
EVENT_COMMAND_FAILED: Final = "microgrid_command_failed"

# Command delivery.
COMMAND_MAX_ATTEMPTS: Final = 5  # then a repair issue and an event; retries go on at the cap
COMMAND_BACKOFF_MAX: Final = timedelta(minutes=5)
TICK_INTERVAL: Final = timedelta(seconds=5)  # ack timeouts, retries, heartbeats, staleness
# REST poll only while the stream is down: readings (and the emergency crossing) are seen at
# most this late; ~1 KB a request, only during an outage.
POLL_INTERVAL: Final = timedelta(seconds=10)

# Alert options (entry.options; edited in the options flow).
CONF_NOTIFY_TARGETS: Final = "notify_targets"  # notify actions / entities, e.g. notify.mobile_app_x
CONF_ESCALATION_TARGETS: Final = "escalation_targets"
CONF_ESCALATION_MINUTES: Final = "escalation_minutes"  # the ladder's admins rung
DEFAULT_ESCALATION_MINUTES: Final = 10
MAX_ESCALATION_MINUTES: Final = 1440
# The escalation ladder: minutes after the alert at which each rung fires (household members,
# admins = CONF_ESCALATION_MINUTES, the duty phone by SMS, the authorities).
CONF_LADDER_HOUSEHOLD_MINUTES: Final = "ladder_household_minutes"
CONF_LADDER_DUTY_MINUTES: Final = "ladder_duty_minutes"
CONF_LADDER_AUTHORITIES_MINUTES: Final = "ladder_authorities_minutes"
DEFAULT_LADDER_HOUSEHOLD_MINUTES: Final = 0
DEFAULT_LADDER_GAP_MINUTES: Final = 10  # duty = admins + 10, authorities = duty + 10 by default
CONF_DUTY_PHONE: Final = "duty_phone"  # E.164, texted through Twilio
CONF_AUTHORITIES_TARGETS: Final = "authorities_targets"  # notify actions / entities
CONF_AUTHORITIES_PHONES: Final = "authorities_phones"  # E.164 numbers
LADDER_OPTIONS: Final = (
    CONF_LADDER_HOUSEHOLD_MINUTES,
    CONF_LADDER_DUTY_MINUTES,
    CONF_LADDER_AUTHORITIES_MINUTES,
    CONF_DUTY_PHONE,
    CONF_AUTHORITIES_TARGETS,
    CONF_AUTHORITIES_PHONES,
)
CONF_TWILIO_ACCOUNT_SID: Final = "twilio_account_sid"
CONF_TWILIO_AUTH_TOKEN: Final = "twilio_auth_token"
CONF_TWILIO_FROM: Final = "twilio_from"  # the sending number, E.164
CONF_SMS_TARGETS: Final = "sms_targets"  # E.164 numbers that get critical alerts by SMS
CONF_FCM_TOPIC: Final = "fcm_topic"
CONF_FCM_TOKENS: Final = "fcm_tokens"  # FCM registration tokens of the site's phones
SMS_PUSH_OPTIONS: Final = (
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
    CONF_SMS_TARGETS,
    CONF_FCM_TOPIC,
    CONF_FCM_TOKENS,
)
