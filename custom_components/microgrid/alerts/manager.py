"""The alert manager: raises, delivers (with backup channels), climbs the escalation ladder and
records a site's alerts."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
import logging
from typing import Any

from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey
from homeassistant.util.ulid import ulid_now
import voluptuous as vol

from ..const import DOMAIN, EVENT_COMMAND_FAILED, LOGGER
from ..learning.manager import EVENT_ANOMALY
from ..optimizer.model import PriorityClass
from ..people.audit import AuditLog
from ..people.permissions import Actor, households_of
from ..site import SiteConfig
from ..snapshot import SiteSnapshot, ZoneSnapshot
from ..storage import BoundedSave
from .channels import AlertChannel
from .channels.event import EventEntityChannel
from .channels.notify import NotifyChannel, member_notify_targets
from .channels.persistent import PersistentNotificationChannel
from .ladder import (
    FIRST_DELIVERY,
    PlannedRung,
    Rung,
    RungStatus,
    backup_kind,
    due_rungs,
    next_due,
    plan_rungs,
)
from .model import ERROR_MAX_CHARS, MAX_ATTEMPTS, Alert, AlertType, Attempt, FiredRung, Severity
from .options import AlertOptions
from .rules import (
    SITE_EMERGENCIES,
    ZoneFailureAction,
    acknowledge_refusal,
    active_anomaly_keys,
    anomaly_key,
    battery_levels,
    battery_step,
    climbs_ladder,
    concerns_essential_service,
    essential_zones_unpowered,
    zone_failure_action,
    zone_failure_cause,
)

STORAGE_VERSION = 1
MAX_ALERTS = 500
SAVE_DELAY_S = 10

DATA_ALERTS: HassKey[dict[str, AlertManager]] = HassKey(f"{DOMAIN}_alerts")

# An entry-owned task factory: (coroutine, name) -> task, cancelled when the entry unloads.
type CreateTask = Callable[[Coroutine[Any, Any, Alert], str], asyncio.Task[Alert]]
# Sends a critical zone's ON command again (its restart attempt); False when it cannot (the
# site only monitors). Wired by services/alerts.py to the coordinator's command writer.
type RestartZone = Callable[[str], bool]
# An SMS channel to one E.164 number (Twilio), for the ladder and the backups.
type SmsTo = Callable[[str], AlertChannel]


@dataclass(frozen=True, kw_only=True, slots=True)
class _AddedChannel:
    """A channel added with add_channel and which alerts it takes."""

    channel: AlertChannel
    escalation_only: bool
    min_severity: Severity
    site_target: bool

    def takes(self, *, escalated: bool, severity: Severity, site_targets: bool) -> bool:
        """Whether an alert of this kind goes through the channel."""
        return (
            (escalated or not self.escalation_only)
            and severity.rank >= self.min_severity.rank
            and (site_targets or not self.site_target)
        )


@dataclass(kw_only=True)
class _State:
    """What survives a restart besides the alerts themselves."""

    armed: set[AlertType] = field(default_factory=lambda: set(AlertType))
    zone_alerts: dict[str, str] = field(default_factory=dict)  # zone_id -> open failure alert
    anomaly_alerts: dict[str, str] = field(default_factory=dict)  # anomaly_key -> its alert


class AlertManager:
    """Raises, delivers, escalates and records a site's alerts."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        entry_id: str,
        site: SiteConfig,
        audit: AuditLog,
        options: AlertOptions,
        snapshot: Callable[[], SiteSnapshot | None],
        subscribe: Callable[[CALLBACK_TYPE], CALLBACK_TYPE],
        create_task: CreateTask,
        restart_zone: RestartZone | None = None,
    ) -> None:
        """Prepare for one site: `snapshot` reads its latest state, `subscribe` adds a listener
        called on each update (returns its remover), `create_task` makes entry-owned tasks,
        `restart_zone` re-sends a failing critical zone's ON command (None: no restarts).
        Call async_start once the platforms are set up, async_stop when the entry unloads."""
        self.hass = hass
        self.entry_id = entry_id
        self.site = site
        self.options = options
        self._audit = audit
        self._snapshot = snapshot
        self._subscribe = subscribe
        self._create_task = create_task
        self._restart_zone = restart_zone
        self.alerts: deque[Alert] = deque(maxlen=MAX_ALERTS)
        self._state = _State()
        self._failing_since: dict[str, datetime] = {}
        # zone_id -> when its restart was sent (None: it could not be) in the current failure
        self._restarts: dict[str, datetime | None] = {}
        self._timers: dict[str, CALLBACK_TYPE] = {}  # alert_id -> its next ladder rung
        self._deliveries: dict[str, set[asyncio.Task[Alert]]] = {}
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._strings: dict[str, str] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.alerts"
        )
        self._saver = BoundedSave(self._store, self._data_to_save, SAVE_DELAY_S)
        self.notification = PersistentNotificationChannel(hass, entry_id)
        self._event = EventEntityChannel(hass, entry_id)
        self._extra: list[_AddedChannel] = []
        self._sms_to: SmsTo | None = None
        self._sms_targets: tuple[str, ...] = ()
        self._push: tuple[AlertChannel, ...] = ()

    # ---- lifecycle ---------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Load history, subscribe to the site's updates and events, resume the ladders of
        unacknowledged alerts where they were."""
        data = await self._store.async_load() or {}
        for raw in data.get("alerts", []):
            try:
                self.alerts.append(Alert.from_dict(raw))
            except (KeyError, TypeError, ValueError):
                continue  # a record from another format: skip it, keep the rest
        if isinstance(armed := data.get("armed"), list):
            self._state.armed = {AlertType(a) for a in armed if a in AlertType}
        if isinstance(zone_alerts := data.get("zone_alerts"), dict):
            self._state.zone_alerts = {str(k): str(v) for k, v in zone_alerts.items()}
        if isinstance(anomaly_alerts := data.get("anomaly_alerts"), dict):
            self._state.anomaly_alerts = {str(k): str(v) for k, v in anomaly_alerts.items()}
        language = self.hass.config.language
        self._strings = {
            **await async_get_translations(self.hass, language, "exceptions", [DOMAIN]),
            **await async_get_translations(self.hass, language, "entity", [DOMAIN]),
        }
        for alert in self.alerts:
            self._schedule_ladder(alert.alert_id)  # an overdue rung fires at once
            if alert.open:
                # HA keeps persistent notifications in memory only: show open alerts again.
                self.notification.show(alert)
        bus = self.hass.bus
        self._unsubscribe = [
            self._subscribe(self._async_on_update),
            bus.async_listen(EVENT_COMMAND_FAILED, self._async_on_command_failed),
            bus.async_listen(EVENT_ANOMALY, self._async_on_anomaly),
        ]
        self._async_on_update()

    async def async_stop(self) -> None:
        """Stop listening, cancel every ladder timer and write the history now."""
        while self._unsubscribe:
            self._unsubscribe.pop()()
        for cancel in self._timers.values():
            cancel()
        self._timers.clear()
        await self._saver.async_flush(close=True)

    @callback
    def _data_to_save(self) -> dict[str, Any]:
        """The store's payload."""
        return {
            "alerts": [a.as_dict() for a in self.alerts],
            "armed": sorted(self._state.armed),
            "zone_alerts": self._state.zone_alerts,
            "anomaly_alerts": self._state.anomaly_alerts,
        }

    @callback
    def _save_soon(self) -> None:
        """Persist within SAVE_DELAY_S of the first unsaved change."""
        self._saver.schedule()

    # ---- watching the site -------------------------------------------------------------------

    @callback
    def _async_on_update(self) -> None:
        """Every update of the site: battery levels, critical zones, essential services left
        without power, anomalies that cleared."""
        snapshot = self._snapshot()
        if snapshot is None:
            return
        if snapshot.soc_pct is not None:
            self._check_battery(snapshot.now, snapshot.soc_pct)
        for zone_id, zone in snapshot.zones.items():
            self._check_zone(snapshot.now, zone_id, zone)
        self._check_essential(snapshot)
        self._check_anomalies(snapshot)

    @callback
    def _check_essential(self, snapshot: SiteSnapshot) -> None:
        """A battery emergency while a clinic or hospital is without power (the cutoff, a
        failure) concerns an essential service: its ladder gains the authorities rung."""
        unpowered: tuple[str, ...] | None = None
        for alert in list(self.alerts):
            if alert.alert_type not in SITE_EMERGENCIES or alert.essential:
                continue
            if not climbs_ladder(alert):
                continue
            if unpowered is None:
                unpowered = essential_zones_unpowered(snapshot.zones.values())
            if not unpowered:
                return
            self._put(replace(alert, essential=True))
            self._audit.record(
                now=snapshot.now,
                actor="system",
                actor_name="Microgrid",
                action="alert_essential_service",
                message=f"essential service without power: {alert.message}",
                alert_id=alert.alert_id,
                zones=list(unpowered),
            )
            self._schedule_ladder(alert.alert_id)

    @callback
    def _check_anomalies(self, snapshot: SiteSnapshot) -> None:
        """An anomaly alert resolves once its anomaly is no longer active; a new one of the
        same zone and type may then alert again."""
        if not self._state.anomaly_alerts:
            return
        active = active_anomaly_keys(snapshot.ml.zone_anomalies, snapshot.ml.site_anomaly)
        for key, alert_id in list(self._state.anomaly_alerts.items()):
            alert = self.get(alert_id)
            if alert is not None and (key in active or snapshot.now < alert.created_at):
                continue
            del self._state.anomaly_alerts[key]
            self._save_soon()
            if alert is not None and alert.open:
                self._resolve(snapshot.now, alert)

    @callback
    def _check_battery(self, now: datetime, soc_pct: float) -> None:
        """Alert once per descent through each threshold; resolve on recovery."""
        thresholds = self.site.thresholds
        step = battery_step(
            soc_pct,
            frozenset(self._state.armed),
            battery_levels(thresholds),
            thresholds.hysteresis_pct,
        )
        if step.armed == self._state.armed:
            return
        self._state.armed = set(step.armed)
        self._save_soon()
        for alert in list(self.alerts):
            if alert.alert_type in step.rearmed and alert.open:
                self._resolve(now, alert)
        if step.fire is not None:
            level = step.fire
            self.async_raise(
                level.alert_type,
                level.severity,
                now=now,
                soc_pct=soc_pct,
                placeholders={
                    "soc": f"{soc_pct:.0f}",
                    "threshold": f"{level.threshold_pct:g}",
                },
            )

    @callback
    def _check_zone(self, now: datetime, zone_id: str, zone: ZoneSnapshot) -> None:
        """A critical zone left unpowered: first its ON command again (once), then the alert if
        power is still absent after the grace period; resolve on recovery."""
        cause = zone_failure_cause(zone)
        if cause is None:
            self._failing_since.pop(zone_id, None)
            self._restarts.pop(zone_id, None)
            if (alert_id := self._state.zone_alerts.pop(zone_id, None)) is not None:
                self._save_soon()
                if (alert := self.get(alert_id)) is not None and alert.open:
                    self._resolve(now, alert)
            return
        since = self._failing_since.setdefault(zone_id, now)
        if zone_id in self._state.zone_alerts:
            return
        action = zone_failure_action(
            since,
            now,
            restarted_at=self._restarts.get(zone_id),
            can_restart=self._restart_zone is not None and zone_id not in self._restarts,
        )
        if action is ZoneFailureAction.RESTART:
            self._restart(now, zone_id, zone, cause)
            return
        if action is not ZoneFailureAction.ALERT:
            return
        minutes = max(1, round((now - since).total_seconds() / 60))
        restarted_at = self._restarts.get(zone_id)
        message = self._text(
            f"alert_critical_zone_{cause}", {"zone": zone.zone.name, "minutes": str(minutes)}
        )
        if restarted_at is not None:
            message = f"{message} {self._text('alert_restart_failed', {})}"
        alert = self.async_raise(
            AlertType.CRITICAL_ZONE_FAILURE,
            Severity.CRITICAL,
            now=now,
            zone_id=zone_id,
            message=message,
            essential=concerns_essential_service(AlertType.CRITICAL_ZONE_FAILURE, zone.zone),
            restart_at=restarted_at,
        )
        self._state.zone_alerts[zone_id] = alert.alert_id
        self._save_soon()

    @callback
    def _restart(self, now: datetime, zone_id: str, zone: ZoneSnapshot, cause: str) -> None:
        """The automatic restart attempt: the zone's ON command sent again, audited."""
        assert self._restart_zone is not None
        sent = self._restart_zone(zone_id)
        self._restarts[zone_id] = now if sent else None
        if not sent:
            return
        LOGGER.warning("Critical zone %s is without power (%s): ON sent again", zone_id, cause)
        self._audit.record(
            now=now,
            actor="system",
            actor_name="Microgrid",
            action="zone_restart",
            zone_id=zone_id,
            message=f"{zone.zone.name}: without power ({cause}), ON command sent again",
            cause=cause,
        )

    @callback
    def _async_on_anomaly(self, event: Event) -> None:
        """An anomaly (`microgrid_anomaly`, from the learning or a board the battery fusion
        flagged): a warning alert, one per zone and type until the anomaly clears."""
        data = event.data
        if data.get("entry_id") != self.entry_id:
            return
        kind = str(data.get("type") or "unknown")
        zone_id = str(zone) if (zone := data.get("zone")) is not None else None
        key = anomaly_key(zone_id, kind)
        if (known := self._state.anomaly_alerts.get(key)) is not None and (
            (alert := self.get(known)) is not None and alert.resolved_at is None
        ):
            return  # still the same anomaly
        configured = self.site.zone(zone_id) if zone_id is not None else None
        zone_name = configured.name if configured else (zone_id or self.site.site_name)
        detail = data.get("detail") or {}

        def pct(value: Any) -> str:
            return "?" if not isinstance(value, int | float) else f"{value:.0f}"

        if kind == "battery_outlier":
            alert = self.async_raise(
                AlertType.BOARD_OUTLIER,
                Severity.WARNING,
                now=dt_util.utcnow(),
                zone_id=zone_id,
                placeholders={
                    "zone": zone_name,
                    "board_soc": pct(detail.get("board_soc_pct")),
                    "site_soc": pct(detail.get("site_soc_pct")),
                },
            )
        else:
            score = data.get("score")
            alert = self.async_raise(
                AlertType.ANOMALY,
                Severity.WARNING,
                now=dt_util.utcnow(),
                zone_id=zone_id,
                key="alert_anomaly" if zone_id is not None else "alert_site_anomaly",
                placeholders={
                    "zone": zone_name,
                    "anomaly": self._strings.get(
                        f"component.{DOMAIN}.entity.binary_sensor.anomaly.state_attributes."
                        f"type.state.{kind}",
                        kind,
                    ),
                    "score": f"{score:.1f}" if isinstance(score, int | float) else "?",
                },
            )
        self._state.anomaly_alerts[key] = alert.alert_id
        self._save_soon()

    @callback
    def _async_on_command_failed(self, event: Event) -> None:
        """A board never confirmed a command (the command writer gave up retrying)."""
        if event.data.get("entry_id") != self.entry_id:
            return
        zone_id = str(event.data.get("zone_id"))
        zone = self.site.zone(zone_id)
        critical = zone is not None and zone.priority is PriorityClass.CRITICAL
        command = str(event.data.get("command", "?"))
        self.async_raise(
            AlertType.COMMAND_FAILED,
            Severity.CRITICAL if critical else Severity.WARNING,
            now=dt_util.utcnow(),
            zone_id=zone_id,
            placeholders={
                "zone": zone.name if zone else zone_id,
                "command": command,
                "attempts": str(event.data.get("attempts", "?")),
            },
            essential=concerns_essential_service(AlertType.COMMAND_FAILED, zone, command=command),
        )

    # ---- raising, delivering, climbing the ladder -------------------------------------------

    def _text(self, key: str, placeholders: Mapping[str, str]) -> str:
        """A message from translations (exceptions.<key>.message) with its placeholders."""
        template = self._strings.get(f"component.{DOMAIN}.exceptions.{key}.message")
        if template is None:
            return f"{key} {dict(placeholders)}"
        try:
            return template.format(**placeholders)
        except (KeyError, IndexError, ValueError):
            return template

    def _title(self, alert_type: AlertType) -> str:
        """ "<site>: <alert type name>"."""
        name = self._strings.get(
            f"component.{DOMAIN}.entity.event.alerts.state_attributes.event_type.state."
            f"{alert_type}",
            alert_type.value,
        )
        return self._text("alert_title", {"site": self.site.site_name, "alert": name})

    @callback
    def async_raise(
        self,
        alert_type: AlertType,
        severity: Severity,
        *,
        now: datetime,
        placeholders: Mapping[str, str] | None = None,
        key: str | None = None,
        message: str | None = None,
        title: str | None = None,
        zone_id: str | None = None,
        household: str | None = None,
        soc_pct: float | None = None,
        actor: Actor | None = None,
        extra_targets: Iterable[str] = (),
        site_targets: bool = True,
        essential: bool = False,
        restart_at: datetime | None = None,
    ) -> Alert:
        """Record an alert, audit it, deliver it (in a task) and start its ladder."""
        alert = Alert(
            alert_id=ulid_now(),
            alert_type=alert_type,
            severity=severity,
            title=title or self._title(alert_type),
            message=message or self._text(key or f"alert_{alert_type}", placeholders or {}),
            created_at=now,
            source=actor.audit_id if actor else "system",
            source_name=actor.name if actor else "Microgrid",
            zone_id=zone_id,
            household=household,
            soc_pct=soc_pct,
            essential=essential,
            restart_at=restart_at,
        )
        self.alerts.append(alert)
        self._save_soon()
        LOGGER.log(
            logging.INFO if severity is Severity.INFO else logging.WARNING,
            "%s: %s",
            alert.title,
            alert.message,
        )
        self._audit.record(
            now=now,
            actor=alert.source,
            actor_name=alert.source_name,
            action="alert",
            zone_id=zone_id,
            message=f"{severity} alert: {alert.message}",
            alert_id=alert.alert_id,
            alert_type=alert_type,
            severity=severity,
        )
        targets = [*(self.options.notify_targets if site_targets else ()), *extra_targets]
        channels = self._channels(targets, severity=severity, site_targets=site_targets)
        self._deliver_soon(alert, channels, escalated=False)
        self._schedule_ladder(alert.alert_id)
        return alert

    def _channels(
        self,
        targets: Iterable[str],
        *,
        escalated: bool = False,
        severity: Severity = Severity.CRITICAL,
        site_targets: bool = True,
    ) -> list[AlertChannel]:
        """The always-on channels, the added ones that take this alert, one per notify target."""
        channels: list[AlertChannel] = [self.notification, self._event]
        channels.extend(
            added.channel
            for added in self._extra
            if added.takes(escalated=escalated, severity=severity, site_targets=site_targets)
        )
        channels.extend(NotifyChannel(self.hass, t) for t in dict.fromkeys(targets))
        return channels

    @callback
    def add_channel(
        self,
        channel: AlertChannel,
        *,
        escalation_only: bool = False,
        min_severity: Severity = Severity.INFO,
        site_target: bool = False,
    ) -> CALLBACK_TYPE:
        """Send alerts through another channel too; returns its remover.

        `min_severity` keeps lesser alerts off it (SMS: critical only); a `site_target` channel
        is skipped, like the notify targets, when a message is sent with site_targets=False.
        """
        item = _AddedChannel(
            channel=channel,
            escalation_only=escalation_only,
            min_severity=min_severity,
            site_target=site_target,
        )
        self._extra.append(item)

        @callback
        def _remove() -> None:
            if item in self._extra:
                self._extra.remove(item)

        return _remove

    @callback
    def set_gateways(
        self, *, sms_to: SmsTo | None, sms_targets: Iterable[str], push: Iterable[AlertChannel]
    ) -> None:
        """The gateways behind the ladder and the backups: an SMS channel to any number (None:
        no SMS), the site's SMS recipients (a failed notify texts them) and its push channels
        (a failed SMS pushes to them)."""
        self._sms_to = sms_to
        self._sms_targets = tuple(sms_targets)
        self._push = tuple(push)

    @callback
    def _deliver_soon(
        self,
        alert: Alert,
        channels: list[AlertChannel],
        *,
        escalated: bool,
        rung: str = FIRST_DELIVERY,
        message: str | None = None,
        phones: tuple[str, ...] | None = None,
    ) -> asyncio.Task[Alert]:
        """Deliver in an entry-owned task (waited for by tests, cancelled on unload)."""
        task = self._create_task(
            self.async_deliver(
                alert.alert_id,
                channels,
                escalated=escalated,
                rung=rung,
                message=message,
                phones=phones,
            ),
            f"{DOMAIN} alert {alert.alert_id} {rung}",
        )
        running = self._deliveries.setdefault(alert.alert_id, set())
        running.add(task)

        def _done(finished: asyncio.Task[Alert]) -> None:
            running.discard(finished)
            if not running and self._deliveries.get(alert.alert_id) is running:
                del self._deliveries[alert.alert_id]

        task.add_done_callback(_done)
        return task

    async def async_delivered(self, alert_id: str) -> Alert | None:
        """The alert once its current deliveries are over."""
        while tasks := self._deliveries.get(alert_id):
            await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
        return self.get(alert_id)

    @callback
    def _backups(self, channel_name: str, phones: tuple[str, ...]) -> list[AlertChannel]:
        """Who takes over when this channel fails: notify -> SMS to `phones` -> push, each only
        when configured."""
        configured = set()
        if self._sms_to is not None and phones:
            configured.add("sms")
        if self._push:
            configured.add("push")
        kind = backup_kind(channel_name, frozenset(configured))
        if kind == "sms":
            assert self._sms_to is not None
            return [self._sms_to(number) for number in phones]
        return list(self._push) if kind == "push" else []

    async def async_deliver(
        self,
        alert_id: str,
        channels: list[AlertChannel],
        *,
        escalated: bool,
        rung: str = FIRST_DELIVERY,
        message: str | None = None,
        phones: tuple[str, ...] | None = None,
    ) -> Alert:
        """Send through every channel at once; a channel that fails hands over to its backup
        (notify -> SMS -> push, none tried twice in one delivery); record every attempt.

        `message` replaces the alert's text for this delivery (a ladder rung's); `phones` are
        the numbers a failed notify texts (default: the site's SMS recipients)."""
        alert = self.get(alert_id)
        assert alert is not None
        sent = replace(alert, message=message) if message is not None else alert
        backup_phones = self._sms_targets if phones is None else phones

        async def send(channel: AlertChannel) -> str | None:
            """None when delivered, else why not."""
            try:
                await channel.async_send(sent, escalated=escalated)
            except (HomeAssistantError, vol.Invalid, TimeoutError) as err:
                LOGGER.warning("Alert %s not delivered to %s: %s", alert_id, channel.name, err)
                return (str(err) or type(err).__name__)[:ERROR_MAX_CHARS]
            except Exception as err:
                # A faulty channel must not cost the others their delivery record.
                LOGGER.exception("Alert %s not delivered to %s", alert_id, channel.name)
                return f"{type(err).__name__}: {err}"[:ERROR_MAX_CHARS]
            return None

        level: list[tuple[AlertChannel, str | None]] = [(c, None) for c in channels]
        tried: set[str] = set()
        attempts: list[Attempt] = []
        while level:
            tried.update(channel.name for channel, _ in level)
            errors = await asyncio.gather(*(send(channel) for channel, _ in level))
            at = dt_util.utcnow()
            backups: dict[str, tuple[AlertChannel, str | None]] = {}
            for (channel, backup_for), error in zip(level, errors, strict=True):
                attempts.append(
                    Attempt(
                        channel=channel.name,
                        rung=rung,
                        at=at,
                        ok=error is None,
                        error=error,
                        backup_for=backup_for,
                    )
                )
                if error is None:
                    continue
                for backup in self._backups(channel.name, backup_phones):
                    if backup.name not in tried:
                        backups.setdefault(backup.name, (backup, channel.name))
            level = list(backups.values())
        current = self.get(alert_id) or alert
        delivered = [a.channel for a in attempts if a.ok]
        failed = [a.channel for a in attempts if not a.ok]
        updated = replace(
            current,
            delivered=tuple(dict.fromkeys([*current.delivered, *delivered])),
            failed=tuple(dict.fromkeys([*current.failed, *failed])),
            attempts=(*current.attempts, *attempts)[-MAX_ATTEMPTS:],
        )
        self._put(updated)
        return updated

    # ---- the escalation ladder ---------------------------------------------------------------

    def _ladder_household(self, alert: Alert) -> str | None:
        """The household the ladder's first rung reaches: the affected zone's (a message sent
        to a household already went to its members)."""
        if alert.household is not None or alert.zone_id is None:
            return None
        zone = self.site.zone(alert.zone_id)
        return zone.household if zone else None

    def _household_targets(self, alert: Alert) -> tuple[str, ...]:
        """The phones (mobile-app notify actions) of the affected zone's household members."""
        if (household := self._ladder_household(alert)) is None:
            return ()
        return member_notify_targets(self.hass, self.site.households.get(household, ()))

    def _reachable(self, alert: Alert) -> frozenset[Rung]:
        """The rungs with someone to reach for this alert."""
        options = self.options
        reachable = {Rung.ADMINS}
        if self._household_targets(alert):
            reachable.add(Rung.HOUSEHOLD)
        if options.duty_phone and self._sms_to is not None:
            reachable.add(Rung.DUTY)
        if alert.essential and (
            options.authorities_targets or (options.authorities_phones and self._sms_to)
        ):
            reachable.add(Rung.AUTHORITIES)
        return frozenset(reachable)

    def ladder_plan(self, alert: Alert) -> tuple[PlannedRung, ...]:
        """The alert's ladder: each rung with when it is due and whether it fired (critical
        alerts only; others do not escalate)."""
        if alert.severity is not Severity.CRITICAL:
            return ()
        fired = {Rung(r.rung): r.at for r in alert.rungs if r.rung in Rung}
        return plan_rungs(
            alert.created_at,
            self.options.ladder,
            self._reachable(alert),
            fired,
            climbing=climbs_ladder(alert),
        )

    @callback
    def _schedule_ladder(self, alert_id: str) -> None:
        """A timer for the alert's next rung, unless it is acknowledged or resolved first."""
        self._cancel_timer(alert_id)
        alert = self.get(alert_id)
        if alert is None or not climbs_ladder(alert):
            return
        if (due := next_due(self.ladder_plan(alert))) is None:
            return

        @callback
        def _fire(_now: datetime) -> None:
            self._timers.pop(alert_id, None)
            self._climb(alert_id)

        # A past point (an overdue rung restored after a restart) fires at once.
        self._timers[alert_id] = async_track_point_in_utc_time(self.hass, _fire, due)

    @callback
    def _climb(self, alert_id: str) -> None:
        """Fire every rung now due (several when a restart kept them waiting), then wait for
        the next one."""
        alert = self.get(alert_id)
        if alert is None or not climbs_ladder(alert):
            return
        now = dt_util.utcnow()
        for rung in due_rungs(self.ladder_plan(alert), now):
            self._fire_rung(alert_id, rung, now)
        self._schedule_ladder(alert_id)

    def _minutes_text(self, rung: Rung) -> str:
        """A rung's delay in minutes as people read it ("10", "0.5")."""
        return f"{round(self.options.delay(rung).total_seconds() / 60, 2):g}"

    @callback
    def _fire_rung(self, alert_id: str, rung: Rung, now: datetime) -> None:
        """Reach one rung: record it, audit it, deliver to its people in a task."""
        alert = self.get(alert_id)
        assert alert is not None
        options = self.options
        base = alert.original_message or alert.message
        minutes = self._minutes_text(rung)
        reminder = self._text("alert_escalated", {"minutes": minutes, "message": base})
        updated = replace(alert, rungs=(*alert.rungs, FiredRung(rung=rung.value, at=now)))
        message: str | None = reminder
        phones: tuple[str, ...] | None = None
        channels: list[AlertChannel]
        if rung is Rung.HOUSEHOLD:
            message = None
            channels = [NotifyChannel(self.hass, t) for t in self._household_targets(alert)]
        elif rung is Rung.ADMINS:
            # The old single escalation: the reminder replaces the alert's text and goes to
            # the escalation targets (without any, the usual targets again) and the gateways.
            updated = replace(updated, escalated_at=now, message=reminder, original_message=base)
            message = None
            targets = options.escalation_targets or options.notify_targets
            channels = self._channels(targets, escalated=True, severity=alert.severity)
        elif rung is Rung.DUTY:
            assert options.duty_phone is not None and self._sms_to is not None
            phones = (options.duty_phone,)
            channels = [self._sms_to(options.duty_phone)]
        else:
            message = self._text(
                "alert_authorities",
                {"site": self.site.site_name, "minutes": minutes, "message": base},
            )
            phones = options.authorities_phones or None
            channels = [NotifyChannel(self.hass, t) for t in options.authorities_targets]
            if self._sms_to is not None:
                channels += [self._sms_to(number) for number in options.authorities_phones]
        self._put(updated)
        self._audit.record(
            now=now,
            actor="system",
            actor_name="Microgrid",
            action="alert_escalated",
            zone_id=alert.zone_id,
            message=f"alert escalated ({rung} after {minutes} min): {base}",
            alert_id=alert_id,
            rung=rung.value,
            targets=[c.name for c in channels],
        )
        self._deliver_soon(
            updated,
            channels,
            escalated=rung is not Rung.HOUSEHOLD,
            rung=rung.value,
            message=message,
            phones=phones,
        )

    @callback
    def _put(self, alert: Alert) -> None:
        """Replace an alert in the history by id."""
        for index, existing in enumerate(self.alerts):
            if existing.alert_id == alert.alert_id:
                self.alerts[index] = alert
                self._save_soon()
                return

    @callback
    def _resolve(self, now: datetime, alert: Alert) -> None:
        """The condition went away: stop its ladder, clear the notification."""
        self._cancel_timer(alert.alert_id)
        self._put(replace(alert, resolved_at=now))
        self.notification.dismiss(alert)
        self._audit.record(
            now=now,
            actor="system",
            actor_name="Microgrid",
            action="alert_resolved",
            zone_id=alert.zone_id,
            alert_id=alert.alert_id,
            alert_type=alert.alert_type,
        )

    @callback
    def _cancel_timer(self, alert_id: str) -> None:
        """Stop an alert's ladder timer, if any."""
        if (cancel := self._timers.pop(alert_id, None)) is not None:
            cancel()

    # ---- people ------------------------------------------------------------------------------

    def get(self, alert_id: str) -> Alert | None:
        """An alert by id."""
        return next((a for a in self.alerts if a.alert_id == alert_id), None)

    def household_of(self, alert: Alert) -> str | None:
        """The household an alert is about: the one it was sent to, or its zone's."""
        if alert.household is not None or alert.zone_id is None:
            return alert.household
        zone = self.site.zone(alert.zone_id)
        return zone.household if zone else None

    def acknowledge_refusal(self, alert: Alert, actor: Actor) -> str | None:
        """Why this caller may not acknowledge this alert, or None."""
        households = households_of(self.site, actor.user_id)
        return acknowledge_refusal(alert, self.household_of(alert), actor, households)

    @callback
    def async_acknowledge(self, alert_ids: Iterable[str] | None, actor: Actor) -> list[Alert]:
        """Acknowledge the open alerts this caller may (None: all of those); stops their
        ladders; records who, and the rungs reached and left."""
        now = dt_util.utcnow()
        wanted = None if alert_ids is None else set(alert_ids)
        done: list[Alert] = []
        for alert in list(self.alerts):
            if (wanted is not None and alert.alert_id not in wanted) or not alert.open:
                continue
            if self.acknowledge_refusal(alert, actor) is not None:
                continue
            self._cancel_timer(alert.alert_id)
            plan = self.ladder_plan(alert)
            acked = replace(
                alert,
                acknowledged_at=now,
                acknowledged_by=actor.audit_id,
                acknowledged_by_name=actor.name,
            )
            self._put(acked)
            self.notification.dismiss(alert)
            self._audit.record(
                now=now,
                actor=actor.audit_id,
                actor_name=actor.name,
                action="alert_acknowledged",
                zone_id=alert.zone_id,
                message=f"{actor.name} acknowledged: {alert.message}",
                alert_id=alert.alert_id,
                rungs_reached=[p.rung.value for p in plan if p.status is RungStatus.FIRED],
                rungs_stopped=[p.rung.value for p in plan if p.status is RungStatus.PENDING],
            )
            done.append(acked)
        if done:
            self._saver.schedule(now=True)  # a person's acknowledgement: not lost to a power cut
        return done

    def query(
        self, *, open_only: bool = False, alert_type: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest-first alerts matching the filters."""
        out: list[dict[str, Any]] = []
        for alert in reversed(self.alerts):
            if (open_only and not alert.open) or (alert_type and alert.alert_type != alert_type):
                continue
            out.append(self.alert_dict(alert))
            if len(out) >= limit:
                break
        return out

    def alert_dict(self, alert: Alert) -> dict[str, Any]:
        """The JSON form of an alert with its ladder (each rung's due time and status)."""
        return {
            **alert.as_dict(),
            "ladder": [
                {
                    "rung": p.rung.value,
                    "due_at": p.due_at.isoformat(),
                    "fired_at": p.fired_at.isoformat() if p.fired_at else None,
                    "status": p.status.value,
                }
                for p in self.ladder_plan(alert)
            ],
        }

    def is_site_user(self, actor: Actor) -> bool:
        """Admins, automations and members of one of the site's households."""
        return actor.is_admin or bool(households_of(self.site, actor.user_id))
