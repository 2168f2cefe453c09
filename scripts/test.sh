#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: fetches DuckDB's prebuilt library,
# installs tansu, a DuckDB 1.4 reader (Python, to prove DBeaver's driver generation reads our files) and the
# Snowflake emulator (fakesnow, in its own virtualenv) if missing, starts a
# private broker and emulator on free ports, runs `cargo test --workspace`
# against them, and stops them again. Extra arguments go to cargo test (e.g.
# scripts/test.sh -- killed, for the tests whose names contain "killed").
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
scripts/libduckdb.sh install

if ! python3 -c 'import duckdb, sys; sys.exit(not duckdb.__version__.startswith("1.4."))' 2>/dev/null; then
  echo "test: installing the DuckDB 1.4 Python package (the reader the compatibility test uses)" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'duckdb==1.4.4'
fi

# IOT_TEST_BOOTSTRAP and IOT_TEST_SNOWFLAKE_* tell the end-to-end tests where the
# broker and the emulator are.
exec scripts/broker.sh with scripts/snowflake-emulator.sh with sh -c '
  IOT_TEST_BOOTSTRAP=$BROKER_BOOTSTRAP \
  IOT_TEST_SNOWFLAKE_URL=$SNOWFLAKE_EMULATOR_URL \
  IOT_TEST_SNOWFLAKE_PYTHON=$SNOWFLAKE_EMULATOR_PYTHON \
  exec cargo test --workspace "$@"' sh "$@"
