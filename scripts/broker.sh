#!/usr/bin/env bash
# The local Kafka broker for development, the demo and the tests. No Docker needed.
#
#   scripts/broker.sh start      install the broker if missing, start it, wait until it answers
#   scripts/broker.sh stop       stop it (the data stays in its directory)
#   scripts/broker.sh status     exit 0 if it is running and answering; prints its address
#   scripts/broker.sh install    only install the broker
#   scripts/broker.sh with CMD   run CMD against a private broker on a free port, with its
#                                data in a temporary directory, then stop it; CMD finds it
#                                at $BROKER_BOOTSTRAP (and its data folder at $BROKER_DIR)
#   scripts/broker.sh kafka-TOOL ARGS
#                                one of Apache Kafka's own tools (kafka-topics,
#                                kafka-consumer-groups, kafka-console-consumer,
#                                kafka-console-producer, kafka-delete-records,
#                                kafka-get-offsets, kafka-configs) from the same install,
#                                e.g. kafka-consumer-groups --bootstrap-server
#                                127.0.0.1:9092 --describe --group iot-load
#
# It runs Apache Kafka itself (Java 17 or later and Maven needed): the jars from
# Maven Central (config/kafka/pom.xml) in KRaft mode with
# config/kafka/server.properties. BROKER_PORT (default 9092, or the port of the
# broker already running from BROKER_DIR) and BROKER_DIR (default .local/broker in
# the repository) choose where it listens and keeps its data.
set -euo pipefail

KAFKA_VERSION=4.1.1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}
dir=${BROKER_DIR:-$repo/.local/broker}

say() { printf 'broker: %s\n' "$*" >&2; }

java_17() {
  command -v java >/dev/null 2>&1 &&
    java -XshowSettings:properties -version 2>&1 |
    awk -F' = ' '/java.specification.version/ { exit !($2 + 0 >= 17) }'
}

# Only Apache Kafka now: the name stays, for the files and messages below.
BROKER=kafka

# Where a broker in $dir keeps its process id, its port and its log.
files() {
  pidfile=$dir/$BROKER.pid
  portfile=$dir/$BROKER.port
  log=$dir/$BROKER.log
}
files

running() {
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# The port of the broker already running from $dir, else BROKER_PORT or 9092.
running_port() { running && [[ -f $portfile ]] && cat "$portfile"; }
port=${BROKER_PORT:-$(running_port || echo 9092)}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- Apache Kafka ----------------------------------------------------------------

kafka_libs=$cache/kafka/$KAFKA_VERSION/libs

kafka_install() {
  [[ -f $kafka_libs/kafka_2.13-$KAFKA_VERSION.jar ]] && return 0
  java_17 || { say "Apache Kafka $KAFKA_VERSION needs Java 17 or later (Debian: apt-get install openjdk-17-jre-headless), or run it with Docker: docker compose up -d"; exit 1; }
  command -v mvn >/dev/null 2>&1 || { say "installing Apache Kafka needs Maven (Debian: apt-get install maven)"; exit 1; }
  say "installing Apache Kafka $KAFKA_VERSION from Maven Central into $kafka_libs (about 55 MB, once)"
  rm -rf "$kafka_libs.part"
  # Maven's output only matters when it fails (quiet, it still prints colour codes).
  local out
  if ! out=$(mvn --batch-mode --quiet -f "$repo/config/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$kafka_libs.part" 2>&1); then
    printf '%s\n' "$out" >&2
    say "Maven could not fetch Apache Kafka $KAFKA_VERSION (see above)"
    exit 1
  fi
  mv "$kafka_libs.part" "$kafka_libs"
}

# A Kafka class's main: the jars on the classpath, the log to standard error, its
# temporary files where TMPDIR says (Java's own default is /tmp, whatever TMPDIR
# says), and no /tmp/hsperfdata_$USER (the JVM's statistics for jstat).
kafka_jvm=(java -cp "$kafka_libs/*" -Dlog4j2.configurationFile="$repo/config/kafka/log4j2.properties"
  -Djava.io.tmpdir="${TMPDIR:-/tmp}" -XX:-UsePerfData)

# A tool: a small heap and a quick start, warnings only.
kafka_java() {
  "${kafka_jvm[@]}" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dkafka.log.level=warn "$@"
}

kafka_tool() {
  local class
  case $1 in
    kafka-topics) class=org.apache.kafka.tools.TopicCommand ;;
    kafka-consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    kafka-console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    kafka-console-producer) class=org.apache.kafka.tools.ConsoleProducer ;;
    kafka-delete-records) class=org.apache.kafka.tools.DeleteRecordsCommand ;;
    kafka-get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
    kafka-configs) class=kafka.admin.ConfigCommand ;;
    *) say "unknown tool $1"; exit 2 ;;
  esac
  shift
  kafka_install
  kafka_java "$class" "$@"
}

kafka_start() {
  kafka_install
  mkdir -p "$dir"
  # Our settings, then what differs per run: the ports and the data folder. The
  # controller's port is only for the broker itself (it is its own controller).
  local controller_port properties=$dir/server.properties
  controller_port=$(free_port)
  {
    cat "$repo/config/kafka/server.properties"
    echo
    echo "# Added by scripts/broker.sh for this run."
    echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
    echo "controller.quorum.voters=1@127.0.0.1:$controller_port"
    echo "log.dirs=$dir/data"
  } >"$properties"
  if [[ ! -f $dir/data/meta.properties ]]; then
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid)
    kafka_java kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$properties" >/dev/null
  fi
  # A 512 MB heap is plenty for one node on a 2-core machine, tests and
  # benchmarks included (Kafka's own default is 1 GB). KAFKA_HEAP_OPTS changes it.
  local heap
  read -ra heap <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
  # The broker's temporary files (the LZ4 codec's native library, which it leaves
  # behind) go in its own folder.
  mkdir -p "$dir/tmp"
  nohup "${kafka_jvm[@]}" -Djava.io.tmpdir="$dir/tmp" "${heap[@]}" kafka.Kafka "$properties" >"$log" 2>&1 &
  echo $! >"$pidfile"
  echo "$port" >"$portfile"
}

# The broker logs this line once it serves requests; a listening socket alone
# comes earlier.
kafka_ready() { grep -q "Kafka Server started" "$log"; }

# --- running it ----------------------------------------------------------------

answering() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

start() {
  local theirs
  if theirs=$(running_port) && [[ $theirs != "$port" ]]; then
    # Two brokers over one data folder would fight over its lock and its data.
    say "$BROKER already runs from $dir on 127.0.0.1:$theirs (pid $(cat "$pidfile")), not on $port:" \
      "use that one, stop it (scripts/broker.sh stop) or set BROKER_DIR to another folder"
    exit 1
  fi
  if running && answering; then
    say "$BROKER already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    return 0
  fi
  if answering; then
    say "something else already listens on 127.0.0.1:$port; stop it or set BROKER_PORT"
    exit 1
  fi
  "${BROKER}_start"
  for _ in $(seq 1 600); do
    if answering && "${BROKER}_ready"; then
      say "$BROKER running on 127.0.0.1:$port (pid $(cat "$pidfile"), data and log in $dir)"
      return 0
    fi
    if ! running; then
      say "$BROKER exited while starting; the end of its log ($log):"
      tail -n 30 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  say "$BROKER did not answer on 127.0.0.1:$port within 60 s; the end of its log ($log):"
  tail -n 30 "$log" >&2
  exit 1
}

stop() {
  if ! running; then
    say "not running"
    rm -f "$pidfile" "$portfile"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  kill "$pid"
  # Kafka closes its logs cleanly on SIGTERM within seconds; past 30 s, force it.
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile" "$portfile"
  say "stopped"
}

# A private broker for one command: the tests and the benchmarks use it.
with() {
  port=$(free_port)
  dir=$(mktemp -d -t iot-broker.XXXXXX)
  files
  trap 'stop; rm -rf "$dir"' EXIT
  start
  BROKER_BOOTSTRAP=127.0.0.1:$port BROKER_DIR=$dir BROKER=$BROKER "$@"
}

case ${1:-} in
  start) start ;;
  with) shift; with "$@" ;;
  stop) stop ;;
  status) running && answering && echo "127.0.0.1:$port" ;;
  install) "${BROKER}_install" ;;
  kafka-*) kafka_tool "$@" ;;
  *)
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
