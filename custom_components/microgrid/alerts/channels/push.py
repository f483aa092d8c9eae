"""The push channel: Firebase Cloud Messaging's HTTP v1 API with a service-account token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aiohttp

from ...link.auth import TokenProvider, json_object
from ...link.errors import FirebaseError
from ..model import Alert
from .http import GATEWAY_TIMEOUT_S, GatewayError, gateway_request

# The gateway's production endpoint, read at set-up (tests point it at a loopback fake).
FCM_BASE_URL = "https://fcm.googleapis.com"
FCM_SCOPE: Final = "https://www.googleapis.com/auth/firebase.messaging"


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
            async with gateway_request("FCM", self._timeout_s):
                status, raw = await self._post(body)
                if status == 401:  # revoked or expired early: mint a new token once
                    self._auth.invalidate()
                    status, raw = await self._post(body)
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
