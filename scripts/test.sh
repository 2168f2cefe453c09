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

# IOT_TEST_BOOTSTRAP tells the end-to-end tests where the broker is.
exec scripts/broker.sh with sh -c 'IOT_TEST_BOOTSTRAP=$BROKER_BOOTSTRAP exec cargo test --workspace "$@"' sh "$@"
