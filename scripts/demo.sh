#!/usr/bin/env bash
# The whole job end to end on one machine, with no Docker and no API keys: start a
# local broker, drive three vehicles from Potsdam to Leipzig at full speed, load
# everything into iot_service.duckdb, build the analytics models on it (dbt), print
# the trips, stop the broker (one already running from .local/broker, started by
# scripts/broker.sh start, is used instead and left running).
#
# Run it again and it adds a new set of trips: the broker keeps its data in
# .local/broker and the loader continues from the offsets stored in the file.
# DEMO_DUCKDB_FILE (default ./iot_service.duckdb) chooses the database file.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
db=${DEMO_DUCKDB_FILE:-$PWD/iot_service.duckdb}

export BROKER_DIR=${BROKER_DIR:-$repo/.local/broker}
# A broker already running from that folder (scripts/broker.sh start) is used as it
# is and left running; otherwise the demo starts one on a free port and stops it.
if servers=$("$repo/scripts/broker.sh" status); then
  echo "== using the broker already running on $servers" >&2
  stop_broker() { :; }
else
  own_broker=yes
  BROKER_PORT=${BROKER_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  export BROKER_PORT
  servers=127.0.0.1:$BROKER_PORT
  # A start still under way (it runs beside the build) is waited for first, so that
  # a failed build leaves no broker behind.
  stop_broker() {
    if [[ -n ${broker:-} ]]; then wait "$broker" 2>/dev/null || true; fi
    "$repo/scripts/broker.sh" stop
  }
fi
trap stop_broker EXIT

# Release binaries, so that the summary shows the loader's real speed; DuckDB itself
# is the prebuilt library, so the tests' debug build compiles nothing of it again.
# Both programs in one cargo run, so that the crates they share are built once with
# the same features, while the broker installs (Maven) and starts beside it.
bin=$CARGO_TARGET_DIR/release
"$repo/scripts/libduckdb.sh" install
broker_log=$(mktemp)
if [[ -n ${own_broker:-} ]]; then
  echo "== starting the local broker while the programs build" >&2
  "$repo/scripts/broker.sh" start >"$broker_log" 2>&1 &
  broker=$!
fi
echo "== building simulate and load (release; the first build takes several minutes)" >&2
cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin simulate --bin load
if [[ -n ${broker:-} ]] && ! wait "$broker"; then
  cat "$broker_log" >&2
  exit 1
fi
cat "$broker_log" >&2
rm -f "$broker_log"

echo "== simulate: Potsdam to Leipzig, three vehicles, full speed" >&2
"$bin/simulate" --from Potsdam --to Leipzig --speed max --bootstrap-servers "$servers"

echo "== load: into $db" >&2
"$bin/load" --dest duckdb --duckdb-file "$db" --bootstrap-servers "$servers"

# dbt's models are the one definition of a trip, an incident, a vehicle's day; its
# full output goes to a log, the outcome to the screen.
echo "== dbt build: the analytics models in schema iot_stream_analytics (the first run installs dbt)" >&2
dbt_log=$(mktemp)
if ! DUCKDB_FILE=$db "$repo/scripts/dbt.sh" build >"$dbt_log" 2>&1; then
  cat "$dbt_log" >&2
  rm -f "$dbt_log"
  exit 1
fi
grep -E "^.*Done\. PASS=" "$dbt_log" | sed 's/^[0-9:]* *//' >&2 || true
rm -f "$dbt_log"
"$bin/load" --duckdb-file "$db" --show-trips

echo "== open $db in DBeaver (DuckDB driver) or any DuckDB 1.4+ client: load's tables are in schema iot_stream, dbt's models in iot_stream_analytics" >&2
echo "== or see it on a map: scripts/dashboard.sh --duckdb-file $db, then open http://127.0.0.1:8501" >&2
