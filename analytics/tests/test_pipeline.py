"""scripts/pipeline.sh, as cron runs it: load, then dbt build when rows were stored,
with the exit status of the step that failed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import REPO, add_a_reading_dbt_refuses, run_script
from fleet import binary, bootstrap, clean_env, simulate, topics_of_our_own, truth


def pipeline(path: Path, topics: list[str], *args: str, **env: str):
    return run_script("pipeline.sh", path, topics, *args, **env)


def test_the_pipeline_loads_then_builds_and_skips_dbt_when_nothing_is_new(tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    simulate(topics, "--vehicles", "2", "--duration", "10m", "--seed", "4")
    done = pipeline(path, topics)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "dbt build (target duckdb)" in done.stderr
    assert "Completed successfully" in done.stdout
    trips = truth(path, "SELECT count(DISTINCT trip_id) FROM iot_stream.vehicle_data")[0][0]
    assert truth(path, "SELECT count(*) FROM iot_stream_analytics.trips")[0][0] == trips == 2

    again = pipeline(path, topics)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "load stored no new rows; dbt not run" in again.stderr

    # `load --show-trips` prints dbt's trips, one line each (a trip is named by the
    # first block of its id), also to a reader that stops early or a full disk.
    show = [str(binary("load")), "--show-trips", "--duckdb-file", str(path)]
    shown = subprocess.run(show, env=clean_env(), capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    for (trip,) in truth(path, "SELECT trip_id FROM iot_stream_analytics.trips"):
        assert f"trip {trip[:8]}" in shown.stdout, shown.stdout
    closed = subprocess.Popen(show, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    closed.stdout.close()
    assert closed.wait(timeout=60) == 0 and b"panicked" not in closed.stderr.read()
    with open("/dev/full", "w") as full:
        refused = subprocess.run(show, env=clean_env(), stdout=full, stderr=subprocess.PIPE)
    assert refused.returncode == 1 and b"cannot print the trips" in refused.stderr


def test_the_pipeline_exits_with_the_status_of_the_step_that_failed(tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    # The broker cannot be reached: load's exit 5, and dbt is not run.
    unreachable = pipeline(
        path, topics, "--kafka-timeout", "2s", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"
    )
    assert unreachable.returncode == 5, unreachable.stderr[-3000:]
    assert "load failed (exit 5); dbt not run" in unreachable.stderr

    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "5")
    assert pipeline(path, topics).returncode == 0
    # A reading dbt's tests refuse (no such fuel type), then new events: dbt build fails.
    add_a_reading_dbt_refuses(path)
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "6")
    failed = pipeline(path, topics)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "dbt build failed (exit 1)" in failed.stderr
    assert "accepted_values_stg_vehicle_readings_fuel_type" in failed.stdout


def test_every_flag_of_load_reaches_dbt(tmp_path):
    """`--duckdb-file` and `--dataset` given to the pipeline, no variables set: dbt
    builds in the file and dataset load wrote, and creates no other file."""
    topics = topics_of_our_own()
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "14")
    done = subprocess.run(
        [str(REPO / "scripts" / "pipeline.sh"), "--duckdb-file", "telemetry.duckdb"]
        + ["--dataset", "fleet", "--group-id", "flags" + topics[1], *topics],
        env={**clean_env(), "LOAD": str(binary("load")), "KAFKA_BOOTSTRAP_SERVERS": bootstrap()},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    path = tmp_path / "telemetry.duckdb"
    assert truth(path, "SELECT count(*) FROM fleet_analytics.trips")[0][0] == 1
    assert sorted(p.name for p in tmp_path.glob("*.duckdb")) == ["telemetry.duckdb"]


def test_dbt_keeps_its_partial_parsing_between_the_pipeline_and_a_run_by_hand(tmp_path):
    """The pipeline tells scripts/dbt.sh where load loaded (LOAD_OUTCOME); a person
    runs scripts/dbt.sh with no such variables. On the same file, dbt sees the same
    project both ways and does not parse it all again."""
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    target = {"DBT_TARGET_PATH": str(tmp_path / "target")}
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "16")
    done = pipeline(path, topics, **target)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    by_hand = subprocess.run(
        [str(REPO / "scripts" / "dbt.sh"), "build"],
        env={**clean_env(), "DUCKDB_FILE": str(path), **target},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert by_hand.returncode == 0, by_hand.stdout[-3000:]
    assert "Unable to do partial parsing" not in by_hand.stdout, by_hand.stdout[:3000]
