"""What the Python test suites (dashboard/, analytics/) share: the real `simulate`
and `load` run against the test broker, the Snowflake emulator's settings, and
reading back what landed.

The binaries are the workspace's debug build (scripts/test.sh builds them before it
runs these tests); the broker and the emulator are the ones scripts/test.sh
starts, at IOT_TEST_BOOTSTRAP and IOT_TEST_SNOWFLAKE_URL. Without them, the tests
fail and say how to get them.
"""

from __future__ import annotations

import os
import subprocess
import uuid
import warnings
from pathlib import Path

import duckdb
import pytest


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


REPO = Path(__file__).resolve().parents[2]
# The prefixes of the topics made in this pytest session: remove_our_topics deletes
# them at its end.
OUR_PREFIXES: list[str] = []


def topics_of_our_own() -> list[str]:
    """load's and simulate's flags naming five new topics (deleted when the session
    ends: see remove_our_topics)."""
    prefix = "dash" + uuid.uuid4().hex[:10]
    OUR_PREFIXES.append(prefix)
    topics = []
    for flag, name in [
        ("--vehicle-topic", "vehicle"),
        ("--gps-topic", "gps"),
        ("--traffic-topic", "traffic"),
        ("--weather-topic", "weather"),
        ("--emergency-topic", "emergency"),
    ]:
        topics += [flag, f"{prefix}.{name}"]
    return topics


@pytest.fixture(scope="session", autouse=True)
def remove_our_topics():
    """At the end of the session, deletes the topics it made, with one call of Kafka's
    own tool, so that a shared broker does not fill up with them."""
    yield
    if OUR_PREFIXES and os.environ.get("IOT_TEST_BOOTSTRAP"):
        pattern = "(" + "|".join(OUR_PREFIXES) + r")\..*"
        done = subprocess.run(
            [REPO / "scripts" / "broker.sh", "kafka-topics", "--bootstrap-server", bootstrap()]
            + ["--delete", "--if-exists", "--topic", pattern],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            said = done.stderr[-2000:]
            warnings.warn(f"the session's topics were not deleted: {said}", stacklevel=1)


def topic_variables(topics: list[str]) -> dict[str, str]:
    """The variables naming `topics` (flags and their topics) as `load` reads them,
    and the dashboard with it: VEHICLE_TOPIC for --vehicle-topic, and so on."""
    return {
        flag[2:].replace("-", "_").upper(): topic
        for flag, topic in zip(topics[::2], topics[1::2], strict=True)
    }


def simulate(topics: list[str], *args: str) -> None:
    """Vehicles from Potsdam to Leipzig, at full speed, into `topics`."""
    run(
        [binary("simulate"), "--from", "Potsdam", "--to", "Leipzig", "--speed", "max", *args]
        + ["--bootstrap-servers", bootstrap()]
        + topics,
        env=clean_env(),
    )


def clean_env() -> dict[str, str]:
    """This environment without the settings a developer's shell may carry."""
    skip = ("KAFKA_", "DUCKDB_", "DESTINATION__", "SNOWFLAKE_", "DATASET_", "LOAD_")
    return {k: v for k, v in os.environ.items() if not k.startswith(skip)}


def load(
    topics: list[str], *args, env: dict[str, str] | None = None, cwd=None, group: str = ""
) -> None:
    """`load` from `topics`, in a consumer group of its own unless `group` names one."""
    group = ["--group-id", group or "dash" + uuid.uuid4().hex[:10]]
    servers = ["--bootstrap-servers", bootstrap()]
    run([binary("load"), *args, *group, *servers, *topics], env=env or clean_env(), cwd=cwd)


def dbt(workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True):
    """`scripts/dbt.sh ARGS` (dbt on the analytics project, in its virtualenv), its
    target and logs under `workdir`; the run is returned, and a failure fails the
    test with its output unless `check` is off."""
    repo = Path(__file__).resolve().parents[2]
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(repo / "scripts" / "dbt.sh"), *args]
        + ["--target-path", str(workdir / "target"), "--log-path", str(workdir)],
        env={**clean_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(env or {})},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"dbt {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-5000:]}")
    return done


def emulator() -> str:
    url = os.environ.get("IOT_TEST_SNOWFLAKE_URL")
    if not url:
        pytest.fail(
            "these tests need the Snowflake emulator: run them with scripts/test.sh, which "
            "starts one, or run `scripts/snowflake-emulator.sh with pytest` after exporting "
            "IOT_TEST_SNOWFLAKE_URL=$SNOWFLAKE_EMULATOR_URL"
        )
    return url


def snowflake_env(user: str = "dashboard", password: str = "secret") -> dict[str, str]:
    """The variables `load --dest snowflake` and the dashboard read, for the emulator."""
    return {
        "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST": "emulator",
        "DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME": user,
        "DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD": password,
        "DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE": "IOT",
        "SNOWFLAKE_URL": emulator(),
    }


def emulator_connection(**settings):
    """An administrator's session on the emulator through Snowflake's connector (a
    context manager)."""
    from provision import connect

    return connect(emulator(), **settings)


def snowflake_truth(dataset: str, sql: str) -> list:
    """What the emulator itself says, through Snowflake's connector ({s}: the dataset)."""
    with emulator_connection(database="IOT") as connection:
        return connection.cursor().execute(sql.format(s=dataset.upper())).fetchall()


def truth(path: Path, sql: str) -> list:
    """What the file itself says, to compare the pages with."""
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()
