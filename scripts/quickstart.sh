#!/usr/bin/env bash
# The quickstart, from a fresh Debian machine (Python 3.11+, root): installs mariadb-server and the
# Python packages into .venv, then runs examples/quickstart.py (a secret in the embedded store, a
# throwaway MariaDB, a query with credentials read from the secret). Arguments go to the example.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"

exec "$PY" examples/quickstart.py "$@"
