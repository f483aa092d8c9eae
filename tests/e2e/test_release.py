"""The HACS release zip: integration at the root, symlinks resolved, and it loads in a real HA."""

from __future__ import annotations

import json
from pathlib import Path
import py_compile
import sys
import zipfile

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from demo_lib.release import build_zip, release_files, zip_name_from_hacs  # noqa: E402

SRC = ROOT / "custom_components" / "microgrid"


def test_zip_has_the_integration_at_its_root(release_zip: Path) -> None:
    """manifest.json, translations and the resolved optimizer/ and ml/ packages are top level."""
    names = set(zipfile.ZipFile(release_zip).namelist())
    assert {"manifest.json", "__init__.py", "config_flow.py", "translations/en.json"} <= names
    assert "optimizer/__init__.py" in names
    assert "ml/__init__.py" in names
    assert not any(n.startswith("custom_components/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_symlinked_packages_are_real_files_with_the_same_bytes(tmp_path: Path) -> None:
    """Each optimizer/ml module in the zip equals the top-level package's file."""
    fresh = tmp_path / "microgrid.zip"
    build_zip(SRC, fresh)
    with zipfile.ZipFile(fresh) as zf:
        for name in zf.namelist():
            if name.startswith(("optimizer/", "ml/")):
                assert zf.read(name) == (ROOT / name).read_bytes(), name
                assert not zf.getinfo(name).is_dir()


def test_every_python_file_in_the_zip_compiles(unpacked_integration: Path, tmp_path: Path) -> None:
    """An unpacked zip byte-compiles (no file cut or mangled)."""
    for path in unpacked_integration.rglob("*.py"):
        py_compile.compile(str(path), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_build_is_reproducible(tmp_path: Path) -> None:
    """The same tree gives the same zip bytes (fixed timestamps, sorted entries)."""
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_zip(SRC, first)
    build_zip(SRC, second)
    assert first.read_bytes() == second.read_bytes()


def test_release_files_skip_bytecode_and_hidden_files(tmp_path: Path) -> None:
    """__pycache__, *.pyc and dot files never ship; symlinked dirs are followed."""
    src = tmp_path / "integration"
    (src / "__pycache__").mkdir(parents=True)
    (src / "__pycache__" / "x.cpython-313.pyc").write_bytes(b"\0")
    (src / "manifest.json").write_text("{}")
    (src / ".hidden").write_text("x")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "mod.py").write_text("X = 1\n")
    (pkg / "mod.pyc").write_bytes(b"\0")
    (src / "pkg").symlink_to(pkg)
    assert [name for _, name in release_files(src)] == ["manifest.json", "pkg/mod.py"]


def test_a_dir_without_manifest_is_refused(tmp_path: Path) -> None:
    """Building from the wrong dir is a clear error, not an empty zip."""
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        build_zip(tmp_path, tmp_path / "out.zip")


def test_hacs_json_names_the_zip() -> None:
    """hacs.json promises the file scripts/release builds."""
    assert zip_name_from_hacs(ROOT / "hacs.json") == "microgrid.zip"


@pytest.mark.e2e
def test_unpacked_zip_loads_in_a_real_home_assistant(demo_up: dict) -> None:
    """The demo ran from the unpacked zip: HA loaded it and offers its config flow form."""
    assert demo_up["loaded_is_built_in"] is False
    assert demo_up["loaded_version"] == demo_up["zip_version"]
    assert json.loads((SRC / "manifest.json").read_text())["version"] == demo_up["zip_version"]
    assert demo_up["new_flow"] == {"type": "form", "step_id": "user"}, demo_up["_failure"]
