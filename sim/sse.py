"""A minimal server-sent-events reader for aiohttp responses (chunked, no line-length cap)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
import re

from aiohttp import ClientResponse

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass(frozen=True, kw_only=True, slots=True)
class SSEEvent:
    """One event: its type and its raw data text."""

    event: str
    data: str


def parse_event(block: str) -> SSEEvent:
    """Parse one event block (the lines between blank lines)."""
    event = "message"
    data_lines: list[str] = []
    for line in block.splitlines():
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data_lines.append(value)
    return SSEEvent(event=event, data="\n".join(data_lines))


async def iter_events(response: ClientResponse) -> AsyncIterator[SSEEvent]:
    """Yield events until the server ends the stream.

    Reads chunks and splits on blank lines itself: aiohttp caps a line at 128 KiB and a
    snapshot arrives as one line.
    """
    buffer = b""
    while True:
        chunk = await response.content.readany()
        if not chunk:
            return
        buffer += chunk
        while (match := _EVENT_END.search(buffer)) is not None:
            block, buffer = buffer[: match.start()], buffer[match.end() :]
            if block.strip():
                yield parse_event(block.decode("utf-8", errors="replace"))
