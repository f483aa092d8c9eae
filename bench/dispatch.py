"""`python -m bench.dispatch`: time the per-reading decision (policy + greedy + balancer).

Prints the mean and p95 time of `optimizer.dispatch.dispatch()` for random sites of 4, 16 and 64
zones (classes drawn at random, power limit 0.6 x the total rating, random SoC and requests), and
how the figures were obtained. A benchmark: it prints, it never passes or fails.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import platform
import random
import statistics
import sys
import time

from optimizer.dispatch import DispatchInput, dispatch
from optimizer.model import Band, PriorityClass, SiteReading, Thresholds, Zone, ZoneState

CALLS = 2000


def _site(n_zones: int, rng: random.Random) -> tuple[Zone, ...]:
    """A random site with at least one critical zone."""
    classes = list(PriorityClass)
    return tuple(
        Zone(
            zone_id=f"Zone{i + 1}",
            name=f"zone {i + 1}",
            priority=PriorityClass.CRITICAL if i == 0 else rng.choice(classes),
            rated_w=rng.uniform(50, 800),
        )
        for i in range(n_zones)
    )


def _inputs(zones: tuple[Zone, ...], rng: random.Random, now: datetime) -> DispatchInput:
    """One reading's worth of input."""
    limit = 0.6 * sum(z.rated_w for z in zones)
    states = {
        z.zone_id: ZoneState(
            zone_id=z.zone_id,
            relay_on=rng.random() < 0.7,
            power_w=rng.uniform(0, z.rated_w),
            last_change=now - timedelta(seconds=rng.uniform(0, 3600)),
            request_on=rng.choice([None, True, False]),
        )
        for z in zones
    }
    return DispatchInput(
        now=now,
        reading=SiteReading(
            soc_pct=rng.uniform(0, 100),
            solar_w=rng.uniform(0, limit),
            load_w=rng.uniform(0, limit),
            power_limit_w=limit,
            sun_up=rng.random() < 0.5,
        ),
        previous_band=rng.choice(list(Band)),
        thresholds=Thresholds(),
        zones=zones,
        states=states,
    )


def main() -> None:
    """Time dispatch() per site size and print the figures."""
    rng = random.Random(1)
    now = datetime(2025, 1, 27, 18, 0, tzinfo=UTC)
    print(f"python {sys.version.split()[0]} on {platform.machine()}, {CALLS} calls per size")
    for n_zones in (4, 16, 64):
        zones = _site(n_zones, rng)
        inputs = [_inputs(zones, rng, now) for _ in range(CALLS)]
        times_ms = []
        for inp in inputs:
            started = time.perf_counter()
            dispatch(inp)
            times_ms.append((time.perf_counter() - started) * 1000)
        times_ms.sort()
        print(
            f"{n_zones:3d} zones: mean {statistics.fmean(times_ms):.3f} ms, "
            f"p95 {times_ms[int(0.95 * len(times_ms))]:.3f} ms, max {times_ms[-1]:.3f} ms"
        )
    print("reproduce: .venv/bin/python -m bench.dispatch")


if __name__ == "__main__":
    main()
