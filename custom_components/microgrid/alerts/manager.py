"""The alert manager: raises, delivers, escalates and records a site's alerts."""

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
from .channels.notify import NotifyChannel
from .channels.persistent import PersistentNotificationChannel
from .model import Alert, AlertType, Severity
from .options import AlertOptions
from .rules import (
    ZONE_FAILURE_GRACE,
    acknowledge_refusal,
    battery_levels,
    battery_step,
    escalation_due,
    zone_failure_cause,
)

STORAGE_VERSION = 1
MAX_ALERTS = 500
SAVE_DELAY_S = 10

DATA_ALERTS: HassKey[dict[str, AlertManager]] = HassKey(f"{DOMAIN}_alerts")

# An entry-owned task factory: (coroutine, name) -> task, cancelled when the entry unloads.
type CreateTask = Callable[[Coroutine[Any, Any, Alert], str], asyncio.Task[Alert]]


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
    ) -> None:
        """Prepare for one site: `snapshot` reads its latest state, `subscribe` adds a listener
        called on each update (returns its remover), `create_task` makes entry-owned tasks.
        Call async_start once the platforms are set up, async_stop when the entry unloads."""
        self.hass = hass
        self.entry_id = entry_id
        self.site = site
        self.options = options
        self._audit = audit
        self._snapshot = snapshot
        self._subscribe = subscribe
        self._create_task = create_task
        self.alerts: deque[Alert] = deque(maxlen=MAX_ALERTS)
        self._state = _State()
        self._failing_since: dict[str, datetime] = {}
        self._timers: dict[str, CALLBACK_TYPE] = {}
        self._deliveries: dict[str, asyncio.Task[Alert]] = {}
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._strings: dict[str, str] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.alerts"
        )
        self._saver = BoundedSave(self._store, self._data_to_save, SAVE_DELAY_S)
        self.notification = PersistentNotificationChannel(hass, entry_id)
        self._event = EventEntityChannel(hass, entry_id)
        self._extra: list[_AddedChannel] = []

    # ---- lifecycle ---------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Load history, subscribe to the site's updates and events, re-arm pending
        escalations."""
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
        language = self.hass.config.language
        self._strings = {
            **await async_get_translations(self.hass, language, "exceptions", [DOMAIN]),
            **await async_get_translations(self.hass, language, "entity", [DOMAIN]),
        }
        for alert in self.alerts:
            self._schedule_escalation(alert)
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
        """Stop listening, cancel every escalation timer and write the history now."""
        while self._unsubscribe:
            self._unsubscribe.pop()()
        for cancel in self._timers.values():
            cancel()
        self._timers.clear()
        await self._saver.async_flush()

    @callback
    def _data_to_save(self) -> dict[str, Any]:
        """The store's payload."""
        return {
            "alerts": [a.as_dict() for a in self.alerts],
            "armed": sorted(self._state.armed),
            "zone_alerts": self._state.zone_alerts,
        }

    @callback
    def _save_soon(self) -> None:
        """Persist within SAVE_DELAY_S of the first unsaved change."""
        self._saver.schedule()

    # ---- watching the site -------------------------------------------------------------------

    @callback
    def _async_on_update(self) -> None:
        """Every update of the site: battery levels and critical zones."""
        snapshot = self._snapshot()
        if snapshot is None:
            return
        if snapshot.soc_pct is not None:
            self._check_battery(snapshot.now, snapshot.soc_pct)
        for zone_id, zone in snapshot.zones.items():
            self._check_zone(snapshot.now, zone_id, zone)

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
        """Alert when a critical zone stays unpowered past the grace period; resolve on recovery."""
        cause = zone_failure_cause(zone)
        if cause is None:
            self._failing_since.pop(zone_id, None)
            if (alert_id := self._state.zone_alerts.pop(zone_id, None)) is not None:
                self._save_soon()
                if (alert := self.get(alert_id)) is not None and alert.open:
                    self._resolve(now, alert)
            return
        since = self._failing_since.setdefault(zone_id, now)
        if zone_id in self._state.zone_alerts or now - since < ZONE_FAILURE_GRACE:
            return
        minutes = max(1, round((now - since).total_seconds() / 60))
        alert = self.async_raise(
            AlertType.CRITICAL_ZONE_FAILURE,
            Severity.CRITICAL,
            now=now,
            zone_id=zone_id,
            key=f"alert_critical_zone_{cause}",
            placeholders={"zone": zone.zone.name, "minutes": str(minutes)},
        )
        self._state.zone_alerts[zone_id] = alert.alert_id
        self._save_soon()

    @callback
    def _async_on_anomaly(self, event: Event) -> None:
        """A board flagged for disagreeing with the others about the shared battery."""
        data = event.data
        if data.get("entry_id") != self.entry_id or data.get("type") != "battery_outlier":
            return
        zone_id = str(data.get("zone"))
        zone = self.site.zone(zone_id)
        detail = data.get("detail") or {}

        def pct(value: Any) -> str:
            return "?" if not isinstance(value, int | float) else f"{value:.0f}"

        self.async_raise(
            AlertType.BOARD_OUTLIER,
            Severity.WARNING,
            now=dt_util.utcnow(),
            zone_id=zone_id,
            placeholders={
                "zone": zone.name if zone else zone_id,
                "board_soc": pct(detail.get("board_soc_pct")),
                "site_soc": pct(detail.get("site_soc_pct")),
            },
        )

    @callback
    def _async_on_command_failed(self, event: Event) -> None:
        """A board never confirmed a command (the command writer gave up retrying)."""
        if event.data.get("entry_id") != self.entry_id:
            return
        zone_id = str(event.data.get("zone_id"))
        zone = self.site.zone(zone_id)
        critical = zone is not None and zone.priority is PriorityClass.CRITICAL
        self.async_raise(
            AlertType.COMMAND_FAILED,
            Severity.CRITICAL if critical else Severity.WARNING,
            now=dt_util.utcnow(),
            zone_id=zone_id,
            placeholders={
                "zone": zone.name if zone else zone_id,
                "command": str(event.data.get("command", "?")),
                "attempts": str(event.data.get("attempts", "?")),
            },
        )

    # ---- raising, delivering, escalating -----------------------------------------------------

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
    ) -> Alert:
        """Record an alert, audit it, deliver it (in a task) and schedule its escalation."""
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
        self._schedule_escalation(alert)
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
    def _deliver_soon(
        self, alert: Alert, channels: list[AlertChannel], *, escalated: bool
    ) -> asyncio.Task[Alert]:
        """Deliver in an entry-owned task (waited for by tests, cancelled on unload)."""
        task = self._create_task(
            self.async_deliver(alert.alert_id, channels, escalated=escalated),
            f"{DOMAIN} alert {alert.alert_id}",
        )
        self._deliveries[alert.alert_id] = task

        def _done(finished: asyncio.Task[Alert]) -> None:
            if self._deliveries.get(alert.alert_id) is finished:
                del self._deliveries[alert.alert_id]

        task.add_done_callback(_done)
        return task

    async def async_delivered(self, alert_id: str) -> Alert | None:
        """The alert once its current delivery is over."""
        if (task := self._deliveries.get(alert_id)) is not None:
            await asyncio.shield(task)
        return self.get(alert_id)

    async def async_deliver(
        self, alert_id: str, channels: list[AlertChannel], *, escalated: bool
    ) -> Alert:
        """Send through every channel at once; record which reached and which failed."""
        alert = self.get(alert_id)
        assert alert is not None

        async def send(channel: AlertChannel) -> bool:
            try:
                await channel.async_send(alert, escalated=escalated)
            except (HomeAssistantError, vol.Invalid, TimeoutError) as err:
                LOGGER.warning("Alert %s not delivered to %s: %s", alert_id, channel.name, err)
                return False
            except Exception:
                # A faulty channel must not cost the others their delivery record.
                LOGGER.exception("Alert %s not delivered to %s", alert_id, channel.name)
                return False
            return True

        results = await asyncio.gather(*(send(channel) for channel in channels))
        current = self.get(alert_id) or alert
        delivered = [c.name for c, ok in zip(channels, results, strict=True) if ok]
        failed = [c.name for c, ok in zip(channels, results, strict=True) if not ok]
        updated = replace(
            current,
            delivered=tuple(dict.fromkeys([*current.delivered, *delivered])),
            failed=tuple(dict.fromkeys([*current.failed, *failed])),
        )
        self._put(updated)
        return updated

    @callback
    def _schedule_escalation(self, alert: Alert) -> None:
        """A timer that escalates the alert unless it is acknowledged or resolved first."""
        due = escalation_due(alert, self.options.escalation_delay)
        if due is None or alert.alert_id in self._timers:
            return

        @callback
        def _fire(_now: datetime) -> None:
            self._timers.pop(alert.alert_id, None)
            self._escalate(alert.alert_id)

        # A past point (an overdue alert restored after a restart) fires at once.
        self._timers[alert.alert_id] = async_track_point_in_utc_time(self.hass, _fire, due)

    @callback
    def _escalate(self, alert_id: str) -> None:
        """Re-send an unacknowledged critical alert to the escalation targets."""
        alert = self.get(alert_id)
        if alert is None or escalation_due(alert, self.options.escalation_delay) is None:
            return
        now = dt_util.utcnow()
        minutes = round(self.options.escalation_delay.total_seconds() / 60)
        escalated = replace(
            alert,
            escalated_at=now,
            message=self._text(
                "alert_escalated", {"minutes": str(minutes), "message": alert.message}
            ),
        )
        self._put(escalated)
        self._audit.record(
            now=now,
            actor="system",
            actor_name="Microgrid",
            action="alert_escalated",
            zone_id=alert.zone_id,
            message=f"alert escalated: {alert.message}",
            alert_id=alert_id,
            targets=list(self.options.escalation_targets),
        )
        # Without escalation targets the reminder goes to the usual targets again.
        targets = self.options.escalation_targets or self.options.notify_targets
        channels = self._channels(targets, escalated=True, severity=alert.severity)
        self._deliver_soon(escalated, channels, escalated=True)

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
        """The condition went away: stop escalating, clear the notification."""
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
        """Stop an alert's escalation timer, if any."""
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
        escalation; records who."""
        now = dt_util.utcnow()
        wanted = None if alert_ids is None else set(alert_ids)
        done: list[Alert] = []
        for alert in list(self.alerts):
            if (wanted is not None and alert.alert_id not in wanted) or not alert.open:
                continue
            if self.acknowledge_refusal(alert, actor) is not None:
                continue
            self._cancel_timer(alert.alert_id)
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
            out.append(alert.as_dict())
            if len(out) >= limit:
                break
        return out

    def is_site_user(self, actor: Actor) -> bool:
        """Admins, automations and members of one of the site's households."""
        return actor.is_admin or bool(households_of(self.site, actor.user_id))
