#!/usr/bin/env bash
# Follows docs/quickstart.md's "Do it by hand on this machine" verbatim, as a newcomer would on a
# fresh Debian machine (Python 3.11+, root): every bash block between its quickstart:begin and
# quickstart:end markers, in order, in one shell whose $HOME is a new temporary directory. The
# command the page runs "in a second terminal" (the throwaway MariaDB) runs in the background
# here, and gets Ctrl-C (SIGINT) at the end, after which its files must be gone.
# Installs apt mariadb-server first when missing (scripts/setup-env.sh, as scripts/test.sh does).
# Exit status 0 only when every command succeeded and the server cleaned up after itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"   # cd's to the checkout

work="$(mktemp -d /tmp/quickstart.XXXXXX)"
steps="$work/steps.sh"
server="python -m secretclient.testing.mariadb"
{
    echo 'set -euo pipefail'
    in_block=
    while IFS= read -r line; do
        case "$line" in
            *"quickstart:begin"*) on=1; continue ;;
            *"quickstart:end"*) on= ;;
        esac
        [ -n "${on:-}" ] || continue
        if [ -z "$in_block" ]; then
            [ "$line" = '```bash' ] && in_block=1
        elif [ "$line" = '```' ]; then
            in_block=
        elif [[ "$line" == "$server"* ]]; then
            # The second terminal: in the background.
            printf '%s > %q 2>&1 & SERVER_PID=$!\n' "$line" "$work/server.log"
            echo 'trap '\''kill -TERM "$SERVER_PID" 2>/dev/null || true'\'' EXIT'
            printf 'for _ in $(seq 300); do [ -s mariadb.env ] && break; sleep 0.1; done; cat %q\n' "$work/server.log"
        else
            printf '%s\n' "$line"
        fi
    done < docs/quickstart.md
    # Ctrl-C in the second terminal, then the page's promise: nothing left behind.
    echo 'cnf="$MARIADB_CNF"; kill -INT "$SERVER_PID"; wait "$SERVER_PID"'
    echo 'test ! -e "$(dirname "$cnf")" && test ! -e mariadb.env'
} > "$steps"

grep -q "$server" "$steps" || { log "no quickstart section found in docs/quickstart.md"; exit 1; }
log "following docs/quickstart.md in $work (HOME=$work/home)"
mkdir "$work/home"
# A newcomer's shell: no virtualenv active, nothing of ours on PATH or PYTHONPATH.
PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx "$ROOT/.venv/bin" | paste -sd:)"
if env -u VIRTUAL_ENV -u PYTHONPATH HOME="$work/home" PATH="$PATH" bash "$steps"; then
    rm -rf "$work"
    echo "quickstart: every step of docs/quickstart.md section 2 passed"
else
    status=$?
    [ -f "$work/server.log" ] && cat "$work/server.log" >&2
    log "quickstart failed (exit $status); its files are in $work"
    exit "$status"
fi
