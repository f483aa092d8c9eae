"""Each fault: restore a healthy site, break something, push an emergency, measure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
import itertools
import time
from typing import Any

import aiohttp

from .figures import (
    FaultReport,
    as_number,
    count_changes,
    counters_lost,
    entries_lost,
    find_key,
    fmt_s,
    fmt_spread,
    spread,
)
from .stack import HAError, Stack, now_iso

NORMAL_SOC = 80.0  # the demo site's own starting SoC: the "others say 80 %" of the outlier case
LOW_SOC = 8.0  # the emergency the shedding is measured on (band below 10 %)
EMERGENCY_PCT = 10.0
LATER_SOC = 3.0  # a second, distinct reading: does HA still see new readings after the fault?
LATER_AFTER_S = 5.0
POLL_S = 0.25


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the command line chose."""

    stall_s: float
    burst_s: float
    burst_rate: float
    after_s: float
    outlier_s: float
    timeout_s: float
    report_s: float
    relay_min_s: float


@dataclass
class Monitor:
    """Polls the RTDB (commands and the clinic's record) every POLL_S seconds in the background."""

    stack: Stack
    samples: list[tuple[float, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> Monitor:
        """Start polling."""
        self.task = asyncio.create_task(self._run(), name="bench rtdb monitor")
        return self

    async def stop(self) -> None:
        """Stop polling."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                commands = await self.stack.rtdb.get("commands") or {}
                sensors = await self.stack.rtdb.get("sensors") or {}
                self.samples.append((time.monotonic(), commands, sensors))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            await asyncio.sleep(POLL_S)

    def first_off(self, zones: list[str], since: float) -> float | None:
        """When every one of `zones` first had command OFF in the RTDB (at or after since)."""
        for t, commands, _ in self.samples:
            if t >= since and all((commands.get(z) or {}).get("command") == "OFF" for z in zones):
                return t
        return None

    async def wait_off(self, zones: list[str], *, since: float, until: float) -> float | None:
        """Bounded wait for first_off."""
        while True:
            if (found := self.first_off(zones, since)) is not None:
                return found
            if time.monotonic() >= until:
                return None
            await asyncio.sleep(0.05)

    def clinic(self, zones: list[str], since: float) -> tuple[int, int, list[str]]:
        """(samples, samples with a critical relay off, critical zones ever commanded OFF)."""
        seen = off = 0
        commanded: set[str] = set()
        for t, commands, sensors in self.samples:
            if t < since:
                continue
            seen += 1
            if any((sensors.get(z) or {}).get("relayState") is False for z in zones):
                off += 1
            commanded |= {z for z in zones if (commands.get(z) or {}).get("command") == "OFF"}
        return seen, off, sorted(commanded)

    def command_changes(self) -> int:
        """How many new commands (zone, seq) appeared after the first sample."""
        if not self.samples:
            return 0
        seen = {(zone, (rec or {}).get("seq")) for zone, rec in self.samples[0][1].items()}
        first = len(seen)
        for _, commands, _ in self.samples[1:]:
            seen |= {(zone, (rec or {}).get("seq")) for zone, rec in commands.items()}
        return len(seen) - first


async def bounded(awaitable: Awaitable[Any], seconds: float, default: Any = None) -> Any:
    """Await with a deadline; `default` when it passed."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        return default


async def settle(stack: Stack, *, timeout_s: float, hold_s: float) -> dict[str, Any]:
    """Restore health: faults cleared, SoC normal, stream up, relays as HA wants them.

    Settled once HA's band is normal and each switch's desired_state has equalled its board's
    relayState, with no relay moving, for `hold_s` (the min on/off time and a margin): a zone
    held off by its minimum off time has had its chance to come back.
    """
    ent = stack.ent
    started = time.monotonic()
    deadline = started + timeout_s
    for zone in ent.switches:
        await stack.rtdb.hook("site/fault", {"zone_id": zone, "fault": None})
    await stack.rtdb.hook("site/soc", {"soc_pct": NORMAL_SOC})
    await stack.write_soc(NORMAL_SOC)
    reloaded = False
    if ent.stream is not None:
        up = await stack.watch.wait(ent.stream, "on".__eq__, since=0, until=started + 20)
        if up is None or stack.watch.state.get(ent.stream) != "on":
            await stack.reload_entry()  # a cancelled stream may stay down until a reload
            reloaded = True
            await stack.watch.wait(ent.stream, "on".__eq__, since=time.monotonic(), until=deadline)
            await stack.write_soc(NORMAL_SOC)
    # A low reading during the last fault may have left a day plan that keeps zones off for
    # its 5 minutes: once HA shows the normal SoC, ask for a new plan (microgrid.optimize).
    await stack.watch.wait(
        ent.battery, lambda s: (as_number(s) or 0) >= 20, since=0, until=started + 30
    )
    replanned = True
    try:
        await stack.service("microgrid", "optimize", {"config_entry": ent.entry_id})
    except (HAError, aiohttp.ClientError, TimeoutError):
        replanned = False
    settled = False
    stable_since = time.monotonic()
    relays: dict[str, Any] = {}
    while time.monotonic() < deadline:
        battery = as_number(stack.watch.state.get(ent.battery))
        sensors = await stack.rtdb.get("sensors") or {}
        now_relays = {z: (sensors.get(z) or {}).get("relayState") for z in ent.switches}
        agreed = all(
            stack.watch.attrs.get(ent.switches[z], {}).get("desired_state")
            == ("on" if now_relays[z] else "off")
            for z in ent.switches
        )
        normal = ent.band is None or stack.watch.state.get(ent.band) == "normal"
        if not (agreed and normal) or now_relays != relays:
            stable_since = time.monotonic()  # a zone held by its min off time flips later
        relays = now_relays
        if time.monotonic() - stable_since >= hold_s:
            settled = True
            break
        if battery is None or battery < 20:
            await stack.write_soc(NORMAL_SOC)
        await asyncio.sleep(1.0)
    return {
        "settle_s": time.monotonic() - started,
        "settled": settled,
        "reloaded": reloaded,
        "replanned": replanned,
    }


async def emergency(stack: Stack, soc_pct: float = LOW_SOC) -> int:
    """Push the site below 10 %: the fleet's model and, at once, every board's record."""
    await stack.rtdb.hook("site/soc", {"soc_pct": soc_pct})
    return await stack.write_soc(soc_pct)


def zones_on(sensors: dict[str, Any], zones: list[str]) -> list[str]:
    """The zones whose board reports its relay on."""
    return [z for z in zones if (sensors.get(z) or {}).get("relayState") is True]


async def snapshot(stack: Stack) -> dict[str, Any]:
    """What may be lost: the audit trail and the energy counters."""
    return {"audit": await stack.audit(), "energy": stack.energy()}


def report_losses(report: FaultReport, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Audit entries and energy that were there before and are not after."""
    if before["audit"] is None or after["audit"] is None:
        report.add("audit entries lost", "n/a (get_audit_log failed)", "audit_lost", None)
    else:
        lost = entries_lost(before["audit"], after["audit"])
        report.add(
            "audit entries lost",
            f"{lost} of {len(before['audit'])} (after: {len(after['audit'])})",
            "audit_lost",
            lost,
        )
    fell = counters_lost(before["energy"], after["energy"])
    report.add(
        "energy counters that fell",
        ", ".join(f"{k} -{v:.6f} kWh" for k, v in fell.items()) or "none",
        "energy_fell_kwh",
        fell,
    )


def report_clinic(
    report: FaultReport, stack: Stack, monitor: Monitor, since: float, prefix: str = ""
) -> None:
    """Whether the critical zone stayed on: its board's relayState and HA's switch."""
    crit = stack.ent.critical
    samples, off, commanded = monitor.clinic(crit, since)
    ha_states = sorted(
        {s for z in crit for s in stack.watch.states_of(stack.ent.switches[z], since)}
    )
    stayed = off == 0 and not commanded
    report.add(
        f"{prefix}clinic (critical) stayed on",
        f"{'yes' if stayed else 'NO'}: relayState off in {off} of {samples} RTDB samples; "
        f"commanded OFF: {', '.join(commanded) or 'never'}; HA switch showed: "
        f"{', '.join(ha_states) or '-'}",
        f"{prefix}clinic_on",
        {"stayed_on": stayed, "off_samples": off, "samples": samples, "ha_states": ha_states},
    )


def report_link(report: FaultReport, stack: Stack, since: float, until: float) -> None:
    """The stream sensor and entity availability during the fault."""
    ent = stack.ent
    if ent.stream is not None:
        states = stack.watch.states_of(ent.stream, since)
        off_at = stack.watch.first(ent.stream, lambda s: s != "on", since)
        report.add(
            "stream sensor",
            f"states {' -> '.join(states)}; first not 'on' after "
            f"{fmt_s(None if off_at is None else off_at - since, never='never (stayed on)')}",
            "stream_states",
            states,
        )
    worst, seconds = stack.watch.unavailable_window(since, until)
    report.add(
        "entities unavailable",
        f"max {worst} of {len(ent.all)} at once; {seconds:.1f} s with any",
        "unavailable",
        {"max": worst, "seconds": seconds, "of": len(ent.all)},
    )


@dataclass
class Start:
    """The healthy state a fault starts from."""

    health: dict[str, Any]
    zones_on: list[str]  # non-critical zones whose relay was on: the ones to shed
    before: dict[str, Any]  # snapshot() for the losses


async def prepare(stack: Stack, cfg: Settings) -> Start:
    """Settle the site, note which zones are on and what may be lost."""
    health = await settle(stack, timeout_s=120, hold_s=cfg.relay_min_s + 3)
    sensors = await stack.rtdb.get("sensors") or {}
    on = zones_on(sensors, stack.ent.non_critical)
    if not on:
        # Not one zone back at 80 % (seen after `stall`: the switches' reason says "plan" even
        # after microgrid.optimize): reload the entry, so the fault starts with zones to shed.
        stuck = {
            z: stack.watch.attrs.get(stack.ent.switches[z], {}).get("reason")
            for z in stack.ent.non_critical
        }
        await stack.reload_entry()
        await asyncio.sleep(3)
        health = await settle(stack, timeout_s=120, hold_s=cfg.relay_min_s + 3)
        health |= {"reloaded": True, "stuck_before_reload": stuck}
        sensors = await stack.rtdb.get("sensors") or {}
        on = zones_on(sensors, stack.ent.non_critical)
    held = {  # why HA keeps the others off (the switch's reason attribute), for the start row
        z: stack.watch.attrs.get(stack.ent.switches[z], {}).get("reason")
        for z in stack.ent.non_critical
        if z not in on
    }
    return Start(health | {"off_reasons": held}, on, await snapshot(stack))


def report_start(report: FaultReport, start: Start) -> None:
    """How long settling took and what was on."""
    health = start.health
    text = f"settled in {health['settle_s']:.1f} s"
    if "stuck_before_reload" in health:
        text += f" (entry reloaded: no zone came back, reasons {health['stuck_before_reload']})"
    elif health["reloaded"]:
        text += " (entry reloaded to restore the stream)"
    if not health["settled"]:
        text += " (NOT settled: relays disagreed with HA)"
    text += f"; non-critical zones on: {', '.join(start.zones_on) or 'none'}"
    text += "".join(f"; {z} off: {why}" for z, why in health["off_reasons"].items())
    report.add("start", text, "start", health | {"zones_on": start.zones_on})


def report_emergency(
    report: FaultReport,
    start: Start,
    *,
    t0: float,
    seen: float | None,
    shed: float | None,
    window_s: float,
) -> None:
    """When HA showed the low reading and when the OFF commands were in the RTDB."""
    never = f"never (> {window_s:.0f} s)"
    report.add(
        "HA reflects the low reading",
        fmt_s(None if seen is None else seen - t0, never=never),
        "reflect_s",
        None if seen is None else seen - t0,
    )
    report.add(
        "OFF commands in RTDB",
        (
            "n/a (no non-critical zone was on)"
            if not start.zones_on
            else fmt_s(None if shed is None else shed - t0, never=never)
            + f" ({', '.join(start.zones_on)})"
        ),
        "shed_s",
        None if shed is None else shed - t0,
    )


async def measure_emergency(
    stack: Stack,
    report: FaultReport,
    *,
    cfg: Settings,
    inject: Callable[[], Awaitable[None]],
    window_s: float,
    delay_s: float = 0.0,
) -> None:
    """The common run: settle, inject, push the emergency, time HA's reading and the shedding."""
    ent = stack.ent
    start = await prepare(stack, cfg)
    failed_before = len(stack.rtdb.failed)
    t_fault = time.monotonic()
    await inject()
    if delay_s:
        await asyncio.sleep(delay_s)
    # The RTDB polls start only now: an armed fail_next must meet HA's requests, not ours.
    monitor = Monitor(stack).start()
    t0 = time.monotonic()
    status = await emergency(stack)

    async def later_reading() -> float:
        await asyncio.sleep(max(0.0, t0 + LATER_AFTER_S - time.monotonic()))
        t1 = time.monotonic()
        await emergency(stack, LATER_SOC)
        return t1

    later = asyncio.create_task(later_reading())
    until = t0 + window_s
    seen = await stack.watch.wait(
        ent.battery, stack.watch.below(EMERGENCY_PCT), since=t0, until=until
    )
    shed = await monitor.wait_off(start.zones_on, since=t0, until=until) if start.zones_on else None
    t1 = await later
    seen_later = await stack.watch.wait(
        ent.battery, stack.watch.below(LATER_SOC + 1), since=t1, until=t1 + window_s
    )
    await asyncio.sleep(2.0)  # a little after, for the clinic's and the link's figures
    t_end = time.monotonic()
    await monitor.stop()
    after = await snapshot(stack)
    report_start(report, start)
    report_emergency(report, start, t0=t0, seen=seen, shed=shed, window_s=window_s)
    report.add(
        f"HA reflects a later reading ({LATER_SOC:g} % at t0+{LATER_AFTER_S:g} s)",
        fmt_s(None if seen_later is None else seen_later - t1, never=f"never (> {window_s:.0f} s)"),
        "later_reflect_s",
        None if seen_later is None else seen_later - t1,
    )
    report_clinic(report, stack, monitor, t_fault)
    report_link(report, stack, t_fault, t_end)
    report_losses(report, start.before, after)
    own = stack.rtdb.failed[failed_before:]
    if own or status >= 300:
        report.notes.append(
            f"the bench's own RTDB requests met errors {own} (last low write: HTTP {status})"
        )


# ---- the faults ------------------------------------------------------------------------------


async def fault_drop(stack: Stack, cfg: Settings) -> FaultReport:
    """Every stream's connection closed abruptly."""
    report = FaultReport("drop", "POST /.sim/faults/drop_streams, then the emergency at once")

    async def inject() -> None:
        await stack.rtdb.hook("faults/drop_streams")

    await measure_emergency(stack, report, cfg=cfg, inject=inject, window_s=cfg.timeout_s)
    return report


async def fault_stall(stack: Stack, cfg: Settings) -> FaultReport:
    """The open streams go silent (no data, no keep-alive) for stall_s."""
    report = FaultReport(
        "stall",
        f"POST /.sim/faults/stall_streams {{seconds: {cfg.stall_s:g}}}, then the emergency",
    )

    async def inject() -> None:
        await stack.rtdb.hook("faults/stall_streams", {"seconds": cfg.stall_s})

    await measure_emergency(
        stack, report, cfg=cfg, inject=inject, window_s=max(cfg.timeout_s, cfg.stall_s + 30)
    )
    return report


async def fault_fail_next(stack: Stack, cfg: Settings) -> FaultReport:
    """One REST 503: armed, then the streams dropped so HA's resync read is the next request."""
    report = FaultReport(
        "fail_next",
        "POST /.sim/faults/fail_next {count: 1, status: 503} + drop_streams (HA re-reads over "
        "REST at once); the emergency 2 s later",
    )

    async def inject() -> None:
        await stack.rtdb.hook("faults/fail_next", {"count": 1, "status": 503})
        await stack.rtdb.hook("faults/drop_streams")

    await measure_emergency(
        stack, report, cfg=cfg, inject=inject, window_s=cfg.timeout_s, delay_s=2.0
    )
    return report


async def fault_revoke_auth(stack: Stack, cfg: Settings) -> FaultReport:
    """The server revokes the token: auth_revoked on its streams."""
    report = FaultReport(
        "revoke_auth", "POST /.sim/faults/revoke_auth {token: owner}, then the emergency"
    )

    async def inject() -> None:
        await stack.rtdb.hook("faults/revoke_auth", {"token": "owner"})

    await measure_emergency(stack, report, cfg=cfg, inject=inject, window_s=cfg.timeout_s)
    return report


async def fault_cancel(stack: Stack, cfg: Settings) -> FaultReport:
    """The server cancels the sensors stream (rules changed)."""
    report = FaultReport(
        "cancel",
        "POST /.sim/faults/cancel_streams {path_prefix: sensors}, then the emergency",
    )

    async def inject() -> None:
        await stack.rtdb.hook("faults/cancel_streams", {"path_prefix": "sensors"})

    await measure_emergency(stack, report, cfg=cfg, inject=inject, window_s=cfg.timeout_s)
    return report


async def fault_burst(stack: Stack, cfg: Settings) -> FaultReport:
    """1,000 writes/s to sensors/ (every board's SoC, in the emergency band) for burst_s."""
    rate, seconds = cfg.burst_rate, cfg.burst_s
    report = FaultReport(
        "burst",
        f"{rate:g} PATCH/s to sensors/ (all four boards' SoC, 6.00000 + i x 1e-5 %) for "
        f"{seconds:g} s",
    )
    ent = stack.ent
    start = await prepare(stack, cfg)
    await stack.rtdb.hook("site/soc", {"soc_pct": 6.0})
    monitor = Monitor(stack).start()
    rss: list[tuple[float, float]] = []
    rss_start = stack.hass_rss()
    total = int(rate * seconds)
    written: dict[int, float] = {}
    errors = ok = 0
    counter = itertools.count()
    t0 = time.monotonic()
    sample_every = max(1, int(rate // 10))

    def value(i: int) -> float:
        return round(6.0 + i * 1e-5, 5)

    async def writer() -> None:
        nonlocal errors, ok
        while (i := next(counter)) < total:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {}
            for zone in ent.switches:
                body[f"{zone}/batteryPercentage"] = value(i)
                body[f"{zone}/timestamp"] = now_iso()
            sent = time.monotonic()
            try:
                status, _ = await stack.rtdb.request("PATCH", "sensors", body)
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if status >= 300 or status == 0:
                errors += 1
                continue
            ok += 1
            if i % sample_every == 0:
                written[i] = sent

    latencies: list[float] = []
    unanswered = 0

    async def probe() -> None:
        nonlocal unanswered
        sent = time.monotonic()
        try:
            async with stack.client.session.get(
                f"{stack.client.base_url}/api/states/{ent.battery}",
                headers={"Authorization": f"Bearer {stack.admin_token}"},
                timeout=aiohttp.ClientTimeout(total=seconds + cfg.after_s + 60),
            ) as resp:
                await resp.read()
            latencies.append(time.monotonic() - sent)
        except (aiohttp.ClientError, TimeoutError):
            unanswered += 1

    async def rss_loop() -> None:
        while True:
            if (mib := stack.hass_rss()) is not None:
                rss.append((time.monotonic(), mib))
            await asyncio.sleep(1.0)

    rss_task = asyncio.create_task(rss_loop())
    probes: list[asyncio.Task[None]] = []
    writers = [asyncio.create_task(writer()) for _ in range(32)]
    while not all(w.done() for w in writers):
        probes.append(asyncio.create_task(probe()))
        await asyncio.sleep(0.5)
    t_end = time.monotonic()
    await asyncio.gather(*writers, return_exceptions=True)
    # Until HA shows the last value (or after_s passed), then memory after_s after the end.
    last = max(written) if written else None
    shown = (
        await stack.watch.wait(
            ent.battery,
            lambda s: (n := as_number(s)) is not None and n >= value(last) - 1e-9,
            since=t0,
            until=t_end + cfg.after_s,
        )
        if last is not None
        else None
    )
    await asyncio.sleep(max(0.0, t_end + cfg.after_s - time.monotonic()))
    rss_after = stack.hass_rss()
    await bounded(asyncio.gather(*probes, return_exceptions=True), 60)
    rss_task.cancel()
    await monitor.stop()
    pending = sum(1 for p in probes if not p.done())
    for p in probes:
        p.cancel()
    # Lag: when HA first showed each sampled value (or a later one), minus when it was written.
    shown_at: dict[float, float] = {}
    for t, eid, state in stack.watch.events:
        if eid == ent.battery and t >= t0 and (n := as_number(state)) is not None:
            shown_at.setdefault(n, t)
    lags: list[float] = []
    missed = 0
    later = sorted(shown_at.items())
    for i, sent in sorted(written.items()):
        hits = [t for v, t in later if v >= value(i) - 1e-9 and t >= sent]
        if hits:
            lags.append(min(hits) - sent)
        else:
            missed += 1
    done = ok
    reflect = stack.watch.first(ent.battery, stack.watch.below(EMERGENCY_PCT), t0)
    shed = monitor.first_off(start.zones_on, t0) if start.zones_on else None
    after = await snapshot(stack)
    report_start(report, start)
    report.add(
        "writes",
        f"{done} of {total} ok ({errors} failed) in {t_end - t0:.1f} s = "
        f"{done / max(t_end - t0, 1e-9):.0f}/s",
        "writes",
        {"ok": done, "planned": total, "failed": errors, "seconds": t_end - t0},
    )
    report.add(
        "battery sensor lag behind RTDB",
        fmt_spread(spread(lags)) + (f"; {missed} sampled writes never shown" if missed else ""),
        "lag",
        spread(lags) | {"never_shown": missed},
    )
    report.add(
        "HA caught up (last sampled write shown)",
        fmt_s(None if shown is None else shown - t_end, never=f"not within {cfg.after_s:g} s")
        + " after the burst ended",
        "last_value_s",
        None if shown is None else shown - t_end,
    )
    report.add(
        "HA HTTP API latency (GET /api/states, every 0.5 s)",
        fmt_spread(spread(latencies))
        + (f"; {unanswered} failed" if unanswered else "")
        + (f"; {pending} still unanswered at the end" if pending else ""),
        "api_latency",
        spread(latencies) | {"failed": unanswered, "pending": pending},
    )
    peak = max((m for _, m in rss), default=None)
    report.add(
        "hass RSS",
        f"start {rss_start or 0:.0f} MiB, peak {peak or 0:.0f} MiB, "
        f"{cfg.after_s:g} s after {rss_after or 0:.0f} MiB",
        "rss_mib",
        {"start": rss_start, "peak": peak, "after": rss_after},
    )
    report_emergency(report, start, t0=t0, seen=reflect, shed=shed, window_s=time.monotonic() - t0)
    report_clinic(report, stack, monitor, t0)
    report_link(report, stack, t0, time.monotonic())
    report_losses(report, start.before, after)
    return report


async def fault_outlier(stack: Stack, cfg: Settings) -> FaultReport:
    """One board's SoC far from the others' (5 %, then 1e-7 %) while they say 80 %."""
    report = FaultReport(
        "outlier",
        f"Zone4's board offline (/.sim/site/fault) and its record rewritten every "
        f"{cfg.report_s:g} s with SoC 5 %, then 1e-7 %, for {cfg.outlier_s:g} s each; "
        f"the other boards report {NORMAL_SOC:g} %",
    )
    ent = stack.ent
    board = "Zone4" if "Zone4" in ent.switches else ent.non_critical[-1]
    for soc in (5.0, 1e-7):
        health = await settle(stack, timeout_s=120, hold_s=cfg.relay_min_s + 3)
        monitor = Monitor(stack).start()
        await stack.rtdb.hook("site/fault", {"zone_id": board, "fault": "offline"})
        t0 = time.monotonic()
        until = t0 + cfg.outlier_s
        while time.monotonic() < until:
            await stack.write_soc(soc, [board])
            await asyncio.sleep(min(cfg.report_s, max(0.0, until - time.monotonic())))
        await stack.rtdb.hook("site/fault", {"zone_id": board, "fault": None})
        await monitor.stop()
        label = f"{soc:g} %"
        band = stack.watch.states_of(ent.band, t0) if ent.band else []
        battery = stack.watch.states_of(ent.battery, t0)
        alerts = [a for t, a in stack.watch.alerts if t0 <= t <= until]
        critical = [a for a in alerts if a.get("severity") == "critical"]
        report.add(
            f"[{label}] start",
            f"settled in {health['settle_s']:.1f} s",
            f"start_{soc:g}",
            health,
        )
        report.add(
            f"[{label}] band flips",
            f"{count_changes(band)} in {cfg.outlier_s:g} s (states: "
            f"{' '.join(band[:12])}{' ...' if len(band) > 12 else ''})",
            f"band_flips_{soc:g}",
            count_changes(band),
        )
        numbers = [n for n in map(as_number, battery) if n is not None]
        report.add(
            f"[{label}] battery sensor changes",
            f"{count_changes(battery)} ({len(set(battery))} values"
            + (f", {min(numbers):g} .. {max(numbers):g} %)" if numbers else ")"),
            f"battery_changes_{soc:g}",
            count_changes(battery),
        )
        types = sorted({str(a.get("event_type")) for a in critical})
        report.add(
            f"[{label}] alerts fired",
            f"{len(alerts)}, critical {len(critical)} ({', '.join(types) or '-'})",
            f"alerts_{soc:g}",
            {"all": len(alerts), "critical": len(critical), "types": types},
        )
        report.add(
            f"[{label}] relay commands written",
            str(monitor.command_changes()),
            f"commands_{soc:g}",
            monitor.command_changes(),
        )
        report_clinic(report, stack, monitor, t0, prefix=f"[{label}] ")
    return report


async def fault_restart(stack: Stack, cfg: Settings) -> FaultReport:
    """SIGKILL Home Assistant while the boards report, start it again, compare what it kept."""
    report = FaultReport(
        "restart",
        f"admin override + household request, {cfg.report_s * 3:g} s of board reports "
        f"(every {cfg.report_s:g} s), SIGKILL hass, start it again",
    )
    ent = stack.ent
    health = await settle(stack, timeout_s=120, hold_s=cfg.relay_min_s + 3)
    zone_override = "Zone4" if "Zone4" in ent.switches else ent.non_critical[-1]
    household_zone = next(
        (
            z
            for z in ent.non_critical
            if stack.watch.attrs.get(ent.switches[z], {}).get("household")
        ),
        None,
    )
    actions: list[str] = []
    try:
        await stack.service(
            "microgrid",
            "override_zone",
            {
                "config_entry": ent.entry_id,
                "zone": zone_override,
                "state": "off",
                "reason": "bench: unclean restart",
                "duration": "02:00:00",
            },
        )
        actions.append(f"override {zone_override} off")
    except HAError as err:
        report.notes.append(f"override_zone failed: {err}")
    if household_zone:
        try:
            await stack.service(
                "switch",
                "turn_off",
                {"entity_id": ent.switches[household_zone]},
                token=stack.household_token,
            )
            actions.append(f"household request {household_zone} off")
        except HAError as err:
            report.notes.append(f"household turn_off failed: {err}")
    # Boards keep reporting (the fleet's own cadence); a few of our own reports on top.
    for _ in range(3):
        await stack.write_soc(NORMAL_SOC - 1)
        await asyncio.sleep(cfg.report_s)
    before = await snapshot(stack)
    diag_before = await stack.diagnostics()
    times = await stack.kill_and_restart(timeout_s=180)
    loaded = None
    if times["answering_s"] is not None:
        await stack.login()
        loaded_at = await stack.watch.wait(
            ent.battery, lambda s: as_number(s) is not None, since=0, until=time.monotonic() + 120
        )
        loaded = None if loaded_at is None else loaded_at - times["killed_at"]
    after = await snapshot(stack)
    diag_after = await stack.diagnostics()
    report.add(
        "start",
        f"settled in {health['settle_s']:.1f} s; then {', '.join(actions) or 'no actions'}",
        "start",
        health | {"actions": actions},
    )
    report.add(
        "HA answering again",
        fmt_s(times["answering_s"]) + f"; battery sensor numeric after {fmt_s(loaded)}",
        "restart_s",
        {k: v for k, v in times.items() if k != "killed_at"} | {"loaded_s": loaded},
    )
    report_losses(report, before, after)
    for key in ("energy_kwh", "requests", "overrides"):
        old, new = find_key(diag_before, key), find_key(diag_after, key)
        if key == "energy_kwh" and isinstance(old, dict) and isinstance(new, dict):
            text = ", ".join(
                f"{k}: {float(v):.6f} -> {float(new.get(k, 0.0)):.6f}"
                for k, v in old.items()
                if isinstance(v, int | float)
            )
        else:
            text = f"before {_short(old)}; after {_short(new)}"
        report.add(f"diagnostics {key}", text or "-", f"diag_{key}", {"before": old, "after": new})
    # Leave the site as the next run expects it.
    for call in (
        ("microgrid", "clear_override", {"config_entry": ent.entry_id, "zone": zone_override}),
        ("switch", "turn_on", {"entity_id": ent.switches.get(household_zone or "", "")}),
    ):
        try:
            await stack.service(*call, token=stack.household_token if call[0] == "switch" else "")
        except (HAError, aiohttp.ClientError):
            pass
    return report


def _short(value: Any) -> str:
    """A compact text of a diagnostics value."""
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}" if value else "{}"
        )
    return str(value)


RUNNERS: dict[str, Callable[[Stack, Settings], Awaitable[FaultReport]]] = {
    "drop": fault_drop,
    "stall": fault_stall,
    "fail_next": fault_fail_next,
    "revoke_auth": fault_revoke_auth,
    "cancel": fault_cancel,
    "burst": fault_burst,
    "outlier": fault_outlier,
    "restart": fault_restart,
}
