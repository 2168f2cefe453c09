#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs tansu and a DuckDB 1.4
# reader (Python, to prove DBeaver's driver generation reads our files) if missing,
# starts a private broker on a free port with its data in a temporary directory,
# runs `cargo test --workspace` against it, and stops it again. Extra arguments go
# to cargo test (e.g. scripts/test.sh -p iot-simulate).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}

if ! python3 -c 'import duckdb, sys; sys.exit(not duckdb.__version__.startswith("1.4."))' 2>/dev/null; then
  echo "test: installing the DuckDB 1.4 Python package (the reader the compatibility test uses)" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'duckdb==1.4.4'
fi

BROKER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BROKER_DIR=$(mktemp -d -t iot-test-broker.XXXXXX)
export BROKER_PORT BROKER_DIR
cleanup() {
  scripts/broker.sh stop || true
  rm -rf "$BROKER_DIR"
}
trap cleanup EXIT

scripts/broker.sh start
export IOT_TEST_BOOTSTRAP=127.0.0.1:$BROKER_PORT
cargo test --workspace "$@"
