"""What the analytics tests share: dbt run on the project with a target folder of
the test's own, and the helpers of tests/python/fleet.py (the real simulate and
load against the test broker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ANALYTICS = Path(__file__).resolve().parents[1]
REPO = ANALYTICS.parent
sys.path.insert(0, str(REPO / "tests" / "python"))

from fleet import binary, bootstrap, clean_env  # noqa: E402

# dbt from the virtualenv running these tests.
DBT = Path(sys.executable).parent / "dbt"


def dbt(workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True):
    """`dbt ARGS` on the project, its target and logs under `workdir`; the run's
    output is returned, and a failure fails the test with it unless `check` is off."""
    done = subprocess.run(
        [
            str(DBT),
            *args,
            "--target-path",
            str(workdir / "target"),
            "--log-path",
            str(workdir),
        ],
        env={
            **clean_env(),
            "DBT_PROJECT_DIR": str(ANALYTICS),
            "DBT_PROFILES_DIR": str(ANALYTICS),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"dbt {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-5000:]}")
    return done


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
