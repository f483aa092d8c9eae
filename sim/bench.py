"""Loopback figures for the simulated site: `python -m sim.bench` (prints, never asserts)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import aiohttp
import jwt

from .fleet import Fleet
from .rtdb import RTDBServer
from .sse import iter_events

OWNER = {"Authorization": "Bearer owner"}


def _ms(samples: list[float]) -> str:
    """Median and p95 in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


async def put_to_event(server: RTDBServer, session: aiohttp.ClientSession, n: int) -> list[float]:
    """Latency from a REST PUT to the matching SSE event on another connection."""
    samples: list[float] = []
    async with session.get(
        f"{server.url}/b.json", headers={**OWNER, "Accept": "text/event-stream"}
    ) as resp:
        events = iter_events(resp)
        await anext(events)  # snapshot
        for i in range(n):
            start = time.perf_counter()
            await session.put(f"{server.url}/b/v.json?print=silent", json=i, headers=OWNER)
            while True:
                event = await anext(events)
                if event.event == "put" and json.loads(event.data)["data"] == i:
                    break
            samples.append(time.perf_counter() - start)
    return samples


async def patch_rate(server: RTDBServer, session: aiohttp.ClientSession, n: int) -> float:
    """Sequential PATCH requests per second."""
    start = time.perf_counter()
    for i in range(n):
        await session.patch(f"{server.url}/p.json?print=silent", json={"k": i}, headers=OWNER)
    return n / (time.perf_counter() - start)


async def command_to_ack(server: RTDBServer, session: aiohttp.ClientSession, n: int) -> list[float]:
    """Latency from writing a signed command to the board's relayState echo (seen over SSE)."""
    fleet = Fleet(database_url=server.database_url(), secret="bench", report_interval_s=3600)
    await fleet.start()
    samples: list[float] = []
    try:
        board = fleet.boards["Zone3"]
        async with asyncio.timeout(10):
            while True:
                if board.stream_connects and server.get_value("sensors/Zone3") is not None:
                    break
                await asyncio.sleep(0.01)
        async with session.get(
            f"{server.url}/sensors/Zone3.json", headers={**OWNER, "Accept": "text/event-stream"}
        ) as resp:
            events = iter_events(resp)
            await anext(events)  # snapshot
            for seq in range(1, n + 1):
                command = "OFF" if seq % 2 else "ON"
                expires = int(time.time()) + 120
                claims = {"node": "Zone3", "command": command, "seq": seq, "exp": expires}
                record = {
                    "command": command,
                    "seq": seq,
                    "expires": expires,
                    "sig": jwt.encode(claims, "bench", algorithm="HS256"),
                }
                start = time.perf_counter()
                server.set_value("commands/Zone3", record)
                while True:
                    event = await anext(events)
                    data = json.loads(event.data) if event.event == "put" else None
                    if data and data["data"]["relayState"] is (command == "ON"):
                        break
                samples.append(time.perf_counter() - start)
    finally:
        await fleet.stop()
    return samples


async def main() -> None:
    """Run every measurement and print the figures."""
    server = RTDBServer()
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            latency = _ms(await put_to_event(server, session, 300))
            print(f"PUT -> SSE event (aiohttp client, 300 writes): {latency}")
            print(f"sequential PATCH: {await patch_rate(server, session, 1000):.0f} requests/s")
            ack = _ms(await command_to_ack(server, session, 50))
            print(f"signed command -> board ack seen on sensors/ stream (50 commands): {ack}")
    finally:
        await server.stop()
    print("reproduce: .venv/bin/python -m sim.bench")


if __name__ == "__main__":
    asyncio.run(main())
