#!/usr/bin/env bash
# dbt on the analytics project (analytics/), in a virtualenv under the cache made on
# the first run, with the project's profiles.yml:
#
#   scripts/dbt.sh build                          models and tests on ./iot_service.duckdb
#   scripts/dbt.sh build --full-refresh           rebuild the incremental marts
#   scripts/dbt.sh build --target snowflake       in Snowflake (DESTINATION__SNOWFLAKE__*)
#   scripts/dbt.sh docs generate                  the documentation site, in analytics/target
#
# dbt reads the variables `load` reads (DUCKDB_FILE, DATASET_NAME, the Snowflake
# credentials; a .env file in this folder is read too). A relative DUCKDB_FILE is
# taken from this folder, as `load` takes it. LOAD_OUTCOME names a file holding
# what `load --json` printed: dbt then builds where that run loaded (its
# destination, file, dataset and Snowflake settings, whichever flags set them).
#
# Exit status: dbt's, except 7 when Snowflake refused a statement for want of a
# privilege (as `load`): the script then names the grants config/snowflake/
# provision.sql gives the transformer role, which dbt needs and no more.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/analytics-venv

# shellcheck source=scripts/dotenv.sh
source "$repo/scripts/dotenv.sh"
"$repo/scripts/venv.sh" "$venv" -r "$repo/analytics/requirements.txt"
if [[ -n ${LOAD_OUTCOME:-} ]]; then
  eval "$("$venv/bin/python" - "$LOAD_OUTCOME" <<'PYTHON'
import json, shlex, sys

outcome = json.load(open(sys.argv[1]))
variables = {
    "dest": "DBT_TARGET",
    "duckdb_file": "DUCKDB_FILE",
    "dataset": "DATASET_NAME",
    "snowflake_account": "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST",
    "snowflake_user": "DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME",
    "snowflake_database": "DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE",
    "snowflake_warehouse": "DESTINATION__SNOWFLAKE__CREDENTIALS__WAREHOUSE",
    "snowflake_role": "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE",
    "snowflake_private_key_path": "DESTINATION__SNOWFLAKE__CREDENTIALS__PRIVATE_KEY_PATH",
    "snowflake_url": "SNOWFLAKE_URL",
}
for key, variable in variables.items():
    if outcome.get(key) is not None:
        print(f"export {variable}={shlex.quote(str(outcome[key]))}")
PYTHON
)"
fi
DUCKDB_FILE=$(realpath -m "${DUCKDB_FILE:-iot_service.duckdb}")
# The same variables whether LOAD_OUTCOME named them or a person runs this script:
# dbt parses the whole project again when a variable its files read changes, from
# unset to its default included. The target is --target's, when given.
export DATASET_NAME=${DATASET_NAME:-iot_stream} DBT_TARGET=${DBT_TARGET:-duckdb}
args=("$@")
for i in "${!args[@]}"; do
  case ${args[i]} in
    --target | -t) DBT_TARGET=${args[i + 1]:-$DBT_TARGET} ;;
    --target=*) DBT_TARGET=${args[i]#--target=} ;;
  esac
done
export DUCKDB_FILE DBT_PROJECT_DIR=$repo/analytics DBT_PROFILES_DIR=$repo/analytics
# dbt's own usage statistics stay off, and its colours are for a terminal only
# (not a cron log or a program reading its output).
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
[[ -t 1 ]] || export DBT_USE_COLORS=${DBT_USE_COLORS:-false}
output=$(mktemp)
trap 'rm -f "$output"' EXIT
status=0
"$venv/bin/dbt" "$@" 2>&1 | tee "$output" || status=$?
# 003001: insufficient privileges; 002003: an object the role cannot see is "does
# not exist or not authorized" (dbt's own missing relations say otherwise).
if ((status != 0)) && grep -qE "003001|002003 .*not authorized" "$output"; then
  database=${DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE:-IOT}
  dataset=${DATASET_NAME:-iot_stream}
  analytics=${DBT_SCHEMA:-${dataset}_analytics}
  role=${DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE:-"<the transformer role>"}
  where="${database^^}.${dataset^^}"
  {
    echo "dbt.sh: Snowflake refused dbt a statement for want of a privilege (above)."
    echo "  dbt needs what config/snowflake/provision.sql grants its transformer role; an administrator runs:"
    echo "  GRANT USAGE ON SCHEMA $where TO ROLE $role;"
    echo "  GRANT SELECT ON ALL TABLES IN SCHEMA $where TO ROLE $role; (and ALL VIEWS, FUTURE TABLES, FUTURE VIEWS)"
    echo "  GRANT USAGE, CREATE TABLE, CREATE VIEW ON SCHEMA ${database^^}.${analytics^^} TO ROLE $role;"
  } >&2
  exit 7
fi
exit "$status"
