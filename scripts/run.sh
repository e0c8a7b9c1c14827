#!/usr/bin/env bash
# `make run`: local tagged echo targets on 9001-9003 (what the shipped config.json points at),
# then the daemon. Ctrl-C (or SIGTERM) drains the daemon, then stops the targets.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE=./node_modules/.bin/node
$NODE bin/ftest.ts serve 9001 9002 9003 --tag &
serve_pid=$!
echo "echo targets on 127.0.0.1:9001-9003 (pid $serve_pid); try: npx ftest balancer 127.0.0.1:5001" >&2
FPROXY_CONFIG_PATH="${FPROXY_CONFIG_PATH:-config.json}" $NODE daemon/main.ts &
daemon_pid=$!
stop() {
  kill -TERM "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" 2>/dev/null || true
  kill -TERM "$serve_pid" 2>/dev/null || true
}
trap stop INT TERM
wait "$daemon_pid" || true
kill -TERM "$serve_pid" 2>/dev/null || true
