"""Alerts: battery thresholds, critical-zone failures and failed commands; channels; escalation."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
import json
import logging
import re
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp
from homeassistant.components import persistent_notification
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv, selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util, slugify
from homeassistant.util.hass_dict import HassKey
from homeassistant.util.ulid import ulid_now
import voluptuous as vol

from ..const import (
    CONF_ESCALATION_MINUTES,
    CONF_ESCALATION_TARGETS,
    CONF_FCM_TOKENS,
    CONF_FCM_TOPIC,
    CONF_NOTIFY_TARGETS,
    CONF_SERVICE_ACCOUNT,
    CONF_SMS_TARGETS,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
    DEFAULT_ESCALATION_MINUTES,
    DOMAIN,
    EVENT_COMMAND_FAILED,
    LOGGER,
    MAX_ESCALATION_MINUTES,
)
from ..learning.manager import EVENT_ANOMALY
from ..link.auth import InvalidServiceAccount, ServiceAccountAuth, TokenProvider, json_object
from ..link.errors import FirebaseError
from ..optimizer.model import PriorityClass, Thresholds
from ..people.permissions import Actor, BadRequest, households_of
from ..services.caller import async_admin, async_site_caller, refusal
from ..storage import BoundedSave

if TYPE_CHECKING:
    from ..control.coordinator import MicrogridCoordinator
    from ..runtime import MicrogridConfigEntry
    from ..snapshot import ZoneSnapshot


# The gateways' production endpoints, read at set-up (tests point them at loopback fakes).
TWILIO_BASE_URL = "https://api.twilio.com"
FCM_BASE_URL = "https://fcm.googleapis.com"
FCM_SCOPE: Final = "https://www.googleapis.com/auth/firebase.messaging"
# Below DELIVERY_TIMEOUT_S; covers the FCM token mint and the send together.
GATEWAY_TIMEOUT_S = 20.0
SMS_MAX_CHARS: Final = 1600  # Twilio's limit for one message body

STORAGE_VERSION = 1
MAX_ALERTS = 500
SAVE_DELAY_S = 10
# A critical zone must stay unpowered this long before it alerts: a command in flight or one
# missed reading is not a failure.
ZONE_FAILURE_GRACE: Final = timedelta(minutes=1)
# A notify action that hangs must not hold the other channels.
DELIVERY_TIMEOUT_S: Final = 30

SIGNAL_ALERT: Final = f"{DOMAIN}_alert_{{}}"  # .format(entry_id); payload (alert, escalated)
DATA_ALERTS: HassKey[dict[str, AlertManager]] = HassKey(f"{DOMAIN}_alerts")

_TARGET = re.compile(r"^notify\.[a-z0-9_]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s().\-]")
_TWILIO_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_TWILIO_TOKEN = re.compile(r"^[0-9A-Za-z]{16,64}$")
_FCM_TOPIC = re.compile(r"^[a-zA-Z0-9\-_.~%]{1,900}$")  # FCM's own topic pattern
_FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:\-]{20,4096}$")


class Severity(StrEnum):
    """How urgent an alert is; critical ones escalate unless acknowledged."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return list(Severity).index(self)


class AlertType(StrEnum):
    """What an alert is about (also the event entity's event types)."""

    BATTERY_LOW = "battery_low"
    BATTERY_EMERGENCY = "battery_emergency"
    BATTERY_CRITICAL = "battery_critical"
    CRITICAL_ZONE_FAILURE = "critical_zone_failure"
    COMMAND_FAILED = "command_failed"
    BOARD_OUTLIER = "board_outlier"
    CUSTOM = "custom"


@dataclass(frozen=True, kw_only=True, slots=True)
class BatteryLevel:
    """One battery alert threshold."""

    alert_type: AlertType
    threshold_pct: float
    severity: Severity


@dataclass(frozen=True, kw_only=True, slots=True)
class BatteryStep:
    """The outcome of one SoC reading against the battery levels."""

    armed: frozenset[AlertType]
    fire: BatteryLevel | None  # the most severe level crossed by this reading
    crossed: frozenset[AlertType]  # every level disarmed by this reading
    rearmed: frozenset[AlertType]  # levels the charge recovered past (threshold + hysteresis)


@dataclass(frozen=True, kw_only=True, slots=True)
class Alert:
    """One alert and what became of it."""

    alert_id: str
    alert_type: AlertType
    severity: Severity
    title: str
    message: str
    created_at: datetime
    source: str = "system"  # "system" or the HA user id who sent it
    source_name: str = "Microgrid"
    zone_id: str | None = None
    household: str | None = None  # a message sent to one household
    soc_pct: float | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_by_name: str | None = None
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    delivered: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        """Neither acknowledged nor resolved."""
        return self.acknowledged_at is None and self.resolved_at is None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (storage and action responses)."""
        data = asdict(self)
        for key in ("created_at", "acknowledged_at", "escalated_at", "resolved_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["delivered"] = list(self.delivered)
        data["failed"] = list(self.failed)
        data["open"] = self.open
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Alert:
        """Back from storage (raises KeyError/ValueError/TypeError on a bad record)."""

        def when(key: str) -> datetime | None:
            return dt_util.parse_datetime(raw[key]) if raw.get(key) else None

        created = when("created_at")
        if created is None:
            raise ValueError("created_at")
        return cls(
            alert_id=str(raw["alert_id"]),
            alert_type=AlertType(raw["alert_type"]),
            severity=Severity(raw["severity"]),
            title=str(raw["title"]),
            message=str(raw["message"]),
            created_at=created,
            source=str(raw.get("source", "system")),
            source_name=str(raw.get("source_name", "Microgrid")),
            zone_id=raw.get("zone_id"),
            household=raw.get("household"),
            soc_pct=raw.get("soc_pct"),
            acknowledged_at=when("acknowledged_at"),
            acknowledged_by=raw.get("acknowledged_by"),
            acknowledged_by_name=raw.get("acknowledged_by_name"),
            escalated_at=when("escalated_at"),
            resolved_at=when("resolved_at"),
            delivered=tuple(raw.get("delivered", ())),
            failed=tuple(raw.get("failed", ())),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertOptions:
    """Where alerts go and when unacknowledged critical ones escalate."""

    notify_targets: tuple[str, ...] = ()
    escalation_targets: tuple[str, ...] = ()
    escalation_delay: timedelta = timedelta(minutes=DEFAULT_ESCALATION_MINUTES)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> AlertOptions:
        """From an entry's options; malformed targets are dropped with a warning."""
        minutes = options.get(CONF_ESCALATION_MINUTES, DEFAULT_ESCALATION_MINUTES)
        try:
            minutes = min(max(float(minutes), 1.0), MAX_ESCALATION_MINUTES)
        except (TypeError, ValueError):
            minutes = DEFAULT_ESCALATION_MINUTES
        return cls(
            notify_targets=_targets(options.get(CONF_NOTIFY_TARGETS)),
            escalation_targets=_targets(options.get(CONF_ESCALATION_TARGETS)),
            escalation_delay=timedelta(minutes=minutes),
        )


def _targets(raw: Any) -> tuple[str, ...]:
    """Normalized, de-duplicated notify targets from an option value."""
    out: list[str] = []
    for item in raw if isinstance(raw, list | tuple) else ([raw] if raw else []):
        target = normalize_target(str(item))
        if target is None:
            LOGGER.warning("Ignoring the notify target %r: not a notify action name", item)
        elif target not in out:
            out.append(target)
    return tuple(out)


def normalize_target(text: str) -> str | None:
    """`notify.<name>` from "notify.x" or "x"; None when it cannot be a notify action."""
    target = text.strip().lower()
    if target and "." not in target:
        target = f"notify.{target}"
    return target if _TARGET.match(target) else None


def target_exists(hass: HomeAssistant, target: str) -> bool:
    """A notify action (legacy service) or a notify entity by that name exists."""
    return hass.services.has_service("notify", target.split(".", 1)[1]) or (
        hass.states.get(target) is not None
    )


def normalize_phone(text: str) -> str | None:
    """The E.164 form ("+15551234567") of a number typed with spaces, dashes, dots or brackets."""
    number = _PHONE_SEPARATORS.sub("", text.strip())
    return number if _E164.match(number) else None


def valid_twilio_sid(text: str) -> bool:
    """A Twilio account SID: "AC" and 32 hex digits."""
    return bool(_TWILIO_SID.match(text))


def valid_twilio_token(text: str) -> bool:
    """A Twilio auth token: letters and digits only (32 hex digits today)."""
    return bool(_TWILIO_TOKEN.match(text))


def valid_fcm_topic(text: str) -> bool:
    """A topic name FCM accepts."""
    return bool(_FCM_TOPIC.match(text))


def valid_fcm_token(text: str) -> bool:
    """Something shaped like an FCM registration token."""
    return bool(_FCM_TOKEN.match(text))


def _phones(raw: Any) -> tuple[str, ...]:
    """Normalized, de-duplicated E.164 numbers from an option value."""
    out: list[str] = []
    for item in raw if isinstance(raw, list | tuple) else ([raw] if raw else []):
        number = normalize_phone(str(item))
        if number is None:
            LOGGER.warning("Ignoring the SMS target %r: not an E.164 phone number", item)
        elif number not in out:
            out.append(number)
    return tuple(out)


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsOptions:
    """Twilio credentials, the sending number and who gets critical alerts by SMS."""

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str
    targets: tuple[str, ...]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SmsOptions | None:
        """From an entry's options; None (with a warning when half-filled) unless complete."""
        sid = str(options.get(CONF_TWILIO_ACCOUNT_SID) or "").strip()
        token = str(options.get(CONF_TWILIO_AUTH_TOKEN) or "").strip()
        sender = normalize_phone(str(options.get(CONF_TWILIO_FROM) or ""))
        targets = _phones(options.get(CONF_SMS_TARGETS))
        if not (sid or token or targets or options.get(CONF_TWILIO_FROM)):
            return None
        if not (valid_twilio_sid(sid) and valid_twilio_token(token) and sender and targets):
            LOGGER.warning(
                "SMS alerts are off: the Twilio account SID, auth token, sending number and at "
                "least one E.164 target are all needed"
            )
            return None
        return cls(account_sid=sid, auth_token=token, from_number=sender, targets=targets)


@dataclass(frozen=True, kw_only=True, slots=True)
class PushOptions:
    """Where FCM push alerts go: a topic and/or device registration tokens."""

    topic: str | None
    tokens: tuple[str, ...]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PushOptions | None:
        """From an entry's options; None when no valid destination is set."""
        topic = str(options.get(CONF_FCM_TOPIC) or "").strip() or None
        if topic is not None and not valid_fcm_topic(topic):
            LOGGER.warning("Ignoring the FCM topic %r: not a valid topic name", topic)
            topic = None
        raw = options.get(CONF_FCM_TOKENS)
        tokens: list[str] = []
        for item in raw if isinstance(raw, list | tuple) else ([raw] if raw else []):
            token = str(item).strip()
            if not valid_fcm_token(token):
                LOGGER.warning("Ignoring an FCM token that is not a registration token")
            elif token not in tokens:
                tokens.append(token)
        if topic is None and not tokens:
            return None
        return cls(topic=topic, tokens=tuple(tokens))


# ---- pure decisions ------------------------------------------------------------------------


def battery_levels(thresholds: Thresholds) -> tuple[BatteryLevel, ...]:
    """The three battery alert levels, highest threshold first."""
    return (
        BatteryLevel(
            alert_type=AlertType.BATTERY_LOW,
            threshold_pct=thresholds.conservation_pct,
            severity=Severity.WARNING,
        ),
        BatteryLevel(
            alert_type=AlertType.BATTERY_EMERGENCY,
            threshold_pct=thresholds.emergency_pct,
            severity=Severity.CRITICAL,
        ),
        BatteryLevel(
            alert_type=AlertType.BATTERY_CRITICAL,
            threshold_pct=thresholds.critical_alert_pct,
            severity=Severity.CRITICAL,
        ),
    )


def battery_step(
    soc_pct: float,
    armed: frozenset[AlertType],
    levels: Iterable[BatteryLevel],
    hysteresis_pct: float,
) -> BatteryStep:
    """Fire an armed level once SoC is below it; re-arm it at threshold + hysteresis or above."""
    now_armed = set(armed)
    crossed: list[BatteryLevel] = []
    rearmed: set[AlertType] = set()
    for level in levels:
        if level.alert_type in armed:
            if soc_pct < level.threshold_pct:
                crossed.append(level)
                now_armed.discard(level.alert_type)
        elif soc_pct >= level.threshold_pct + max(hysteresis_pct, 0.0):
            rearmed.add(level.alert_type)
            now_armed.add(level.alert_type)
    # A fall through several levels at once (e.g. the first reading after an outage) sends only
    # the most severe alert; the others are disarmed so they do not follow one after another.
    fire = min(crossed, key=lambda level: level.threshold_pct, default=None)
    return BatteryStep(
        armed=frozenset(now_armed),
        fire=fire,
        crossed=frozenset(level.alert_type for level in crossed),
        rearmed=frozenset(rearmed),
    )


def zone_failure_cause(zone: ZoneSnapshot) -> str | None:
    """Why a critical zone that should be on is not powered ("offline", "relay_off"), or None."""
    if zone.zone.priority is not PriorityClass.CRITICAL or zone.desired_on is not True:
        return None
    if not zone.online:
        return "offline"
    if zone.relay_on is False:
        return "relay_off"
    return None


# Site-wide emergencies: only an admin may say someone is on them.
ADMIN_ACK_ONLY: Final = frozenset(
    {AlertType.BATTERY_EMERGENCY, AlertType.BATTERY_CRITICAL, AlertType.CRITICAL_ZONE_FAILURE}
)


def acknowledge_refusal(
    alert: Alert, household: str | None, actor: Actor, households: frozenset[str]
) -> str | None:
    """Why this caller may not acknowledge this alert (a translation key), or None."""
    if actor.is_admin:
        return None
    if alert.alert_type in ADMIN_ACK_ONLY:
        return "acknowledge_admin_only"
    if household is None or household not in households:
        return "acknowledge_not_your_household"
    return None


def escalation_due(alert: Alert, delay: timedelta) -> datetime | None:
    """When an alert escalates, or None when it never will."""
    if alert.severity is not Severity.CRITICAL or not alert.open or alert.escalated_at:
        return None
    return alert.created_at + delay


# ---- channels ------------------------------------------------------------------------------


class AlertChannel(Protocol):
    """Somewhere an alert goes (notify, persistent notification, event, Twilio SMS, FCM push)."""

    name: str

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Deliver the alert; raise HomeAssistantError when it could not be delivered."""


class PersistentNotificationChannel:
    """A persistent notification in the HA sidebar (always on)."""

    name = "persistent_notification"

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """For one site entry."""
        self._hass = hass
        self._entry_id = entry_id

    def notification_id(self, alert: Alert) -> str:
        """One notification per alert, so acknowledging it can dismiss it."""
        return f"{DOMAIN}_{self._entry_id}_{alert.alert_id}"

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Create (or, on escalation, replace) the notification."""
        self.show(alert)

    @callback
    def show(self, alert: Alert) -> None:
        """Create or replace the alert's notification."""
        persistent_notification.async_create(
            self._hass, alert.message, alert.title, self.notification_id(alert)
        )

    @callback
    def dismiss(self, alert: Alert) -> None:
        """Remove the alert's notification."""
        persistent_notification.async_dismiss(self._hass, self.notification_id(alert))


class NotifyChannel:
    """One notify action (`notify.mobile_app_x`) or notify entity (via notify.send_message)."""

    def __init__(self, hass: HomeAssistant, target: str) -> None:
        """For one normalized target."""
        self._hass = hass
        self.name = target

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Call the notify action and wait for it (bounded)."""
        service = self.name.split(".", 1)[1]
        if self._hass.services.has_service("notify", service):
            call = ("notify", service, {"message": alert.message, "title": alert.title})
        elif self._hass.states.get(self.name) is not None:
            call = (
                "notify",
                "send_message",
                {"entity_id": self.name, "message": alert.message, "title": alert.title},
            )
        else:
            raise HomeAssistantError(f"no notify action or entity {self.name}")
        async with asyncio.timeout(DELIVERY_TIMEOUT_S):
            await self._hass.services.async_call(*call, blocking=True)


class EventEntityChannel:
    """The site's `event` entity, so automations can react (reached through the dispatcher)."""

    name = "event"

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """For one site entry."""
        self._hass = hass
        self._signal = SIGNAL_ALERT.format(entry_id)

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """Fire the entity's event."""
        async_dispatcher_send(self._hass, self._signal, alert, escalated)


class GatewayError(HomeAssistantError):
    """An SMS or push gateway did not take an alert (logged and recorded, never raised out)."""


def sms_body(alert: Alert) -> str:
    """The SMS text: title and message, within one Twilio message."""
    text = f"{alert.title}\n{alert.message}"
    return text if len(text) <= SMS_MAX_CHARS else text[: SMS_MAX_CHARS - 1] + "…"


class TwilioSmsChannel:
    """One phone number, by SMS through Twilio's Messages API (one HTTPS POST per alert)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        sms: SmsOptions,
        to: str,
        *,
        base_url: str = TWILIO_BASE_URL,
        timeout_s: float = GATEWAY_TIMEOUT_S,
    ) -> None:
        """For one E.164 number."""
        self._session = session
        self._sms = sms
        self._to = to
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{sms.account_sid}/Messages.json"
        self._timeout_s = timeout_s
        self.name = f"sms:{to}"

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """POST the message; anything but 2xx raises GatewayError."""
        form = {"To": self._to, "From": self._sms.from_number, "Body": sms_body(alert)}
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                self._session.post(
                    self._url,
                    data=form,
                    headers={
                        "Authorization": aiohttp.encode_basic_auth(
                            self._sms.account_sid, self._sms.auth_token
                        )
                    },
                ) as resp,
            ):
                status = resp.status
                raw = await resp.read()
        except TimeoutError:
            raise GatewayError(f"Twilio: no answer within {self._timeout_s:g} s") from None
        except aiohttp.ClientError as err:
            raise GatewayError(f"Twilio: {type(err).__name__}: {err}") from None
        if not 200 <= status < 300:
            body = json_object(raw)
            raise GatewayError(
                f"Twilio: HTTP {status}: error {body.get('code', '?')}: "
                f"{body.get('message', 'no reason given')}"
            )


def fcm_message(
    alert: Alert, *, escalated: bool, destination: Mapping[str, str], entry_id: str
) -> dict[str, Any]:
    """The FCM HTTP v1 request body for one destination ({"topic": …} or {"token": …})."""
    data = {
        "entry_id": entry_id,
        "alert_id": alert.alert_id,
        "alert_type": str(alert.alert_type),
        "severity": str(alert.severity),
        "escalated": "true" if escalated else "false",
        "created_at": alert.created_at.isoformat(),
    }
    if alert.zone_id is not None:
        data["zone_id"] = alert.zone_id
    if alert.soc_pct is not None:
        data["soc_pct"] = f"{alert.soc_pct:g}"
    return {
        "message": {
            **destination,
            "notification": {"title": alert.title, "body": alert.message},
            "data": data,  # FCM wants every data value as a string
        }
    }


class FcmPushChannel:
    """One FCM destination (a topic or a device token) through the HTTP v1 API."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        auth: TokenProvider,
        *,
        project_id: str,
        entry_id: str,
        topic: str | None = None,
        token: str | None = None,
        base_url: str = FCM_BASE_URL,
        timeout_s: float = GATEWAY_TIMEOUT_S,
    ) -> None:
        """For a topic or a registration token (exactly one)."""
        if (topic is None) == (token is None):
            raise ValueError("an FCM channel needs exactly one of topic and token")
        self._session = session
        self._auth = auth
        self._entry_id = entry_id
        self._destination = {"topic": topic} if topic is not None else {"token": str(token)}
        self._url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._timeout_s = timeout_s
        # A token is a credential for one phone: only its start names the channel.
        self.name = f"fcm:topic:{topic}" if topic is not None else f"fcm:token:{str(token)[:12]}"

    async def async_send(self, alert: Alert, *, escalated: bool) -> None:
        """POST the message with a Bearer token; one retry with a fresh token after a 401."""
        body = fcm_message(
            alert, escalated=escalated, destination=self._destination, entry_id=self._entry_id
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                status, raw = await self._post(body)
                if status == 401:  # revoked or expired early: mint a new token once
                    self._auth.invalidate()
                    status, raw = await self._post(body)
        except TimeoutError:
            raise GatewayError(f"FCM: no answer within {self._timeout_s:g} s") from None
        except aiohttp.ClientError as err:
            raise GatewayError(f"FCM: {type(err).__name__}: {err}") from None
        except FirebaseError as err:
            raise GatewayError(f"FCM: no access token: {err}") from None
        if not 200 <= status < 300:
            error = json_object(raw).get("error")
            error = error if isinstance(error, dict) else {}
            codes = [
                d.get("errorCode")
                for d in error.get("details") or ()
                if isinstance(d, dict) and d.get("errorCode")
            ]
            raise GatewayError(
                f"FCM: HTTP {status}: {error.get('status', '?')} {','.join(codes)} "
                f"{error.get('message', 'no reason given')}"
            )

    async def _post(self, body: dict[str, Any]) -> tuple[int, bytes]:
        """One authenticated send; (status, body)."""
        token = await self._auth.async_get_token()
        async with self._session.post(
            self._url, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            return resp.status, await resp.read()


def member_notify_targets(hass: HomeAssistant, user_ids: Iterable[str]) -> tuple[str, ...]:
    """The mobile-app notify actions of these HA users' phones."""
    users = set(user_ids)
    return tuple(
        sorted(
            f"notify.mobile_app_{slugify(entry.data['device_name'])}"
            for entry in hass.config_entries.async_entries("mobile_app")
            if entry.data.get("user_id") in users and entry.data.get("device_name")
        )
    )


# ---- the manager ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _AddedChannel:
    """A channel added with add_channel and which alerts it takes."""

    channel: AlertChannel
    escalation_only: bool
    min_severity: Severity
    site_target: bool

    def takes(self, *, escalated: bool, severity: Severity, site_targets: bool) -> bool:
        """Whether an alert of this kind goes through the channel."""
        return (
            (escalated or not self.escalation_only)
            and severity.rank >= self.min_severity.rank
            and (site_targets or not self.site_target)
        )


@dataclass(kw_only=True)
class _State:
    """What survives a restart besides the alerts themselves."""

    armed: set[AlertType] = field(default_factory=lambda: set(AlertType))
    zone_alerts: dict[str, str] = field(default_factory=dict)  # zone_id -> open failure alert


class AlertManager:
    """Raises, delivers, escalates and records a site's alerts."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MicrogridConfigEntry,
        coordinator: MicrogridCoordinator,
        options: AlertOptions,
    ) -> None:
        """Prepare; call async_start once the platforms are set up."""
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.options = options
        self.alerts: deque[Alert] = deque(maxlen=MAX_ALERTS)
        self._state = _State()
        self._failing_since: dict[str, datetime] = {}
        self._timers: dict[str, CALLBACK_TYPE] = {}
        self._deliveries: dict[str, asyncio.Task[Alert]] = {}
        self._strings: dict[str, str] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.alerts"
        )
        self._saver = BoundedSave(self._store, self._data_to_save, SAVE_DELAY_S)
        self.notification = PersistentNotificationChannel(hass, entry.entry_id)
        self._event = EventEntityChannel(hass, entry.entry_id)
        self._extra: list[_AddedChannel] = []

    # ---- lifecycle ---------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Load history, subscribe to the coordinator and events, re-arm pending escalations."""
        data = await self._store.async_load() or {}
        for raw in data.get("alerts", []):
            try:
                self.alerts.append(Alert.from_dict(raw))
            except (KeyError, TypeError, ValueError):
                continue  # a record from another format: skip it, keep the rest
        if isinstance(armed := data.get("armed"), list):
            self._state.armed = {AlertType(a) for a in armed if a in AlertType}
        if isinstance(zone_alerts := data.get("zone_alerts"), dict):
            self._state.zone_alerts = {str(k): str(v) for k, v in zone_alerts.items()}
        language = self.hass.config.language
        self._strings = {
            **await async_get_translations(self.hass, language, "exceptions", [DOMAIN]),
            **await async_get_translations(self.hass, language, "entity", [DOMAIN]),
        }
        for alert in self.alerts:
            self._schedule_escalation(alert)
            if alert.open:
                # HA keeps persistent notifications in memory only: show open alerts again.
                self.notification.show(alert)
        entry = self.entry
        entry.async_on_unload(self.coordinator.async_add_listener(self._async_on_update))
        entry.async_on_unload(
            self.hass.bus.async_listen(EVENT_COMMAND_FAILED, self._async_on_command_failed)
        )
        entry.async_on_unload(self.hass.bus.async_listen(EVENT_ANOMALY, self._async_on_anomaly))
        entry.async_on_unload(self.async_stop)
        self._async_on_update()

    async def async_stop(self) -> None:
        """Cancel every escalation timer and write the history now."""
        for cancel in self._timers.values():
            cancel()
        self._timers.clear()
        await self._saver.async_flush()

    @callback
    def _data_to_save(self) -> dict[str, Any]:
        """The store's payload."""
        return {
            "alerts": [a.as_dict() for a in self.alerts],
            "armed": sorted(self._state.armed),
            "zone_alerts": self._state.zone_alerts,
        }

    @callback
    def _save_soon(self) -> None:
        """Persist within SAVE_DELAY_S of the first unsaved change."""
        self._saver.schedule()

    # ---- watching the site -------------------------------------------------------------------

    @callback
    def _async_on_update(self) -> None:
        """Every coordinator update: battery levels and critical zones."""
        snapshot = self.coordinator.data
        if snapshot is None:
            return
        if snapshot.soc_pct is not None:
            self._check_battery(snapshot.now, snapshot.soc_pct)
        for zone_id, zone in snapshot.zones.items():
            self._check_zone(snapshot.now, zone_id, zone)

    @callback
    def _check_battery(self, now: datetime, soc_pct: float) -> None:
        """Alert once per descent through each threshold; resolve on recovery."""
        thresholds = self.coordinator.site.thresholds
        step = battery_step(
            soc_pct,
            frozenset(self._state.armed),
            battery_levels(thresholds),
            thresholds.hysteresis_pct,
        )
        if step.armed == self._state.armed:
            return
        self._state.armed = set(step.armed)
        self._save_soon()
        for alert in list(self.alerts):
            if alert.alert_type in step.rearmed and alert.open:
                self._resolve(now, alert)
        if step.fire is not None:
            level = step.fire
            self.async_raise(
                level.alert_type,
                level.severity,
                now=now,
                soc_pct=soc_pct,
                placeholders={
                    "soc": f"{soc_pct:.0f}",
                    "threshold": f"{level.threshold_pct:g}",
                },
            )

    @callback
    def _check_zone(self, now: datetime, zone_id: str, zone: ZoneSnapshot) -> None:
        """Alert when a critical zone stays unpowered past the grace period; resolve on recovery."""
        cause = zone_failure_cause(zone)
        if cause is None:
            self._failing_since.pop(zone_id, None)
            if (alert_id := self._state.zone_alerts.pop(zone_id, None)) is not None:
                self._save_soon()
                if (alert := self.get(alert_id)) is not None and alert.open:
                    self._resolve(now, alert)
            return
        since = self._failing_since.setdefault(zone_id, now)
        if zone_id in self._state.zone_alerts or now - since < ZONE_FAILURE_GRACE:
            return
        minutes = max(1, round((now - since).total_seconds() / 60))
        alert = self.async_raise(
            AlertType.CRITICAL_ZONE_FAILURE,
            Severity.CRITICAL,
            now=now,
            zone_id=zone_id,
            key=f"alert_critical_zone_{cause}",
            placeholders={"zone": zone.zone.name, "minutes": str(minutes)},
        )
        self._state.zone_alerts[zone_id] = alert.alert_id
        self._save_soon()

    @callback
    def _async_on_anomaly(self, event: Event) -> None:
        """A board flagged for disagreeing with the others about the shared battery."""
        data = event.data
        if data.get("entry_id") != self.entry.entry_id or data.get("type") != "battery_outlier":
            return
        zone_id = str(data.get("zone"))
        zone = self.coordinator.site.zone(zone_id)
        detail = data.get("detail") or {}

        def pct(value: Any) -> str:
            return "?" if not isinstance(value, int | float) else f"{value:.0f}"

        self.async_raise(
            AlertType.BOARD_OUTLIER,
            Severity.WARNING,
            now=dt_util.utcnow(),
            zone_id=zone_id,
            placeholders={
                "zone": zone.name if zone else zone_id,
                "board_soc": pct(detail.get("board_soc_pct")),
                "site_soc": pct(detail.get("site_soc_pct")),
            },
        )

    @callback
    def _async_on_command_failed(self, event: Event) -> None:
        """A board never confirmed a command (the command writer gave up retrying)."""
        if event.data.get("entry_id") != self.entry.entry_id:
            return
        zone_id = str(event.data.get("zone_id"))
        zone = self.coordinator.site.zone(zone_id)
        critical = zone is not None and zone.priority is PriorityClass.CRITICAL
        self.async_raise(
            AlertType.COMMAND_FAILED,
            Severity.CRITICAL if critical else Severity.WARNING,
            now=dt_util.utcnow(),
            zone_id=zone_id,
            placeholders={
                "zone": zone.name if zone else zone_id,
                "command": str(event.data.get("command", "?")),
                "attempts": str(event.data.get("attempts", "?")),
            },
        )

    # ---- raising, delivering, escalating -----------------------------------------------------

    def _text(self, key: str, placeholders: Mapping[str, str]) -> str:
        """A message from translations (exceptions.<key>.message) with its placeholders."""
        template = self._strings.get(f"component.{DOMAIN}.exceptions.{key}.message")
        if template is None:
            return f"{key} {dict(placeholders)}"
        try:
            return template.format(**placeholders)
        except (KeyError, IndexError, ValueError):
            return template

    def _title(self, alert_type: AlertType) -> str:
        """ "<site>: <alert type name>"."""
        name = self._strings.get(
            f"component.{DOMAIN}.entity.event.alerts.state_attributes.event_type.state."
            f"{alert_type}",
            alert_type.value,
        )
        return self._text("alert_title", {"site": self.coordinator.site.site_name, "alert": name})

    @callback
    def async_raise(
        self,
        alert_type: AlertType,
        severity: Severity,
        *,
        now: datetime,
        placeholders: Mapping[str, str] | None = None,
        key: str | None = None,
        message: str | None = None,
        title: str | None = None,
        zone_id: str | None = None,
        household: str | None = None,
        soc_pct: float | None = None,
        actor: Actor | None = None,
        extra_targets: Iterable[str] = (),
        site_targets: bool = True,
    ) -> Alert:
        """Record an alert, audit it, deliver it (in a task) and schedule its escalation."""
        alert = Alert(
            alert_id=ulid_now(),
            alert_type=alert_type,
            severity=severity,
            title=title or self._title(alert_type),
            message=message or self._text(key or f"alert_{alert_type}", placeholders or {}),
            created_at=now,
            source=actor.audit_id if actor else "system",
            source_name=actor.name if actor else "Microgrid",
            zone_id=zone_id,
            household=household,
            soc_pct=soc_pct,
        )
        self.alerts.append(alert)
        self._save_soon()
        LOGGER.log(
            logging.INFO if severity is Severity.INFO else logging.WARNING,
            "%s: %s",
            alert.title,
            alert.message,
        )
        self.coordinator.audit.record(
            now=now,
            actor=alert.source,
            actor_name=alert.source_name,
            action="alert",
            zone_id=zone_id,
            message=f"{severity} alert: {alert.message}",
            alert_id=alert.alert_id,
            alert_type=alert_type,
            severity=severity,
        )
        targets = [*(self.options.notify_targets if site_targets else ()), *extra_targets]
        channels = self._channels(targets, severity=severity, site_targets=site_targets)
        self._deliver_soon(alert, channels, escalated=False)
        self._schedule_escalation(alert)
        return alert

    def _channels(
        self,
        targets: Iterable[str],
        *,
        escalated: bool = False,
        severity: Severity = Severity.CRITICAL,
        site_targets: bool = True,
    ) -> list[AlertChannel]:
        """The always-on channels, the added ones that take this alert, one per notify target."""
        channels: list[AlertChannel] = [self.notification, self._event]
        channels.extend(
            added.channel
            for added in self._extra
            if added.takes(escalated=escalated, severity=severity, site_targets=site_targets)
        )
        channels.extend(NotifyChannel(self.hass, t) for t in dict.fromkeys(targets))
        return channels

    @callback
    def add_channel(
        self,
        channel: AlertChannel,
        *,
        escalation_only: bool = False,
        min_severity: Severity = Severity.INFO,
        site_target: bool = False,
    ) -> CALLBACK_TYPE:
        """Send alerts through another channel too; returns its remover.

        `min_severity` keeps lesser alerts off it (SMS: critical only); a `site_target` channel
        is skipped, like the notify targets, when a message is sent with site_targets=False.
        """
        item = _AddedChannel(
            channel=channel,
            escalation_only=escalation_only,
            min_severity=min_severity,
            site_target=site_target,
        )
        self._extra.append(item)

        @callback
        def _remove() -> None:
            if item in self._extra:
                self._extra.remove(item)

        return _remove

    @callback
    def _deliver_soon(
        self, alert: Alert, channels: list[AlertChannel], *, escalated: bool
    ) -> asyncio.Task[Alert]:
        """Deliver in an entry-owned task (waited for by tests, cancelled on unload)."""
        task = self.entry.async_create_task(
            self.hass,
            self.async_deliver(alert.alert_id, channels, escalated=escalated),
            f"{DOMAIN} alert {alert.alert_id}",
        )
        self._deliveries[alert.alert_id] = task

        def _done(finished: asyncio.Task[Alert]) -> None:
            if self._deliveries.get(alert.alert_id) is finished:
                del self._deliveries[alert.alert_id]

        task.add_done_callback(_done)
        return task

    async def async_delivered(self, alert_id: str) -> Alert | None:
        """The alert once its current delivery is over."""
        if (task := self._deliveries.get(alert_id)) is not None:
            await asyncio.shield(task)
        return self.get(alert_id)

    async def async_deliver(
        self, alert_id: str, channels: list[AlertChannel], *, escalated: bool
    ) -> Alert:
        """Send through every channel at once; record which reached and which failed."""
        alert = self.get(alert_id)
        assert alert is not None

        async def send(channel: AlertChannel) -> bool:
            try:
                await channel.async_send(alert, escalated=escalated)
            except (HomeAssistantError, vol.Invalid, TimeoutError) as err:
                LOGGER.warning("Alert %s not delivered to %s: %s", alert_id, channel.name, err)
                return False
            except Exception:
                # A faulty channel must not cost the others their delivery record.
                LOGGER.exception("Alert %s not delivered to %s", alert_id, channel.name)
                return False
            return True

        results = await asyncio.gather(*(send(channel) for channel in channels))
        current = self.get(alert_id) or alert
        delivered = [c.name for c, ok in zip(channels, results, strict=True) if ok]
        failed = [c.name for c, ok in zip(channels, results, strict=True) if not ok]
        updated = replace(
            current,
            delivered=tuple(dict.fromkeys([*current.delivered, *delivered])),
            failed=tuple(dict.fromkeys([*current.failed, *failed])),
        )
        self._put(updated)
        return updated

    @callback
    def _schedule_escalation(self, alert: Alert) -> None:
        """A timer that escalates the alert unless it is acknowledged or resolved first."""
        due = escalation_due(alert, self.options.escalation_delay)
        if due is None or alert.alert_id in self._timers:
            return

        @callback
        def _fire(_now: datetime) -> None:
            self._timers.pop(alert.alert_id, None)
            self._escalate(alert.alert_id)

        # A past point (an overdue alert restored after a restart) fires at once.
        self._timers[alert.alert_id] = async_track_point_in_utc_time(self.hass, _fire, due)

    @callback
    def _escalate(self, alert_id: str) -> None:
        """Re-send an unacknowledged critical alert to the escalation targets."""
        alert = self.get(alert_id)
        if alert is None or escalation_due(alert, self.options.escalation_delay) is None:
            return
        now = dt_util.utcnow()
        minutes = round(self.options.escalation_delay.total_seconds() / 60)
        escalated = replace(
            alert,
            escalated_at=now,
            message=self._text(
                "alert_escalated", {"minutes": str(minutes), "message": alert.message}
            ),
        )
        self._put(escalated)
        self.coordinator.audit.record(
            now=now,
            actor="system",
            actor_name="Microgrid",
            action="alert_escalated",
            zone_id=alert.zone_id,
            message=f"alert escalated: {alert.message}",
            alert_id=alert_id,
            targets=list(self.options.escalation_targets),
        )
        # Without escalation targets the reminder goes to the usual targets again.
        targets = self.options.escalation_targets or self.options.notify_targets
        channels = self._channels(targets, escalated=True, severity=alert.severity)
        self._deliver_soon(escalated, channels, escalated=True)

    @callback
    def _put(self, alert: Alert) -> None:
        """Replace an alert in the history by id."""
        for index, existing in enumerate(self.alerts):
            if existing.alert_id == alert.alert_id:
                self.alerts[index] = alert
                self._save_soon()
                return

    @callback
    def _resolve(self, now: datetime, alert: Alert) -> None:
        """The condition went away: stop escalating, clear the notification."""
        self._cancel_timer(alert.alert_id)
        self._put(replace(alert, resolved_at=now))
        self.notification.dismiss(alert)
        self.coordinator.audit.record(
            now=now,
            actor="system",
            actor_name="Microgrid",
            action="alert_resolved",
            zone_id=alert.zone_id,
            alert_id=alert.alert_id,
            alert_type=alert.alert_type,
        )

    @callback
    def _cancel_timer(self, alert_id: str) -> None:
        """Stop an alert's escalation timer, if any."""
        if (cancel := self._timers.pop(alert_id, None)) is not None:
            cancel()

    # ---- people ------------------------------------------------------------------------------

    def get(self, alert_id: str) -> Alert | None:
        """An alert by id."""
        return next((a for a in self.alerts if a.alert_id == alert_id), None)

    def household_of(self, alert: Alert) -> str | None:
        """The household an alert is about: the one it was sent to, or its zone's."""
        if alert.household is not None or alert.zone_id is None:
            return alert.household
        zone = self.coordinator.site.zone(alert.zone_id)
        return zone.household if zone else None

    def acknowledge_refusal(self, alert: Alert, actor: Actor) -> str | None:
        """Why this caller may not acknowledge this alert, or None."""
        households = households_of(self.coordinator.site, actor.user_id)
        return acknowledge_refusal(alert, self.household_of(alert), actor, households)

    @callback
    def async_acknowledge(self, alert_ids: Iterable[str] | None, actor: Actor) -> list[Alert]:
        """Acknowledge the open alerts this caller may (None: all of those); stops their
        escalation; records who."""
        now = dt_util.utcnow()
        wanted = None if alert_ids is None else set(alert_ids)
        done: list[Alert] = []
        for alert in list(self.alerts):
            if (wanted is not None and alert.alert_id not in wanted) or not alert.open:
                continue
            if self.acknowledge_refusal(alert, actor) is not None:
                continue
            self._cancel_timer(alert.alert_id)
            acked = replace(
                alert,
                acknowledged_at=now,
                acknowledged_by=actor.audit_id,
                acknowledged_by_name=actor.name,
            )
            self._put(acked)
            self.notification.dismiss(alert)
            self.coordinator.audit.record(
                now=now,
                actor=actor.audit_id,
                actor_name=actor.name,
                action="alert_acknowledged",
                zone_id=alert.zone_id,
                message=f"{actor.name} acknowledged: {alert.message}",
                alert_id=alert.alert_id,
            )
            done.append(acked)
        if done:
            self._saver.schedule(now=True)  # a person's acknowledgement: not lost to a power cut
        return done

    def query(
        self, *, open_only: bool = False, alert_type: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest-first alerts matching the filters."""
        out: list[dict[str, Any]] = []
        for alert in reversed(self.alerts):
            if (open_only and not alert.open) or (alert_type and alert.alert_type != alert_type):
                continue
            out.append(alert.as_dict())
            if len(out) >= limit:
                break
        return out

    def is_site_user(self, actor: Actor) -> bool:
        """Admins, automations and members of one of the site's households."""
        return actor.is_admin or bool(households_of(self.coordinator.site, actor.user_id))


# ---- set-up and actions --------------------------------------------------------------------


async def async_setup_alerts(hass: HomeAssistant, entry: MicrogridConfigEntry) -> AlertManager:
    """Create and start the site's alert manager; it stops with the entry."""
    manager = AlertManager(
        hass, entry, entry.runtime_data.coordinator, AlertOptions.from_options(entry.options)
    )
    await async_add_gateway_channels(hass, entry, manager)
    managers = hass.data.setdefault(DATA_ALERTS, {})
    managers[entry.entry_id] = manager

    @callback
    def _forget() -> None:
        managers.pop(entry.entry_id, None)

    entry.async_on_unload(_forget)
    await manager.async_start()
    return manager


async def async_add_gateway_channels(
    hass: HomeAssistant, entry: MicrogridConfigEntry, manager: AlertManager
) -> None:
    """Add the Twilio SMS and FCM push channels the entry's options configure."""
    session = async_get_clientsession(hass)
    if (sms := SmsOptions.from_options(entry.options)) is not None:
        for number in sms.targets:
            manager.add_channel(
                TwilioSmsChannel(
                    session, sms, number, base_url=TWILIO_BASE_URL, timeout_s=GATEWAY_TIMEOUT_S
                ),
                min_severity=Severity.CRITICAL,  # and so their escalations
                site_target=True,
            )
    if (push := PushOptions.from_options(entry.options)) is None:
        return
    auth, project_id = await _async_push_auth(hass, session, entry.data.get(CONF_SERVICE_ACCOUNT))
    if auth is None or project_id is None:
        return
    destinations = [{"topic": push.topic}] if push.topic else []
    destinations += [{"token": token} for token in push.tokens]
    for destination in destinations:
        manager.add_channel(
            FcmPushChannel(
                session,
                auth,
                project_id=project_id,
                entry_id=entry.entry_id,
                base_url=FCM_BASE_URL,
                timeout_s=GATEWAY_TIMEOUT_S,
                **destination,
            ),
            site_target=True,
        )


async def _async_push_auth(
    hass: HomeAssistant, session: aiohttp.ClientSession, raw_key: Any
) -> tuple[ServiceAccountAuth | None, str | None]:
    """An FCM-scoped token provider and the project from the site's key; (None, None) if none."""
    if not raw_key:
        LOGGER.warning(
            "Push alerts (FCM) are skipped: the site has no service-account key "
            "(an emulator site); FCM needs one"
        )
        return None, None
    try:
        key = json.loads(raw_key) if isinstance(raw_key, str) else dict(raw_key)
        # Loading the PEM key is CPU work: off the event loop, like the database link's.
        auth = await hass.async_add_executor_job(
            partial(
                ServiceAccountAuth,
                session,
                key,
                run_blocking=hass.async_add_executor_job,
                scopes=FCM_SCOPE,
            )
        )
    except (ValueError, TypeError, InvalidServiceAccount) as err:
        LOGGER.warning("Push alerts (FCM) are skipped: unusable service-account key: %s", err)
        return None, None
    project_id = key.get("project_id")
    if not isinstance(project_id, str) or not project_id.strip():
        LOGGER.warning("Push alerts (FCM) are skipped: the service-account key has no project_id")
        return None, None
    return auth, project_id.strip()


ATTR_CONFIG_ENTRY: Final = "config_entry"
ATTR_ALERT_ID: Final = "alert_id"
ATTR_MESSAGE: Final = "message"
ATTR_TITLE: Final = "title"
ATTR_SEVERITY: Final = "severity"
ATTR_HOUSEHOLD: Final = "household"
ATTR_SITE_TARGETS: Final = "site_targets"
ATTR_OPEN_ONLY: Final = "open_only"
ATTR_ALERT_TYPE: Final = "alert_type"
ATTR_LIMIT: Final = "limit"

SERVICE_SEND_ALERT: Final = "send_alert"
SERVICE_GET_ALERTS: Final = "get_alerts"
SERVICE_ACKNOWLEDGE_ALERT: Final = "acknowledge_alert"

_ENTRY = {vol.Required(ATTR_CONFIG_ENTRY): selector.ConfigEntrySelector({"integration": DOMAIN})}
SEND_SCHEMA: Final = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_MESSAGE): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=1000)),
        vol.Optional(ATTR_TITLE): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=200)),
        vol.Optional(ATTR_SEVERITY, default=Severity.INFO.value): vol.In(
            [s.value for s in Severity]
        ),
        vol.Optional(ATTR_HOUSEHOLD): cv.string,
        vol.Optional(ATTR_SITE_TARGETS, default=True): cv.boolean,
    }
)
GET_SCHEMA: Final = vol.Schema(
    {
        **_ENTRY,
        vol.Optional(ATTR_OPEN_ONLY, default=False): cv.boolean,
        vol.Optional(ATTR_ALERT_TYPE): vol.In([t.value for t in AlertType]),
        vol.Optional(ATTR_LIMIT, default=50): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=MAX_ALERTS)
        ),
    }
)
ACK_SCHEMA: Final = vol.Schema(
    {**_ENTRY, vol.Optional(ATTR_ALERT_ID): vol.All(cv.ensure_list, [cv.string])}
)


def _manager(call: ServiceCall) -> AlertManager:
    """The loaded site's alert manager, or a translated validation error."""
    entry_id: str = call.data[ATTR_CONFIG_ENTRY]
    entry = call.hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="invalid_config_entry",
            translation_placeholders={"config_entry": entry_id},
        )
    manager = call.hass.data.get(DATA_ALERTS, {}).get(entry_id)
    if entry.state is not ConfigEntryState.LOADED or manager is None:
        raise BadRequest(
            translation_domain=DOMAIN,
            translation_key="unloaded_config_entry",
            translation_placeholders={"config_entry": entry.title},
        )
    return manager


async def _async_site_user(call: ServiceCall, manager: AlertManager) -> Actor:
    """The caller (rate-limited unless an admin), who must be a user of this site."""
    request = f"{DOMAIN}.{call.service}"
    actor = await async_site_caller(call.hass, manager.entry, call.context, request=request)
    if not manager.is_site_user(actor):
        raise refusal(manager.entry, actor, "not_site_user", request=request, context=call.context)
    return actor


async def _async_send_alert(call: ServiceCall) -> ServiceResponse:
    """An admin's message to the site's notify targets and/or a household's members."""
    manager = _manager(call)
    actor = await async_admin(
        call.hass, manager.entry, call.context, request=f"{DOMAIN}.{call.service}"
    )
    members: tuple[str, ...] = ()
    household: str | None = call.data.get(ATTR_HOUSEHOLD)
    if household is not None:
        households = manager.coordinator.site.households
        name = next((h for h in households if h.casefold() == household.casefold()), None)
        if name is None:
            raise BadRequest(
                translation_domain=DOMAIN,
                translation_key="unknown_household",
                translation_placeholders={"household": household},
            )
        household = name
        members = member_notify_targets(call.hass, households[name])
    alert = manager.async_raise(
        AlertType.CUSTOM,
        Severity(call.data[ATTR_SEVERITY]),
        now=dt_util.utcnow(),
        message=call.data[ATTR_MESSAGE],
        title=call.data.get(ATTR_TITLE),
        household=household,
        actor=actor,
        extra_targets=members,
        site_targets=call.data[ATTR_SITE_TARGETS],
    )
    sent = await manager.async_delivered(alert.alert_id) or alert
    return {**sent.as_dict(), "household": household, "household_targets": list(members)}


async def _async_get_alerts(call: ServiceCall) -> ServiceResponse:
    """The alert history, newest first, with acknowledged/escalated state."""
    manager = _manager(call)
    await _async_site_user(call, manager)
    alerts = manager.query(
        open_only=call.data[ATTR_OPEN_ONLY],
        alert_type=call.data.get(ATTR_ALERT_TYPE),
        limit=call.data[ATTR_LIMIT],
    )
    return {
        "alerts": alerts,
        "count": len(alerts),
        "open": sum(1 for a in manager.alerts if a.open),
    }


async def _async_acknowledge_alert(call: ServiceCall) -> ServiceResponse:
    """Acknowledge one, several or (no id) every open alert; stops escalation."""
    manager = _manager(call)
    actor = await _async_site_user(call, manager)
    ids: list[str] | None = call.data.get(ATTR_ALERT_ID)
    targets: list[Alert] = []
    for alert_id in ids or ():
        if (alert := manager.get(alert_id)) is None:
            raise BadRequest(
                translation_domain=DOMAIN,
                translation_key="unknown_alert",
                translation_placeholders={"alert_id": alert_id},
            )
        targets.append(alert)
    if ids is None:  # every open alert; refused only when the caller may take none of them
        open_alerts = [a for a in manager.alerts if a.open]
        if any(manager.acknowledge_refusal(a, actor) is None for a in open_alerts):
            open_alerts = []
        targets = open_alerts
    for alert in targets:
        if (reason := manager.acknowledge_refusal(alert, actor)) is not None:
            raise refusal(
                manager.entry,
                actor,
                reason,
                {"title": alert.title},
                request=f"{DOMAIN}.{call.service}",
                zone_id=alert.zone_id,
                alert_id=alert.alert_id,
            )
    done = manager.async_acknowledge(ids, actor)
    return {"acknowledged": [a.alert_id for a in done], "count": len(done)}


@callback
def async_setup_alert_services(hass: HomeAssistant) -> None:
    """Register the alert actions (once, from async_setup)."""
    for service, handler, schema, response in (
        (SERVICE_SEND_ALERT, _async_send_alert, SEND_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_GET_ALERTS, _async_get_alerts, GET_SCHEMA, SupportsResponse.ONLY),
        (
            SERVICE_ACKNOWLEDGE_ALERT,
            _async_acknowledge_alert,
            ACK_SCHEMA,
            SupportsResponse.OPTIONAL,
        ),
    ):
        hass.services.async_register(
            DOMAIN, service, handler, schema=schema, supports_response=response
        )
