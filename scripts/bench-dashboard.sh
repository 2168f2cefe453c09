#!/usr/bin/env bash
# Times the dashboard's questions, page by page, on the benchmarks' DuckDB file of
# 5,000,000 events (scripts/bench-file.sh; IOT_BENCH_EVENTS), with dbt's models
# built on it, and prints the figures; see dashboard/bench.py.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cache=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}

file=$(scripts/bench-file.sh)
# The pages read dbt's models: built once, then each run finds nothing new.
DUCKDB_FILE=$file DATASET_NAME=iot_stream scripts/dbt.sh build >/dev/null
scripts/venv.sh "$cache/dashboard-venv" -r dashboard/requirements.txt
exec "$cache/dashboard-venv/bin/python" dashboard/bench.py "$file"
