"""Build the HACS release zip: the integration's files at the zip root, symlinks resolved."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
import sys
import zipfile

ROOT = Path(__file__).resolve().parents[2]
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same tree gives the same bytes


def _skipped(name: str) -> bool:
    """Bytecode, caches and hidden files never ship."""
    return name.startswith(".") or name == "__pycache__" or name.endswith((".pyc", ".pyo"))


def release_files(src: Path) -> list[tuple[Path, str]]:
    """Return (file, name in zip) for every shipped file under src, following symlinks."""
    if not (src / "manifest.json").is_file():
        raise FileNotFoundError(f"{src} has no manifest.json: not an integration dir")
    found: list[tuple[Path, str]] = []
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            raise ValueError(f"symlink loop at {dirpath}")
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        for name in sorted(filenames):
            if _skipped(name):
                continue
            path = Path(dirpath, name)
            found.append((path, path.relative_to(src).as_posix()))
    return found


def build_zip(src: Path, dest: Path) -> list[str]:
    """Write the release zip to dest; return the names it holds."""
    files = release_files(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, arcname in files:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    tmp.replace(dest)
    return [arcname for _, arcname in files]


def zip_name_from_hacs(hacs_json: Path) -> str:
    """Return the zip file name hacs.json promises (zip_release + filename)."""
    hacs = json.loads(hacs_json.read_text())
    if not hacs.get("zip_release") or not hacs.get("filename"):
        raise ValueError(f"{hacs_json} does not declare zip_release with a filename")
    return str(hacs["filename"])


def main(argv: list[str] | None = None) -> int:
    """Build dist/<hacs filename> and print what was built."""
    parser = argparse.ArgumentParser(prog="scripts/release", description=__doc__)
    parser.add_argument("--src", type=Path, default=ROOT / "custom_components" / "microgrid")
    parser.add_argument("--out", type=Path, default=None, help="default: dist/<hacs filename>")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "dist" / zip_name_from_hacs(ROOT / "hacs.json")
    try:
        names = build_zip(args.src, out)
    except (OSError, ValueError) as err:
        print(f"release: failed: {err}", file=sys.stderr)
        return 1
    version = json.loads((args.src / "manifest.json").read_text()).get("version", "?")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out} version {version}: {len(names)} files, {out.stat().st_size} bytes")
    print(f"sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
