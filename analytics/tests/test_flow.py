"""The Prefect flow, run once end to end in Prefect's ephemeral mode: it loads,
builds, and ends Completed; with a dbt test failing, it ends Failed."""

from __future__ import annotations

from pathlib import Path

from conftest import add_a_reading_dbt_refuses, run_script
from fleet import simulate, topics_of_our_own, truth


def run_flow(path: Path, topics: list[str]):
    return run_script("flow.sh", path, topics, PREFECT_HOME=str(path.parent / "prefect"))


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
    add_a_reading_dbt_refuses(path)
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "12")
    failed = run_flow(path, topics)
    said = failed.stdout + failed.stderr
    assert failed.returncode == 1, said[-5000:]
    assert "iot-pipeline: Failed" in said and "1 fail" in said, said[-3000:]
