"""The alert options: notify targets, the escalation ladder (delays, duty phone, authorities),
Twilio SMS and FCM push settings."""

from __future__ import annotations

from datetime import timedelta

from custom_components.microgrid.alerts.ladder import Rung
from custom_components.microgrid.alerts.options import (
    AlertOptions,
    PushOptions,
    SmsOptions,
    ladder_minutes,
    normalize_phone,
    normalize_target,
)
from custom_components.microgrid.const import (
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


def test_ladder_options_map_old_escalation_and_read_contacts() -> None:
    """Old options (escalation minutes and targets only) give the default ladder around them;
    set rungs are read in minutes (fractions too), bounded, in order; contacts normalized."""
    old = AlertOptions.from_options({CONF_ESCALATION_MINUTES: 15, CONF_ESCALATION_TARGETS: "b"})
    assert [old.delay(r) for r in Rung] == [timedelta(minutes=m) for m in (0, 15, 25, 35)]
    assert old.escalation_delay == old.delay(Rung.ADMINS) == timedelta(minutes=15)
    assert old.duty_phone is None and old.authorities_targets == () == old.authorities_phones
    assert AlertOptions().ladder == AlertOptions.from_options({}).ladder  # 0 / 10 / 20 / 30
    options = AlertOptions.from_options(
        {
            CONF_LADDER_HOUSEHOLD_MINUTES: 0.5,
            CONF_ESCALATION_MINUTES: 10,
            CONF_LADDER_DUTY_MINUTES: "nonsense",  # default: admins + 10
            CONF_LADDER_AUTHORITIES_MINUTES: 5,  # below the duty rung: waits for it
            CONF_DUTY_PHONE: "+254 712 345 678",
            CONF_AUTHORITIES_TARGETS: ["district_health", "bad target"],
            CONF_AUTHORITIES_PHONES: [NURSE, "0712"],
        }
    )
    assert [options.delay(r) for r in Rung] == [
        timedelta(seconds=30),
        timedelta(minutes=10),
        timedelta(minutes=20),
        timedelta(minutes=20),
    ]
    assert options.duty_phone == DUTY
    assert options.authorities_targets == ("notify.district_health",)
    assert options.authorities_phones == (NURSE,)
    assert options.ladder_phones == (DUTY, NURSE)
    assert ladder_minutes({CONF_LADDER_DUTY_MINUTES: 99999})[CONF_LADDER_DUTY_MINUTES] == 1440


def test_sms_may_text_only_the_ladder_phones() -> None:
    """Twilio without site recipients is on when a duty phone or authorities' number needs it."""
    twilio = {CONF_TWILIO_ACCOUNT_SID: SID, CONF_TWILIO_AUTH_TOKEN: TOKEN, CONF_TWILIO_FROM: SENDER}
    assert SmsOptions.from_options(twilio) is None
    sms = SmsOptions.from_options({**twilio, CONF_DUTY_PHONE: DUTY})
    assert sms is not None and sms.targets == ()
    assert SmsOptions.from_options({**twilio, CONF_AUTHORITIES_PHONES: [NURSE]}) is not None
