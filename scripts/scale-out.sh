#!/usr/bin/env bash
# Scale-out, shown by one command: LOADERS loaders (default 3) of one consumer group
# load with --follow into the Snowflake emulator while simulate sends a fleet's
# events into topics of PARTITIONS partitions (default 6). Half way through, a
# loader the group has given partitions is killed with SIGKILL; the group hands its
# partitions to the others after its 10 s session. When simulate is done and the
# others have drained the topics, they are stopped with Ctrl-C, and the script
# prints the rows per table,
# the partitions each loader was given and had taken over time, the group's lag as
# Kafka's own kafka-consumer-groups reports it, and the duplicate and missing offset
# counts (both must be 0).
#
# It starts a private Apache Kafka broker and emulator on free ports, and stops both.
# Needs Java 17+ (for Apache Kafka and its tools) and Python 3 (for the emulator).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
loaders=${LOADERS:-3}
partitions=${PARTITIONS:-6}

say() { printf '== %s\n' "$*" >&2; }

if [[ -z ${BROKER_BOOTSTRAP:-} || -z ${SNOWFLAKE_EMULATOR_URL:-} ]]; then
  "$repo/scripts/libduckdb.sh" install
  say "building simulate and load (release; the first build takes several minutes)"
  cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin simulate --bin load
  exec "$repo/scripts/broker.sh" with "$repo/scripts/snowflake-emulator.sh" with "$0"
fi

bin=$CARGO_TARGET_DIR/release
run=$(date +%s)
dataset=scale_out_$run
group=scale-out-$run
prefix=demo$run
work=$(mktemp -d -t iot-scale-out.XXXXXX)
topics=(vehicle gps traffic weather emergency)
topic_flags=()
for t in "${topics[@]}"; do
  topic_flags+=("--$t-topic" "$prefix.$t")
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

export DESTINATION__SNOWFLAKE__CREDENTIALS__HOST=emulator
export DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME=loader
export DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD=demo
export DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE=IOT
export RUST_LOG=info

start_loader() {
  RUST_LOG=info "$bin/load" --dest snowflake --follow --batch-size 500 \
    --snowflake-url "$SNOWFLAKE_EMULATOR_URL" --dataset "$dataset" --group-id "$group" \
    --bootstrap-servers "$BROKER_BOOTSTRAP" "${topic_flags[@]}" \
    >"$work/loader-$1.out" 2>"$work/loader-$1.log" &
  pids[$1]=$!
}

say "creating the topics, $partitions partitions each"
"$bin/simulate" --bootstrap-servers "$BROKER_BOOTSTRAP" "${topic_flags[@]}" \
  --partitions "$partitions" --from Potsdam --to Leipzig --max-events 0 2>/dev/null

say "starting $loaders loaders in group $group, following"
for i in $(seq 1 "$loaders"); do start_loader "$i"; done

say "simulate: 16 vehicles from Potsdam to Leipzig, 5 simulated minutes at 20x"
"$bin/simulate" --bootstrap-servers "$BROKER_BOOTSTRAP" "${topic_flags[@]}" \
  --from Potsdam --to Leipzig --vehicles 16 --stagger 5s --duration 5m --speed 20 \
  --seed 7 >/dev/null 2>"$work/simulate.log" &
simulate=$!
sleep 8
# The loader to kill: one the group has given partitions, so that its share has to
# move (the first to join can be given nothing until the others have joined).
victim=1
for i in $(seq 1 "$loaders"); do
  if grep -q "partitions given by the group partitions=[^ ]" "$work/loader-$i.log"; then
    victim=$i
    break
  fi
done
say "killing loader $victim (SIGKILL) half way"
kill -KILL "${pids[$victim]}"
wait "${pids[$victim]}" 2>/dev/null || true
wait "$simulate"
tail -n 3 "$work/simulate.log" >&2

lag() {
  "$repo/scripts/broker.sh" kafka-consumer-groups --bootstrap-server "$BROKER_BOOTSTRAP" \
    --describe --group "$group" 2>/dev/null
}
say "waiting for the other loaders to drain the topics"
deadline=$((SECONDS + 600))
# Drained: every partition of the group listed, each with no lag (or empty, never
# committed).
until lag | awk -v g="$group" '$1 == g { seen++; if ($6 == "-" ? $5 != 0 : $6 != 0) busy = 1 }
                                END { exit busy || seen == 0 }'; do
  if ((SECONDS > deadline)); then say "the loaders did not drain the topics in 10 minutes"; exit 1; fi
  sleep 2
done
sleep 3
survivors=$(seq 1 "$loaders" | grep -vx "$victim")
for i in $survivors; do kill -INT "${pids[$i]}"; done
for i in $survivors; do
  wait "${pids[$i]}" || { say "loader $i failed:"; tail -n 20 "$work/loader-$i.log" >&2; exit 1; }
done
pids=()

echo
echo "Partitions given and taken, over time:"
for i in $(seq 1 "$loaders"); do
  grep -h "partitions \(given\|taken\) by the group" "$work/loader-$i.log" |
    sed -E "s/^([0-9T:.-]+)Z? +INFO +partitions (given|taken) by the group partitions=(.*)$/\1 loader $i \2: \3/" |
    sed "s/$prefix\.//g"
done | sort | awk 'length($0) > 0 { sub(/\.[0-9]+$/, "", $1); print "  " $0 }'

echo
echo "Rows loaded, per loader:"
for i in $(seq 1 "$loaders"); do
  summary=$(grep -h " rows in " "$work/loader-$i.log" | head -n 1 || true)
  echo "  loader $i: ${summary:-killed before its summary (its committed batches count below)}"
done

echo
echo "The group, as kafka-consumer-groups describes it:"
printf '  %-10s %9s %14s %14s %5s\n' TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG
lag | awk -v g="$group" -v p="$prefix." '$1 == g { sub(p, "", $2); printf "  %-10s %9s %14s %14s %5s\n", $2, $3, $4, $5, $6 }' |
  sort -k1,1 -k2,2n

offsets=$("$repo/scripts/broker.sh" kafka-get-offsets --bootstrap-server "$BROKER_BOOTSTRAP" \
  --topic "$prefix\\..*" 2>/dev/null)
"$SNOWFLAKE_EMULATOR_PYTHON" - "$SNOWFLAKE_EMULATOR_URL" "$dataset" "$offsets" <<'PY'
import sys
from urllib.parse import urlparse
import snowflake.connector

url, schema, offsets = urlparse(sys.argv[1]), sys.argv[2], sys.argv[3]
in_topics = sum(int(line.rsplit(":", 1)[1]) for line in offsets.split() if line.count(":") >= 2)
conn = snowflake.connector.connect(account="emulator", user="demo", password="demo",
    host=url.hostname, port=url.port, protocol="http", database="IOT")
q = lambda sql: conn.cursor().execute(sql).fetchall()
tables = ["vehicle_data", "gps_data", "traffic_data", "weather_data", "emergency_data"]
print("\nRows per table:")
for t in tables + ["_dead_letters"]:
    print(f"  {t:<16} {q(f'SELECT count(*) FROM {schema}.{t}')[0][0]:>8}")
union = " UNION ALL ".join(
    [f"SELECT _kafka_topic AS t, _kafka_partition AS p, _kafka_offset AS o FROM {schema}.{t}" for t in tables]
    + [f'SELECT topic, "partition", "offset" FROM {schema}._dead_letters'])
duplicates = q(f"SELECT count(*) FROM (SELECT t, p, o FROM ({union}) GROUP BY t, p, o HAVING count(*) > 1)")[0][0]
stored = q(f"SELECT count(*) FROM (SELECT DISTINCT t, p, o FROM ({union}))")[0][0]
missing = in_topics - stored
print(f"\nMessages in the topics: {in_topics}; distinct offsets loaded: {stored}")
print(f"Duplicate offsets: {duplicates}")
print(f"Missing offsets:   {missing}")
sys.exit(0 if duplicates == 0 and missing == 0 else 1)
PY
