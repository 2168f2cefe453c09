#!/usr/bin/env bash
# How `load --dest snowflake` scales out, measured: one backlog of EVENTS events
# (default 20000) in topics of PARTITIONS partitions (default 4) is loaded into the
# Snowflake emulator by 1, 2 and 4 cron loaders of one consumer group, started
# together (LOADERS="1 2 4"), in batches of BATCH messages (default 2000, so that
# the group shares the partitions out while the first batches load),
# each round into a dataset of its own set up by config/snowflake/provision.sql and
# loaded under its loader role. For each round it prints the wall time, rows/s,
# and what crossed the wire per 1,000 rows (statements, bytes of SQL text, bytes of
# files uploaded to the stage), and checks that every message is stored once.
#
# The emulator (fakesnow, one Python process on DuckDB) is far slower than
# Snowflake: its figures compare this code's rounds and versions, not warehouses.
# It starts a private Apache Kafka broker and emulator on free ports, and stops both.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
events=${EVENTS:-20000}
partitions=${PARTITIONS:-4}
rounds=${LOADERS:-1 2 4}
batch=${BATCH:-2000}

say() { printf '== %s\n' "$*" >&2; }

if [[ -z ${BROKER_BOOTSTRAP:-} || -z ${SNOWFLAKE_EMULATOR_URL:-} ]]; then
  "$repo/scripts/libduckdb.sh" install
  say "building simulate and load (release; the first build takes several minutes)"
  cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin simulate --bin load
  exec "$repo/scripts/broker.sh" with "$repo/scripts/snowflake-emulator.sh" with "$0"
fi

bin=$CARGO_TARGET_DIR/release
run=$(date +%s)
prefix=bench$run
work=$(mktemp -d -t iot-bench-snowflake.XXXXXX)
topic_flags=()
for t in vehicle gps traffic weather emergency; do
  topic_flags+=("--$t-topic" "$prefix.$t")
done
pids=()
trap 'for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT

export DESTINATION__SNOWFLAKE__CREDENTIALS__HOST=emulator
export DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME=IOT_LOAD
export DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD=bench
export DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE=IOT

say "simulate: $events events of 16 vehicles into topics of $partitions partitions"
"$bin/simulate" --bootstrap-servers "$BROKER_BOOTSTRAP" "${topic_flags[@]}" \
  --partitions "$partitions" --from Potsdam --to Leipzig --vehicles 16 --stagger 2s \
  --speed max --seed 7 --max-events "$events" >/dev/null 2>"$work/simulate.log"
# What the topics hold (the fleet may arrive before EVENTS events).
events=$("$repo/scripts/broker.sh" kafka-get-offsets --bootstrap-server "$BROKER_BOOTSTRAP" \
  --topic "$prefix\\..*" 2>/dev/null | awk -F: '{ sum += $NF } END { print sum }')
say "the topics hold $events messages"

# What the emulator has counted: statements, bytes of SQL, uploads, bytes uploaded.
stats() { python3 -c 'import json, sys, urllib.request
counts = json.load(urllib.request.urlopen(sys.argv[1] + "/iot-emulator/stats"))
print(*(counts[k] for k in ("statements", "sql_bytes", "uploads", "upload_bytes")))' \
  "$SNOWFLAKE_EMULATOR_URL"; }

printf '\n%-8s %9s %8s %16s %14s %17s %s\n' loaders seconds rows/s "statements/1k" "SQL KB/1k" "uploaded KB/1k" "rows per loader"
for loaders in $rounds; do
  dataset=bench_${loaders}_$run
  role=$("$SNOWFLAKE_EMULATOR_PYTHON" "$repo/tests/python/provision.py" "$SNOWFLAKE_EMULATOR_URL" "$dataset" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["loader_role"])')
  read -r statements0 sql0 uploads0 bytes0 < <(stats)
  start=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$loaders"); do
    "$bin/load" --dest snowflake --snowflake-url "$SNOWFLAKE_EMULATOR_URL" --snowflake-role "$role" \
      --batch-size "$batch" \
      --dataset "$dataset" --group-id "bench-$dataset" --bootstrap-servers "$BROKER_BOOTSTRAP" \
      "${topic_flags[@]}" >/dev/null 2>"$work/load-$loaders-$i.log" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { say "loader $((i + 1)) of $loaders failed:"; tail -n 20 "$work/load-$loaders-$((i + 1)).log" >&2; exit 1; }
  done
  pids=()
  end=$(date +%s.%N)
  read -r statements1 sql1 uploads1 bytes1 < <(stats)
  stored=$("$SNOWFLAKE_EMULATOR_PYTHON" - "$SNOWFLAKE_EMULATOR_URL" "$dataset" "$events" <<'PY'
import sys
from urllib.parse import urlparse
import snowflake.connector

url, schema, events = urlparse(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = snowflake.connector.connect(account="emulator", user="bench", password="bench",
    host=url.hostname, port=url.port, protocol="http", database="IOT")
tables = ["vehicle_data", "gps_data", "traffic_data", "weather_data", "emergency_data"]
union = " UNION ALL ".join(
    [f"SELECT _kafka_topic AS t, _kafka_partition AS p, _kafka_offset AS o FROM {schema}.{t}" for t in tables]
    + [f'SELECT topic, "partition", "offset" FROM {schema}._dead_letters'])
rows, distinct = conn.cursor().execute(
    f"SELECT (SELECT count(*) FROM ({union})), "
    f"(SELECT count(*) FROM (SELECT DISTINCT t, p, o FROM ({union})))").fetchall()[0]
if rows != events or distinct != events:
    sys.exit(f"{schema}: {rows} rows, {distinct} distinct offsets, {events} messages sent")
print(rows)
PY
  )
  awk -v l="$loaders" -v s="$start" -v e="$end" -v r="$stored" \
    -v st=$((statements1 - statements0)) -v sb=$((sql1 - sql0)) -v ub=$((bytes1 - bytes0)) \
    -v shares="$(for i in $(seq 1 "$loaders"); do sed -n 's/^Done load [^:]*: \([0-9]*\) rows.*/\1/p' "$work/load-$loaders-$i.log"; done | paste -sd/)" \
    'BEGIN { t = e - s; printf "%-8s %9.1f %8.0f %16.1f %14.1f %17.1f %s\n", l, t, r / t, st * 1000 / r, sb / r, ub / r, shares }'
done
echo "(every message stored once in each round: $events rows, no duplicate offsets)"
