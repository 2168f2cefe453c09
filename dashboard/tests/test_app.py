"""Every page, run by Streamlit's own test runner (AppTest) on a file made by the
real simulate and load, and on the bad states a user meets: no file yet, a file
without the tables, a file the loader holds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import APP, build
from fleet import (
    bootstrap,
    emulator,
    load,
    simulate,
    snowflake_env,
    snowflake_truth,
    topic_variables,
    topics_of_our_own,
    truth,
)
from provision import connect, roles


def page(name: str, monkeypatch, path=None, **env: str) -> AppTest:
    """The app on page `name`, reading the DuckDB file at `path`, or with `env`
    (LOAD_DEST=snowflake and the credentials) another destination."""
    for variable in list(os.environ):
        if variable.startswith(("DESTINATION__", "SNOWFLAKE_", "LOAD_", "DUCKDB_", "KAFKA_")):
            monkeypatch.delenv(variable)
    if path is not None:
        monkeypatch.setenv("DUCKDB_FILE", str(path))
    monkeypatch.setenv("DATASET_NAME", "iot_stream")
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    app.sidebar.radio[0].set_value(name).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def test_fleet_map_shows_every_vehicle_and_its_latest_position(monkeypatch, fleet_file):
    app = page("Fleet map", monkeypatch, fleet_file)
    devices = sorted(
        d
        for (d,) in truth(fleet_file, "SELECT DISTINCT device_id::VARCHAR FROM iot_stream.gps_data")
    )
    assert metric(app, "Vehicles") == str(len(devices))
    shown = sorted(app.table[0].value["device_id"].astype(str))
    assert shown == devices
    assert app.get("deck_gl_json_chart"), "the map is drawn"
    drawn = next(c.value for c in app.caption if "GPS fixes drawn" in c.value)
    total = truth(fleet_file, "SELECT count(DISTINCT id) FROM iot_stream.gps_data")[0][0]
    assert f"of {total:,} GPS fixes drawn" in drawn


def test_events_sent_again_are_counted_once_as_dbt_counts_them(monkeypatch, tmp_path):
    """A simulate rerun with the same seed sends every event again under its id:
    the Fleet map counts each once, as dbt's staging does, and so do the trips."""
    topics = topics_of_our_own()
    path = tmp_path / "twice.duckdb"
    for _ in range(2):
        simulate(topics, "--vehicles", "2", "--duration", "5m", "--seed", "21")
        load(topics, "--dest", "duckdb", "--duckdb-file", path, group="twice" + topics[1])
    build(path, tmp_path / "dbt")
    raw = truth(path, "SELECT count(*) FROM iot_stream.gps_data")[0][0]
    staged = truth(path, "SELECT count(*) FROM iot_stream_analytics.stg_gps_fixes")[0][0]
    assert raw == 2 * staged
    app = page("Fleet map", monkeypatch, path)
    assert metric(app, "GPS fixes") == f"{staged:,}"
    assert metric(app, "Trips") == "2"
    drawn = next(c.value for c in app.caption if "GPS fixes drawn" in c.value)
    assert f"of {staged:,} GPS fixes drawn" in drawn, drawn


def test_a_file_dbt_has_not_built_says_to_build_and_health_still_shows(monkeypatch, tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "loaded.duckdb"
    simulate(topics, "--vehicles", "1", "--duration", "2m", "--seed", "22")
    load(topics, "--dest", "duckdb", "--duckdb-file", path)
    for name in ("Fleet map", "Trips", "Incidents", "Weather"):
        warnings = " ".join(w.value for w in page(name, monkeypatch, path).warning)
        assert "no analytics models in iot_stream_analytics" in warnings, (name, warnings)
        assert "scripts/dbt.sh build" in warnings, warnings
    assert metric(page("Pipeline health", monkeypatch, path), "Runs") == "1"


def test_the_chosen_trip_stays_chosen_as_new_trips_arrive(monkeypatch, tmp_path):
    topics = topics_of_our_own()
    path = tmp_path / "growing.duckdb"

    def more(seed: int) -> None:
        simulate(topics, "--vehicles", "2", "--duration", "3m", "--seed", str(seed))
        load(topics, "--dest", "duckdb", "--duckdb-file", path, group="grow" + topics[1])
        build(path, tmp_path / "dbt")

    more(23)
    app = page("Trips", monkeypatch, path)
    order = "SELECT trip_id FROM iot_stream_analytics.trips ORDER BY started_at, trip_id"
    first, chosen = (t for (t,) in truth(path, order))
    assert app.selectbox[0].value == first
    app.selectbox[0].select(chosen).run()
    assert app.selectbox[0].value == chosen
    more(24)
    st.cache_data.clear()
    app.run()
    assert len(app.selectbox[0].options) == 4, "the new trips are listed"
    assert app.selectbox[0].value == chosen, "the chosen trip is still the one charted"


def test_trips_lists_the_trips_and_charts_the_chosen_one(monkeypatch, fleet_file):
    app = page("Trips", monkeypatch, fleet_file)
    trips = truth(fleet_file, "SELECT count(*) FROM iot_stream_analytics.trips")[0][0]
    assert metric(app, "Trips") == str(trips)
    assert len(app.dataframe[0].value) == trips
    assert len(app.selectbox[0].options) == trips
    assert len(app.get("vega_lite_chart")) == 3, "speed, fuel and odometer are charted"


def test_incidents_counts_active_and_resolved(monkeypatch, fleet_file):
    app = page("Incidents", monkeypatch, fleet_file)
    (active, resolved) = truth(
        fleet_file,
        "SELECT count(*) FILTER (WHERE status = 'active'), "
        "count(*) FILTER (WHERE status = 'resolved') FROM iot_stream_analytics.incidents",
    )[0]
    assert active + resolved > 0, "the fixture's emergency rate makes incidents"
    assert metric(app, "Active") == str(active)
    assert metric(app, "Resolved") == str(resolved)


def test_weather_is_averaged_over_time(monkeypatch, fleet_file):
    app = page("Weather", monkeypatch, fleet_file)
    buckets = truth(
        fleet_file,
        'SELECT count(DISTINCT time_bucket(INTERVAL 5 MINUTE, "timestamp")) '
        "FROM iot_stream.weather_data",
    )[0][0]
    assert buckets > 0
    shown = app.dataframe[0].value
    assert len(shown) == buckets
    # Precipitation is charted when any fell, else said in words.
    said_none = any("None fell" in c.value for c in app.caption)
    assert said_none == (not shown["precipitation_mm_h"].gt(0).any())


def test_times_are_utc_on_a_machine_in_another_time_zone(fleet_file):
    """The pages show UTC times, as dbt's models count days and hours in UTC, also
    on a machine whose clock is set to India's (DuckDB takes the zone from TZ)."""
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); "
        "from iot_dashboard import queries, sources; "
        "source = sources.DuckDbSource(Path(sys.argv[1])); "
        "print(queries.weather(source)['period'].dt.tz, "
        "queries.trips(source)['started_at'].dt.tz)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(fleet_file), str(APP.parent)],
        env={**os.environ, "TZ": "Asia/Kolkata"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["UTC", "UTC"], done.stdout


def test_pipeline_health_shows_the_runs_and_offsets(monkeypatch, fleet_file, fleet_topics):
    kafka = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap(), **topic_variables(fleet_topics)}
    app = page("Pipeline health", monkeypatch, fleet_file, **kafka)
    runs = truth(fleet_file, "SELECT count(*) FROM iot_stream._loads")[0][0]
    assert metric(app, "Runs") == str(runs)
    assert metric(app, "Failed") == "0"
    stored = truth(fleet_file, "SELECT count(*) FROM iot_stream._kafka_offsets")[0][0]
    shown = app.dataframe[-1].value
    assert shown["next_offset"].notna().sum() == stored
    # Partitions no message went to are listed too: 5 topics, each of all its partitions.
    assert len(shown) == 5 * partitions_per_topic(shown) >= stored
    assert int(shown["lag"].sum()) == 0, "the fixture loaded everything"


def test_pipeline_health_shows_the_lag_the_broker_reports(monkeypatch, tmp_path):
    topics = topics_of_our_own()
    simulate(topics, "--vehicles", "1", "--duration", "5m")
    lagging = tmp_path / "lagging.duckdb"
    load(topics, "--dest", "duckdb", "--duckdb-file", lagging, group="lag")
    # More events than were loaded.
    simulate(topics, "--vehicles", "2", "--duration", "5m")
    named = topic_variables(topics)
    app = page(
        "Pipeline health", monkeypatch, lagging, KAFKA_BOOTSTRAP_SERVERS=bootstrap(), **named
    )
    shown = app.dataframe[-1].value
    # What a load of a copy of the file then takes in is what the page said was left.
    caught_up = tmp_path / "caught_up.duckdb"
    caught_up.write_bytes(lagging.read_bytes())
    load(topics, "--dest", "duckdb", "--duckdb-file", caught_up, group="lag")
    ((loaded,),) = truth(
        caught_up,
        "SELECT rows_loaded + dead_letters FROM iot_stream._loads ORDER BY started_at DESC LIMIT 1",
    )
    assert loaded > 0
    assert int(shown["lag"].sum()) == loaded
    assert metric(app, "Messages not loaded yet") == f"{loaded:,}"
    assert set(shown["topic"]) == set(named.values())
    assert len(shown) == 5 * partitions_per_topic(shown)
    ends = truth(caught_up, "SELECT sum(next_offset) FROM iot_stream._kafka_offsets")[0][0]
    assert int(shown["end_offset"].sum()) == ends


def partitions_per_topic(frame) -> int:
    counts = frame.groupby("topic").size()
    assert counts.nunique() == 1, counts
    return int(counts.iloc[0])


def test_pipeline_health_without_a_broker_says_so_and_shows_the_offsets(monkeypatch, fleet_file):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    app = page(
        "Pipeline health", monkeypatch, fleet_file, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}"
    )
    notes = " ".join(c.value for c in app.caption)
    assert f"no Kafka broker answered at 127.0.0.1:{port}" in notes, notes
    partitions = truth(fleet_file, "SELECT count(*) FROM iot_stream._kafka_offsets")[0][0]
    assert len(app.dataframe[-1].value) == partitions

    # The next refresh does not wait for the broker again: it asks again in a minute.
    import confluent_kafka

    asked = []
    monkeypatch.setattr(
        confluent_kafka, "Consumer", lambda *a, **k: asked.append(a) or pytest.fail("asked")
    )
    st.cache_data.clear()
    app.run()
    notes = " ".join(c.value for c in app.caption)
    assert "asked again within a minute" in notes and not asked, notes
    assert len(app.dataframe[-1].value) == partitions


@pytest.mark.parametrize("name", ["Fleet map", "Trips", "Incidents", "Weather", "Pipeline health"])
def test_no_file_yet_says_how_to_make_one(monkeypatch, tmp_path, name):
    app = page(name, monkeypatch, tmp_path / "missing.duckdb")
    warnings = " ".join(w.value for w in app.warning)
    assert "no database file" in warnings and "scripts/demo.sh" in warnings


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("Fleet map", "scripts/dbt.sh build"),
        ("Trips", "scripts/dbt.sh build"),
        ("Incidents", "scripts/dbt.sh build"),
        ("Weather", "scripts/dbt.sh build"),
        ("Pipeline health", "load --dest duckdb"),
    ],
)
def test_a_file_without_the_tables_says_what_to_run(monkeypatch, tmp_path, name, said):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    app = page(name, monkeypatch, empty)
    warnings = " ".join(w.value for w in app.warning)
    assert said in warnings, warnings


def test_an_older_file_missing_a_column_says_to_run_load(monkeypatch, fleet_file, tmp_path):
    older = tmp_path / "older.duckdb"
    older.write_bytes(fleet_file.read_bytes())
    # A file from before vehicle readings carried the fuel or battery level.
    with duckdb.connect(str(older)) as connection:
        connection.execute("ALTER TABLE iot_stream.vehicle_data DROP COLUMN fuel_level_pct")
    app = page("Trips", monkeypatch, older)
    warnings = " ".join(w.value for w in app.warning)
    assert "has an older layout" in warnings and "fuel_level_pct" in warnings, warnings
    assert "Run `load` once" in warnings
    assert app.dataframe, "the trips the file does hold are still shown"


def test_a_file_the_loader_holds_keeps_the_last_data_with_a_note(monkeypatch, fleet_file, tmp_path):
    copy = tmp_path / "held.duckdb"
    copy.write_bytes(fleet_file.read_bytes())
    app = page("Fleet map", monkeypatch, copy)
    vehicles = metric(app, "Vehicles")
    # Another process holds the file for writing, as `load` does during a batch.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('held', flush=True); time.sleep(120)",
            str(copy),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        # The next refresh asks the file again rather than the cache.
        st.cache_data.clear()
        started = time.monotonic()
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        assert time.monotonic() - started < 30
        notes = " ".join(c.value for c in app.caption)
        assert "Showing the data of the last refresh" in notes, notes
        assert metric(app, "Vehicles") == vehicles
    finally:
        holder.kill()
        holder.wait()


ROLE = "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE"


def snowflake_page(name: str, monkeypatch, dataset: str, **env: str) -> AppTest:
    """The app on page `name` reading `dataset` in the emulator, under the reporter
    role config/snowflake/provision.sql creates for it (a role the emulator does
    not know, for a dataset never provisioned, is not checked)."""
    settings = {**snowflake_env(), "LOAD_DEST": "snowflake", ROLE: roles(dataset)["reporter_role"]}
    return page(name, monkeypatch, DATASET_NAME=dataset, **{**settings, **env})


def test_snowflake_fleet_map_and_trips_match_the_warehouse(monkeypatch, snowflake_fleet):
    app = snowflake_page("Fleet map", monkeypatch, snowflake_fleet)
    devices = sorted(
        d
        for (d,) in snowflake_truth(snowflake_fleet, "SELECT DISTINCT device_id FROM {s}.GPS_DATA")
    )
    assert metric(app, "Vehicles") == str(len(devices))
    assert sorted(app.table[0].value["device_id"].astype(str)) == devices
    assert app.get("deck_gl_json_chart"), "the map is drawn"
    trips = snowflake_truth(snowflake_fleet, "SELECT count(*) FROM {s}_ANALYTICS.TRIPS")[0][0]
    assert metric(app, "Trips") == str(trips)
    app = snowflake_page("Trips", monkeypatch, snowflake_fleet)
    assert len(app.dataframe[0].value) == trips
    assert len(app.get("vega_lite_chart")) == 3, "speed, fuel and odometer are charted"


def test_snowflake_incidents_weather_and_health_match_the_warehouse(
    monkeypatch, snowflake_fleet, snowflake_topics
):
    (active, resolved) = snowflake_truth(
        snowflake_fleet,
        "SELECT count_if(status = 'active'), count_if(status = 'resolved') "
        "FROM {s}_ANALYTICS.INCIDENTS",
    )[0]
    assert active + resolved > 0, "the fleet has incidents to show"
    app = snowflake_page("Incidents", monkeypatch, snowflake_fleet)
    assert (metric(app, "Active"), metric(app, "Resolved")) == (str(active), str(resolved))
    periods = snowflake_truth(
        snowflake_fleet,
        "SELECT count(*) FROM (SELECT DISTINCT date_trunc('hour', \"TIMESTAMP\"), "
        "floor(date_part('minute', \"TIMESTAMP\") / 5) FROM {s}.WEATHER_DATA)",
    )[0][0]
    app = snowflake_page("Weather", monkeypatch, snowflake_fleet)
    assert len(app.dataframe[0].value) == periods > 0
    runs = snowflake_truth(snowflake_fleet, "SELECT count(*) FROM {s}._LOADS")[0][0]
    partitions = snowflake_truth(snowflake_fleet, "SELECT count(*) FROM {s}._KAFKA_OFFSETS")[0][0]
    kafka = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap(), **topic_variables(snowflake_topics)}
    app = snowflake_page("Pipeline health", monkeypatch, snowflake_fleet, **kafka)
    assert metric(app, "Runs") == str(runs)
    shown = app.dataframe[-1].value
    assert shown["next_offset"].notna().sum() == partitions
    assert int(shown["lag"].sum()) == 0, "the fixture loaded everything"


def warnings_of(app: AppTest) -> str:
    return " ".join(w.value for w in app.warning)


def test_in_streamlit_in_snowflake_the_app_reads_with_the_apps_own_session(
    monkeypatch, snowflake_fleet
):
    """As Snowsight runs it (snowflake.yml): every file the definition lists is
    here, and the app, given only the app's session (Snowpark's
    get_active_session), reads Snowflake through it. The session here is the
    reporter role's on the emulator, as the deployed app's owner is."""
    import types

    import yaml

    from conftest import DASHBOARD

    definition = yaml.safe_load((DASHBOARD / "snowflake.yml").read_text())
    (entity,) = definition["entities"].values()
    assert (entity["type"], entity["main_file"]) == ("streamlit", "app.py")
    for artifact in entity["artifacts"]:
        assert (DASHBOARD / artifact).is_file(), artifact

    with connect(
        emulator(), database="IOT", role=roles(snowflake_fleet)["reporter_role"]
    ) as connection:

        class Answer:
            def __init__(self, text, params):
                self.text, self.params = text, params

            def to_pandas(self):
                cursor = connection.cursor()
                cursor.execute(self.text.replace("?", "%s"), self.params)
                names = [c[0] for c in cursor.description]
                return pd.DataFrame.from_records(cursor.fetchall(), columns=names)

        class Session:
            def sql(self, text, params=None):
                return Answer(text, params)

        context = types.ModuleType("snowflake.snowpark.context")
        context.get_active_session = Session
        snowpark = types.ModuleType("snowflake.snowpark")
        snowpark.context = context
        monkeypatch.setitem(sys.modules, "snowflake.snowpark", snowpark)
        monkeypatch.setitem(sys.modules, "snowflake.snowpark.context", context)
        app = page("Fleet map", monkeypatch, DATASET_NAME=snowflake_fleet)
        devices = snowflake_truth(snowflake_fleet, "SELECT DISTINCT device_id FROM {s}.GPS_DATA")
        assert metric(app, "Vehicles") == str(len(devices))
        said = " ".join(c.value for c in app.sidebar.caption)
        assert "Snowflake this account" in said and "refreshed every 10 min" in said, said


def test_snowflake_refreshes_every_10_min_and_says_what_that_costs(monkeypatch, snowflake_fleet):
    app = snowflake_page("Fleet map", monkeypatch, snowflake_fleet)
    said = " ".join(c.value for c in app.sidebar.caption)
    assert "refreshed every 10 min" in said, said
    assert "about 2.4 credits a day on XSMALL" in said, said
    app = snowflake_page("Fleet map", monkeypatch, snowflake_fleet, DASHBOARD_REFRESH="60")
    said = " ".join(c.value for c in app.sidebar.caption)
    assert "refreshed every 1 min" in said and "about 24.0 credits a day" in said, said


def test_snowflake_viewers_questions_run_side_by_side(monkeypatch):
    """Two viewers' questions on one session at once: neither waits for the other
    (each holds its cursor until both are in; a lock around the query would make the
    first wait for ever, and the barrier break)."""
    import threading

    from iot_dashboard import sources

    both_in = threading.Barrier(2, timeout=10)

    class Cursor:
        description = [("N",)]

        def execute(self, sql, params=None):
            both_in.wait()

        def fetchall(self):
            return [(1,)]

    class Connection:
        def cursor(self):
            return Cursor()

    source = sources.SnowflakeSource(account="a", user="u", password="p", database="IOT")
    monkeypatch.setitem(sources.SESSIONS, source, Connection())
    answers, failures = [], []

    def ask():
        try:
            answers.append(source.query("SELECT 1 AS n"))
        except Exception as e:  # the barrier broken: the two ran one after the other
            failures.append(e)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert [int(a["n"].iloc[0]) for a in answers] == [1, 1]


def test_snowflake_a_role_without_select_is_told_the_grant(monkeypatch, snowflake_fleet):
    role = "NOSELECT_" + snowflake_fleet.upper()
    schema = snowflake_fleet.upper()
    with connect(emulator(), database="IOT") as admin:
        for statement in (
            f"CREATE ROLE IF NOT EXISTS {role}",
            f"GRANT USAGE ON DATABASE IOT TO ROLE {role}",
            f"GRANT USAGE ON SCHEMA {schema} TO ROLE {role}",
        ):
            admin.cursor().execute(statement)
    app = snowflake_page("Fleet map", monkeypatch, snowflake_fleet, **{ROLE: role})
    said = warnings_of(app)
    grant = f"GRANT SELECT ON ALL TABLES IN SCHEMA IOT.{schema}_ANALYTICS TO ROLE {role}"
    assert grant in said and "provision.sql" in said, said
    app = snowflake_page("Pipeline health", monkeypatch, snowflake_fleet, **{ROLE: role})
    said = warnings_of(app)
    assert f"GRANT SELECT ON ALL TABLES IN SCHEMA IOT.{schema} TO ROLE {role}" in said, said


def test_snowflake_without_the_dataset_says_to_run_load_then_dbt(monkeypatch):
    app = snowflake_page("Pipeline health", monkeypatch, "no_such_dataset")
    assert "lacks what this page reads" in warnings_of(app)
    assert "load --dest snowflake" in warnings_of(app)
    app = snowflake_page("Trips", monkeypatch, "no_such_dataset")
    assert "scripts/dbt.sh build" in warnings_of(app), warnings_of(app)


def test_snowflake_refusing_the_password_names_the_variables(monkeypatch):
    # The emulator refuses this password as Snowflake refuses a wrong one.
    env = snowflake_env(password="wrong-password")
    app = snowflake_page("Fleet map", monkeypatch, "iot_stream", **env)
    said = warnings_of(app)
    assert "refused the login" in said, said
    assert "DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD" in said
    assert "wrong-password" not in said, "the password stays secret"


def test_snowflake_missing_credentials_are_named(monkeypatch):
    env = snowflake_env()
    del env["DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD"]
    del env["DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE"]
    for variable in (
        "DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD",
        "DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE",
    ):
        monkeypatch.delenv(variable, raising=False)
    app = page("Fleet map", monkeypatch, LOAD_DEST="snowflake", **env)
    said = warnings_of(app)
    assert "DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE" in said, said
    assert "DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD" in said, said


def test_snowflake_unreachable_says_where_and_what_to_check(monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    started = time.monotonic()
    app = page(
        "Fleet map",
        monkeypatch,
        LOAD_DEST="snowflake",
        **{**snowflake_env(), "SNOWFLAKE_URL": f"http://127.0.0.1:{port}"},
    )
    said = warnings_of(app)
    assert f"127.0.0.1:{port}" in said and "cannot be reached" in said, said
    assert time.monotonic() - started < 60
