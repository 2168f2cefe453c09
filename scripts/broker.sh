#!/usr/bin/env bash
# The local Kafka-compatible broker for development, the demo and the tests: tansu,
# a single Rust binary from crates.io, storing its data in SQLite. No Docker needed.
#
#   scripts/broker.sh start     install tansu if missing, start it, wait until it answers
#   scripts/broker.sh stop      stop it (the data stays in its directory)
#   scripts/broker.sh status    exit 0 if it is running and answering
#   scripts/broker.sh install   only install tansu
#   scripts/broker.sh with CMD  run CMD against a private broker on a free port, with
#                               its data in a temporary directory, then stop it;
#                               CMD finds it at $BROKER_BOOTSTRAP
#
# BROKER_PORT (default 9092) and BROKER_DIR (default .local/broker in the repository)
# choose where it listens and keeps its data; BROKER_DIR must be writable.
set -euo pipefail

TANSU_VERSION=0.6.0
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${BROKER_PORT:-9092}
dir=${BROKER_DIR:-$repo/.local/broker}
pidfile=$dir/tansu.pid
log=$dir/tansu.log

say() { printf 'broker: %s\n' "$*" >&2; }

installed() {
  command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q " $TANSU_VERSION"
}

install() {
  installed && return 0
  say "installing tansu $TANSU_VERSION from crates.io (about 10 minutes, once)"
  # A build directory outside the repository, kept between installs.
  CARGO_TARGET_DIR=${TANSU_TARGET_DIR:-$HOME/.cache/iot-streaming/tansu-target} \
    cargo install tansu --version "$TANSU_VERSION" --locked --features libsql,dynostore --quiet
  installed || { say "tansu is installed but not on PATH; add ~/.cargo/bin to PATH"; exit 1; }
}

answering() {
  # A TCP connection is enough: tansu listens only once its storage is open.
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

running() {
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  if running && answering; then
    say "already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    return 0
  fi
  if answering; then
    say "something else already listens on 127.0.0.1:$port; stop it or set BROKER_PORT"
    exit 1
  fi
  install
  mkdir -p "$dir"
  # tansu reads a sqlite:// path relative to its working directory. Advertise the
  # IPv4 address: clients told "localhost" may try ::1, where nothing listens.
  (
    cd "$dir"
    nohup tansu broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "sqlite://tansu.db" >"$log" 2>&1 &
    echo $! >"$pidfile"
  )
  for _ in $(seq 1 300); do
    if answering; then
      say "running on 127.0.0.1:$port (pid $(cat "$pidfile"), data and log in $dir)"
      return 0
    fi
    if ! running; then
      say "tansu exited while starting; its log ($log) says:"
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  say "tansu did not answer on 127.0.0.1:$port within 30 s; see $log"
  exit 1
}

stop() {
  if ! running; then
    say "not running"
    rm -f "$pidfile"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  say "stopped"
}

# A private broker for one command: the tests and the benchmarks use it.
with() {
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  dir=$(mktemp -d -t iot-broker.XXXXXX)
  pidfile=$dir/tansu.pid
  log=$dir/tansu.log
  trap 'stop; rm -rf "$dir"' EXIT
  start
  BROKER_BOOTSTRAP=127.0.0.1:$port "$@"
}

case ${1:-} in
  start) start ;;
  with) shift; with "$@" ;;
  stop) stop ;;
  status) running && answering ;;
  install) install ;;
  *)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
