"""The alert options: notify targets, escalation delay, Twilio SMS and FCM push settings."""

from __future__ import annotations

from datetime import timedelta

from custom_components.microgrid.alerts.options import (
    AlertOptions,
    PushOptions,
    SmsOptions,
    normalize_phone,
    normalize_target,
)
from custom_components.microgrid.const import (
    CONF_ESCALATION_MINUTES,
    CONF_ESCALATION_TARGETS,
    CONF_FCM_TOKENS,
    CONF_FCM_TOPIC,
    CONF_NOTIFY_TARGETS,
    CONF_SMS_TARGETS,
    CONF_TWILIO_ACCOUNT_SID,
    CONF_TWILIO_AUTH_TOKEN,
    CONF_TWILIO_FROM,
)

from .fakes import DUTY, NURSE, PHONE, SENDER, SID, TOKEN, TOPIC


def test_targets_and_options_are_normalized() -> None:
    """`x` and `notify.x` are one target; malformed ones are dropped; minutes are bounded."""
    assert normalize_target(" Mobile_App_X ") == "notify.mobile_app_x"
    assert normalize_target("light.kitchen") is None
    assert normalize_target("") is None
    options = AlertOptions.from_options(
        {
            CONF_NOTIFY_TARGETS: ["a", "notify.a", "bad target"],
            CONF_ESCALATION_TARGETS: "b",
            CONF_ESCALATION_MINUTES: 0,
        }
    )
    assert options.notify_targets == ("notify.a",)
    assert options.escalation_targets == ("notify.b",)
    assert options.escalation_delay == timedelta(minutes=1)
    assert AlertOptions.from_options({}).escalation_delay == timedelta(minutes=10)


def test_phone_numbers_and_options_parse() -> None:
    """E.164 with separators is accepted; anything else is not; SMS needs every field."""
    assert normalize_phone(" +254 (712) 345-678 ") == DUTY
    for bad in ("0712345678", "+0712345678", "+12", "+1234567890123456", "+25471234567x", ""):
        assert normalize_phone(bad) is None, bad
    complete = {
        CONF_TWILIO_ACCOUNT_SID: SID,
        CONF_TWILIO_AUTH_TOKEN: TOKEN,
        CONF_TWILIO_FROM: SENDER,
        CONF_SMS_TARGETS: [DUTY, "+254 712 345 678", "nonsense", NURSE],
    }
    sms = SmsOptions.from_options(complete)
    assert sms is not None and sms.targets == (DUTY, NURSE) and sms.from_number == SENDER
    assert TOKEN not in repr(sms)
    assert SmsOptions.from_options({}) is None
    for missing in (CONF_TWILIO_ACCOUNT_SID, CONF_TWILIO_AUTH_TOKEN, CONF_TWILIO_FROM):
        assert SmsOptions.from_options({**complete, missing: ""}) is None, missing
    assert SmsOptions.from_options({**complete, CONF_SMS_TARGETS: ["nonsense"]}) is None
    push = PushOptions.from_options({CONF_FCM_TOPIC: TOPIC, CONF_FCM_TOKENS: [PHONE, "bad"]})
    assert push == PushOptions(topic=TOPIC, tokens=(PHONE,))
    assert PushOptions.from_options({CONF_FCM_TOPIC: "no spaces allowed"}) is None
