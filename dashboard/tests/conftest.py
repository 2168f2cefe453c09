"""What the dashboard's tests share: a DuckDB file made by the real `simulate` and
`load` through the test broker, and the app's path.

The binaries are the workspace's debug build (scripts/test.sh builds them before it
runs these tests); the broker is the one scripts/test.sh starts, at
IOT_TEST_BOOTSTRAP. Without either, the tests fail and say how to get them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest

DASHBOARD = Path(__file__).resolve().parents[1]
APP = DASHBOARD / "app.py"
REPO = DASHBOARD.parent
# The app imports iot_dashboard from beside it, wherever pytest was started.
sys.path.insert(0, str(DASHBOARD))


def binary(name: str) -> Path:
    target = os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/iot-streaming/target"
    path = Path(target) / "debug" / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build it with `cargo build --workspace` (scripts/test.sh does)"
        )
    return path


def bootstrap() -> str:
    servers = os.environ.get("IOT_TEST_BOOTSTRAP")
    if not servers:
        pytest.fail(
            "these tests need the test broker: run them with scripts/test.sh, which starts "
            "one, or start one with `scripts/broker.sh start` and set "
            "IOT_TEST_BOOTSTRAP=127.0.0.1:9092"
        )
    return servers


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    if done.returncode != 0:
        pytest.fail(f"{command[0]} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="session")
def fleet_file(tmp_path_factory) -> Path:
    """Three vehicles from Potsdam to Leipzig, loaded into a file of the tests' own."""
    prefix = "dash" + uuid.uuid4().hex[:10]
    topics = []
    for flag, name in [
        ("--vehicle-topic", "vehicle"),
        ("--gps-topic", "gps"),
        ("--traffic-topic", "traffic"),
        ("--weather-topic", "weather"),
        ("--emergency-topic", "emergency"),
    ]:
        topics += [flag, f"{prefix}.{name}"]
    servers = ["--bootstrap-servers", bootstrap()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DUCKDB_"))}
    workdir = tmp_path_factory.mktemp("fleet")
    run(
        [binary("simulate"), "--from", "Potsdam", "--to", "Leipzig", "--vehicles", "3"]
        + ["--speed", "max", "--seed", "7", "--duration", "40m", "--emergency-rate", "6"]
        + servers
        + topics,
        env=env,
        cwd=workdir,
    )
    path = workdir / "iot_service.duckdb"
    run(
        [binary("load"), "--dest", "duckdb", "--duckdb-file", path, "--group-id", prefix]
        + servers
        + topics,
        env=env,
        cwd=workdir,
    )
    return path


def truth(path: Path, sql: str) -> list:
    """What the file itself says, to compare the pages with."""
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()
