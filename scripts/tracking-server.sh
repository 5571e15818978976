#!/usr/bin/env bash
# A local MLflow tracking server for `higgsbench train|bench --track URI`.
#
#   scripts/tracking-server.sh start    (make tracking-up)    start it, wait until it answers
#   scripts/tracking-server.sh stop     (make tracking-down)  stop what `start` started
#   scripts/tracking-server.sh status                         say whether it answers
#
# Settings (environment):
#   TRACKING_DIR   state: mlflow.db (SQLite runs, params, metrics), artifacts/, server.log,
#                  server.pid                                        default .state/mlflow
#   TRACKING_PORT  port on 127.0.0.1 (loopback only: the server has no authentication)
#                                                                    default 5000
#   MLFLOW         the `mlflow` program of the server's environment  default .venv-tracking/bin/mlflow
#                  (make venv-tracking: full mlflow in an environment of its own, since it pins
#                  pyarrow < 26 and the app pins pyarrow 26)
#   TRACKING_WAIT  seconds to wait for the server to answer          default 90
#
# The server is started in a session of its own (setsid), so that its process id is also the
# id of its process group: `stop` signals that group, named by the recorded id, and nothing else.
set -euo pipefail

TRACKING_DIR=${TRACKING_DIR:-.state/mlflow}
TRACKING_PORT=${TRACKING_PORT:-5000}
MLFLOW=${MLFLOW:-.venv-tracking/bin/mlflow}
TRACKING_WAIT=${TRACKING_WAIT:-90}
PID_FILE="$TRACKING_DIR/server.pid"
LOG="$TRACKING_DIR/server.log"
URL="http://127.0.0.1:$TRACKING_PORT"

die() { echo "tracking-server: $*" >&2; exit 1; }

running_pid() {  # the recorded id, if that process group is still alive
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 -- "-$pid" 2>/dev/null || return 1
  echo "$pid"
}

answers() {  # the server's /health says OK
  "$PYTHON" - "$URL/health" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

start() {
  [ -x "$MLFLOW" ] || die "$MLFLOW: not found; make venv-tracking (or set MLFLOW=path/to/mlflow)"
  PYTHON="$(dirname "$MLFLOW")/python"
  [ -x "$PYTHON" ] || PYTHON=python3
  if pid=$(running_pid); then
    echo "already running: $URL (pid $pid)"
    return 0
  fi
  if answers; then
    die "$URL answers already: another server holds port $TRACKING_PORT (choose TRACKING_PORT=)"
  fi
  mkdir -p "$TRACKING_DIR/artifacts"
  local dir
  dir=$(cd "$TRACKING_DIR" && pwd)
  # No job runner: its consumers (GenAI evaluation, prompt optimisation) serve nothing here.
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$MLFLOW" server \
    --host 127.0.0.1 --port "$TRACKING_PORT" --workers 1 \
    --backend-store-uri "sqlite:///$dir/mlflow.db" \
    --artifacts-destination "$dir/artifacts" \
    >"$LOG" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  local waited=0
  until answers; do
    if ! running_pid >/dev/null; then
      tail -n 20 "$LOG" >&2
      rm -f "$PID_FILE"
      die "the server exited during start-up (log: $LOG)"
    fi
    if [ "$waited" -ge "$TRACKING_WAIT" ]; then
      stop >/dev/null
      die "no answer from $URL after $TRACKING_WAIT s (log: $LOG)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "MLflow tracking server $URL (pid $(cat "$PID_FILE"), state $dir)"
  echo "train with: higgsbench train … --track $URL"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    echo "tracking server not running"
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  echo "tracking server stopped (pid $pid)"
}

status() {
  PYTHON="$(dirname "$MLFLOW")/python"
  [ -x "$PYTHON" ] || PYTHON=python3
  if pid=$(running_pid) && answers; then
    echo "running: $URL (pid $pid)"
  else
    echo "not running ($URL)"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
