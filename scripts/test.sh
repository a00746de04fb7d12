#!/usr/bin/env bash
# Lint, then the whole test suite against a freshly started Azurite, which is stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
scripts/infra-check.sh
scripts/azurite.sh start --fresh
trap 'scripts/azurite.sh stop' EXIT
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; fi
exit "$rc"
