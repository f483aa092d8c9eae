"""Typed runtime data of a loaded site entry."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .alerts.report import DailyReporter
from .control.coordinator import MicrogridCoordinator
from .link.rtdb import FirebaseLink
from .people.audit import AuditLog
from .people.inbox import Inbox


@dataclass(kw_only=True)
class MicrogridRuntimeData:
    """What a loaded site entry holds at run time."""

    coordinator: MicrogridCoordinator
    link: FirebaseLink
    audit: AuditLog
    inbox: Inbox
    reporter: DailyReporter | None = None  # armed once the alerts are set up


type MicrogridConfigEntry = ConfigEntry[MicrogridRuntimeData]
