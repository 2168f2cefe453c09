"""What the analytics tests share: dbt run on the project with a target folder of
the test's own, and the helpers of tests/python/fleet.py (the real simulate and
load against the test broker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ANALYTICS = Path(__file__).resolve().parents[1]
REPO = ANALYTICS.parent
sys.path.insert(0, str(REPO / "tests" / "python"))

from fleet import clean_env  # noqa: E402

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
