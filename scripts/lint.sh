#!/usr/bin/env bash
# Style and types, as pyproject.toml configures them: `ruff check` ([tool.ruff.lint]) and mypy in
# strict mode ([tool.mypy]) over the library packages. scripts/test.sh runs it after pytest, so a
# finding fails README's test command (and CI) as a failing test does. Needs the dev extra:
#   bash scripts/lint.sh              # with .venv from scripts/test.sh (or PY=/path/to/python)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"

status=0
echo "==> ruff check secretclient rotation" >&2
"$PY" -m ruff check --quiet secretclient rotation || status=1
echo "==> mypy (strict) secretclient rotation" >&2
"$PY" -m mypy || status=1
exit "$status"
