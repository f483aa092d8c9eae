"""Config flow for a microgrid site: connection, zones and households as subentries, options."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from itertools import pairwise
import re
import secrets
from typing import Any, Final

import aiohttp
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryData,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntityFilterSelectorConfig,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
    TimeSelector,
)
import voluptuous as vol

from .alerts.options import (
    ladder_minutes,
    normalize_phone,
    normalize_target,
    target_exists,
    valid_fcm_token,
    valid_fcm_topic,
    valid_twilio_sid,
    valid_twilio_token,
)
from .const import (
    CONF_AUTHORITIES_PHONES,
    CONF_AUTHORITIES_TARGETS,
    CONF_BATTERY_CAPACITY_WH,
    CONF_COMMAND_SECRET,
    CONF_CONSERVATION_PCT,
    CONF_CONTROL_MODE,
    CONF_CRITICAL_ALERT_PCT,
    CONF_DATABASE_URL,
    CONF_DEEP_DISCHARGE_CUTOFF_PCT,
    CONF_DUTY_PHONE,
    CONF_EMERGENCY_PCT,
    CONF_ESCALATION_MINUTES,
    CONF_ESCALATION_TARGETS,
    CONF_ESSENTIAL_SERVICE,
    CONF_FCM_TOKENS,
    CONF_FCM_TOPIC,
    CONF_HOUSEHOLD,
    CONF_HYSTERESIS_PCT,
    CONF_LADDER_AUTHORITIES_MINUTES,
    CONF_LADDER_DUTY_MINUTES,
    CONF_LADDER_HOUSEHOLD_MINUTES,
    CONF_MEMBERS,
    CONF_MIN_OFF_S,
    CONF_MIN_ON_S,
    CONF_NAME,
    CONF_NOMINAL_VOLTAGE_V,
    CONF_NOTIFY_TARGETS,
    CONF_POWER_LIMIT_W,
    CONF_PRIORITY,
    CONF_RATE_LIMIT_BURST,
    CONF_RATE_LIMIT_PER_MINUTE,
    CONF_RATED_W,
    CONF_REPORT_TIME,
    CONF_SCHEDULE,
    CONF_SERVICE_ACCOUNT,
    CONF_SITE_NAME,
    CONF_SMS_TARGETS,
    CONF_TEMPERATURE_ENTITY,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
    CONF_ZONE_ID,
    CONTROL_MODE_AUTO,
    CONTROL_MODE_MONITOR,
    DEFAULT_ESCALATION_MINUTES,
    DEFAULT_OPTIONS,
    DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    DOMAIN,
    LADDER_OPTIONS,
    LOGGER,
    MAX_ESCALATION_MINUTES,
    PATH_SENSORS,
    SMS_PUSH_OPTIONS,
    SUBENTRY_HOUSEHOLD,
    SUBENTRY_ZONE,
)
from .link.auth import InvalidServiceAccount, auth_for, service_account_project
from .link.errors import FirebaseAuthError, FirebaseError, FirebaseInvalidURL
from .link.rtdb import FirebaseLink
from .link.url import parse_database_url
from .optimizer.model import PriorityClass, Schedule
from .runtime import MicrogridConfigEntry

# HS256 wants a key at least as long as its hash; shorter secrets are guessable offline.
MIN_COMMAND_SECRET_LEN = 16
# Firebase keys: no . $ # [ ] / or control characters, at most 768 bytes.
_FIREBASE_KEY = re.compile(r"^[^.$#\[\]/\x00-\x1f\x7f]{1,768}$")

_TEXT = TextSelector()
_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL, autocomplete="off"))
_KEY_JSON = TextSelector(TextSelectorConfig(multiline=True, autocomplete="off"))


def _number(unit: str, *, minimum: float, maximum: float, step: float = 1) -> NumberSelector:
    """A boxed number field with a unit and bounds."""
    return NumberSelector(
        NumberSelectorConfig(
            min=minimum,
            max=maximum,
            step=step,
            unit_of_measurement=unit,
            mode=NumberSelectorMode.BOX,
        )
    )


def _select(options: list[str], translation_key: str) -> SelectSelector:
    """A dropdown whose option labels come from translations (`selector.<key>.options`)."""
    return SelectSelector(
        SelectSelectorConfig(
            options=options, translation_key=translation_key, mode=SelectSelectorMode.DROPDOWN
        )
    )


_PCT = _number("%", minimum=0, maximum=100, step=0.5)
_SECONDS = _number("s", minimum=0, maximum=86400)
_CAPACITY = _number("Wh", minimum=1, maximum=10_000_000)
_VOLTAGE = _number("V", minimum=1, maximum=1500, step=0.1)
_POWER_LIMIT = _number("W", minimum=1, maximum=10_000_000)
_RATED = _number("W", minimum=0, maximum=1_000_000)
_PRIORITY = _select([p.value for p in PriorityClass], CONF_PRIORITY)
_SCHEDULE = _select([s.value for s in Schedule], CONF_SCHEDULE)
_NOTIFY_TARGETS = TextSelector(TextSelectorConfig(multiple=True))
_CONTROL_MODE = _select([CONTROL_MODE_MONITOR, CONTROL_MODE_AUTO], CONF_CONTROL_MODE)
# A ladder rung's delay after the alert: fractions of a minute for trying the ladder out.
_LADDER_MINUTES = _number("min", minimum=0, maximum=MAX_ESCALATION_MINUTES, step=0.1)
_PHONE = TextSelector(TextSelectorConfig(type=TextSelectorType.TEL))
_PHONES = TextSelector(TextSelectorConfig(type=TextSelectorType.TEL, multiple=True))

USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_SITE_NAME): _TEXT,
        vol.Required(CONF_DATABASE_URL): _URL,
        vol.Optional(CONF_SERVICE_ACCOUNT): _KEY_JSON,
        vol.Required(CONF_BATTERY_CAPACITY_WH): _CAPACITY,
        vol.Required(CONF_NOMINAL_VOLTAGE_V, default=12): _VOLTAGE,
        vol.Required(CONF_POWER_LIMIT_W): _POWER_LIMIT,
        vol.Optional(CONF_COMMAND_SECRET): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="off")
        ),
    }
)
RECONFIGURE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_DATABASE_URL): _URL,
        vol.Optional(CONF_SERVICE_ACCOUNT): _KEY_JSON,
        vol.Required(CONF_BATTERY_CAPACITY_WH): _CAPACITY,
        vol.Required(CONF_NOMINAL_VOLTAGE_V): _VOLTAGE,
        vol.Required(CONF_POWER_LIMIT_W): _POWER_LIMIT,
    }
)
# URLs are placeholders, not translated text (HA's translation rules keep URLs out of strings).
URL_EXAMPLES: Final = {
    "firebase_example": "https://my-site-default-rtdb.firebaseio.com",
    "emulator_example": "http://127.0.0.1:9000/?ns=demo",
    "url_formats": "https://DATABASE.firebaseio.com, https://DATABASE.REGION.firebasedatabase.app, "
    "http://127.0.0.1:PORT/?ns=DATABASE",
}
REAUTH_SCHEMA = vol.Schema({vol.Optional(CONF_SERVICE_ACCOUNT): _KEY_JSON})
OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_CONSERVATION_PCT): _PCT,
        vol.Required(CONF_EMERGENCY_PCT): _PCT,
        vol.Required(CONF_CRITICAL_ALERT_PCT): _PCT,
        vol.Required(CONF_HYSTERESIS_PCT): _number("%", minimum=0, maximum=20, step=0.5),
        vol.Optional(CONF_DEEP_DISCHARGE_CUTOFF_PCT): _number("%", minimum=0, maximum=50, step=0.5),
        vol.Optional(CONF_REPORT_TIME): TimeSelector(),
        vol.Required(CONF_MIN_ON_S): _SECONDS,
        vol.Required(CONF_MIN_OFF_S): _SECONDS,
        vol.Required(CONF_CONTROL_MODE): _CONTROL_MODE,
        vol.Optional(CONF_NOTIFY_TARGETS): _NOTIFY_TARGETS,
        vol.Optional(CONF_ESCALATION_TARGETS): _NOTIFY_TARGETS,
        vol.Required(CONF_ESCALATION_MINUTES): _number(
            "min", minimum=1, maximum=MAX_ESCALATION_MINUTES
        ),
        vol.Optional(CONF_LADDER_HOUSEHOLD_MINUTES): _LADDER_MINUTES,
        vol.Optional(CONF_LADDER_DUTY_MINUTES): _LADDER_MINUTES,
        vol.Optional(CONF_LADDER_AUTHORITIES_MINUTES): _LADDER_MINUTES,
        vol.Optional(CONF_DUTY_PHONE): _PHONE,
        vol.Optional(CONF_AUTHORITIES_TARGETS): _NOTIFY_TARGETS,
        vol.Optional(CONF_AUTHORITIES_PHONES): _PHONES,
        vol.Optional(CONF_TWILIO_ACCOUNT_SID): TextSelector(TextSelectorConfig(autocomplete="off")),
        vol.Optional(CONF_TWILIO_AUTH_TOKEN): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="off")
        ),
        vol.Optional(CONF_TWILIO_FROM): _PHONE,
        vol.Optional(CONF_SMS_TARGETS): _PHONES,
        vol.Optional(CONF_FCM_TOPIC): _TEXT,
        vol.Optional(CONF_FCM_TOKENS): TextSelector(
            TextSelectorConfig(multiple=True, autocomplete="off")
        ),
        vol.Optional(CONF_RATE_LIMIT_BURST): _number("calls", minimum=1, maximum=1000),
        vol.Optional(CONF_RATE_LIMIT_PER_MINUTE): _number(
            "calls/min", minimum=0.1, maximum=600, step=0.1
        ),
        vol.Optional(CONF_TEMPERATURE_ENTITY): EntitySelector(
            EntitySelectorConfig(
                filter=[
                    EntityFilterSelectorConfig(domain="weather"),
                    EntityFilterSelectorConfig(domain="sensor", device_class="temperature"),
                ]
            )
        ),
    }
)


_RATE_LIMITS = {CONF_RATE_LIMIT_BURST: int, CONF_RATE_LIMIT_PER_MINUTE: float}


def site_unique_id(database_url: str) -> str:
    """The site's unique id: the database namespace and base URL (raises FirebaseInvalidURL)."""
    parsed = parse_database_url(database_url.strip())
    return f"{parsed.namespace}@{parsed.base}"


async def async_validate_site(hass: HomeAssistant, data: Mapping[str, Any]) -> list[str]:
    """Reach the site's database with its credentials; return the nodes under `sensors/`."""
    url = data[CONF_DATABASE_URL].strip()
    session = async_get_clientsession(hass)
    # The loopback emulator takes the `owner` token (auth_for ignores a pasted key there).
    # Loading and checking the PEM key is CPU work, like signing the grant: off the event loop.
    auth = await hass.async_add_executor_job(
        partial(
            auth_for,
            session,
            url,
            (data.get(CONF_SERVICE_ACCOUNT) or "").strip() or None,
            run_blocking=hass.async_add_executor_job,
        )
    )
    link = FirebaseLink(
        session,
        url,
        auth,
        stream_path=PATH_SENSORS,
        on_data=lambda mirror, keys: None,
    )
    return await link.async_validate()


async def _async_try_site(
    hass: HomeAssistant, data: Mapping[str, Any]
) -> tuple[list[str], dict[str, str]]:
    """Validate the site; return (nodes, form errors)."""
    try:
        nodes = await async_validate_site(hass, data)
    except FirebaseInvalidURL:
        return [], {CONF_DATABASE_URL: "invalid_url"}
    except InvalidServiceAccount:
        return [], {CONF_SERVICE_ACCOUNT: "invalid_service_account"}
    except FirebaseAuthError:
        return [], {"base": "invalid_auth"}
    except (FirebaseError, aiohttp.ClientError, TimeoutError):
        return [], {"base": "cannot_connect"}
    except Exception:
        LOGGER.exception("Unexpected error while validating %s", data.get(CONF_DATABASE_URL))
        return [], {"base": "unknown"}
    return nodes, {}


def _connection_data(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The connection fields to store; the key is kept only for real (https) Firebase."""
    url = user_input[CONF_DATABASE_URL].strip()
    data: dict[str, Any] = {
        CONF_DATABASE_URL: url,
        CONF_BATTERY_CAPACITY_WH: float(user_input[CONF_BATTERY_CAPACITY_WH]),
        CONF_NOMINAL_VOLTAGE_V: float(user_input[CONF_NOMINAL_VOLTAGE_V]),
        CONF_POWER_LIMIT_W: float(user_input[CONF_POWER_LIMIT_W]),
    }
    key = (user_input.get(CONF_SERVICE_ACCOUNT) or "").strip()
    if key and not parse_database_url(url).emulator:
        data[CONF_SERVICE_ACCOUNT] = key
    return data


def _zone_schema(defaults: Mapping[str, Any], households: list[str]) -> vol.Schema:
    """The zone fields, defaulting to `defaults` (an existing zone or a fresh node)."""
    household: TextSelector | SelectSelector = (
        SelectSelector(
            SelectSelectorConfig(
                options=households, custom_value=True, mode=SelectSelectorMode.DROPDOWN
            )
        )
        if households
        else _TEXT
    )
    return vol.Schema(
        {
            vol.Required(CONF_NAME, default=defaults.get(CONF_NAME, vol.UNDEFINED)): _TEXT,
            vol.Required(
                CONF_PRIORITY,
                default=defaults.get(CONF_PRIORITY, PriorityClass.NON_CRITICAL.value),
            ): _PRIORITY,
            vol.Required(CONF_RATED_W, default=defaults.get(CONF_RATED_W, vol.UNDEFINED)): _RATED,
            vol.Required(
                CONF_SCHEDULE, default=defaults.get(CONF_SCHEDULE, Schedule.ALWAYS.value)
            ): _SCHEDULE,
            vol.Optional(
                CONF_HOUSEHOLD, description={"suggested_value": defaults.get(CONF_HOUSEHOLD)}
            ): household,
            vol.Required(
                CONF_ESSENTIAL_SERVICE, default=bool(defaults.get(CONF_ESSENTIAL_SERVICE, False))
            ): BooleanSelector(),
        }
    )


def _zone_data(zone_id: str, user_input: Mapping[str, Any]) -> dict[str, Any]:
    """A zone subentry's data from the zone form."""
    return {
        CONF_ZONE_ID: zone_id,
        CONF_NAME: user_input[CONF_NAME].strip() or zone_id,
        CONF_PRIORITY: PriorityClass(user_input[CONF_PRIORITY]).value,
        CONF_RATED_W: float(user_input[CONF_RATED_W]),
        CONF_SCHEDULE: Schedule(user_input[CONF_SCHEDULE]).value,
        CONF_HOUSEHOLD: (user_input.get(CONF_HOUSEHOLD) or "").strip() or None,
        CONF_ESSENTIAL_SERVICE: bool(user_input.get(CONF_ESSENTIAL_SERVICE, False)),
    }


def _subentries_of(entry: ConfigEntry, subentry_type: str) -> list[Any]:
    """The entry's subentries of one type."""
    return [s for s in entry.subentries.values() if s.subentry_type == subentry_type]


def _unzoned_nodes(entry: MicrogridConfigEntry) -> list[str]:
    """Boards the loaded site hears under `sensors/` that have no zone yet, sorted."""
    if entry.state is not ConfigEntryState.LOADED:
        return []
    heard = entry.runtime_data.coordinator.unknown_zones
    zoned = {s.unique_id for s in _subentries_of(entry, SUBENTRY_ZONE)}
    return sorted(node for node in heard if node not in zoned)


def _household_names(entry: ConfigEntry) -> list[str]:
    """The names of the site's households, sorted."""
    return sorted(s.data[CONF_NAME] for s in _subentries_of(entry, SUBENTRY_HOUSEHOLD))


class MicrogridConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a microgrid site: connection first, then one form per discovered zone."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing gathered."""
        self._site: dict[str, Any] = {}
        self._nodes: list[str] = []
        self._zones: list[ConfigSubentryData] = []

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> MicrogridOptionsFlow:
        """The thresholds and control mode."""
        return MicrogridOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Zones and households are subentries of the site."""
        return {SUBENTRY_ZONE: ZoneSubentryFlow, SUBENTRY_HOUSEHOLD: HouseholdSubentryFlow}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Connect to the site's database."""
        errors: dict[str, str] = {}
        if user_input is not None:
            secret = (user_input.get(CONF_COMMAND_SECRET) or "").strip()
            try:
                unique_id = site_unique_id(user_input[CONF_DATABASE_URL])
            except FirebaseInvalidURL:
                errors[CONF_DATABASE_URL] = "invalid_url"
            else:
                await self.async_set_unique_id(unique_id)
                self._abort_if_unique_id_configured()
                if secret and len(secret) < MIN_COMMAND_SECRET_LEN:
                    errors[CONF_COMMAND_SECRET] = "weak_command_secret"
                else:
                    self._nodes, errors = await _async_try_site(self.hass, user_input)
            if not errors:
                namespace = parse_database_url(user_input[CONF_DATABASE_URL]).namespace
                self._site = {
                    CONF_SITE_NAME: user_input[CONF_SITE_NAME].strip() or namespace,
                    **_connection_data(user_input),
                    CONF_COMMAND_SECRET: secret or secrets.token_urlsafe(32),
                }
                self._zones = []
                if not self._nodes:
                    return self._async_create_site()
                return await self.async_step_zone()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(USER_SCHEMA, user_input),
            errors=errors,
            description_placeholders=URL_EXAMPLES,
        )

    async def async_step_zone(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Describe one discovered node (zone) at a time."""
        zone_id = self._nodes[len(self._zones)]
        if user_input is not None:
            data = _zone_data(zone_id, user_input)
            self._zones.append(
                ConfigSubentryData(
                    data=data,
                    subentry_type=SUBENTRY_ZONE,
                    title=data[CONF_NAME],
                    unique_id=zone_id,
                )
            )
            if len(self._zones) == len(self._nodes):
                return self._async_create_site()
            return await self.async_step_zone()
        return self.async_show_form(
            step_id="zone",
            data_schema=_zone_schema({CONF_NAME: zone_id}, []),
            description_placeholders={
                CONF_ZONE_ID: zone_id,
                "index": str(len(self._zones) + 1),
                "count": str(len(self._nodes)),
            },
            last_step=len(self._zones) + 1 == len(self._nodes),
        )

    @callback
    def _async_create_site(self) -> ConfigFlowResult:
        """Create the site with its zones; show the command secret for flashing the boards."""
        return self.async_create_entry(
            title=self._site[CONF_SITE_NAME],
            data=self._site,
            options=dict(DEFAULT_OPTIONS),
            subentries=self._zones,
            description_placeholders={CONF_COMMAND_SECRET: self._site[CONF_COMMAND_SECRET]},
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The database refused the stored credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Take a new service-account key and prove it works."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            candidate = {**entry.data, CONF_SERVICE_ACCOUNT: user_input.get(CONF_SERVICE_ACCOUNT)}
            _, errors = await _async_try_site(self.hass, candidate)
            if not errors:
                return self.async_update_reload_and_abort(
                    entry, data=entry.data | _connection_data(candidate)
                )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=REAUTH_SCHEMA,
            description_placeholders={CONF_DATABASE_URL: entry.data[CONF_DATABASE_URL]},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the connection or the battery; an empty key keeps the stored one."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            previous_key = entry.data.get(CONF_SERVICE_ACCOUNT)
            candidate = {
                **user_input,
                CONF_SERVICE_ACCOUNT: user_input.get(CONF_SERVICE_ACCOUNT) or previous_key,
            }
            try:
                unique_id = site_unique_id(user_input[CONF_DATABASE_URL])
            except FirebaseInvalidURL:
                errors[CONF_DATABASE_URL] = "invalid_url"
            else:
                await self.async_set_unique_id(unique_id)
                self._abort_if_unique_id_mismatch()
                _, errors = await _async_try_site(self.hass, candidate)
            if not errors:
                data = {
                    k: v for k, v in entry.data.items() if k != CONF_SERVICE_ACCOUNT
                } | _connection_data(candidate)
                return self.async_update_reload_and_abort(entry, data=data)
        suggested = {k: v for k, v in entry.data.items() if k != CONF_SERVICE_ACCOUNT}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                RECONFIGURE_SCHEMA, user_input or suggested
            ),
            errors=errors,
            description_placeholders=URL_EXAMPLES,
        )


def _notify_targets(
    hass: HomeAssistant, raw: list[str] | None, errors: dict[str, str], field: str
) -> list[str]:
    """Normalized notify targets (`notify.<name>`); a malformed or unknown one sets an error."""
    out: list[str] = []
    for text in raw or []:
        if not text.strip():
            continue
        target = normalize_target(text)
        if target is None:
            errors[field] = "invalid_notify_target"
        elif not target_exists(hass, target):
            errors[field] = "unknown_notify_target"
        elif target not in out:
            out.append(target)
    return out


def _sms_options(
    user_input: Mapping[str, Any],
    stored: Mapping[str, Any],
    errors: dict[str, str],
    *,
    ladder_phones: bool = False,
) -> dict[str, Any]:
    """Validated Twilio options; {} when SMS is left empty (which turns it off). Recipients
    may be left out when the ladder texts a duty phone or the authorities (`ladder_phones`)."""
    sid = (user_input.get(CONF_TWILIO_ACCOUNT_SID) or "").strip()
    token = (user_input.get(CONF_TWILIO_AUTH_TOKEN) or "").strip()
    sender_text = (user_input.get(CONF_TWILIO_FROM) or "").strip()
    numbers = _phones(user_input.get(CONF_SMS_TARGETS), errors, CONF_SMS_TARGETS)
    if not (sid or token or sender_text or numbers or CONF_SMS_TARGETS in errors):
        return {}
    # The stored token is never shown; left empty it stays, for the same account only.
    if not token and sid == stored.get(CONF_TWILIO_ACCOUNT_SID):
        token = stored.get(CONF_TWILIO_AUTH_TOKEN) or ""
    if not valid_twilio_sid(sid):
        errors[CONF_TWILIO_ACCOUNT_SID] = "invalid_twilio_sid"
    if not valid_twilio_token(token):
        errors[CONF_TWILIO_AUTH_TOKEN] = "invalid_twilio_token"
    if (sender := normalize_phone(sender_text)) is None:
        errors[CONF_TWILIO_FROM] = "invalid_phone_number"
    if not numbers and not ladder_phones and CONF_SMS_TARGETS not in errors:
        errors[CONF_SMS_TARGETS] = "sms_targets_required"
    return {
        CONF_TWILIO_ACCOUNT_SID: sid,
        CONF_TWILIO_AUTH_TOKEN: token,
        CONF_TWILIO_FROM: sender,
        CONF_SMS_TARGETS: numbers,
    }


def _push_options(
    user_input: Mapping[str, Any], key_text: Any, errors: dict[str, str]
) -> dict[str, Any]:
    """Validated FCM options; {} when push is left empty. Push needs the site's key."""
    topic = (user_input.get(CONF_FCM_TOPIC) or "").strip()
    tokens: list[str] = []
    for text in user_input.get(CONF_FCM_TOKENS) or []:
        if not (token := text.strip()):
            continue
        if not valid_fcm_token(token):
            errors[CONF_FCM_TOKENS] = "invalid_fcm_token"
        elif token not in tokens:
            tokens.append(token)
    if topic and not valid_fcm_topic(topic):
        errors[CONF_FCM_TOPIC] = "invalid_fcm_topic"
    if not (topic or tokens):
        return {}
    if service_account_project(key_text) is None:
        errors[CONF_FCM_TOPIC if topic else CONF_FCM_TOKENS] = "fcm_needs_service_account"
    out: dict[str, Any] = {}
    if topic:
        out[CONF_FCM_TOPIC] = topic
    if tokens:
        out[CONF_FCM_TOKENS] = tokens
    return out


def _phones(raw: str | list[str] | None, errors: dict[str, str], field: str) -> list[str]:
    """E.164 numbers from a phone field (one or several); a malformed one sets an error."""
    out: list[str] = []
    for text in [raw] if isinstance(raw, str) else raw or []:
        if not text.strip():
            continue
        if (number := normalize_phone(text)) is None:
            errors[field] = "invalid_phone_number"
        elif number not in out:
            out.append(number)
    return out


def _ladder_options(
    hass: HomeAssistant, user_input: Mapping[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    """Validated ladder options: the rung delays (in ladder order), the duty phone and the
    authorities; only those given are kept (the others take their defaults)."""
    out: dict[str, Any] = {
        key: _whole(float(user_input[key]))
        for key in (
            CONF_LADDER_HOUSEHOLD_MINUTES,
            CONF_LADDER_DUTY_MINUTES,
            CONF_LADDER_AUTHORITIES_MINUTES,
        )
        if user_input.get(key) is not None
    }
    minutes = ladder_minutes({**out, CONF_ESCALATION_MINUTES: user_input[CONF_ESCALATION_MINUTES]})
    delays = list(minutes.values())  # household, admins, duty, authorities
    if any(later < earlier for earlier, later in pairwise(delays)):
        errors["base"] = "ladder_order"
    if duty := _phones(user_input.get(CONF_DUTY_PHONE), errors, CONF_DUTY_PHONE):
        out[CONF_DUTY_PHONE] = duty[0]
    if targets := _notify_targets(
        hass, user_input.get(CONF_AUTHORITIES_TARGETS), errors, CONF_AUTHORITIES_TARGETS
    ):
        out[CONF_AUTHORITIES_TARGETS] = targets
    if phones := _phones(user_input.get(CONF_AUTHORITIES_PHONES), errors, CONF_AUTHORITIES_PHONES):
        out[CONF_AUTHORITIES_PHONES] = phones
    return out


def _whole(minutes: float) -> float | int:
    """Minutes stored as a whole number when they are one."""
    return int(minutes) if minutes.is_integer() else round(minutes, 2)


# Optional options a person may clear: left out of the input, they are removed.
_CLEARABLE = (CONF_TEMPERATURE_ENTITY, CONF_DEEP_DISCHARGE_CUTOFF_PCT, CONF_REPORT_TIME)


class MicrogridOptionsFlow(OptionsFlow):
    """Thresholds, relay timing and control mode."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Edit the options; the bands must be ordered critical alert < emergency < conservation."""
        errors: dict[str, str] = {}
        if user_input is not None:
            # A cleared multi-text field is left out of the input: absent means none.
            targets = {
                key: _notify_targets(self.hass, user_input.get(key), errors, key)
                for key in (CONF_NOTIFY_TARGETS, CONF_ESCALATION_TARGETS)
            }
            stored = self.config_entry.options
            ladder = _ladder_options(self.hass, user_input, errors)
            ladder_phones = bool(ladder.get(CONF_DUTY_PHONE) or ladder.get(CONF_AUTHORITIES_PHONES))
            gateways = _sms_options(
                user_input, stored, errors, ladder_phones=ladder_phones
            ) | _push_options(user_input, self.config_entry.data.get(CONF_SERVICE_ACCOUNT), errors)
            if ladder_phones and not gateways.get(CONF_TWILIO_ACCOUNT_SID):
                # The duty phone and the authorities' numbers are texted through Twilio.
                field = CONF_DUTY_PHONE if CONF_DUTY_PHONE in ladder else CONF_AUTHORITIES_PHONES
                errors.setdefault(field, "phone_needs_sms")
            if not (
                user_input[CONF_CRITICAL_ALERT_PCT]
                < user_input[CONF_EMERGENCY_PCT]
                < user_input[CONF_CONSERVATION_PCT]
            ):
                errors["base"] = "thresholds_order"
            cutoff = user_input.get(CONF_DEEP_DISCHARGE_CUTOFF_PCT) or 0
            if cutoff and cutoff >= user_input[CONF_EMERGENCY_PCT]:
                # Above the emergency threshold it would cut the clinic while others still run.
                errors[CONF_DEEP_DISCHARGE_CUTOFF_PCT] = "cutoff_above_emergency"
            if not errors:
                # A gateway field left empty turns that gateway off: only `gateways` survive;
                # so does a cleared temperature entity or cutoff (absent from the input; a
                # cutoff of 0 is none).
                cleared = {*SMS_PUSH_OPTIONS, *_CLEARABLE, *LADDER_OPTIONS}
                options = {
                    k: v
                    for k, v in {**stored, **user_input}.items()
                    if k not in cleared or (k in _CLEARABLE and k in user_input)
                } | {
                    **gateways,
                    **ladder,
                    **targets,
                    CONF_MIN_ON_S: int(user_input[CONF_MIN_ON_S]),
                    CONF_MIN_OFF_S: int(user_input[CONF_MIN_OFF_S]),
                    CONF_ESCALATION_MINUTES: int(user_input[CONF_ESCALATION_MINUTES]),
                    **{
                        key: convert(user_input[key])
                        for key, convert in _RATE_LIMITS.items()
                        if key in user_input  # absent: the default applies
                    },
                }
                return self.async_create_entry(data=options)
        stored_options = self.config_entry.options
        current = {
            CONF_ESCALATION_MINUTES: DEFAULT_ESCALATION_MINUTES,
            CONF_RATE_LIMIT_BURST: DEFAULT_RATE_LIMIT_BURST,
            CONF_RATE_LIMIT_PER_MINUTE: DEFAULT_RATE_LIMIT_PER_MINUTE,
            **DEFAULT_OPTIONS,
            # The ladder as it runs now (defaults filled in: 0 / 10 / 20 / 30 min).
            **{k: _whole(v) for k, v in ladder_minutes(stored_options).items()},
            **{k: v for k, v in stored_options.items() if k != CONF_TWILIO_AUTH_TOKEN},
        }
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(OPTIONS_SCHEMA, user_input or current),
            errors=errors,
        )


class ZoneSubentryFlow(ConfigSubentryFlow):
    """Add a zone (a board's relay) or edit one."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add a zone for a node; one zone per node."""
        entry = self._get_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            zone_id = user_input[CONF_ZONE_ID].strip()
            if any(s.unique_id == zone_id for s in _subentries_of(entry, SUBENTRY_ZONE)):
                return self.async_abort(reason="already_configured")
            if not _FIREBASE_KEY.match(zone_id):
                errors[CONF_ZONE_ID] = "invalid_zone_id"
            else:
                data = _zone_data(zone_id, user_input)
                return self.async_create_entry(title=data[CONF_NAME], data=data, unique_id=zone_id)
        # Offer the boards already reporting; another node id may still be typed.
        nodes = _unzoned_nodes(entry)
        zone_id_field = (
            SelectSelector(
                SelectSelectorConfig(
                    options=nodes, custom_value=True, mode=SelectSelectorMode.DROPDOWN
                )
            )
            if nodes
            else _TEXT
        )
        schema = vol.Schema({vol.Required(CONF_ZONE_ID): zone_id_field}).extend(
            _zone_schema({}, _household_names(entry)).schema
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename or re-class a zone; its node stays."""
        subentry = self._get_reconfigure_subentry()
        zone_id = subentry.data[CONF_ZONE_ID]
        if user_input is not None:
            data = _zone_data(zone_id, user_input)
            return self.async_update_and_abort(
                self._get_entry(), subentry, title=data[CONF_NAME], data=data
            )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_zone_schema(subentry.data, _household_names(self._get_entry())),
            description_placeholders={CONF_ZONE_ID: zone_id},
        )


class HouseholdSubentryFlow(ConfigSubentryFlow):
    """Add a household (a name and its HA users) or edit one."""

    async def _async_schema(self, defaults: Mapping[str, Any]) -> vol.Schema:
        """Name and members; members are the active, non-system HA users."""
        users = [
            u
            for u in await self.hass.auth.async_get_users()
            if u.is_active and not u.system_generated
        ]
        options = [
            SelectOptionDict(value=u.id, label=u.name or u.id)
            for u in sorted(users, key=lambda u: (u.name or "").casefold())
        ]
        return vol.Schema(
            {
                vol.Required(CONF_NAME, default=defaults.get(CONF_NAME, vol.UNDEFINED)): _TEXT,
                vol.Optional(CONF_MEMBERS, default=list(defaults.get(CONF_MEMBERS, []))): (
                    SelectSelector(
                        SelectSelectorConfig(
                            options=options, multiple=True, mode=SelectSelectorMode.DROPDOWN
                        )
                    )
                ),
            }
        )

    def _name_taken(self, name: str, *, except_id: str | None = None) -> bool:
        """Whether another household already has this name (case-insensitive)."""
        return any(
            s.data[CONF_NAME].casefold() == name.casefold()
            for s in _subentries_of(self._get_entry(), SUBENTRY_HOUSEHOLD)
            if s.subentry_id != except_id
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add a household."""
        if user_input is not None:
            name = user_input[CONF_NAME].strip()
            if self._name_taken(name):
                return self.async_abort(reason="already_configured")
            return self.async_create_entry(
                title=name,
                data={CONF_NAME: name, CONF_MEMBERS: list(user_input.get(CONF_MEMBERS, []))},
                unique_id=name,
            )
        return self.async_show_form(step_id="user", data_schema=await self._async_schema({}))

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename a household or change its members; its zones follow a rename."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        if user_input is not None:
            name = user_input[CONF_NAME].strip()
            if self._name_taken(name, except_id=subentry.subentry_id):
                errors[CONF_NAME] = "household_exists"
            else:
                old_name = subentry.data[CONF_NAME]
                if name != old_name:
                    self._rename_in_zones(entry, old_name, name)
                return self.async_update_and_abort(
                    entry,
                    subentry,
                    title=name,
                    unique_id=name,
                    data={CONF_NAME: name, CONF_MEMBERS: list(user_input.get(CONF_MEMBERS, []))},
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=await self._async_schema(user_input or subentry.data),
            errors=errors,
        )

    @callback
    def _rename_in_zones(self, entry: ConfigEntry, old_name: str, new_name: str) -> None:
        """Point the household's zones at its new name."""
        for zone in _subentries_of(entry, SUBENTRY_ZONE):
            if zone.data.get(CONF_HOUSEHOLD) == old_name:
                self.hass.config_entries.async_update_subentry(
                    entry, zone, data={**zone.data, CONF_HOUSEHOLD: new_name}
                )
