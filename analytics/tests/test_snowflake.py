"""The same dbt project in Snowflake (the emulator): every model builds and every
test passes, incrementally too, and the marts hold the same keys as on DuckDB. The
account is set up by config/snowflake/provision.sql, and load and dbt run under its
loader and transformer roles with exactly their grants, which the emulator
enforces as Snowflake does."""

from __future__ import annotations

import subprocess
import uuid

from conftest import REPO, dbt, duckdb_env
from fleet import (
    clean_env,
    emulator,
    load,
    simulate,
    snowflake_env,
    snowflake_truth,
    topics_of_our_own,
    truth,
)
from provision import connect, provision

KEYS = {
    "trips": "trip_id",
    "vehicle_days": "vehicle_day_id",
    "speeding": "event_id",
    "incidents": "incident_id",
    "trip_weather": "trip_id",
}


ROLE = "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE"


def load_as_loader(topics: list[str], dataset: str, roles: dict[str, str], **kwargs) -> None:
    """`load` into `dataset` in the emulator, under its provisioned loader role."""
    env = {**clean_env(), **snowflake_env(user="loader"), ROLE: roles["loader_role"]}
    load(topics, "--dest", "snowflake", "--dataset", dataset, env=env, **kwargs)


def test_the_models_build_in_snowflake_as_on_duckdb(tmp_path):
    topics = topics_of_our_own()
    dataset = "dbt" + uuid.uuid4().hex[:10]
    path = tmp_path / "fleet.duckdb"
    roles = provision(emulator(), dataset)
    snowflake = {
        **snowflake_env(user="dbt"),
        "DATASET_NAME": dataset,
        ROLE: roles["transformer_role"],
    }
    for seed in (7, 8):
        simulate(topics, "--vehicles", "2", "--duration", "10m", "--seed", str(seed))
        load(topics, "--dest", "duckdb", "--duckdb-file", path, group="duck" + dataset)
        load_as_loader(topics, dataset, roles, group="snow" + dataset)
        # The second round builds incrementally on the first.
        built = dbt(tmp_path / "snowflake", "build", "--target", "snowflake", env=snowflake)
        assert "Completed successfully" in built.stdout
    dbt(tmp_path / "duckdb", "build", env=duckdb_env(path))
    for model, key in KEYS.items():
        in_snowflake = sorted(
            k for (k,) in snowflake_truth(dataset, f"SELECT {key} FROM {{s}}_ANALYTICS.{model}")
        )
        on_duckdb = sorted(
            k for (k,) in truth(path, f"SELECT {key} FROM iot_stream_analytics.{model}")
        )
        assert in_snowflake == on_duckdb, model
    assert len(snowflake_truth(dataset, "SELECT trip_id FROM {s}_ANALYTICS.TRIPS")) == 4, (
        "both rounds' trips"
    )


def test_dbt_short_of_a_grant_exits_7_with_the_grants_to_run(tmp_path):
    """scripts/dbt.sh under a transformer role whose CREATE TABLE on the analytics
    schema was revoked: Snowflake refuses dbt's first table, and the script names
    the grants provision.sql gives the transformer, with load's status for it."""
    topics = topics_of_our_own()
    dataset = "dbt" + uuid.uuid4().hex[:10]
    roles = provision(emulator(), dataset)
    simulate(topics, "--vehicles", "1", "--duration", "2m", "--seed", "3")
    load_as_loader(topics, dataset, roles)
    analytics = roles["analytics_schema"]
    with connect(emulator(), database="IOT") as admin:
        admin.cursor().execute(
            f"REVOKE CREATE TABLE ON SCHEMA {analytics} FROM ROLE {roles['transformer_role']}"
        )
    env = {
        **clean_env(),
        **snowflake_env(user="dbt"),
        "DATASET_NAME": dataset,
        ROLE: roles["transformer_role"],
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    done = subprocess.run(
        [str(REPO / "scripts" / "dbt.sh"), "build", "--target", "snowflake"]
        + ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 7, done.stdout[-3000:] + done.stderr
    grant = f"GRANT USAGE, CREATE TABLE, CREATE VIEW ON SCHEMA IOT.{analytics} TO ROLE "
    assert grant + roles["transformer_role"] in done.stderr, done.stderr
