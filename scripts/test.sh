#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine (Python 3.11+, root): installs mariadb-server
# and the Python packages it needs into .venv, runs pytest, then scripts/lint.sh (ruff, mypy).
# Extra arguments go to pytest:
#   bash scripts/test.sh tests/test_mariadb_fixture.py -x -k tls
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"

# The MariaDB and PostgreSQL fixtures fail, rather than skip, when a server is missing: it was just installed.
export SECRETCLIENT_REQUIRE_MARIADB=1 SECRETCLIENT_REQUIRE_POSTGRES=1
args=(-q -p no:cacheprovider --durations=15)
if "$PY" -c 'import pytest_timeout' 2>/dev/null; then
    args+=("--timeout=${SECRETCLIENT_TEST_TIMEOUT:-300}")
fi
# Tests talk only to 127.0.0.1, and the aliyun SDK honours HTTP(S)_PROXY but not NO_PROXY.
status=0
env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy -u ALL_PROXY -u all_proxy \
    "$PY" -m pytest "${args[@]}" "$@" || status=$?
# Then style and types: a finding fails this command as a failing test does.
PY="$PY" bash scripts/lint.sh || { [ "$status" != 0 ] || status=1; }
exit "$status"
