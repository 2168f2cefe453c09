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
# taken from this folder, as `load` takes it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/analytics-venv

# shellcheck source=scripts/dotenv.sh
source "$repo/scripts/dotenv.sh"
"$repo/scripts/venv.sh" "$venv" -r "$repo/analytics/requirements.txt"
DUCKDB_FILE=$(realpath -m "${DUCKDB_FILE:-iot_service.duckdb}")
export DUCKDB_FILE DBT_PROJECT_DIR=$repo/analytics DBT_PROFILES_DIR=$repo/analytics
# dbt's own usage statistics stay off.
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
exec "$venv/bin/dbt" "$@"
