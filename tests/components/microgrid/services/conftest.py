"""Helpers for the action tests."""

from __future__ import annotations

from typing import Any

from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant

from custom_components.microgrid.const import DOMAIN


async def call(
    hass: HomeAssistant, service: str, data: dict[str, Any], user: User | None = None
) -> Any:
    """Call an action that answers (as a user when given) and return its response."""
    return await hass.services.async_call(
        DOMAIN,
        service,
        data,
        blocking=True,
        return_response=True,
        context=Context(user_id=user.id) if user else None,
    )
