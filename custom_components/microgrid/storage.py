"""Saving a Store within a bounded delay, however often its data changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.storage import Store


class BoundedSave:
    """Write a Store at most `delay_s` after its first unsaved change.

    Store.async_delay_save restarts its timer on every call: called on every reading (every few
    seconds) it never writes, and a power cut loses everything since the start. This arms the
    timer once per unsaved change and takes the data when the write happens.
    """

    def __init__(self, store: Store[Any], data: Callable[[], Any], delay_s: float) -> None:
        """Wrap a store and the function that builds its payload."""
        self._store = store
        self._data = data
        self._delay_s = delay_s
        self._pending = False
        self._closed = False

    @callback
    def schedule(self, *, now: bool = False) -> None:
        """Make sure the current data is written within the delay (`now`: on the next loop
        turn, for what a person did: rare, and not to be lost to a power cut)."""
        if self._closed:
            # Unloaded: a late callback of the old instance must not overwrite the store the
            # reloaded entry's new instance writes (its data was flushed at unload).
            return
        if self._pending and not now:
            return
        self._pending = True
        self._store.async_delay_save(self._payload, 0 if now else self._delay_s)

    @callback
    def _payload(self) -> Any:
        """The data, as the store writes it."""
        self._pending = False
        return self._data()

    async def async_flush(self, *, close: bool = False) -> None:
        """Write now (unload, stop); `close`: the owner is done, later changes are not saved."""
        self._pending = False
        self._closed = self._closed or close
        await self._store.async_save(self._data())
