"""The gateway channels a site's options turn on: Twilio SMS (critical alerts, the ladder's
duty phone and authorities, the backup of a failed notify) and FCM push (every alert, the backup
of a failed SMS)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import aiohttp
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from ..const import LOGGER
from ..link.auth import InvalidServiceAccount, ServiceAccountAuth
from .channels import AlertChannel
from .channels.http import GATEWAY_TIMEOUT_S
from .channels.push import FCM_BASE_URL, FCM_SCOPE, FcmPushChannel
from .channels.sms import TWILIO_BASE_URL, TwilioSmsChannel
from .manager import AlertManager
from .model import Severity
from .options import PushOptions, SmsOptions


async def async_add_gateway_channels(
    hass: HomeAssistant,
    manager: AlertManager,
    options: Mapping[str, Any],
    service_account: Any,
) -> None:
    """Add the Twilio SMS and FCM push channels the options configure (push needs the site's
    service-account key)."""
    session = async_get_clientsession(hass)
    sms = SmsOptions.from_options(options)
    sms_to: Callable[[str], AlertChannel] | None = None
    if sms is not None:
        sms_to = partial(
            TwilioSmsChannel, session, sms, base_url=TWILIO_BASE_URL, timeout_s=GATEWAY_TIMEOUT_S
        )
        for number in sms.targets:
            manager.add_channel(
                sms_to(number),
                min_severity=Severity.CRITICAL,  # and so their escalations
                site_target=True,
            )
    push_channels: list[AlertChannel] = []
    if (push := PushOptions.from_options(options)) is not None and (
        push_auth := await _async_push_auth(hass, session, service_account)
    ) is not None:
        auth, project_id = push_auth
        destinations = [{"topic": push.topic}] if push.topic else []
        destinations += [{"token": token} for token in push.tokens]
        for destination in destinations:
            channel = FcmPushChannel(
                session,
                auth,
                project_id=project_id,
                entry_id=manager.entry_id,
                base_url=FCM_BASE_URL,
                timeout_s=GATEWAY_TIMEOUT_S,
                **destination,
            )
            push_channels.append(channel)
            manager.add_channel(channel, site_target=True)
    # The ladder's duty phone and authorities, and the backups of a failed channel.
    manager.set_gateways(sms_to=sms_to, sms_targets=sms.targets if sms else (), push=push_channels)


async def _async_push_auth(
    hass: HomeAssistant, session: aiohttp.ClientSession, raw_key: Any
) -> tuple[ServiceAccountAuth, str] | None:
    """An FCM-scoped token provider and the project from the site's key; None if none."""
    if not raw_key:
        LOGGER.warning(
            "Push alerts (FCM) are skipped: the site has no service-account key "
            "(an emulator site); FCM needs one"
        )
        return None
    try:
        # Loading the PEM key is CPU work: off the event loop, like the database link's.
        auth = await hass.async_add_executor_job(
            partial(
                ServiceAccountAuth,
                session,
                raw_key,
                run_blocking=hass.async_add_executor_job,
                scopes=FCM_SCOPE,
            )
        )
    except InvalidServiceAccount as err:
        LOGGER.warning("Push alerts (FCM) are skipped: unusable service-account key: %s", err)
        return None
    if (project_id := auth.project_id) is None:
        LOGGER.warning("Push alerts (FCM) are skipped: the service-account key has no project_id")
        return None
    return auth, project_id
