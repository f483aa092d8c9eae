"""manifest.json's requirements fit every Home Assistant the integration claims to support.

Home Assistant installs a custom integration's requirements under its own constraint file: an
exact pin that differs from HA's own pin (numpy==2.2.2 beside HA's numpy 2.3.2) cannot be
installed and the integration does not load. So the manifest names ranges, and each range must
hold the version pinned by the constraint file of the oldest HA that hacs.json claims and of the
newest HA the tests run on. scripts/_bootstrap.sh extracts both files from HA's wheels into .venv.
"""

from __future__ import annotations

import json
from pathlib import Path
import re

from packaging.requirements import Requirement
from packaging.version import Version
import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((ROOT / "custom_components" / "microgrid" / "manifest.json").read_text())
OLDEST = json.loads((ROOT / "hacs.json").read_text())["homeassistant"]
NEWEST = re.search(
    r"^homeassistant==(\S+)$", (ROOT / "requirements_test.txt").read_text(), re.M
).group(1)  # type: ignore[union-attr]
VENV = ROOT / ".venv"


def constraint_pins(text: str) -> dict[str, str]:
    """Package (normalised) -> exact version, from a pip constraint file's `name==version` lines."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" not in line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        pins[norm(req.name)] = spec.version
    return pins


def norm(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_requirements_are_ranges_not_exact_pins() -> None:
    """No `==` in the manifest: HA pins numpy, PyJWT ... itself and moves them every release."""
    for req in map(Requirement, MANIFEST["requirements"]):
        assert not any(s.operator in ("==", "===") for s in req.specifier), str(req)
        assert any(s.operator in (">=", ">") for s in req.specifier), f"{req}: no lower bound"


def test_the_oldest_claimed_ha_is_the_one_tested() -> None:
    """./scripts/test's second pass runs on exactly the HA that hacs.json claims as minimum."""
    oldest_reqs = (ROOT / "requirements_oldest.txt").read_text()
    assert re.search(rf"^homeassistant=={re.escape(OLDEST)}$", oldest_reqs, re.M), OLDEST
    assert Version(OLDEST) <= Version(NEWEST)
    assert Version(OLDEST) >= Version("2026.10.0"), "older HA lacks APIs the integration uses"


@pytest.mark.parametrize("ha_version", sorted({OLDEST, NEWEST}))
def test_ha_constraint_pins_satisfy_the_manifest(ha_version: str) -> None:
    """Every requirement HA itself pins is pinned inside the manifest's range."""
    path = VENV / f"ha_constraints.{ha_version}.txt"
    assert path.is_file(), f"{path} missing: run ./scripts/test (its bootstrap extracts it)"
    pins = constraint_pins(path.read_text())
    assert "numpy" in pins and "pyjwt" in pins, "not a Home Assistant constraint file?"
    for req in map(Requirement, MANIFEST["requirements"]):
        pinned = pins.get(norm(req.name))
        if pinned is not None:
            assert req.specifier.contains(pinned, prereleases=True), (
                f"HA {ha_version} pins {req.name}=={pinned}, outside the manifest's {req}"
            )


def test_the_tested_versions_satisfy_the_manifest() -> None:
    """requirements_test.txt installs versions inside the manifest's ranges."""
    tested = constraint_pins((ROOT / "requirements_test.txt").read_text())
    for req in map(Requirement, MANIFEST["requirements"]):
        assert norm(req.name) in tested, f"{req.name} is not in requirements_test.txt"
        assert req.specifier.contains(tested[norm(req.name)]), (req, tested[norm(req.name)])
