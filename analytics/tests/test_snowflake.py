"""The same dbt project in Snowflake (the emulator): every model builds and every
test passes, incrementally too, and the marts hold the same keys as on DuckDB. The
account is set up by config/snowflake/provision.sql, and load and dbt run under its
loader and transformer roles with exactly their grants, which the emulator
enforces as Snowflake does."""

from __future__ import annotations

import uuid

from conftest import dbt, duckdb_env
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
from provision import provision

KEYS = {
    "trips": "trip_id",
    "vehicle_days": "vehicle_day_id",
    "speeding": "event_id",
    "incidents": "incident_id",
    "trip_weather": "trip_id",
}


def test_the_models_build_in_snowflake_as_on_duckdb(tmp_path):
    topics = topics_of_our_own()
    dataset = "dbt" + uuid.uuid4().hex[:10]
    path = tmp_path / "fleet.duckdb"
    roles = provision(emulator(), dataset)
    role = "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE"
    snowflake = {
        **snowflake_env(user="dbt"),
        "DATASET_NAME": dataset,
        role: roles["transformer_role"],
    }
    loader = {**clean_env(), **snowflake_env(user="loader"), role: roles["loader_role"]}
    for seed in (7, 8):
        simulate(topics, "--vehicles", "2", "--duration", "10m", "--seed", str(seed))
        load(topics, "--dest", "duckdb", "--duckdb-file", path, group="duck" + dataset)
        load(
            topics,
            "--dest",
            "snowflake",
            "--dataset",
            dataset,
            group="snow" + dataset,
            env=loader,
        )
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
