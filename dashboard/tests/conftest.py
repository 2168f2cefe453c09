"""What the dashboard's tests share: a fleet sent by the real `simulate` through the
test broker, loaded by the real `load` into a DuckDB file and into the Snowflake
emulator, and modelled there by dbt (the pages read dbt's models), and the app's
path (the helpers are tests/python/fleet.py's).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[1]
APP = DASHBOARD / "app.py"
REPO = DASHBOARD.parent
# The app imports iot_dashboard from beside it, wherever pytest was started; the
# shared helpers live in tests/python.
sys.path.insert(0, str(DASHBOARD))
sys.path.insert(0, str(REPO / "tests" / "python"))

from fleet import (  # noqa: E402
    bootstrap,
    clean_env,
    dbt,
    emulator,
    load,
    remove_our_topics,  # noqa: F401 (a fixture: importing it here applies it)
    simulate,
    snowflake_env,
    topics_of_our_own,
)
from provision import provision  # noqa: E402


def topic_ends(topics: list[str]) -> dict[tuple[str, int], int]:
    """The end offset of every partition of `topics`, as the broker reports it."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap(), "group.id": "dashboard-tests"})
    try:
        ends = {}
        for topic in topics[1::2]:
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                tp = TopicPartition(topic, partition)
                ends[(topic, partition)] = consumer.get_watermark_offsets(tp, timeout=10)[1]
        return ends
    finally:
        consumer.close()


@pytest.fixture(scope="session")
def fleet_topics() -> list[str]:
    """Three vehicles' 40 minutes, sent to topics of the tests' own."""
    topics = topics_of_our_own()
    simulate(topics, "--vehicles", "3", "--seed", "7", "--duration", "40m", "--emergency-rate", "6")
    return topics


@pytest.fixture(scope="session")
def fleet_file(tmp_path_factory, fleet_topics) -> Path:
    """The fleet loaded into a DuckDB file of the tests' own, and dbt's models built."""
    workdir = tmp_path_factory.mktemp("fleet")
    path = workdir / "iot_service.duckdb"
    load(fleet_topics, "--dest", "duckdb", "--duckdb-file", path, cwd=workdir)
    build(path, workdir / "dbt")
    return path


def build(path: Path, workdir: Path) -> None:
    """dbt's models built in the DuckDB file at `path`, dataset iot_stream."""
    dbt(workdir, "build", env={"DUCKDB_FILE": str(path), "DATASET_NAME": "iot_stream"})


@pytest.fixture(scope="session")
def snowflake_topics() -> list[str]:
    """A smaller fleet for the Snowflake emulator, which took 75 s for the DuckDB
    tests' 14,000 events: two vehicles' 10 minutes, incidents included."""
    topics = topics_of_our_own()
    simulate(
        topics, "--vehicles", "2", "--seed", "7", "--duration", "10m", "--emergency-rate", "30"
    )
    return topics


@pytest.fixture(scope="session")
def snowflake_fleet(snowflake_topics, tmp_path_factory) -> str:
    """That fleet loaded into the Snowflake emulator, in a dataset of the tests' own,
    set up by config/snowflake/provision.sql, loaded under its loader role and
    modelled by dbt under its transformer role (the pages read it under its
    reporter role: see `snowflake_page`)."""
    dataset = "dash" + uuid.uuid4().hex[:10]
    roles = provision(emulator(), dataset)
    load(
        snowflake_topics,
        "--dest",
        "snowflake",
        "--dataset",
        dataset,
        env={
            **clean_env(),
            **snowflake_env(user="loader"),
            "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE": roles["loader_role"],
        },
    )
    dbt(
        tmp_path_factory.mktemp("dbt"),
        "build",
        "--target",
        "snowflake",
        env={
            **snowflake_env(user="dbt"),
            "DATASET_NAME": dataset,
            "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE": roles["transformer_role"],
        },
    )
    return dataset
