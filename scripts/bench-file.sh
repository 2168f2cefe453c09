#!/usr/bin/env bash
# The benchmarks' DuckDB file of 5,000,000 events (IOT_BENCH_EVENTS): 600 vehicles
# on one route, sent by the real simulate and stored by the real load (release
# builds) through a private broker. Made once and kept in the cache
# (~/.cache/iot-streaming/bench): making it takes a few minutes. Prints its path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
cache=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}
events=${IOT_BENCH_EVENTS:-5000000}
file=$cache/bench/fleet-$events.duckdb

if [[ ! -f $file ]]; then
  scripts/libduckdb.sh install >&2
  cargo build --release --locked -p iot-simulate -p iot-load >&2
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
  ' _ "$events" "$file.part" >&2
  mv "$file.part" "$file"
fi
echo "$file"
