"""A small Home Assistant client over its REST, auth and websocket APIs (aiohttp)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
import itertools
import time
from typing import Any

import aiohttp


class HAError(Exception):
    """Home Assistant answered with an error (HTTP status, flow error or websocket error)."""


class HAWebSocket:
    """An authenticated websocket connection; `call` sends one command and returns its result."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Wrap an authenticated websocket."""
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, type_: str, **payload: Any) -> Any:
        """Send a command; return its `result` or raise HAError with HA's error code/message."""
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "type": type_, **payload})
        while True:
            msg = await self._ws.receive_json(timeout=60)
            if msg.get("id") != msg_id or msg.get("type") != "result":
                continue  # events of subscriptions we do not hold
            if not msg.get("success"):
                err = msg.get("error", {})
                raise HAError(f"{type_}: {err.get('code')}: {err.get('message')}")
            return msg.get("result")

    async def subscribe(self, type_: str, **payload: Any) -> AsyncIterator[dict[str, Any]]:
        """Start a subscription (e.g. `subscribe_entities`); yield its events until the
        connection closes. Use a websocket of its own: `call` skips events."""
        await self.call(type_, **payload)
        while True:
            msg = await self._ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                return  # closed (HA stopped or the session ended)
            data = msg.json()
            for item in data if isinstance(data, list) else [data]:  # HA may coalesce messages
                if item.get("type") == "event":
                    yield item.get("event") or {}


class HAClient:
    """REST/auth/websocket client for one Home Assistant base URL."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """Bind to a session and base URL like http://127.0.0.1:8123."""
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.client_id = f"{self.base_url}/"

    async def wait_ready(
        self, *, timeout_s: float, alive: Callable[[], bool] = lambda: True
    ) -> None:
        """Poll /manifest.json until HA's HTTP server answers (it answers only once up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive():
                raise HAError("Home Assistant exited before its HTTP server came up")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(
                    f"{self.base_url}/manifest.json", timeout=aiohttp.ClientTimeout(total=5)
                ) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.5)
        raise HAError(f"Home Assistant not ready after {timeout_s:.0f} s")

    async def rest(
        self, method: str, path: str, *, token: str | None = None, json: Any = None
    ) -> Any:
        """Call a REST endpoint; return its JSON (or None) or raise HAError on HTTP >= 400."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(
            method, f"{self.base_url}{path}", headers=headers, json=json
        ) as resp:
            body = await resp.text()
            if resp.status >= 400:
                raise HAError(f"{method} {path}: HTTP {resp.status}: {body[:500]}")
            if not body or resp.content_type != "application/json":
                return None
            return await resp.json()

    async def _token_from_code(self, code: str) -> str:
        """Exchange an authorization code for an access token."""
        async with self.session.post(
            f"{self.base_url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
        ) as resp:
            if resp.status != 200:
                raise HAError(f"/auth/token: HTTP {resp.status}: {await resp.text()}")
            return str((await resp.json())["access_token"])

    async def onboard(self, *, name: str, username: str, password: str) -> str:
        """Create the owner through onboarding, finish the remaining steps; return a token."""
        created = await self.rest(
            "POST",
            "/api/onboarding/users",
            json={
                "client_id": self.client_id,
                "name": name,
                "username": username,
                "password": password,
                "language": "en",
            },
        )
        token = await self._token_from_code(created["auth_code"])
        steps = {s["step"]: s["done"] for s in await self.rest("GET", "/api/onboarding")}
        if not steps.get("analytics"):
            await self.rest("POST", "/api/onboarding/analytics", token=token, json={})
        if not steps.get("integration"):
            await self.rest(
                "POST",
                "/api/onboarding/integration",
                token=token,
                json={
                    "client_id": self.client_id,
                    "redirect_uri": f"{self.client_id}?auth_callback=1",
                },
            )
        return token

    async def login(self, *, username: str, password: str) -> str:
        """Log in with the homeassistant auth provider's login flow; return an access token."""
        flow = await self.rest(
            "POST",
            "/auth/login_flow",
            json={
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.client_id}?auth_callback=1",
            },
        )
        result = await self.rest(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            json={"client_id": self.client_id, "username": username, "password": password},
        )
        if result.get("type") != "create_entry":
            raise HAError(f"login of {username!r} failed: {result.get('errors')}")
        return await self._token_from_code(result["result"])

    @contextlib.asynccontextmanager
    async def websocket(self, token: str) -> AsyncIterator[HAWebSocket]:
        """Open and authenticate a websocket connection."""
        async with self.session.ws_connect(f"{self.base_url}/api/websocket", max_msg_size=0) as ws:
            hello = await ws.receive_json(timeout=30)
            if hello.get("type") != "auth_required":
                raise HAError(f"unexpected websocket greeting {hello}")
            await ws.send_json({"type": "auth", "access_token": token})
            auth = await ws.receive_json(timeout=30)
            if auth.get("type") != "auth_ok":
                raise HAError(f"websocket auth failed: {auth}")
            yield HAWebSocket(ws)
