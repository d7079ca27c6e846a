#!/usr/bin/env bash
# The live demo, from a fresh Debian machine (Python 3.11+, root): installs mariadb-server,
# postgresql and the Python packages into .venv (scripts/setup-env.sh, as scripts/test.sh does), then runs
# examples/demo.py: worker threads query a throwaway MariaDB through our SQLAlchemy engine while
# the password rotates every few seconds. Arguments go to the demo:
#   bash scripts/demo.sh --duration 60 --workers 16 --interval 2 --strategy single --store kms
#   bash scripts/demo.sh --store aws      # moto's Secrets Manager server through boto3
#   bash scripts/demo.sh --db postgres    # the same on a throwaway PostgreSQL through psycopg 3
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"

# Everything talks to 127.0.0.1, and the aliyun SDK honours HTTP(S)_PROXY but not NO_PROXY.
exec env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy -u ALL_PROXY -u all_proxy \
    "$PY" examples/demo.py "$@"
