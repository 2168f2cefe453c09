#!/usr/bin/env bash
# The pipeline (load, then dbt build) as a Prefect flow, in a virtualenv under the
# cache made on the first run; see orchestrator/flow.py.
#
#   scripts/flow.sh                   one run in Prefect's ephemeral mode
#   scripts/flow.sh --serve           runs on the cron schedule IOT_FLOW_CRON (every 5
#                                     minutes), until Ctrl-C, on Prefect's own server (UI
#                                     on 127.0.0.1:4200, PREFECT_SERVER_PORT) unless
#                                     PREFECT_API_URL names one
#   scripts/flow.sh --dest snowflake  arguments go to load; dbt builds where it loaded
#
# Exit status: 0 when the run completed (or there was nothing new), load's when
# load failed (after its retries, see orchestrator/flow.py), 1 when dbt failed. Prefect keeps its state in PREFECT_HOME (default under the cache) and
# sends no usage statistics from here. A .env file in this folder is read.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}
venv=$cache/orchestrator-venv

# shellcheck source=scripts/dotenv.sh
source "$repo/scripts/dotenv.sh"
"$repo/scripts/venv.sh" "$venv" -r "$repo/orchestrator/requirements.txt"
export PREFECT_HOME=${PREFECT_HOME:-$cache/prefect}
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
# Prefect's temporary server (one run, no --serve) gets 2 minutes to start rather
# than 20 s: on a busy 2-core machine it was seen to take longer, and the run failed.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=${PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS:-120}
mkdir -p "$PREFECT_HOME"
# Prefect leaves folders in the temporary directory (a served flow's
# runner_storage): this run's go in a folder of its own, removed at the end.
TMPDIR=$(mktemp -d -t iot-flow.XXXXXX)
export TMPDIR
server=
stop() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$TMPDIR"
}
trap stop EXIT

# Prefect's ephemeral mode runs a flow but schedules nothing: --serve without a
# server of the user's (PREFECT_API_URL) starts Prefect's own on 127.0.0.1 for as
# long as this script runs, its UI included.
if [[ ${1:-} == --serve && -z ${PREFECT_API_URL:-} ]]; then
  port=${PREFECT_SERVER_PORT:-4200}
  # In a session of its own, so that Ctrl-C reaches the flow first: the flow
  # stops while the server still answers, then the EXIT trap stops the server.
  setsid "$venv/bin/prefect" server start --host 127.0.0.1 --port "$port" \
    >"$PREFECT_HOME/server.log" 2>&1 &
  server=$!
  export PREFECT_API_URL=http://127.0.0.1:$port/api
  for _ in $(seq 120); do
    if "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
      "$PREFECT_API_URL/health" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
      echo "flow: Prefect's server did not start; its log ($PREFECT_HOME/server.log) ends with:" >&2
      tail -n 20 "$PREFECT_HOME/server.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "flow: Prefect's server and UI on http://127.0.0.1:$port (stops with this script)" >&2
fi
"$venv/bin/python" "$repo/orchestrator/flow.py" "$@"
