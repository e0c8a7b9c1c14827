#!/usr/bin/env bash
# `make run`: local tagged echo targets on 9001-9003 (what the shipped config.json points at),
# then the daemon. Ctrl-C (or SIGTERM) drains the daemon, then stops the targets.
#
# Ctrl-C signals the terminal's whole foreground process group. Both children therefore run in
# their own sessions (setsid) and only this script reacts: it sends the daemon one SIGTERM, waits
# for its drain, and only then stops the echo targets, so clients draining through the daemon
# keep their targets to the end (and the daemon does not see a second signal, which means "exit now").
# RUN_TARGET_PORTS overrides the echo ports (tests use free ones).
set -euo pipefail
cd "$(dirname "$0")/.."
NODE=./node_modules/.bin/node
# shellcheck disable=SC2086 # a list of ports
setsid $NODE bin/ftest.ts serve ${RUN_TARGET_PORTS:-9001 9002 9003} --tag &
serve_pid=$!
echo "echo targets on 127.0.0.1:${RUN_TARGET_PORTS:-9001-9003} (pid $serve_pid); try: npx ftest balancer 127.0.0.1:5001" >&2
FPROXY_CONFIG_PATH="${FPROXY_CONFIG_PATH:-config.json}" setsid $NODE daemon/main.ts &
daemon_pid=$!
stopping=0
stop() {
  [ "$stopping" = 1 ] && return
  stopping=1
  echo "stopping: draining the daemon (pid $daemon_pid), then the echo targets" >&2
  kill -TERM "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" 2>/dev/null || true
  kill -TERM "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" 2>/dev/null || true
}
trap stop INT TERM
wait "$daemon_pid" || true
stop
