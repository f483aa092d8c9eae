"""Reach into the isolated demo: listeners bound in the host namespace, piped to the inner ports.

A socket keeps the network namespace it was created in. `--isolated` binds 127.0.0.1:<port> on
the host before `unshare -n`, keeps the listening fds across the exec, and serves them from
inside, where each connection is piped to the same port on the namespace's own loopback. So a
browser (or a test) on the host reaches Home Assistant and the RTDB while nothing inside can
reach out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

FORWARD_ENV = "MICROGRID_DEMO_FORWARD"  # "<port>:<fd>,<port>:<fd>" handed across the exec
CHUNK = 65536


def bind_listeners(ports: list[int]) -> dict[int, socket.socket]:
    """Bind 127.0.0.1:<port> listeners in the current namespace (OSError if one is busy)."""
    bound: dict[int, socket.socket] = {}
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            bound[port] = sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
    except OSError:
        for sock in bound.values():
            sock.close()
        raise
    return bound


def export_listeners(bound: dict[int, socket.socket]) -> str:
    """Make the listeners survive exec; return the FORWARD_ENV value naming them."""
    for sock in bound.values():
        os.set_inheritable(sock.fileno(), True)
    return ",".join(f"{port}:{sock.fileno()}" for port, sock in bound.items())


def import_listeners(spec: str) -> dict[int, socket.socket]:
    """Rebuild the listeners from a FORWARD_ENV value (after the exec)."""
    listeners: dict[int, socket.socket] = {}
    for item in filter(None, spec.split(",")):
        port, fd = (int(x) for x in item.split(":"))
        sock = socket.socket(fileno=fd)
        os.set_inheritable(fd, False)  # children (hass, sim) must not hold the host listener
        listeners[port] = sock
    return listeners


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until EOF or error, then close the other side."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve_forward(listener: socket.socket, target_port: int) -> asyncio.Server:
    """Accept on `listener`; pipe each connection to 127.0.0.1:target_port of this namespace."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(handle, sock=listener)
