"""What the analytics tests share: the helpers of tests/python/fleet.py (the real
simulate, load and scripts/dbt.sh against the test broker), and the scripts run as
cron runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

ANALYTICS = Path(__file__).resolve().parents[1]
REPO = ANALYTICS.parent
sys.path.insert(0, str(REPO / "tests" / "python"))

from fleet import binary, bootstrap, clean_env, dbt, remove_our_topics  # noqa: E402, F401


def duckdb_env(path: Path) -> dict[str, str]:
    return {"DUCKDB_FILE": str(path), "DATASET_NAME": "iot_stream"}


def run_script(script: str, path: Path, topics: list[str], *args: str, **env: str):
    """scripts/SCRIPT with load's flags for `topics` and `args`, as cron runs it in
    the folder of the DuckDB file `path`, with the debug `load` and the test broker."""
    return subprocess.run(
        [str(REPO / "scripts" / script), "--dest", "duckdb", "--group-id", script + topics[1]]
        + [*topics, *args],
        env={
            **clean_env(),
            "LOAD": str(binary("load")),
            "DUCKDB_FILE": str(path),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap(),
            **env,
        },
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def add_a_reading_dbt_refuses(path: Path) -> None:
    """A vehicle reading with a fuel type dbt's accepted-values test refuses."""
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "INSERT INTO iot_stream.vehicle_data "
            "SELECT * REPLACE (gen_random_uuid() AS id, 'steam' AS fuel_type) "
            "FROM iot_stream.vehicle_data LIMIT 1"
        )
