#!/usr/bin/env bash
# dbt beside load and the dashboard on the benchmarks' file of 5,000,000 events
# (scripts/bench-file.sh; IOT_BENCH_EVENTS): prints how long a full and an
# incremental dbt build take and hold the file, and what a cron load started
# during the incremental build meets. See analytics/bench.py.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
venv=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/analytics-venv

file=$(scripts/bench-file.sh)
cargo build --release --locked -p iot-simulate -p iot-load >&2
scripts/venv.sh "$venv" -r analytics/requirements.txt
exec scripts/broker.sh with "$venv/bin/python" analytics/bench.py "$file"
