"""The Prefect flow, run once end to end in Prefect's ephemeral mode: it loads,
builds, and ends Completed; with a dbt test failing, it ends Failed; a file held by
another program is waited out with retries; offsets beyond a partition's end fail
at once with what to do; served, it runs on its cron schedule."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import duckdb

from conftest import REPO, add_a_reading_dbt_refuses, run_script
from fleet import binary, bootstrap, clean_env, simulate, topics_of_our_own, truth


def run_flow(path: Path, topics: list[str], *args: str):
    return run_script("flow.sh", path, topics, *args, PREFECT_HOME=str(path.parent / "prefect"))


def flow_env(path: Path, **more: str) -> dict[str, str]:
    return {
        **clean_env(),
        "LOAD": str(binary("load")),
        "DUCKDB_FILE": str(path),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap(),
        "PREFECT_HOME": str(path.parent / "prefect"),
        **more,
    }


def test_the_flow_loads_builds_and_reports_dbt_s_outcome(tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    simulate(topics, "--vehicles", "2", "--duration", "10m", "--seed", "11")
    done = run_flow(path, topics)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-5000:]
    assert "iot-pipeline: Completed" in said, said[-3000:]
    assert "dbt build: " in said and " pass" in said, said[-3000:]
    assert "dbt trips: success in " in said, "each model's result is logged"
    assert "freshness iot.vehicle_data: pass" in said, said[-3000:]
    assert "; 6 of 6 sources fresh;" in said, said[-3000:]
    assert truth(path, "SELECT count(*) FROM iot_stream_analytics.trips")[0][0] == 2

    # A reading dbt's tests refuse, then new events: the run ends Failed, exit 1.
    add_a_reading_dbt_refuses(path)
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "12")
    failed = run_flow(path, topics)
    said = failed.stdout + failed.stderr
    assert failed.returncode == 1, said[-5000:]
    assert "iot-pipeline: Failed" in said and "1 fail" in said, said[-3000:]


def test_a_file_held_by_another_program_is_waited_out_and_bad_offsets_fail_at_once(tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "15")
    log = tmp_path / "flow.log"
    holder = duckdb.connect(str(path))  # as DBeaver holds a file it has open
    try:
        with log.open("w") as out:
            flow_run = subprocess.Popen(
                [str(REPO / "scripts" / "flow.sh"), "--dest", "duckdb", "--lock-timeout", "1s"]
                + ["--group-id", "held" + topics[1], *topics],
                env=flow_env(path, IOT_FLOW_RETRY_DELAYS="3,3,3"),
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 240
        while "Retry 1/3 will start" not in log.read_text():
            assert flow_run.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        holder.close()
    assert flow_run.wait(timeout=300) == 0, log.read_text()[-3000:]
    said = log.read_text()
    assert "load failed with exit status 75" in said, said[-3000:]
    assert "iot-pipeline: Completed" in said, said[-3000:]
    assert truth(path, "SELECT count(*) FROM iot_stream_analytics.trips")[0][0] == 1

    # Stored offsets beyond the partitions' ends (a recreated topic): exit 3 at once.
    with duckdb.connect(str(path)) as connection:
        connection.execute("UPDATE iot_stream._kafka_offsets SET next_offset = next_offset + 1000")
    refused = run_flow(path, topics)
    said = refused.stdout + refused.stderr
    assert refused.returncode == 3, said[-3000:]
    assert "load --reset-offsets" in said and "Retry 1/" not in said, said[-3000:]


def test_served_the_flow_runs_on_its_schedule_on_a_server_of_its_own(tmp_path):
    """--serve starts Prefect's server (the ephemeral mode schedules nothing), runs
    the flow on the cron schedule IOT_FLOW_CRON, and stops the server on Ctrl-C."""
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "13")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    log = tmp_path / "serve.log"
    env = flow_env(path, PREFECT_SERVER_PORT=str(port), IOT_FLOW_CRON="* * * * *")
    args = ["--serve", "--dest", "duckdb", "--group-id", "serve" + topics[1], *topics]
    with log.open("w") as out:
        served = subprocess.Popen(
            [str(REPO / "scripts" / "flow.sh"), *args],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # A run at the next full minute, that loaded and built.
        built = re.compile(r"Task run 'dbt_build-\w+' - Finished in state Completed\(\)")
        deadline = time.monotonic() + 240
        while not built.search(log.read_text()):
            assert served.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
    finally:
        os.killpg(served.pid, signal.SIGINT)
        served.wait(timeout=60)
    said = log.read_text()
    assert f"Prefect's server and UI on http://127.0.0.1:{port}" in said, said[-3000:]
    assert truth(path, "SELECT count(*) FROM iot_stream_analytics.trips")[0][0] == 1
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the server stopped with the script"
