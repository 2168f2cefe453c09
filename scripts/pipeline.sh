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
# Arguments go to `load`; its variables (and a .env file here) set both steps.
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

# The dbt target follows load's destination.
target=${LOAD_DEST:-duckdb}
for ((i = 1; i <= $#; i++)); do
  case ${!i} in
    --dest=*) target=${!i#--dest=} ;;
    --dest) j=$((i + 1)); target=${!j:-duckdb} ;;
  esac
done

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
status=0
# load's summary goes to stderr: copy it aside, on its way to this script's stderr.
{ "$load" "$@" 2>&1 1>&3 3>&- | tee "$summary" >&2; } 3>&1 || status=$?
if ((status != 0)); then
  say "load failed (exit $status); dbt not run"
  exit "$status"
fi
# load's summary: "Done load <id>: <rows> rows in …".
rows=$(sed -n 's/^Done load [^:]*: \([0-9]*\) rows in .*/\1/p' "$summary" | tail -n 1)
if [[ -z $rows ]]; then
  say "load printed no summary line; dbt not run"
  exit 1
fi
if ((rows == 0)); then
  say "load stored no new rows; dbt not run"
  exit 0
fi
say "load stored $rows rows; dbt build (target $target)"
status=0
DBT_TARGET=$target "$repo/scripts/dbt.sh" build || status=$?
if ((status != 0)); then
  say "dbt build failed (exit $status): see its output above"
fi
exit "$status"
