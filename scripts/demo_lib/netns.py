"""A loopback-only network namespace: nothing the demo starts can reach another machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

NETNS_ENV = "MICROGRID_DEMO_NETNS"  # set once we run inside the namespace


def in_namespace() -> bool:
    """Return whether this process already runs in the demo's namespace."""
    return os.environ.get(NETNS_ENV) == "1"


def unshare_argv(argv: list[str]) -> list[str]:
    """Return argv wrapped in `unshare -n` (with a user namespace when not root)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("--isolated needs `unshare` (util-linux)")
    flags = ["-n"] if os.geteuid() == 0 else ["-r", "-n"]
    return [unshare, *flags, "--", *argv]


def reexec_isolated(argv: list[str]) -> None:
    """Replace this process with itself inside a new network namespace (never returns)."""
    os.environ[NETNS_ENV] = "1"
    wrapped = unshare_argv([sys.executable, *argv])
    os.execv(wrapped[0], wrapped)


def setup_loopback() -> None:
    """Bring lo up with multicast and a multicast route (HA binds mDNS even without discovery)."""
    for args in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "set", "lo", "multicast", "on"],
        ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
    ):
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0 and "File exists" not in done.stderr:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
