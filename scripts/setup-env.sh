# Shared set-up for scripts/test.sh and scripts/quickstart.sh; source it, do not run it.
#
# On a fresh Debian machine (root, or sudo) it installs what is missing:
#   - apt mariadb-server (mariadbd and its server_audit plugin, for the throwaway test servers);
#   - apt postgresql (initdb and postgres, for the throwaway PostgreSQL servers);
#   - python3-venv when `python3 -m venv` does not work;
#   - a virtualenv at .venv with this project installed editable with the dev extra
#     (through uv when it can be had, which takes seconds; else plain pip).
# Afterwards $PY is the virtualenv's python. Set PYTHON to pick the interpreter (3.11+).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else log "need root for: $*"; return 1
    fi
}

APT_UPDATED=
apt_install() {
    command -v apt-get >/dev/null 2>&1 || { log "no apt-get: install $* by hand"; return 1; }
    if [ -z "$APT_UPDATED" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

have_mariadbd() {
    { command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } &&
        [ -e /usr/lib/mysql/plugin/server_audit.so ]
}

if ! have_mariadbd; then
    log "installing mariadb-server (apt)"
    apt_install mariadb-server
fi

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || command -v postgres >/dev/null 2>&1
}

if ! have_postgres; then
    log "installing postgresql (apt)"
    apt_install postgresql
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    log "$PYTHON is missing or older than 3.11; set PYTHON=/path/to/python3.11"
    exit 1
fi

VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV" >&2; then
        rm -rf "$VENV"
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV" >&2
    fi
fi
PY="$VENV/bin/python"

log "installing secretclient-rotation[dev] into $VENV"
if [ -x "$VENV/bin/uv" ] || "$PY" -m pip install -q uv >&2; then
    pip_() { "$VENV/bin/uv" pip "$1" -q --python "$PY" "${@:2}" >&2; }
else
    log "uv unavailable; using pip (slower)"
    pip_() { "$PY" -m pip "$1" -q "${@:2}" >&2; }
fi
# A .venv made before the rename holds the project as `secretclient`: remove that first (after
# the install, removing it would take the console scripts both distributions declare with it).
if "$PY" -c 'import importlib.metadata as m; m.distribution("secretclient")' 2>/dev/null; then
    if [ -x "$VENV/bin/uv" ]; then pip_ uninstall secretclient; else pip_ uninstall -y secretclient; fi
fi
pip_ install -e '.[dev]'
