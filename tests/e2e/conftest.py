"""One real demo stack per session, run from the unpacked release zip, shared by the e2e tests."""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import shutil
import subprocess
import sys
from typing import Any
import zipfile

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from demo_lib.release import build_zip  # noqa: E402

DRIVER = Path(__file__).with_name("driver.py")
RESTART_DRIVER = Path(__file__).with_name("restart_driver.py")
DRIVER_TIMEOUT_S = 420


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """These tests start their own Home Assistant in a subprocess: no `hass` fixture here."""


def unshare_problem() -> str | None:
    """Why a loopback-only namespace cannot be made here, or None when it can."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) is not installed"
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def release_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HACS zip from the working tree."""
    out = tmp_path_factory.mktemp("release") / "microgrid.zip"
    build_zip(ROOT / "custom_components" / "microgrid", out)
    return out


@pytest.fixture(scope="session")
def unpacked_integration(release_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip unpacked as HACS would: into custom_components/microgrid of a fresh dir."""
    dest = tmp_path_factory.mktemp("unpacked") / "custom_components" / "microgrid"
    with zipfile.ZipFile(release_zip) as zf:
        zf.extractall(dest)
    return dest


def format_failure(result: dict[str, Any]) -> str:
    """The driver's error, its checks and every log tail, for an assertion message."""
    logs = result.get("logs", {})
    checks = {k: v for k, v in result.items() if k != "logs"}
    parts = [f"driver result: {json.dumps(checks, indent=1, default=str)}"]
    parts += [f"----- {name} -----\n{text}" for name, text in logs.items()]
    return "\n".join(parts)


def run_in_namespace(script: Path, work: Path, integration_dir: Path, timeout_s: float) -> dict:
    """Run a driver script in a loopback-only namespace; its last stdout line is JSON."""
    if (problem := unshare_problem()) is not None:
        pytest.skip(problem)
    try:
        done = subprocess.run(
            [
                "unshare",
                "-n",
                sys.executable,
                str(script),
                "--work",
                str(work),
                "--integration-dir",
                str(integration_dir),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{script.name} timed out after {timeout_s} s:\n{err.stderr}")
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(
            f"{script.name} printed no result (exit {done.returncode}):\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
        )
    result["_failure"] = format_failure(result)
    return result


@pytest.fixture(scope="session")
def demo_result(unpacked_integration: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the driver (demo + checks + teardown) once in a loopback-only namespace."""
    work = tmp_path_factory.mktemp("e2e")
    return run_in_namespace(DRIVER, work, unpacked_integration, DRIVER_TIMEOUT_S)


@pytest.fixture(scope="session")
def restart_result(unpacked_integration: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo stack through a SIGKILL of Home Assistant and a restart (restart_driver.py)."""
    work = tmp_path_factory.mktemp("e2e-restart")
    result = run_in_namespace(RESTART_DRIVER, work, unpacked_integration, DRIVER_TIMEOUT_S)
    if not result.get("ok"):
        pytest.fail(f"restart run failed: {result.get('error')}\n{result['_failure']}")
    return result


@pytest.fixture(scope="session")
def demo_up(demo_result: dict) -> Iterator[dict]:
    """The driver's result, failing (with the logs) when the demo never became READY."""
    if not demo_result.get("ok"):
        pytest.fail(f"demo stack failed: {demo_result.get('error')}\n{demo_result['_failure']}")
    yield demo_result
