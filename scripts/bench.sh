#!/usr/bin/env bash
# Prints the throughput figures of simulate (generation, generation + JSON,
# delivery) and load (decode + append, end to end, peak memory), against a local
# broker started for the purpose and stopped afterwards. Release build, linked to
# DuckDB's prebuilt library.
# IOT_BENCH_BACKLOG sets the end-to-end backlog (default 1,000,000 messages).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
scripts/libduckdb.sh install

exec scripts/broker.sh with sh -c 'IOT_BENCH_BOOTSTRAP=$BROKER_BOOTSTRAP exec cargo bench -p iot-simulate -p iot-load'
