"""A second path for readings beside Firebase: boards POST JWT-signed records to a webhook.

The seed backend's `updateVoltage` endpoint, in Home Assistant's form. The body is JSON
`{"token": "<JWT>"}`, an HS256 JWT signed with the site's command secret whose claims are
`node` (the zone id), `reading` (a record in the `sensors/<zone>` format) and `exp`.
"""

from __future__ import annotations

from http import HTTPStatus
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from homeassistant.components import persistent_notification, webhook
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
import jwt

from .const import DOMAIN, LOGGER

if TYPE_CHECKING:
    from .coordinator import MicrogridCoordinator

STORAGE_VERSION = 1
MAX_BODY_BYTES = 16 * 1024
MAX_TOKEN_LIFETIME_S = 3600  # a board's signed reading must expire within the hour


async def async_webhook_id(hass: HomeAssistant, entry_id: str) -> tuple[str, bool]:
    """The site's webhook id, created once and kept (returns (id, created_now))."""
    store: Store[dict[str, str]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.webhook")
    data = await store.async_load() or {}
    if webhook_id := data.get("webhook_id"):
        return webhook_id, False
    webhook_id = webhook.async_generate_id()
    await store.async_save({"webhook_id": webhook_id})
    return webhook_id, True


def verify_reading(token: Any, secret: str) -> tuple[str, Any]:
    """(zone id, record) from a signed token; raises jwt.PyJWTError or ValueError."""
    if not isinstance(token, str):
        raise ValueError("token must be a string")
    claims = jwt.decode(
        token, secret, algorithms=["HS256"], options={"require": ["exp", "node", "reading"]}
    )
    iat = claims.get("iat")
    if isinstance(iat, int | float) and claims["exp"] - iat > MAX_TOKEN_LIFETIME_S:
        raise ValueError("token lifetime too long")
    node = claims["node"]
    if not isinstance(node, str) or not node:
        raise ValueError("node must be a non-empty string")
    return node, claims["reading"]


async def async_register_webhook(
    hass: HomeAssistant, coordinator: MicrogridCoordinator, secret: str
) -> str:
    """Register the site's webhook; it is unregistered when the entry unloads."""
    entry = coordinator.config_entry
    webhook_id, created = await async_webhook_id(hass, entry.entry_id)

    async def _handle(hass: HomeAssistant, _webhook_id: str, request: web.Request) -> web.Response:
        """Verify one signed reading and hand it to the coordinator like a stream event."""
        body = await request.content.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return web.json_response(
                {"error": "too_large"}, status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            )
        try:
            payload = json.loads(body)
            node, record = verify_reading(
                payload.get("token") if isinstance(payload, dict) else None, secret
            )
        except (ValueError, jwt.PyJWTError) as err:
            LOGGER.warning("Rejected a webhook reading: %s", err)
            status = (
                HTTPStatus.UNAUTHORIZED
                if isinstance(err, jwt.PyJWTError)
                else HTTPStatus.BAD_REQUEST
            )
            return web.json_response({"error": type(err).__name__}, status=status)
        if coordinator.site.zone(node) is None:
            LOGGER.warning("Webhook reading for unknown zone %s", node)
            return web.json_response({"error": "unknown_zone"}, status=HTTPStatus.NOT_FOUND)
        before = sum(coordinator.rejections.values())
        coordinator.on_data({node: record}, {node})
        if sum(coordinator.rejections.values()) > before:
            return web.json_response({"error": "invalid_reading"}, status=HTTPStatus.BAD_REQUEST)
        return web.json_response({"accepted": node})

    webhook.async_register(
        hass,
        DOMAIN,
        f"{coordinator.site.site_name} readings",
        webhook_id,
        _handle,
        allowed_methods=["POST"],
    )
    entry.async_on_unload(lambda: webhook.async_unregister(hass, webhook_id))
    if created:
        persistent_notification.async_create(
            hass,
            f"Boards of {coordinator.site.site_name} can also send signed readings to "
            f"`/api/webhook/{webhook_id}` (see the README: Device protocol).",
            title="Microgrid webhook",
            notification_id=f"{DOMAIN}_{entry.entry_id}_webhook",
        )
    return webhook_id
