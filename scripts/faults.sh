#!/usr/bin/env bash
# The long form of the fault tests, by one command: the decoders' property tests
# (arbitrary bytes, mutated valid events) with PROPTEST_CASES cases each (default
# 200,000), then the crash loops (load, and simulate, killed with SIGKILL at random
# points) with IOT_CRASH_KILLS runs each (default 200) against a private local
# Apache Kafka. The suite runs the short forms.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
scripts/libduckdb.sh install

export PROPTEST_CASES=${PROPTEST_CASES:-200000}
export IOT_CRASH_KILLS=${IOT_CRASH_KILLS:-200}
started=$SECONDS
cargo test --release -p iot-model -p iot-load --lib -- \
    never_panics_on_arbitrary_bytes any_bytes_become mutated_events_become
echo "faults: property tests, $PROPTEST_CASES cases each, took $((SECONDS - started)) s"

started=$SECONDS
cargo build --workspace --quiet
scripts/broker.sh with sh -c 'IOT_TEST_BOOTSTRAP=$BROKER_BOOTSTRAP exec cargo test -p iot-tests --test load -- killed_loads_resume_exactly killed_simulations_rerun'
echo "faults: crash loops, $IOT_CRASH_KILLS runs of load and of simulate, took $((SECONDS - started)) s"
