"""The Prefect flow, run once end to end in Prefect's ephemeral mode: it loads,
builds, and ends Completed; with a dbt test failing, it ends Failed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb

from conftest import REPO
from fleet import binary, bootstrap, clean_env, simulate, topics_of_our_own, truth

FLOW = REPO / "scripts" / "flow.sh"


def run_flow(path: Path, topics: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FLOW), "--dest", "duckdb", "--group-id", "flow" + topics[1], *topics],
        env={
            **clean_env(),
            "LOAD": str(binary("load")),
            "DUCKDB_FILE": str(path),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap(),
            "PREFECT_HOME": str(path.parent / "prefect"),
        },
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_flow_loads_builds_and_reports_dbt_s_outcome(tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    simulate(topics, "--vehicles", "2", "--duration", "10m", "--seed", "11")
    done = run_flow(path, topics)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-5000:]
    assert "iot-pipeline: Completed" in said, said[-3000:]
    assert "dbt build: " in said and " pass" in said, said[-3000:]
    assert truth(path, "SELECT count(*) FROM iot_stream_analytics.trips")[0][0] == 2

    # A reading dbt's tests refuse, then new events: the run ends Failed, exit 1.
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "INSERT INTO iot_stream.vehicle_data "
            "SELECT * REPLACE (gen_random_uuid() AS id, 'steam' AS fuel_type) "
            "FROM iot_stream.vehicle_data LIMIT 1"
        )
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "12")
    failed = run_flow(path, topics)
    said = failed.stdout + failed.stderr
    assert failed.returncode == 1, said[-5000:]
    assert "iot-pipeline: Failed" in said and "1 fail" in said, said[-3000:]
