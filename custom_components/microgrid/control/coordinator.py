"""The site coordinator: the Firebase stream feeds it; every reading is decided on at once."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
import math
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from ..const import (
    DOMAIN,
    EVENT_BAND_CHANGED,
    LOGGER,
    PATH_SENSORS,
    POLL_INTERVAL,
    TICK_INTERVAL,
)
from ..device import BoardReading
from ..learning.manager import EVENT_ANOMALY, MLManager
from ..learning.recorder import temperature_c
from ..link.errors import FirebaseAuthError, FirebaseError
from ..link.rtdb import FirebaseLink
from ..optimizer.controller import dispatch_input
from ..optimizer.dispatch import dispatch
from ..optimizer.fusion import BoardBattery, FusedBattery, FusionLimits, fuse
from ..optimizer.model import Band, Decision, Override, ZoneState
from ..optimizer.policy import BAND_ORDER, band_for
from ..people.audit import AuditLog
from ..planning.inputs import controller_site
from ..planning.manager import HORIZON_SLOTS, SLOT_MINUTES, PlanManager, PlanSource
from ..site import SiteConfig
from ..snapshot import MLView, SiteSnapshot, ZoneSnapshot
from ..storage import BoundedSave
from .commands import CommandWriter
from .energy import (
    BATTERY_CHARGE,
    BATTERY_DISCHARGE,
    SITE_CONSUMPTION,
    SITE_SOLAR,
    EnergyCounters,
    zone_key,
)
from .ledger import SHED_REASONS, DayLedger, ZoneSample
from .outliers import OutlierTracker
from .readings import BoardReadings, site_power

STORAGE_VERSION = 1
# The state is written at most this long after its first unsaved change, however often
# readings arrive (a power cut loses at most this much of the energy counters).
STATE_SAVE_DELAY_S = 30
# Readings are decided at most this often (a burst of writes is coalesced, latest record per
# board wins); a reading that lowers the operating band is decided at once.
DECIDE_INTERVAL_S = 0.25


class MicrogridCoordinator(DataUpdateCoordinator[SiteSnapshot]):
    """Holds the site's readings, decides every zone and keeps the relays there."""

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        *,
        site: SiteConfig,
        link: FirebaseLink,
        audit: AuditLog,
        secret: str,
    ) -> None:
        """Set up state; then async_load_state, the first refresh and async_start."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {site.site_name}",
            # No scheduled refresh: the stream pushes, and the coordinator runs its own REST
            # poll while the stream is down (DataUpdateCoordinator's poll is pushed back by
            # every pushed update, so it never fired while the 5 s tick ran).
            update_interval=None,
            always_update=True,
        )
        self.site = site
        self.link = link
        self.audit = audit
        self.energy = EnergyCounters(self._save_soon)
        self.boards = BoardReadings(site, self.energy)
        self.ledger = DayLedger(dt_util.get_default_time_zone())
        self.requests: dict[str, bool] = {}
        self.overrides: dict[str, Override] = {}
        self.band: Band | None = None
        self.decision: Decision | None = None
        self.stream_cancelled: str | None = None
        self.battery: FusedBattery | None = None
        # The battery's physics for judging the boards: PV may charge it as hard as the
        # inverter discharges it, so twice the power limit bounds any real change.
        self._fusion_limits = FusionLimits(
            capacity_wh=site.capacity_wh, max_power_w=2 * site.limit_w()
        )
        self._outliers = OutlierTracker()
        self.polls = 0
        self.poll_errors = 0
        self._poll_failures_in_row = 0
        self._poll_task: asyncio.Task[None] | None = None
        self._decide_handle: asyncio.TimerHandle | None = None
        self._last_decided = -math.inf  # loop time
        self.decisions = 0
        self._shut_down = False
        self._seq = 0
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.state"
        )
        self._saver = BoundedSave(self._store, self._state_to_save, STATE_SAVE_DELAY_S)
        self.planner = PlanManager(
            hass,
            PlanSource(
                site=site,
                snapshot=lambda: self.data,
                # late-bound: self.ml is created below
                learned_demand=lambda *args: self.ml.planner_demand(*args),  # noqa: PLW0108
                energy_today_wh=self.energy_today_wh,
                plan_updated=self.async_plan_updated,
                on_unload=entry.async_on_unload,
            ),
        )
        self.ml = MLManager(
            hass,
            entry_id=entry.entry_id,
            site=site,
            slot_minutes=SLOT_MINUTES,
            horizon_slots=HORIZON_SLOTS,
            # The planner's own PV forecast (ml/ forecasts demand only).
            pv_forecast=lambda now, slots: self.planner.history.forecast(
                now,
                slots,
                zones=(),
                latitude=hass.config.latitude,
                longitude=hass.config.longitude,
                pv_peak_prior_w=site.limit_w(),
            )[0],
            rejections=lambda: self.recent_rejections,
            create_task=lambda coro, name: entry.async_create_background_task(hass, coro, name),
            on_update=self._async_ml_updated,
        )
        self.commands = CommandWriter(
            hass,
            entry_id=entry.entry_id,
            link=link,
            secret=secret,
            create_task=lambda coro, name: entry.async_create_background_task(hass, coro, name),
            next_seq=self._next_seq,
            zone_name=self._zone_name,
        )

    # ---- persistence ---------------------------------------------------------------------

    async def async_load_state(self) -> None:
        """Restore the command sequence, requests, overrides and energy counters."""
        data = await self._store.async_load() or {}
        self._seq = int(data.get("seq", 0))
        self.requests = {k: bool(v) for k, v in data.get("requests", {}).items()}
        now = dt_util.utcnow()
        for zone_id, raw in data.get("overrides", {}).items():
            try:
                override = Override(
                    on=bool(raw["on"]),
                    reason=str(raw["reason"]),
                    expires=dt_util.parse_datetime(raw["expires"]) or now,
                    user_id=raw.get("user_id"),
                )
            except (KeyError, TypeError):
                continue
            if override.expires > now:
                self.overrides[zone_id] = override
        self.energy.restore(data.get("energy_kwh", {}))
        self.ledger.restore(data.get("ledger") or {})

    @callback
    def _state_to_save(self) -> dict[str, Any]:
        """The persisted part of the coordinator."""
        return {
            "seq": self._seq,
            "requests": self.requests,
            "overrides": {
                z: {
                    "on": o.on,
                    "reason": o.reason,
                    "expires": o.expires.isoformat(),
                    "user_id": o.user_id,
                }
                for z, o in self.overrides.items()
            },
            "energy_kwh": self.energy.kwh,
            "ledger": self.ledger.state(),
        }

    @callback
    def _save_soon(self, *, now: bool = False) -> None:
        """Persist within STATE_SAVE_DELAY_S of the first unsaved change (`now`: a person's
        request or override, written on the next loop turn)."""
        self._saver.schedule(now=now)

    async def async_shutdown(self) -> None:
        """Flush state on unload and at stop; decide no more (a late plan or stream callback of
        an unloaded entry must not audit or command anything)."""
        self._shut_down = True
        self._cancel_decide()
        await super().async_shutdown()
        await self._saver.async_flush(close=True)

    @callback
    def _next_seq(self, now: datetime) -> int:
        """A command sequence number that only grows, across restarts too."""
        # Milliseconds since the epoch keep it monotonic even if the last save was lost.
        self._seq = max(self._seq + 1, int(now.timestamp() * 1000))
        self._save_soon()
        return self._seq

    def _zone_name(self, zone_id: str) -> str:
        """A zone's display name."""
        zone = self.site.zone(zone_id)
        return zone.name if zone else zone_id

    # ---- lifecycle -----------------------------------------------------------------------

    @callback
    def async_start(self) -> None:
        """Start the stream and the tick; both stop with the entry."""
        entry = self.config_entry
        self.link.start(
            lambda coro: entry.async_create_background_task(self.hass, coro, f"{DOMAIN} stream")
        )
        entry.async_on_unload(async_track_time_interval(self.hass, self._async_tick, TICK_INTERVAL))
        entry.async_on_unload(
            async_track_time_interval(self.hass, self._async_poll_tick, POLL_INTERVAL)
        )
        entry.async_on_unload(self._cancel_decide)
        self.planner.async_start()
        entry.async_on_unload(self.ml.async_start())
        entry.async_create_background_task(
            self.hass, self.planner.async_replan("start"), f"{DOMAIN} first plan"
        )

    async def _async_update_data(self) -> SiteSnapshot:
        """Read sensors/ over REST at setup (a refresh asked for later keeps the last data)."""
        if self.data is not None:
            await self._async_poll()  # decides and publishes itself when it got data
            return self.data
        try:
            raw = await self.link.async_get(PATH_SENSORS)
        except FirebaseAuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except FirebaseError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err)},
            ) from err
        mirror = raw if isinstance(raw, dict) else {}
        now = dt_util.utcnow()
        self._ingest(now, mirror, set(mirror))
        return self._evaluate(now)

    # ---- the REST poll while the stream is down ------------------------------------------

    @callback
    def _async_poll_tick(self, _now: datetime) -> None:
        """Every POLL_INTERVAL: poll while the stream is down."""
        if not self.link.connected:
            self._poll_now()

    @property
    def polling(self) -> bool:
        """True while a REST poll is on its way."""
        return self._poll_task is not None and not self._poll_task.done()

    @callback
    def _poll_now(self) -> None:
        """Start a poll unless one is running."""
        if self.polling:
            return
        self._poll_task = self.config_entry.async_create_background_task(
            self.hass, self._async_poll(), f"{DOMAIN} poll"
        )

    async def _async_poll(self) -> None:
        """Read sensors/ once and decide; a failure keeps the last good data (never raises)."""
        self.polls += 1
        try:
            raw = await self.link.async_get(PATH_SENSORS)
        except FirebaseError as err:
            self.poll_errors += 1
            self._poll_failures_in_row += 1
            log = LOGGER.warning if self._poll_failures_in_row == 1 else LOGGER.debug
            log("Polling the sensors of %s failed: %s", self.site.site_name, err)
            if isinstance(err, FirebaseAuthError):
                self.config_entry.async_start_reauth(self.hass)
            return
        if self._poll_failures_in_row:
            LOGGER.info("Polling the sensors of %s works again", self.site.site_name)
        self._poll_failures_in_row = 0
        mirror = raw if isinstance(raw, dict) else {}
        self._ingest(dt_util.utcnow(), mirror, set(mirror))
        if self.data is not None:
            self._decide_now()

    # ---- deciding and publishing ---------------------------------------------------------

    @callback
    def _publish(self, snapshot: SiteSnapshot) -> None:
        """Hand a snapshot to the entities (no refresh scheduling, unlike set_updated_data)."""
        self.data = snapshot
        self.last_update_success = True
        self.async_update_listeners()

    @callback
    def _decide_now(self) -> None:
        """Decide on everything known now and publish it."""
        self._cancel_decide()
        if self._shut_down:
            return
        self._last_decided = self.hass.loop.time()
        self.decisions += 1
        self._publish(self._evaluate(dt_util.utcnow()))

    @callback
    def _decide_soon(self) -> None:
        """Decide on the next loop turn, or DECIDE_INTERVAL_S after the last decision."""
        if self._decide_handle is not None:
            return  # already due: it will see this reading too
        loop = self.hass.loop
        delay = max(0.0, self._last_decided + DECIDE_INTERVAL_S - loop.time())
        self._decide_handle = loop.call_later(delay, self._decide_now)

    @callback
    def _cancel_decide(self) -> None:
        """Drop a decision that is due (it is made now, or the entry unloads)."""
        if self._decide_handle is not None:
            self._decide_handle.cancel()
            self._decide_handle = None

    # ---- stream callbacks ----------------------------------------------------------------

    @callback
    def on_data(self, mirror: dict[str, Any], keys: set[str]) -> None:
        """Every stream event: keep the changed records; decide soon, or now on a band drop."""
        now = dt_util.utcnow()
        changed = self._ingest(now, mirror, keys)
        if self.data is None:
            return  # the first refresh decides
        if self._lowers_band(now, changed):
            self._decide_now()
        else:
            self._decide_soon()

    @callback
    def on_connection(self, up: bool) -> None:
        """Stream up: clear a cancel repair. Down: poll now, and every POLL_INTERVAL."""
        if up:
            if self.stream_cancelled:
                self.stream_cancelled = None
                ir.async_delete_issue(self.hass, DOMAIN, self._cancel_issue_id)
        else:
            self._poll_now()
        if self.data is not None:
            self._decide_now()

    @callback
    def on_cancel(self, reason: str) -> None:
        """The database cancelled the stream (rules changed): a repair issue until it is back."""
        if self.stream_cancelled is None:
            LOGGER.error("Firebase cancelled the sensors stream: %s", reason)
        self.stream_cancelled = reason or "cancel"
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._cancel_issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="stream_cancelled",
            translation_placeholders={"site": self.site.site_name, "reason": reason or "-"},
        )

    @property
    def _cancel_issue_id(self) -> str:
        """The stream-cancelled repair issue of this entry."""
        return f"stream_cancelled_{self.config_entry.entry_id}"

    @callback
    def _async_tick(self, _now: datetime) -> None:
        """Timers: overrides expire, boards go stale, commands retry and heartbeat."""
        if self.data is None:
            return
        self._decide_now()

    # ---- what the boards said (control/readings.py) ----------------------------------------

    @property
    def readings(self) -> dict[str, BoardReading]:
        """Each configured zone's latest valid record."""
        return self.boards.latest

    @property
    def rejections(self) -> Counter[str]:
        """Rejected records by `zone:reason`."""
        return self.boards.rejections

    @property
    def recent_rejections(self) -> deque[dict[str, Any]]:
        """The last rejected records, newest last."""
        return self.boards.recent_rejections

    @property
    def unknown_zones(self) -> set[str]:
        """Boards heard that are not configured zones (bounded)."""
        return self.boards.unknown_zones

    @property
    def outliers(self) -> dict[str, str]:
        """Boards flagged as disagreeing with the others: zone -> why."""
        return self._outliers.flagged

    @property
    def energy_kwh(self) -> dict[str, float]:
        """The energy counters (kWh) by key."""
        return self.energy.kwh

    @callback
    def _ingest(self, now: datetime, mirror: dict[str, Any], keys: set[str]) -> list[BoardReading]:
        """Keep the boards' new valid records, integrate site energy; return the new ones."""
        changed = self.boards.ingest(now, mirror, keys)
        self.energy.integrate_site(now, *self._site_power(self._live(now)))
        return changed

    def is_online(self, zone_id: str, now: datetime) -> bool:
        """A board is online while its last record is fresh."""
        return self.boards.is_online(zone_id, now)

    def _live(self, now: datetime) -> dict[str, BoardReading]:
        """The records of the boards online now, by zone."""
        return self.boards.live(now)

    def _site_power(self, live: Mapping[str, BoardReading]) -> tuple[float | None, float | None]:
        """(solar W, load W) of the online boards, PV from a board not flagged."""
        return site_power(live, self.outliers)

    # ---- one battery, many boards --------------------------------------------------------

    def _fuse(self, now: datetime, live: Mapping[str, BoardReading]) -> FusedBattery | None:
        """The shared battery as the online boards, taken together, see it."""
        boards = [
            BoardBattery(board=z, soc_pct=r.soc_pct, voltage_v=r.battery_voltage_v)
            for z, r in live.items()
        ]
        return fuse(boards, self.battery, self._fusion_limits, now)

    def _lowers_band(self, now: datetime, changed: list[BoardReading]) -> bool:
        """True when these new records take the site to a lower band: decide on them at once."""
        if self.band is None:
            return True
        if self.band is Band.EMERGENCY or not changed:
            return False
        thresholds = self.site.thresholds
        if min(r.soc_pct for r in changed) >= max(
            thresholds.conservation_pct, thresholds.emergency_pct
        ):
            return False  # no record below a threshold: the fused value cannot drop past one
        battery = self._fuse(now, self._live(now))
        if battery is None:
            return False
        band = band_for(battery.soc_pct, self.band, thresholds)
        return BAND_ORDER[band] < BAND_ORDER[self.band]

    @callback
    def _track_outliers(
        self, now: datetime, battery: FusedBattery | None, live: Mapping[str, BoardReading]
    ) -> None:
        """Flag a board whose records keep disagreeing with the fused battery (unflagged when
        it agrees again): logged, audited and fired as a `microgrid_anomaly` event."""
        for zone_id, reason, reading in self._outliers.track(now, battery, live):
            self._flag_outlier(now, zone_id, reason, reading, battery)

    @callback
    def _flag_outlier(
        self,
        now: datetime,
        zone_id: str,
        reason: str,
        reading: BoardReading,
        battery: FusedBattery | None,
    ) -> None:
        """A board the battery fusion ignores from now on until it agrees again."""
        site_soc = battery.soc_pct if battery else None
        LOGGER.warning(
            "Board %s disagrees with the other boards (%s: it says %.1f %%, the site %s %%); "
            "its battery readings are ignored",
            zone_id,
            reason,
            reading.soc_pct,
            "?" if site_soc is None else f"{site_soc:.1f}",
        )
        self.hass.bus.async_fire(
            EVENT_ANOMALY,
            {
                "entry_id": self.config_entry.entry_id,
                "zone": zone_id,
                "type": "battery_outlier",
                "score": None,
                "at": now.isoformat(),
                "detail": {
                    "reason": reason,
                    "board_soc_pct": reading.soc_pct,
                    "board_voltage_v": reading.battery_voltage_v,
                    "site_soc_pct": site_soc,
                },
            },
        )
        self.audit.record(
            now=now,
            actor="system",
            actor_name="Microgrid",
            action="board_outlier",
            zone_id=zone_id,
            message=f"{self._zone_name(zone_id)}: battery readings ignored ({reason})",
            reason=reason,
            board_soc_pct=reading.soc_pct,
            site_soc_pct=site_soc,
        )

    # ---- decide --------------------------------------------------------------------------

    @callback
    def _evaluate(self, now: datetime) -> SiteSnapshot:
        """Run the policy, greedy dispatch and balancer; reconcile commands; build the snapshot."""
        self._expire_overrides(now)
        live = self._live(now)
        battery = self._fuse(now, live)
        if battery is not None:
            self.battery = battery  # kept while no board is fresh: the physics reference
        self._track_outliers(now, battery, live)
        solar_w, load_w = self._site_power(live)
        soc = battery.soc_pct if battery else math.nan
        states = {
            zone.zone_id: ZoneState(
                zone_id=zone.zone_id,
                relay_on=bool(r.relay_on) if (r := self.readings.get(zone.zone_id)) else False,
                power_w=r.output_power_w if r else 0.0,
                last_change=self.boards.relay_changed_at.get(zone.zone_id),
                request_on=self.requests.get(zone.zone_id),
                override=self.overrides.get(zone.zone_id),
            )
            for zone in self.site.zones
        }
        decision = dispatch(
            dispatch_input(
                controller_site(self.site, self.hass.config),
                now=now,
                soc_pct=soc,
                solar_w=solar_w or 0.0,
                load_w=load_w or 0.0,
                states=states,
                previous_band=self.band,
                planned_on=self.planner.planned_on(now),
                planned_w=self.planner.planned_w(now),
            )
        )
        # Without any fresh board the SoC is unknown: keep the last band rather than guess.
        if battery is not None:
            self._record_changes(now, decision, soc)
            band_changed = self.band is not None and self.band != decision.band
            self.band = decision.band
            self.planner.history.add(
                now,
                solar_w,
                {
                    z.zone_id: r.output_power_w
                    for z in self.site.zones
                    if (r := live.get(z.zone_id)) and r.relay_on
                },
            )
            self.planner.note_change(now, soc, band_changed)
            self.ml.observe(now, self._ml_sample(live, battery, solar_w, load_w))
        self.decision = decision
        self._account(now, decision, soc if battery is not None else None)
        online = {z.zone_id: z.zone_id in live for z in self.site.zones}
        confirmed = {
            z.zone_id: (r.relay_on if (r := self.readings.get(z.zone_id)) else None)
            for z in self.site.zones
        }
        if self.site.control_auto and battery is not None:
            self.commands.reconcile(
                now,
                {z: (d.on, d.reason) for z, d in decision.zones.items()},
                confirmed,
                online,
            )
        return self._snapshot(
            now,
            decision=decision,
            battery=battery,
            solar_w=solar_w,
            load_w=load_w,
            online=online,
            confirmed=confirmed,
        )

    @callback
    def _account(self, now: datetime, decision: Decision, soc: float | None) -> None:
        """The day's ledger: what each zone got and what it would have drawn while shed."""
        zones = {}
        for zone in self.site.zones:
            reading = self.readings.get(zone.zone_id)
            decided = decision.zones.get(zone.zone_id)
            shed = decided is not None and not decided.on and decided.reason in SHED_REASONS
            zones[zone.zone_id] = ZoneSample(
                priority=zone.priority,
                household=zone.household,
                relay_on=reading.relay_on if reading else None,
                decided_on=decided.on if decided else None,
                reason=decided.reason if decided else None,
                # Only a shed zone's usual draw counts (reading the history is not free: this
                # runs on every decision).
                expected_w=(
                    self.planner.history.mean_on_w(zone.zone_id, default=zone.rated_w)
                    if shed
                    else 0.0
                ),
            )
        served = {z.zone_id: 1000 * self.energy.total(zone_key(z.zone_id)) for z in self.site.zones}
        if self.ledger.observe(now, soc_pct=soc, band=self.band, zones=zones, served_wh=served):
            self._save_soon()  # a day closed: keep its report

    def _ml_sample(
        self,
        live: Mapping[str, BoardReading],
        battery: FusedBattery,
        solar_w: float | None,
        load_w: float | None,
    ) -> dict[str, float | None]:
        """One sample for the learning history (online boards only)."""
        sample: dict[str, float | None] = {
            "soc": battery.soc_pct,
            "voltage": battery.voltage_v,
            "pv": solar_w,
            "load": load_w,
        }
        if self.site.temperature_entity_id:
            sample["temperature"] = temperature_c(
                self.hass.states.get(self.site.temperature_entity_id)
            )
        for zone in self.site.zones:
            reading = live.get(zone.zone_id)
            if reading is not None:
                sample[f"power:{zone.zone_id}"] = reading.output_power_w
                sample[f"relay:{zone.zone_id}"] = 1.0 if reading.relay_on else 0.0
        return sample

    @callback
    def _expire_overrides(self, now: datetime) -> None:
        """Drop overrides past their expiry, audited."""
        for zone_id, override in list(self.overrides.items()):
            if override.expires <= now:
                del self.overrides[zone_id]
                self._save_soon()
                self.audit.record(
                    now=now,
                    actor="system",
                    actor_name="Microgrid",
                    action="override_expired",
                    zone_id=zone_id,
                    on=override.on,
                    reason=override.reason,
                )

    @callback
    def _record_changes(self, now: datetime, decision: Decision, soc: float) -> None:
        """Audit band changes and every change of a zone's decided state."""
        if decision.band != self.band:
            LOGGER.info("Operating band %s -> %s at SoC %.1f %%", self.band, decision.band, soc)
            self.hass.bus.async_fire(
                EVENT_BAND_CHANGED,
                {
                    "entry_id": self.config_entry.entry_id,
                    "from": self.band,
                    "to": decision.band,
                    "soc_pct": soc,
                },
            )
            self.audit.record(
                now=now,
                actor="policy",
                actor_name="Microgrid policy",
                action="band_changed",
                message=f"operating band {decision.band} (battery {soc:.0f} %)",
                previous=self.band,
                band=decision.band,
                soc_pct=soc,
            )
        previous = self.decision.zones if self.decision else {}
        for zone_id, zone_decision in decision.zones.items():
            before = previous.get(zone_id)
            if before is not None and before.on == zone_decision.on:
                continue
            self.audit.record(
                now=now,
                actor="policy" if zone_decision.forced else "optimizer",
                actor_name="Microgrid policy" if zone_decision.forced else "Microgrid optimizer",
                action="zone_decision",
                zone_id=zone_id,
                message=(
                    f"{self._zone_name(zone_id)} "
                    f"{'on' if zone_decision.on else 'off'} ({zone_decision.reason})"
                ),
                on=zone_decision.on,
                reason=zone_decision.reason,
                forced=zone_decision.forced,
                band=decision.band,
                soc_pct=soc,
                control="auto" if self.site.control_auto else "monitor",
            )

    def _snapshot(
        self,
        now: datetime,
        *,
        decision: Decision,
        battery: FusedBattery | None,
        solar_w: float | None,
        load_w: float | None,
        online: dict[str, bool],
        confirmed: dict[str, bool | None],
    ) -> SiteSnapshot:
        """The immutable view the entities read."""
        zones = {}
        for zone in self.site.zones:
            zd = decision.zones.get(zone.zone_id)
            zones[zone.zone_id] = ZoneSnapshot(
                zone=zone,
                reading=self.readings.get(zone.zone_id),
                online=online[zone.zone_id],
                relay_on=confirmed[zone.zone_id],
                desired_on=zd.on if zd else None,
                reason=zd.reason if zd else None,
                forced=zd.forced if zd else False,
                pending=self.commands.pending.get(zone.zone_id),
                energy_kwh=self.energy.total(zone_key(zone.zone_id)),
            )
        soc = battery.soc_pct if battery else None
        return SiteSnapshot(
            now=now,
            connected=self.link.connected,
            soc_pct=soc,
            voltage_v=battery.voltage_v if battery else None,
            solar_w=solar_w,
            load_w=load_w,
            band=self.band,
            decision=decision,
            zones=zones,
            solar_energy_kwh=self.energy.total(SITE_SOLAR),
            consumption_energy_kwh=self.energy.total(SITE_CONSUMPTION),
            battery_charge_energy_kwh=self.energy.total(BATTERY_CHARGE),
            battery_discharge_energy_kwh=self.energy.total(BATTERY_DISCHARGE),
            ml=self._ml_view(now, soc),
            **self._plan_view(),
        )

    @callback
    def _async_ml_updated(self) -> None:
        """New learning results: publish them with the last snapshot."""
        if self.data is not None:
            self.async_set_updated_data(
                replace(self.data, ml=self._ml_view(dt_util.utcnow(), self.data.soc_pct))
            )

    def _ml_view(self, now: datetime, soc: float | None) -> MLView:
        """What the learning entities show, with flagged outlier boards as zone anomalies."""
        view = self.ml.view(now, soc)
        if not self.outliers:
            return view
        anomalies = dict(view.zone_anomalies)
        for zone_id, reason in self.outliers.items():
            found = anomalies.get(zone_id)
            anomalies[zone_id] = {
                **(found or {"score": None, "at": now.isoformat()}),
                "type": "battery_outlier" if found is None else found["type"],
                "types": [*(found or {}).get("types", []), "battery_outlier"],
                "battery_outlier": reason,
            }
        return replace(view, zone_anomalies=anomalies)

    def _plan_view(self) -> dict[str, Any]:
        """What the plan sensors show."""
        planner = self.planner
        result = planner.plan
        attrs = {
            "planned_at": planner.planned_at.isoformat() if planner.planned_at else None,
            "pinned_until": planner.pinned_until.isoformat() if planner.pinned_until else None,
            "runs": planner.runs,
            "duration_ms": round(planner.last_duration_ms, 1)
            if planner.last_duration_ms is not None
            else None,
            "last_error": planner.last_error,
            "unmet": list(result.unmet) if result else [],
        }
        return {
            "plan_status": planner.status,
            "plan_attrs": attrs,
            "expected_unserved_wh": round(sum(result.unserved_wh.values()), 1) if result else None,
            "unserved_by_class": (
                {c.value: round(v, 1) for c, v in result.unserved_wh.items()} if result else None
            ),
        }

    @callback
    def async_plan_updated(self) -> None:
        """A new plan: decide again at once with it."""
        if self.data is not None:
            self._decide_now()

    def energy_today_wh(self, zone_id: str, now: datetime) -> float:
        """A zone's energy since the first look today (local day)."""
        return self.energy.today_wh(zone_id, now)

    # ---- people's requests ---------------------------------------------------------------

    @callback
    def async_set_request(
        self, zone_id: str, on: bool | None, *, actor: str, actor_name: str
    ) -> None:
        """A household's or admin's toggle (None: back to automatic), decided at once."""
        now = dt_util.utcnow()
        if on is None:
            self.requests.pop(zone_id, None)
        else:
            self.requests[zone_id] = on
        self._save_soon(now=True)
        self.audit.record(
            now=now,
            actor=actor,
            actor_name=actor_name,
            action="zone_request",
            zone_id=zone_id,
            message=f"{actor_name} asked {self._zone_name(zone_id)} "
            f"{'auto' if on is None else ('on' if on else 'off')}",
            on=on,
        )
        self._decide_now()

    @callback
    def async_set_override(
        self,
        zone_id: str,
        on: bool,
        *,
        reason: str,
        duration: timedelta,
        actor: str,
        actor_name: str,
    ) -> Override:
        """An admin override: forces the zone until it expires, audited."""
        now = dt_util.utcnow()
        override = Override(on=on, reason=reason, expires=now + duration, user_id=actor)
        self.overrides[zone_id] = override
        self._save_soon(now=True)
        self.audit.record(
            now=now,
            actor=actor,
            actor_name=actor_name,
            action="override_set",
            zone_id=zone_id,
            message=f"{actor_name} forced {self._zone_name(zone_id)} {'on' if on else 'off'}: "
            f"{reason}",
            on=on,
            reason=reason,
            expires=override.expires.isoformat(),
        )
        self._decide_now()
        return override

    @callback
    def async_clear_override(self, zone_id: str, *, actor: str, actor_name: str) -> bool:
        """Remove an override; False when there was none."""
        if self.overrides.pop(zone_id, None) is None:
            return False
        now = dt_util.utcnow()
        self._save_soon(now=True)
        self.audit.record(
            now=now,
            actor=actor,
            actor_name=actor_name,
            action="override_cleared",
            zone_id=zone_id,
            message=f"{actor_name} cleared the override of {self._zone_name(zone_id)}",
        )
        self._decide_now()
        return True

    def diagnostics(self) -> dict[str, Any]:
        """Internal state for the diagnostics dump (no secrets here)."""
        return {
            "band": self.band,
            "readings": {
                z: {
                    "soc_pct": r.soc_pct,
                    "battery_voltage_v": r.battery_voltage_v,
                    "output_power_w": r.output_power_w,
                    "solar_w": r.solar_w,
                    "relay_on": r.relay_on,
                    "measured_at": r.measured_at.isoformat(),
                    "received_at": r.received_at.isoformat(),
                    "mode": r.mode,
                }
                for z, r in self.readings.items()
            },
            "requests": self.requests,
            "overrides": {
                z: {"on": o.on, "reason": o.reason, "expires": o.expires.isoformat()}
                for z, o in self.overrides.items()
            },
            "rejections": dict(self.rejections),
            "recent_rejections": list(self.recent_rejections),
            "unknown_zones": sorted(self.unknown_zones),
            "battery": {
                "soc_pct": self.battery.soc_pct if self.battery else None,
                "voltage_v": self.battery.voltage_v if self.battery else None,
                "boards": list(self.battery.boards) if self.battery else [],
                "disagreeing": dict(self.battery.outliers) if self.battery else {},
                "flagged_outliers": dict(self.outliers),
            },
            "stream": {
                "connected": self.link.connected,
                "reconnects": self.link.reconnects,
                "cancels": self.link.cancels,
                "watchdog_s": self.link.watchdog_s,
                "last_error": self.link.last_error,
                "cancelled": self.stream_cancelled,
                "polls": self.polls,
                "poll_errors": self.poll_errors,
                "decisions": self.decisions,
            },
            "commands": {
                "pending": {z: p.as_dict() for z, p in self.commands.pending.items()},
                "writes": self.commands.writes,
                "write_errors": self.commands.write_errors,
                "failed": sorted(self.commands.failed),
            },
            "energy_kwh": self.energy_kwh,
            "learning": self.ml.diagnostics(),
        }
