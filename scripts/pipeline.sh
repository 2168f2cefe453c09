#!/usr/bin/env bash
# The pipeline for cron: `load` what is in Kafka, then, if it stored any rows, `dbt
# build` the analytics models on them. Exits with the status of the step that
# failed (load's, see `load --help`, or dbt's: 1 for a failed model or test, 2
# for an error), saying which; 0 when both went well or there was nothing new.
#
#   scripts/pipeline.sh                           into ./iot_service.duckdb
#   scripts/pipeline.sh --dest snowflake          load into Snowflake, build there
#   */5 * * * * cd /srv/fleet && /path/to/scripts/pipeline.sh >>pipeline.log 2>&1
#
# Arguments go to `load`; they and load's variables (and a .env file here) set both
# steps: dbt builds where load loaded.
# LOAD (default: the release build of this clone, built if missing) names the
# load binary to run.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'pipeline: %s\n' "$*" >&2; }

# shellcheck source=scripts/dotenv.sh
source "$repo/scripts/dotenv.sh"
load=${LOAD:-}
if [[ -z $load ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/iot-streaming/target}
  load=$CARGO_TARGET_DIR/release/load
  if [[ ! -x $load ]]; then
    "$repo/scripts/libduckdb.sh" install
    cargo build --release --locked --manifest-path "$repo/Cargo.toml" -p iot-load >&2
  fi
fi

outcome=$(mktemp)
trap 'rm -f "$outcome"' EXIT
status=0
# load's outcome as JSON on stdout: the rows it stored and where, so that dbt builds
# on the same file, dataset or Snowflake account, whichever flags chose them.
"$load" --json "$@" >"$outcome" || status=$?
if ((status != 0)); then
  say "load failed (exit $status); dbt not run"
  exit "$status"
fi
rows=$(sed -n 's/.*"rows":\([0-9]*\).*/\1/p' "$outcome")
if [[ -z $rows ]]; then
  say "load printed no outcome; dbt not run"
  exit 1
fi
if ((rows == 0)); then
  say "load stored no new rows; dbt not run"
  exit 0
fi
target=$(sed -n 's/.*"dest":"\([a-z]*\)".*/\1/p' "$outcome")
say "load stored $rows rows; dbt build (target $target)"
status=0
LOAD_OUTCOME=$outcome "$repo/scripts/dbt.sh" build || status=$?
if ((status != 0)); then
  say "dbt build failed (exit $status): see its output above"
fi
exit "$status"
