#!/usr/bin/env bash
# Shared by scripts/test, scripts/demo and scripts/release (source it; it sets $PY).
#
# 1. Find Python >= 3.14.2 (Home Assistant 2026.3+ needs it): python3.14 on PATH, /usr/bin,
#    /usr/local/bin, or a pyenv 3.14.x. A system python3.14 (Debian 13+) is used directly.
# 2. None there (Debian 12 has 3.13 at most, and python.org is not reachable to build one)? Build,
#    once, a small Debian sid root with python3.14 under the cache dir (mmdebstrap, ~2 min) and
#    re-execute the calling script inside it (chroot). Its mounts live in a private mount
#    namespace (unshare -m): they vanish with the run, overlapping runs never share them, and
#    nothing under the host's /tmp can be reached by deleting the cache.
# 3. Build .venv once with that Python: the pinned stack under Home Assistant's own constraint
#    file, rebuilt when requirements_test.txt, manifest.json or the Python changes.
#
# Knobs: MICROGRID_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/microgrid) holds the sid root;
# MICROGRID_PYTHON=/path/to/python3.14 forces an interpreter; MICROGRID_DEBIAN_MIRROR.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
HA_VERSION="2026.10.4"
PY_MIN="3.14.2"
# Packages of the sid root; changing this list rebuilds it. libturbojpeg0 and ffmpeg: HA 2026.10
# always sets up camera and ffmpeg (base platforms), which log errors without them.
SID_PACKAGES="python3.14,python3.14-venv,python3.14-dev,build-essential,git,procps,iproute2,util-linux,ca-certificates,tzdata,libturbojpeg0,ffmpeg"
SID_RECIPE_VERSION=1
IN_ROOT_ENV="MICROGRID_IN_PY314_ROOT"

py_ok() { # $1: interpreter; true if it is 3.14.x >= PY_MIN and can make a venv with pip
  "$1" - "$PY_MIN" <<'PYEOF' >/dev/null 2>&1
import sys
want = tuple(int(x) for x in sys.argv[1].split("."))
assert sys.version_info[:2] == want[:2] and sys.version_info[:3] >= want
import ensurepip, venv  # noqa: F401  (Debian splits these into python3.14-venv)
PYEOF
}

find_python() {
  local cand p v
  if [ -n "${MICROGRID_PYTHON:-}" ]; then
    py_ok "$MICROGRID_PYTHON" && { echo "$MICROGRID_PYTHON"; return 0; }
    echo "bootstrap: MICROGRID_PYTHON=$MICROGRID_PYTHON is not Python >= $PY_MIN with venv" >&2
    return 1
  fi
  for cand in python3.14 /usr/bin/python3.14 /usr/local/bin/python3.14; do
    p="$(command -v "$cand" 2>/dev/null)" || continue
    py_ok "$p" && { echo "$p"; return 0; }
  done
  # pyenv machines: a bare python3.14 shim fails unless PYENV_VERSION names the version.
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.14(\.[0-9]+)?$' | sort -rV || true); do
      p="$(PYENV_VERSION="$v" pyenv which python3.14 2>/dev/null || true)"
      [ -n "$p" ] && py_ok "$p" && { echo "$p"; return 0; }
    done
  fi
  return 1
}

mounted_under() { # true if anything is mounted at or below $1 in this mount namespace
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo
}

safe_rm() { # rm -rf a sid root, refusing while anything is mounted inside it
  [ -e "$1" ] || return 0
  if mounted_under "$1"; then
    echo "bootstrap: refusing to delete $1: something is mounted inside it" >&2
    return 1
  fi
  rm -rf --one-file-system "$1"
}

sid_root_ready() { # $1: where; true if a root of this recipe is complete there
  [ -f "$1/.microgrid-ready" ] && [ "$(cat "$1/.microgrid-ready")" = "$SID_RECIPE_VERSION $SID_PACKAGES" ]
}

ensure_sid_root() { # $1: where; builds it if missing or made from another recipe
  local sid="$1" stamp tmp mirror t0
  stamp="$SID_RECIPE_VERSION $SID_PACKAGES"
  sid_root_ready "$sid" && return 0
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      echo "bootstrap: installing mmdebstrap (host package, to build the Python 3.14 root)" >&2
      apt-get install -y -qq mmdebstrap >&2 || { apt-get update -qq >&2 && apt-get install -y -qq mmdebstrap >&2; }
    else
      echo "bootstrap: no Python >= $PY_MIN and no mmdebstrap/apt-get to build one; install python3.14" >&2
      return 1
    fi
  fi
  mirror="${MICROGRID_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  tmp="$sid.new.$$"
  t0=$SECONDS
  safe_rm "$tmp"
  echo "bootstrap: no Python >= $PY_MIN here; building a Debian sid root with python3.14 in $sid (once, ~2 min)" >&2
  # Its own mount namespace: whatever mmdebstrap mounts inside $tmp dies with it.
  if ! unshare -m --propagation private -- mmdebstrap --quiet --mode=root --variant=apt \
      --aptopt='Acquire::Check-Valid-Until "false"' \
      --include="$SID_PACKAGES" \
      sid "$tmp" "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" >&2; then
    echo "bootstrap: mmdebstrap failed" >&2
    safe_rm "$tmp" || true
    return 1
  fi
  echo "$stamp" > "$tmp/.microgrid-ready"
  echo "bootstrap: sid root built in $((SECONDS - t0)) s" >&2
  if [ -e "$sid" ]; then safe_rm "$sid"; fi
  mv "$tmp" "$sid"
}

run_in_sid_root() { # re-execute the calling script inside the sid root; never returns
  local cache sid lock script var cwd
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: no Python >= $PY_MIN found; the fallback (a Debian sid root entered with chroot) needs root." >&2
    echo "bootstrap: install python3.14 (+ python3.14-venv, python3.14-dev) or run as root." >&2
    exit 1
  fi
  cache="${MICROGRID_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/microgrid}"
  sid="$cache/py314-root"
  mkdir -p "$cache"
  lock="$cache/py314-root.lock"
  # fd 9: shared for as long as this run (and its children) live, so runs overlap freely and
  # a rebuild (exclusive) never swaps the root under a running test or demo; exclusive only
  # while building.
  exec 9>"$lock"
  flock -s 9
  if ! sid_root_ready "$sid"; then
    flock -u 9
    flock -x -n 9 || { echo "bootstrap: waiting for the runs using $sid to end" >&2; flock -x 9; }
    ensure_sid_root "$sid" || exit 1
    flock -s 9
  fi
  # Refreshed on every entry (atomically: another run may be reading them): the host's CA bundle
  # (pip and HA need it; the host may add its own CAs), resolver and hosts.
  for f in /etc/ssl/certs/ca-certificates.crt /etc/resolv.conf /etc/hosts; do
    if [ -f "$f" ] && ! cmp -s "$f" "$sid$f"; then
      mkdir -p "$(dirname "$sid$f")"
      cp -L "$f" "$sid$f.tmp.$$" && mv -f "$sid$f.tmp.$$" "$sid$f"
    fi
  done
  mkdir -p "$sid$ROOT"
  script="$ROOT/scripts/$(basename "$0")"
  cwd="$PWD"
  case "$cwd" in "$ROOT" | "$ROOT"/*) ;; *) cwd="$ROOT" ;; esac
  # A clean environment: the host's PATH, pyenv and pip settings mean nothing in there.
  local -a env_keep=("HOME=/root" "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "LANG=C.UTF-8" "$IN_ROOT_ENV=1" "MICROGRID_PY314_ROOT_DIR=$sid"
    "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" "PIP_DISABLE_PIP_VERSION_CHECK=1")
  for var in TERM COLUMNS LINES CI NO_COLOR FORCE_COLOR PYTEST_ADDOPTS http_proxy https_proxy no_proxy \
      HTTP_PROXY HTTPS_PROXY NO_PROXY $(compgen -e | grep -E '^(MICROGRID_|DEMO_)' || true); do
    [ -n "${!var+x}" ] && env_keep+=("$var=${!var}")
  done
  echo "bootstrap: running $(basename "$0") in $sid (python3.14 $(chroot "$sid" python3.14 -c 'import platform; print(platform.python_version())'))" >&2
  # Private mount namespace: the binds below exist only for this run and vanish with it.
  # /tmp and the checkout are shared with the host (same paths); the network namespace is the
  # host's, so the demo on 127.0.0.1:8123 is reachable from the host as usual.
  exec unshare -m --propagation private -- /bin/bash -c '
    set -e
    sid=$1 root=$2; shift 2
    mount --rbind /proc "$sid/proc"
    mount --rbind /sys "$sid/sys"
    mount --rbind /dev "$sid/dev"
    mount --rbind /tmp "$sid/tmp"
    mount --bind "$root" "$sid$root"
    exec chroot "$sid" /usr/bin/env -i "$@"
  ' _ "$sid" "$ROOT" "${env_keep[@]}" /bin/bash -c 'cd "$1" && shift && exec "$@"' _ \
    "$cwd" "$script" "$@"
}

if PYBASE="$(find_python)"; then
  :
elif [ "${!IN_ROOT_ENV:-}" = "1" ]; then
  echo "bootstrap: python3.14 missing inside the sid root; delete it (${MICROGRID_PY314_ROOT_DIR:-?}) to rebuild" >&2
  exit 1
else
  run_in_sid_root "$@"  # the calling script's arguments (this file is sourced without any)
fi

ha_oldest() { # the minimum Home Assistant version hacs.json claims
  "$PYBASE" -c 'import json, sys; print(json.load(open(sys.argv[1]))["homeassistant"])' "$ROOT/hacs.json"
}

ha_constraints() { # $1 venv, $2 HA version: extract that HA wheel's package_constraints.txt once
  local venv="$1" ha="$2" wheels="$1/.wheels"
  [ -f "$venv/ha_constraints.$ha.txt" ] && return 0
  mkdir -p "$wheels"
  "$venv/bin/python" -m pip download -q --no-deps -d "$wheels" "homeassistant==$ha" >&2
  "$venv/bin/python" - "$wheels" "$ha" "$venv/ha_constraints.$ha.txt" <<'PYEOF'
import glob, sys, zipfile
whl = glob.glob(f"{sys.argv[1]}/homeassistant-{sys.argv[2]}-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("homeassistant/package_constraints.txt").decode()
open(sys.argv[3], "w").write(data)
PYEOF
  rm -f "$wheels"/homeassistant-"$ha"-*.whl
}

# ensure_venv VENV REQUIREMENTS HA_VERSION: build VENV once (and again whenever the requirements,
# manifest.json, hacs.json or the Python change) with REQUIREMENTS under HA_VERSION's own
# constraint file (-c), or pip picks another grpcio/protobuf/... stack than HA runs with.
ensure_venv() {
  local venv="$1" reqs="$2" ha="$3" stamp pyver pip_rc t0=$SECONDS
  pyver="$("$PYBASE" -c 'import sys; print(sys.version)')"
  stamp="$({ cat "$reqs" "$ROOT/custom_components/microgrid/manifest.json" "$ROOT/hacs.json"
    echo "$pyver $ha"; } | sha256sum | cut -c1-16)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  # One builder at a time per venv (two overlapping first runs in one checkout).
  exec 8>"$venv.lock"
  flock -x 8
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ]; then
    flock -u 8
    return 0
  fi
  echo "bootstrap: building $venv with $PYBASE (Python ${pyver%% *}, Home Assistant $ha)" >&2
  # A venv of another Python (the old 3.13 one, or a host one vs the sid root) is rebuilt.
  if [ -e "$venv" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null)" != "$pyver" ]; then
    rm -rf "$venv"
  fi
  [ -x "$venv/bin/python" ] || "$PYBASE" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade "pip<26" wheel >&2
  # The constraint files of the HA we install and of the oldest HA hacs.json claims
  # (tests/test_manifest.py checks manifest.json against both).
  ha_constraints "$venv" "$ha"
  ha_constraints "$venv" "$(ha_oldest)"
  cp "$venv/ha_constraints.$ha.txt" "$venv/ha_constraints.txt"
  set +o pipefail
  "$venv/bin/python" -m pip install -q --progress-bar off -c "$venv/ha_constraints.txt" -r "$reqs" 2>&1 | { grep -v "is ignored: it is neither" || true; } >&2
  pip_rc=${PIPESTATUS[0]}
  set -o pipefail
  [ "$pip_rc" -eq 0 ] || { echo "bootstrap: pip install failed ($pip_rc)" >&2; exit "$pip_rc"; }
  echo "$stamp" > "$venv/.stamp"
  flock -u 8
  echo "bootstrap: $venv built in $((SECONDS - t0)) s" >&2
}

ensure_venv "$VENV" "$ROOT/requirements_test.txt" "$HA_VERSION"
PY="$VENV/bin/python"
export PY
