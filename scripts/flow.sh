#!/usr/bin/env bash
# The pipeline (load, then dbt build) as a Prefect flow, in a virtualenv under the
# cache made on the first run; see orchestrator/flow.py.
#
#   scripts/flow.sh                   one run in Prefect's ephemeral mode
#   scripts/flow.sh --serve           a run every IOT_FLOW_EVERY seconds (300), until Ctrl-C
#   scripts/flow.sh --dest snowflake  arguments go to load; dbt builds where it loaded
#
# Exit status: 0 when the run completed (or there was nothing new), 1 when a step
# failed. Prefect keeps its state in PREFECT_HOME (default under the cache) and
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
exec "$venv/bin/python" "$repo/orchestrator/flow.py" "$@"
