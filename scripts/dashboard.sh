#!/usr/bin/env bash
# The dashboard: the fleet on a map, its trips, incidents and weather, and the
# pipeline's health, read live from the file `load` writes (Streamlit, in a
# virtualenv under the cache, made on the first run).
#
#   scripts/dashboard.sh                                   iot_service.duckdb here
#   scripts/dashboard.sh --duckdb-file other.duckdb --dataset fleet_a --refresh 10
#   scripts/dashboard.sh --dest snowflake                  DESTINATION__SNOWFLAKE__* as load
#
# It serves on http://127.0.0.1:$DASHBOARD_PORT (default 8501), headless: open that
# address in a browser. LOAD_DEST, DUCKDB_FILE, DATASET_NAME and DASHBOARD_REFRESH set the same
# as the flags (a .env file in this folder is read too). No usage statistics are sent.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/dashboard-venv

# shellcheck source=scripts/dotenv.sh
source "$repo/scripts/dotenv.sh"
"$repo/scripts/venv.sh" "$venv" -r "$repo/dashboard/requirements.txt"
port=${DASHBOARD_PORT:-8501}
echo "dashboard: http://127.0.0.1:$port (Ctrl-C stops it)" >&2
exec "$venv/bin/python" -m streamlit run "$repo/dashboard/app.py" \
  --server.address 127.0.0.1 --server.port "$port" --server.headless true \
  --browser.gatherUsageStats false -- "$@"
