"""Child processes of the demo: each in its own process group, all stopped together, no orphans."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import contextlib
import ctypes
from dataclasses import dataclass, field
import os
from pathlib import Path
import signal
import subprocess
import time

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in the child before exec: get SIGTERM if the demo itself is killed (even SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(kw_only=True)
class Child:
    """One started process, its log file and its process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Return the process id (also its process group id)."""
        return self.proc.pid

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.proc.poll() is None

    def kill(self, *, timeout_s: float = 10.0) -> None:
        """SIGKILL the process group at once: an unclean stop, nothing gets to flush."""
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout_s)


def log_tail(path: Path, *, lines: int = 40) -> str:
    """Return the last lines of a log file (empty if there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(kw_only=True)
class Supervisor:
    """Starts children and stops every one of them (and their process groups) on close."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> Child:
        """Start a child with stdout+stderr to <log_dir>/<name>.log in a new process group."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        child = Child(name=name, proc=proc, log_path=log_path)
        self.children.append(child)
        return child

    def exited(self) -> Child | None:
        """Return a child that has exited, if any."""
        return next((c for c in self.children if not c.alive()), None)

    async def wait_any_exit(self, *, poll_s: float = 0.5) -> Child:
        """Return as soon as one child exits."""
        while True:
            if (child := self.exited()) is not None:
                return child
            await asyncio.sleep(poll_s)

    def stop_all(self, *, timeout_s: float = 20.0) -> None:
        """Stop children newest first, each before the next (HA before the site it reads)."""
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            _signal_group(child.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in self.children:
            # The group may hold grandchildren even after the leader is gone.
            _signal_group(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send a signal to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
