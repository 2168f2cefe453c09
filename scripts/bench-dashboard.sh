#!/usr/bin/env bash
# Times the dashboard's questions, page by page, on a DuckDB file of 5,000,000
# events (IOT_BENCH_EVENTS) and prints the figures; see dashboard/bench.py.
#
# The file is made once by the real simulate and load (release builds) through a
# private broker, and kept in the cache (~/.cache/iot-streaming/bench) for the
# next run: making it takes a few minutes, timing the pages seconds.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
cache=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}
events=${IOT_BENCH_EVENTS:-5000000}
file=$cache/bench/dashboard-$events.duckdb

scripts/libduckdb.sh install
scripts/venv.sh "$cache/dashboard-venv" -r dashboard/requirements.txt
if [[ ! -f $file ]]; then
  cargo build --release --locked -p iot-simulate -p iot-load
  mkdir -p "$(dirname "$file")"
  rm -f "$file.part"
  # 600 vehicles half a minute apart on one route: more events than asked for, so
  # --max-events ends the run with the fleet spread along the whole route.
  scripts/broker.sh with bash -c '
    bin=$CARGO_TARGET_DIR/release
    "$bin/simulate" --from Potsdam --to Leipzig --vehicles 600 --stagger 30s --seed 5 \
      --speed max --max-events "$1" --progress false --bootstrap-servers "$BROKER_BOOTSTRAP"
    "$bin/load" --dest duckdb --duckdb-file "$2" --progress false \
      --bootstrap-servers "$BROKER_BOOTSTRAP"
  ' _ "$events" "$file.part"
  mv "$file.part" "$file"
fi
exec "$cache/dashboard-venv/bin/python" dashboard/bench.py "$file"
