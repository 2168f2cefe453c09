"""dbt on a DuckDB file made by the real simulate and load: the models build and
their tests pass, an incremental run adds only what is new and equals a full
refresh (also for late, out-of-order and timestamp-less events), events sent again
under the same ids are counted once, and days are UTC days on any machine."""

from __future__ import annotations

import subprocess
import sys
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


def fleet(topics: list[str], path: Path, seed: int, *args: str, vehicles: int = 2) -> None:
    """`vehicles` vehicles' 20 minutes (seed `seed`, simulate's `args`) sent and
    loaded into `path`."""
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
        *args,
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
    dbt(tmp_path, "build", "--vars", "{lookback_minutes: 0}", env=duckdb_env(path))
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


def test_late_out_of_order_and_timestamp_less_events_reach_the_marts(tmp_path):
    """Events stored after a build whose own times are a month older than what was
    built, and whose Kafka timestamps are days old or missing (a partition that
    lagged, a producer that sets none): an incremental run picks them up by when
    the loader stored them, and equals a full refresh."""
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    fleet(topics, path, seed=7)
    dbt(tmp_path, "build", env=duckdb_env(path))
    built = count(path, "iot_stream_analytics.trips")

    # A month earlier in simulated time: out of order behind what was built.
    fleet(topics, path, 8, "--start-time", "2024-12-01T08:00:00Z")
    late = "_load_id = (SELECT load_id FROM iot_stream._loads ORDER BY started_at DESC LIMIT 1)"
    with duckdb.connect(str(path)) as connection:
        for table in ("vehicle_data", "emergency_data", "weather_data"):
            connection.execute(
                f"UPDATE iot_stream.{table} SET _kafka_timestamp = NULL WHERE {late}"
            )
        for table in ("traffic_data", "gps_data"):
            connection.execute(
                f"UPDATE iot_stream.{table} "
                f"SET _kafka_timestamp = _kafka_timestamp - INTERVAL 3 DAY WHERE {late}"
            )
    dbt(tmp_path, "build", env=duckdb_env(path))
    assert count(path, "iot_stream_analytics.trips") == built + 2
    incremental = {model: rows(path, model) for model in MARTS}
    assert any(
        r[0].startswith("2024-12")
        for r in truth(path, "SELECT cast(day AS varchar) FROM iot_stream_analytics.vehicle_days")
    ), "the month-old days are built"
    dbt(tmp_path, "build", "--full-refresh", env=duckdb_env(path))
    for model in MARTS:
        assert incremental[model] == rows(path, model), f"{model}: incremental differs"


def test_days_are_utc_days_whatever_the_machine_s_time_zone(tmp_path):
    """Trips that cross midnight UTC make two days per vehicle, also when dbt runs
    on a machine whose clock is set to Auckland (where it is midday then)."""
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    fleet(topics, path, 9, "--start-time", "2025-01-01T23:50:00Z", "--stagger", "1m")
    dbt(tmp_path, "build", env={**duckdb_env(path), "TZ": "Pacific/Auckland"})
    days = truth(
        path,
        "SELECT cast(day AS varchar), count(*) FROM iot_stream_analytics.vehicle_days "
        "GROUP BY 1 ORDER BY 1",
    )
    assert days == [("2025-01-01", 2), ("2025-01-02", 2)], days


def test_a_file_held_by_another_program_is_waited_for(tmp_path):
    """dbt started while a load (or the dashboard, or DBeaver) holds the file waits
    for it, as load does, rather than failing."""
    topics = topics_of_our_own()
    path = tmp_path / "fleet.duckdb"
    fleet(topics, path, 16, vehicles=1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "12"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        built = dbt(tmp_path, "build", env=duckdb_env(path))
    finally:
        holder.kill()
        holder.wait()
    assert "Completed successfully" in built.stdout
    assert count(path, "iot_stream_analytics.trips") == 1


# Holds the DuckDB file argv[1] for writing for argv[2] seconds, as a load does.
HOLD = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
    "time.sleep(float(sys.argv[2]))"
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
