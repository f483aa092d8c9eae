"""The alert options: notify targets, escalation, Twilio SMS and FCM push; what the config flow
accepts and what a site's alerts read from its entry's options."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
import re
from typing import Any

from homeassistant.core import HomeAssistant

from ..const import (
    CONF_AUTHORITIES_PHONES,
    CONF_AUTHORITIES_TARGETS,
    CONF_DUTY_PHONE,
    CONF_ESCALATION_MINUTES,
    CONF_ESCALATION_TARGETS,
    CONF_FCM_TOKENS,
    CONF_FCM_TOPIC,
    CONF_LADDER_AUTHORITIES_MINUTES,
    CONF_LADDER_DUTY_MINUTES,
    CONF_LADDER_HOUSEHOLD_MINUTES,
    CONF_NOTIFY_TARGETS,
    CONF_SMS_TARGETS,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
    DEFAULT_ESCALATION_MINUTES,
    DEFAULT_LADDER_GAP_MINUTES,
    DEFAULT_LADDER_HOUSEHOLD_MINUTES,
    LOGGER,
    MAX_ESCALATION_MINUTES,
)
from .ladder import LadderStep, Rung, ladder_steps

_TARGET = re.compile(r"^notify\.[a-z0-9_]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s().\-]")
_TWILIO_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_TWILIO_TOKEN = re.compile(r"^[0-9A-Za-z]{16,64}$")
_FCM_TOPIC = re.compile(r"^[a-zA-Z0-9\-_.~%]{1,900}$")  # FCM's own topic pattern
_FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:\-]{20,4096}$")


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


def _items(raw: Any) -> list[Any]:
    """An option value as a list: a list or tuple as is, one value alone, nothing as []."""
    return list(raw) if isinstance(raw, list | tuple) else ([raw] if raw else [])


def _normalized(raw: Any, normalize: Callable[[str], str | None], ignoring: str) -> tuple[str, ...]:
    """Normalized, de-duplicated values of an option; each rejected one is logged (`ignoring`
    takes it as %r)."""
    out: list[str] = []
    for item in _items(raw):
        value = normalize(str(item))
        if value is None:
            LOGGER.warning(ignoring, item)
        elif value not in out:
            out.append(value)
    return tuple(out)


def _targets(raw: Any) -> tuple[str, ...]:
    """Normalized, de-duplicated notify targets from an option value."""
    return _normalized(
        raw, normalize_target, "Ignoring the notify target %r: not a notify action name"
    )


def _phones(raw: Any) -> tuple[str, ...]:
    """Normalized, de-duplicated E.164 numbers from an option value."""
    return _normalized(
        raw, normalize_phone, "Ignoring the SMS target %r: not an E.164 phone number"
    )


def _minutes(raw: Any, default: float, minimum: float = 0.0) -> float:
    """Minutes from an option value, within minimum..MAX_ESCALATION_MINUTES; else `default`."""
    if raw is None or raw == "":
        return default
    try:
        return min(max(float(raw), minimum), MAX_ESCALATION_MINUTES)
    except (TypeError, ValueError):
        return default


def default_ladder(escalation_delay: timedelta) -> tuple[LadderStep, ...]:
    """The ladder when only the old single escalation delay is set: household at 0, admins at
    the escalation delay, the duty phone 10 min later, the authorities 10 min after that."""
    gap = timedelta(minutes=DEFAULT_LADDER_GAP_MINUTES)
    return ladder_steps(
        {
            Rung.HOUSEHOLD: timedelta(minutes=DEFAULT_LADDER_HOUSEHOLD_MINUTES),
            Rung.ADMINS: escalation_delay,
            Rung.DUTY: escalation_delay + gap,
            Rung.AUTHORITIES: escalation_delay + 2 * gap,
        }
    )


def ladder_minutes(options: Mapping[str, Any]) -> dict[str, float]:
    """Each rung's delay in minutes as the options give it (defaults filled in): the admins
    rung is the old `escalation_minutes`; an unset duty rung is 10 min after the admins, an
    unset authorities rung 10 min after the duty phone."""
    admins = _minutes(options.get(CONF_ESCALATION_MINUTES), DEFAULT_ESCALATION_MINUTES, minimum=1.0)
    duty = _minutes(options.get(CONF_LADDER_DUTY_MINUTES), admins + DEFAULT_LADDER_GAP_MINUTES)
    return {
        CONF_LADDER_HOUSEHOLD_MINUTES: _minutes(
            options.get(CONF_LADDER_HOUSEHOLD_MINUTES), DEFAULT_LADDER_HOUSEHOLD_MINUTES
        ),
        CONF_ESCALATION_MINUTES: admins,
        CONF_LADDER_DUTY_MINUTES: duty,
        CONF_LADDER_AUTHORITIES_MINUTES: _minutes(
            options.get(CONF_LADDER_AUTHORITIES_MINUTES), duty + DEFAULT_LADDER_GAP_MINUTES
        ),
    }


# The option that sets each rung's delay.
RUNG_MINUTES: dict[Rung, str] = {
    Rung.HOUSEHOLD: CONF_LADDER_HOUSEHOLD_MINUTES,
    Rung.ADMINS: CONF_ESCALATION_MINUTES,
    Rung.DUTY: CONF_LADDER_DUTY_MINUTES,
    Rung.AUTHORITIES: CONF_LADDER_AUTHORITIES_MINUTES,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertOptions:
    """Where alerts go and how unacknowledged critical ones climb the escalation ladder."""

    notify_targets: tuple[str, ...] = ()
    escalation_targets: tuple[str, ...] = ()  # the admins rung
    escalation_delay: timedelta = timedelta(minutes=DEFAULT_ESCALATION_MINUTES)
    ladder: tuple[LadderStep, ...] = default_ladder(timedelta(minutes=DEFAULT_ESCALATION_MINUTES))
    duty_phone: str | None = None
    authorities_targets: tuple[str, ...] = ()
    authorities_phones: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> AlertOptions:
        """From an entry's options; malformed targets and numbers are dropped with a warning."""
        minutes = ladder_minutes(options)
        duty = _phones(options.get(CONF_DUTY_PHONE))
        return cls(
            notify_targets=_targets(options.get(CONF_NOTIFY_TARGETS)),
            escalation_targets=_targets(options.get(CONF_ESCALATION_TARGETS)),
            escalation_delay=timedelta(minutes=minutes[CONF_ESCALATION_MINUTES]),
            ladder=ladder_steps(
                {rung: timedelta(minutes=minutes[key]) for rung, key in RUNG_MINUTES.items()}
            ),
            duty_phone=duty[0] if duty else None,
            authorities_targets=_targets(options.get(CONF_AUTHORITIES_TARGETS)),
            authorities_phones=_phones(options.get(CONF_AUTHORITIES_PHONES)),
        )

    def delay(self, rung: Rung) -> timedelta:
        """How long after an alert this rung fires."""
        return next(step.delay for step in self.ladder if step.rung is rung)

    @property
    def ladder_phones(self) -> tuple[str, ...]:
        """The numbers only the ladder texts (the duty phone, the authorities)."""
        return tuple(dict.fromkeys([*filter(None, [self.duty_phone]), *self.authorities_phones]))


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsOptions:
    """Twilio credentials, the sending number and who gets critical alerts by SMS (`targets`;
    may be empty when only the ladder's duty phone or authorities are texted)."""

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
        # The ladder's numbers (duty phone, authorities) are recipients too.
        recipients = (
            targets
            or _phones(options.get(CONF_DUTY_PHONE))
            or _phones(options.get(CONF_AUTHORITIES_PHONES))
        )
        if not (valid_twilio_sid(sid) and valid_twilio_token(token) and sender and recipients):
            LOGGER.warning(
                "SMS alerts are off: the Twilio account SID, auth token, sending number and at "
                "least one E.164 recipient are all needed"
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
        tokens: list[str] = []
        for item in _items(options.get(CONF_FCM_TOKENS)):
            token = str(item).strip()
            if not valid_fcm_token(token):
                LOGGER.warning("Ignoring an FCM token that is not a registration token")
            elif token not in tokens:
                tokens.append(token)
        if topic is None and not tokens:
            return None
        return cls(topic=topic, tokens=tuple(tokens))
