"""dbt on a DuckDB file made by the real simulate and load: the models build and
their tests pass, an incremental run adds only what is new and equals a full
refresh, and events sent again under the same ids are counted once."""

from __future__ import annotations

from pathlib import Path

import duckdb

from conftest import dbt, duckdb_env
from fleet import load, simulate, topics_of_our_own, truth

MARTS = {
    "trips": "trip_id",
    "vehicle_days": "vehicle_day_id",
    "speeding": "event_id",
    "incidents": "incident_id",
    "trip_weather": "trip_id",
}
STAGING = [
    "stg_vehicle_readings",
    "stg_gps_fixes",
    "stg_camera_passes",
    "stg_weather_readings",
    "stg_emergency_reports",
]


def fleet(topics: list[str], path: Path, seed: int, vehicles: int = 2) -> None:
    """`vehicles` vehicles' 20 minutes (seed `seed`) sent and loaded into `path`."""
    simulate(
        topics,
        "--vehicles",
        str(vehicles),
        "--duration",
        "20m",
        "--seed",
        str(seed),
        "--emergency-rate",
        "6",
    )
    load(topics, "--dest", "duckdb", "--duckdb-file", path, group="analytics" + topics[1])


def rows(path: Path, model: str) -> list[tuple]:
    """Every row of a model, sorted: to compare two builds."""
    return sorted(truth(path, f"SELECT * FROM iot_stream_analytics.{model}"), key=repr)


def count(path: Path, relation: str) -> int:
    return truth(path, f"SELECT count(*) FROM {relation}")[0][0]


def test_an_incremental_build_adds_only_the_new_and_equals_a_full_refresh(tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    fleet(topics, path, seed=1)
    dbt(tmp_path, "build", env=duckdb_env(path))
    first_trips = {t for (t,) in truth(path, "SELECT trip_id FROM iot_stream_analytics.trips")}
    assert len(first_trips) == 2

    fleet(topics, path, seed=2)
    # A mark on a trip built before: an incremental run must leave it as it is.
    old = min(first_trips)
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "UPDATE iot_stream_analytics.trips SET readings = -1 WHERE trip_id = ?",
            [old],
        )
    dbt(tmp_path, "build", "--vars", "{lookback_hours: 0}", env=duckdb_env(path))
    trips = {t for (t,) in truth(path, "SELECT trip_id FROM iot_stream_analytics.trips")}
    assert len(trips) == 4 and first_trips < trips, "the new trips are added"
    marked = truth(path, f"SELECT readings FROM iot_stream_analytics.trips WHERE trip_id = '{old}'")
    assert marked == [(-1,)], "a trip without new readings is not rebuilt"

    incremental = {model: rows(path, model) for model in MARTS}
    dbt(tmp_path, "build", "--full-refresh", env=duckdb_env(path))
    for model in MARTS:
        full = rows(path, model)
        if model == "trips":
            full = [r if r[0] != old else None for r in full]
            incremental[model] = [r if r[0] != old else None for r in incremental[model]]
        assert incremental[model] == full, f"{model}: incremental differs from a full refresh"
    assert count(path, "iot_stream_analytics.trips") == count(
        path, "(SELECT DISTINCT trip_id FROM iot_stream.vehicle_data)"
    )


def test_events_sent_again_under_the_same_ids_are_counted_once(tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    fleet(topics, path, seed=3)
    dbt(tmp_path, "build", env=duckdb_env(path))
    staged = {model: count(path, f"iot_stream_analytics.{model}") for model in STAGING}
    marts = {model: rows(path, model) for model in ("trips", "incidents", "trip_weather")}

    fleet(topics, path, seed=3)  # the same seed: the same events, ids and all
    assert count(path, "iot_stream.gps_data") == 2 * staged["stg_gps_fixes"]
    dbt(tmp_path, "build", env=duckdb_env(path))
    assert {model: count(path, f"iot_stream_analytics.{model}") for model in STAGING} == staged
    for model, before in marts.items():
        after = rows(path, model)
        # The same trips and incidents; only when each reached Kafka moved on.
        assert [r[:-1] for r in after] == [r[:-1] for r in before], model
