#!/usr/bin/env bash
# Start or stop Azurite (blob, queue, table) on 127.0.0.1 as one process, data under .azurite/.
# Usage: scripts/azurite.sh start [--fresh] | stop | status
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=.azurite
PIDFILE=$DATA/azurite.pid
BIN=node_modules/.bin/azurite

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
port_open() { (exec 3<>/dev/tcp/127.0.0.1/10000) 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then echo "azurite already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    if port_open; then echo "azurite: something already listens on 127.0.0.1:10000; using it"; exit 0; fi
    [ -x "$BIN" ] || npm ci --no-audit --no-fund --loglevel=error
    if [ "${2:-}" = "--fresh" ]; then rm -rf "$DATA"; fi
    mkdir -p "$DATA"
    "$BIN" --silent --disableTelemetry --skipApiVersionCheck --loose \
      --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 \
      --location "$DATA" >"$DATA/azurite.out" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do port_open && break; sleep 0.1; done
    port_open || { echo "azurite did not start; see $DATA/azurite.out" >&2; cat "$DATA/azurite.out" >&2; exit 1; }
    echo "azurite started (pid $(cat "$PIDFILE"))"
    ;;
  stop)
    if running; then kill "$(cat "$PIDFILE")"; for _ in $(seq 1 50); do running || break; sleep 0.1; done; fi
    rm -f "$PIDFILE"
    ;;
  status)
    if running; then echo "running (pid $(cat "$PIDFILE"))"; else echo "stopped"; exit 1; fi
    ;;
  *) echo "usage: $0 start [--fresh] | stop | status" >&2; exit 2 ;;
esac
