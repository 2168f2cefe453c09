"""Every page, run by Streamlit's own test runner (AppTest) on a file made by the
real simulate and load, and on the bad states a user meets: no file yet, a file
without the tables, a file the loader holds."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest
import streamlit as st
from conftest import APP, truth
from streamlit.testing.v1 import AppTest


def page(name: str, monkeypatch, path) -> AppTest:
    monkeypatch.setenv("DUCKDB_FILE", str(path))
    monkeypatch.setenv("DATASET_NAME", "iot_stream")
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
    total = truth(fleet_file, "SELECT count(*) FROM iot_stream.gps_data")[0][0]
    assert f"of {total:,} GPS fixes drawn" in drawn


def test_trips_lists_the_trips_and_charts_the_chosen_one(monkeypatch, fleet_file):
    app = page("Trips", monkeypatch, fleet_file)
    trips = truth(fleet_file, "SELECT count(*) FROM iot_stream.trips")[0][0]
    assert metric(app, "Trips") == str(trips)
    assert len(app.dataframe[0].value) == trips
    assert len(app.selectbox[0].options) == trips
    assert len(app.get("vega_lite_chart")) == 3, "speed, fuel and odometer are charted"


def test_incidents_counts_active_and_resolved(monkeypatch, fleet_file):
    app = page("Incidents", monkeypatch, fleet_file)
    (active, resolved) = truth(
        fleet_file,
        "SELECT count(*) FILTER (WHERE status = 'active'), "
        "count(*) FILTER (WHERE status = 'resolved') FROM iot_stream.incidents",
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
    assert len(app.dataframe[0].value) == buckets


def test_pipeline_health_shows_the_runs_and_offsets(monkeypatch, fleet_file):
    app = page("Pipeline health", monkeypatch, fleet_file)
    runs = truth(fleet_file, "SELECT count(*) FROM iot_stream._loads")[0][0]
    assert metric(app, "Runs") == str(runs)
    assert metric(app, "Failed") == "0"
    partitions = truth(fleet_file, "SELECT count(*) FROM iot_stream._kafka_offsets")[0][0]
    assert len(app.dataframe[-1].value) == partitions


@pytest.mark.parametrize("name", ["Fleet map", "Trips", "Incidents", "Weather", "Pipeline health"])
def test_no_file_yet_says_how_to_make_one(monkeypatch, tmp_path, name):
    app = page(name, monkeypatch, tmp_path / "missing.duckdb")
    warnings = " ".join(w.value for w in app.warning)
    assert "no database file" in warnings and "scripts/demo.sh" in warnings


@pytest.mark.parametrize("name", ["Fleet map", "Trips", "Incidents", "Weather", "Pipeline health"])
def test_a_file_without_the_tables_says_to_run_load(monkeypatch, tmp_path, name):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    app = page(name, monkeypatch, empty)
    warnings = " ".join(w.value for w in app.warning)
    assert "lacks what this page reads" in warnings and "load --dest duckdb" in warnings


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
