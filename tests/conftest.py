"""Shared test settings: every test may load custom integrations; no deprecation goes unnoticed."""

from __future__ import annotations

from collections.abc import Iterator
import logging
import re

import pytest

# Home Assistant's report_usage ("Detected that custom integration 'microgrid' ... This will stop
# working in Home Assistant 2027.8.0") and deprecation helpers ("The deprecated function ... was
# called from microgrid ... It will be removed in HA Core ...").
DEPRECATION = re.compile(r"will stop working|is deprecated|deprecated|will be removed", re.I)
OURS = re.compile(r"\bmicrogrid\b|custom_components[./]microgrid")


def is_our_deprecation(record: logging.LogRecord) -> bool:
    """A warning (or worse) that something microgrid does is deprecated."""
    if record.levelno < logging.WARNING:
        return False
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    if not DEPRECATION.search(message):
        return False
    return record.name.startswith("custom_components.microgrid") or bool(OURS.search(message))


class _DeprecationCollector(logging.Handler):
    """Collect the deprecation reports about the integration logged during one test."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if is_our_deprecation(record):
            self.found.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant find custom_components/microgrid in every test."""


@pytest.fixture(autouse=True)
def fail_on_microgrid_deprecations() -> Iterator[None]:
    """Fail a test during which HA logged that the integration uses something deprecated."""
    collector = _DeprecationCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield
    finally:
        root.removeHandler(collector)
    if collector.found:
        pytest.fail("deprecated use logged for the integration:\n" + "\n".join(collector.found))
