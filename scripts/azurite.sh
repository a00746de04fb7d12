#!/usr/bin/env bash
# Start or stop Azurite (blob, queue, table) on 127.0.0.1 as one process, data under .azurite/.
# Usage: scripts/azurite.sh start [--fresh] | stop | status   (the logic lives in devhost/azurite.py; stdlib only)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" -m devhost.azurite "$@"
