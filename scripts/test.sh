#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine. Installs what is missing (DuckDB's
# prebuilt library, Apache Kafka, a DuckDB 1.4 reader to prove DBeaver's driver
# generation reads our files, the Snowflake emulator fakesnow, the dashboard's
# packages, dbt's and Prefect's, each Python set in a virtualenv of its own under the cache,
# and Debian's chromium), starts a private Apache Kafka and emulator on free ports,
# runs ruff over the Python and then two lanes side by side against them: the
# workspace's tests (cargo test) then the analytics layer's pytest, and the Snowflake
# tests then the dashboard's pytest; and stops them again.
# Everything runs with a temporary directory of its own (TMPDIR): at the end it must
# be empty, every test having removed what it made, or the run fails naming what
# was left; then it is removed, so /tmp is left as it was found.
# Extra arguments go to each cargo test run (e.g. scripts/test.sh -- killed, for the
# tests whose names contain "killed").
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
dashboard_venv=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/dashboard-venv
analytics_venv=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/analytics-venv

# Runs a step of a lane; a failed one is written to $failures, named at the end.
step() {
  local name=$1
  shift
  "$@" || { echo "$name" >>"$failures"; return 1; }
}

# pytest in a suite's folder, with its virtualenv's Python. pytest keeps its
# temporary folders for a few runs, by design: here they go once it ends.
pytest_in() {
  local basetemp=$TMPDIR/pytest-$1 status=0
  (cd "$1" && exec "$2/bin/python" -m pytest --basetemp "$basetemp") || status=$?
  rm -rf "$basetemp"
  return "$status"
}

# The script runs itself inside the services it starts: IOT_TEST_BOOTSTRAP and
# IOT_TEST_SNOWFLAKE_* tell the tests where they are.
case ${IOT_TEST_STAGE:-} in
  "")
    run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/iot-test-run.XXXXXX")
    export TMPDIR=$run_tmp
    trap 'rm -rf "$run_tmp"' EXIT
    scripts/libduckdb.sh install
    # The debug build runs while the rest installs: compiling takes both cores, the
    # installs mostly the network and the disk. On a fresh machine this saves the
    # shorter of the two (about four minutes here).
    build_log=$(mktemp)
    cargo test --workspace --no-run "$@" >"$build_log" 2>&1 &
    build=$!
    trap 'kill "$build" 2>/dev/null || true; rm -rf "$run_tmp"' EXIT
    # The DuckDB 1.4 reader the compatibility test uses, in a virtualenv of its own.
    duckdb_venv=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/duckdb-1.4-venv
    scripts/venv.sh "$duckdb_venv" 'duckdb==1.4.4'
    export IOT_TEST_DUCKDB_PYTHON=$duckdb_venv/bin/python
    # The dashboard's: its pinned packages with pytest and selenium, and
    # Debian's chromium for the browser test.
    scripts/venv.sh "$dashboard_venv" -r dashboard/requirements-test.txt
    # dbt with its DuckDB and Snowflake adapters, pytest and ruff.
    scripts/venv.sh "$analytics_venv" -r analytics/requirements-test.txt
    # Prefect, for the test that runs the pipeline's flow (scripts/flow.sh).
    scripts/venv.sh "${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/orchestrator-venv" \
      -r orchestrator/requirements.txt
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
      if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "test: installing Debian's chromium and chromium-driver (the browser test's)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
      else
        echo "test: the browser test needs chromium and chromium-driver:" \
          "sudo apt-get install chromium chromium-driver" >&2
        exit 1
      fi
    fi
    scripts/broker.sh install
    scripts/snowflake-emulator.sh install
    if ! wait "$build"; then
      cat "$build_log" >&2
      exit 1
    fi
    trap 'rm -rf "$run_tmp"' EXIT
    rm -f "$build_log"
    status=0
    IOT_TEST_STAGE=kafka scripts/broker.sh with \
      scripts/snowflake-emulator.sh with "$0" "$@" || status=$?
    left=$(find "$run_tmp" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)
    if [[ -n $left ]]; then
      echo "test: the tests left these in the temporary directory (each test removes what it makes):" >&2
      sed 's/^/  /' <<<"$left" >&2
      status=1
    fi
    exit "$status"
    ;;
  kafka)
    export IOT_TEST_BOOTSTRAP=$BROKER_BOOTSTRAP \
      IOT_TEST_SNOWFLAKE_URL=$SNOWFLAKE_EMULATOR_URL \
      IOT_TEST_SNOWFLAKE_PYTHON=$SNOWFLAKE_EMULATOR_PYTHON
    unset IOT_TEST_STAGE
    "$analytics_venv/bin/ruff" format --check dashboard analytics orchestrator tests/python tests/snowflake
    "$analytics_venv/bin/ruff" check dashboard analytics orchestrator tests/python tests/snowflake
    # Two lanes side by side, each stopping at its first failure. The Snowflake tests
    # spend most of their time waiting on the emulator (one Python process), and the
    # Python suites on starting processes (Streamlit, chromium, dbt, Prefect), so the
    # other lane has much of the machine: 8–9.5 minutes on this 2-core machine, where
    # one after the other took 10.6. The second lane's output is shown whole when it
    # ends.
    failures=$(mktemp)
    second_log=$(mktemp)
    snowflake_tests=()
    for file in tests/snowflake/tests/*.rs; do
      snowflake_tests+=(--test "$(basename "$file" .rs)")
    done
    {
      step "the Snowflake tests" cargo test --workspace "${snowflake_tests[@]}" "$@" &&
        step "the dashboard's pytest" pytest_in dashboard "$dashboard_venv"
    } >"$second_log" 2>&1 &
    second=$!
    step "cargo test (all but Snowflake)" cargo test --workspace --exclude iot-snowflake-tests "$@" &&
      step "the analytics layer's pytest" pytest_in analytics "$analytics_venv" || true
    wait "$second" || true
    echo "== the Snowflake tests, then the dashboard's" >&2
    cat "$second_log"
    rm -f "$second_log"
    if [[ -s $failures ]]; then
      sed 's/^/test: failed: /' "$failures" >&2
      rm -f "$failures"
      exit 1
    fi
    rm -f "$failures"
    ;;
esac
