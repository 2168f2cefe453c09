#!/usr/bin/env bash
# Prints the throughput figures of simulate (generation, generation + JSON,
# delivery) and load (decode + append, end to end, peak memory), against a local
# broker started for the purpose and stopped afterwards. Release build: the first
# run compiles DuckDB with optimisations (about 30 minutes).
# IOT_BENCH_BACKLOG sets the end-to-end backlog (default 1,000,000 messages).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}

BROKER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BROKER_DIR=$(mktemp -d -t iot-bench-broker.XXXXXX)
export BROKER_PORT BROKER_DIR
cleanup() {
  scripts/broker.sh stop || true
  rm -rf "$BROKER_DIR"
}
trap cleanup EXIT

scripts/broker.sh start
IOT_BENCH_BOOTSTRAP=127.0.0.1:$BROKER_PORT cargo bench -p iot-simulate -p iot-load
