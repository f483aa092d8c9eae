#!/usr/bin/env bash
# Shared by scripts/test, scripts/demo and scripts/release: find Python 3.13, build .venv once,
# install the pinned stack under Home Assistant's own constraint file. Source it; it sets $PY.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
HA_VERSION="2025.4.4"

find_python() {
  local cand
  for cand in python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2]==(3,13)' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  # pyenv machines: a bare python3.13 shim fails unless PYENV_VERSION names the version.
  if command -v pyenv >/dev/null 2>&1; then
    local v
    v="$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$' | sort -V | tail -n1 || true)"
    if [ -n "$v" ]; then
      local p
      p="$(PYENV_VERSION="$v" pyenv which python3.13 2>/dev/null || true)"
      [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
    fi
  fi
  return 1
}

stamp_of() {
  cat "$ROOT/requirements_test.txt" "$ROOT/custom_components/microgrid/manifest.json" | sha256sum | cut -c1-16
}

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$(stamp_of)" ]; then
  PY313="$(find_python)" || { echo "Python 3.13 not found (install python3.13 + python3.13-venv, or pyenv install 3.13.0)" >&2; exit 1; }
  echo "bootstrap: building $VENV with $PY313" >&2
  [ -x "$VENV/bin/python" ] || "$PY313" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade "pip<26" wheel >&2
  # Home Assistant's own constraint file, from the very wheel we install.
  WHEELDIR="$ROOT/.venv/.wheels"
  mkdir -p "$WHEELDIR"
  if [ ! -f "$VENV/ha_constraints.txt" ]; then
    "$VENV/bin/python" -m pip download -q --no-deps -d "$WHEELDIR" "homeassistant==$HA_VERSION" >&2
    "$VENV/bin/python" - "$WHEELDIR" "$VENV/ha_constraints.txt" <<'PYEOF'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/homeassistant-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("homeassistant/package_constraints.txt").decode()
open(sys.argv[2], "w").write(data)
PYEOF
  fi
  set +o pipefail
  "$VENV/bin/python" -m pip install -q --progress-bar off -c "$VENV/ha_constraints.txt" -r "$ROOT/requirements_test.txt" 2>&1 | { grep -v "is ignored: it is neither" || true; } >&2
  pip_rc=${PIPESTATUS[0]}
  set -o pipefail
  [ "$pip_rc" -eq 0 ] || { echo "bootstrap: pip install failed ($pip_rc)" >&2; exit "$pip_rc"; }
  stamp_of > "$VENV/.stamp"
fi
PY="$VENV/bin/python"
export PY
