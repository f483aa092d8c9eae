"""What the HTTP gateway channels (Twilio SMS, FCM push) share: their timeout and their error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from homeassistant.exceptions import HomeAssistantError

# Below the notify channel's DELIVERY_TIMEOUT_S; covers the FCM token mint and the send together.
GATEWAY_TIMEOUT_S = 20.0


class GatewayError(HomeAssistantError):
    """An SMS or push gateway did not take an alert (logged and recorded, never raised out)."""


@asynccontextmanager
async def gateway_request(gateway: str, timeout_s: float) -> AsyncIterator[None]:
    """Bound a gateway's request; no answer in time or a connection error is a GatewayError."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError:
        raise GatewayError(f"{gateway}: no answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as err:
        raise GatewayError(f"{gateway}: {type(err).__name__}: {err}") from None
