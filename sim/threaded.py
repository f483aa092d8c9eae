"""Run an RTDBServer on its own event loop in a background thread (for blocking clients)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import threading
from types import TracebackType
from typing import Any, Self

from .rtdb import RTDBServer


class ThreadedRTDBServer:
    """Context manager: an RTDBServer served from a dedicated thread and loop.

    Blocking clients (firebase-admin) talk to it from the calling thread; `call` runs a function
    on the server's loop, where RTDBServer's direct-access methods must run.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare; nothing runs before start()."""
        self.server = RTDBServer(host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sim-rtdb", daemon=True)

    def start(self) -> None:
        """Start the thread and bind the server."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        """Stop the server, the loop and join the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def call[T](self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the server's loop and return its result."""

        async def _run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(_run(), self._loop).result(timeout=10)

    def __enter__(self) -> Self:
        """Start and return self."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop."""
        self.stop()
