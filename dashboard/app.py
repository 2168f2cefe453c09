"""iot-streaming's dashboard: the fleet, its trips, incidents and weather, and the
health of the pipeline, read live from what `load` writes.

    scripts/dashboard.sh                          # iot_service.duckdb, on 127.0.0.1:8501
    scripts/dashboard.sh --duckdb-file other.duckdb --dataset fleet_a
    scripts/dashboard.sh --dest snowflake         # DESTINATION__SNOWFLAKE__* as `load`

Settings come from flags after `--` (streamlit run app.py -- --duckdb-file …) or
the variables `load` reads: LOAD_DEST, DUCKDB_FILE, DATASET_NAME, the Snowflake
credentials and SNOWFLAKE_URL, the Kafka settings and topics (for the lag), and
DASHBOARD_REFRESH (seconds between refreshes: 5 on a DuckDB file; 600 on Snowflake,
where every refresh wakes the warehouse: see `refresh_cost`).
In Streamlit in Snowflake (snowflake.yml) the app reads Snowflake with the app's
own session. Pages only lay results out: iot_dashboard's queries (and lag) ask, its
sources connect.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import pandas as pd
import pydeck
import streamlit as st

from iot_dashboard import lag, places, queries
from iot_dashboard.sources import Busy, DuckDbSource, SnowflakeSource, Source, Unavailable

# Seconds between refreshes, by destination. A DuckDB file costs nothing to ask.
# On Snowflake each refresh that finds the warehouse suspended resumes it, and
# Snowflake bills at least a minute per resume: refreshing every 5 s would keep an
# XSMALL warehouse running all day (24 credits); every 10 min it runs about one
# minute in ten.
DEFAULT_REFRESH_S = {"duckdb": 5, "snowflake": 600}


def refresh_cost(refresh_s: int, credits_per_hour: float = 1.0) -> str:
    """What refreshing every `refresh_s` seconds costs a warehouse of
    `credits_per_hour` (XSMALL: 1) over a day the page is open: each refresh keeps
    it running for at least Snowflake's minimum billed minute, or all the time if
    refreshes come more often than that."""
    share = min(1.0, 60 / refresh_s)
    return (
        f"each refresh wakes the warehouse for at least the minute Snowflake bills: "
        f"about {24 * share * credits_per_hour:.1f} credits a day on XSMALL while a page "
        "is open (set DASHBOARD_REFRESH to change)"
    )


def settings() -> tuple[Source, int]:
    session = active_snowflake_session()
    parser = argparse.ArgumentParser(prog="dashboard")
    parser.add_argument(
        "--dest",
        choices=["duckdb", "snowflake"],
        default=os.environ.get("LOAD_DEST", "snowflake" if session is not None else "duckdb"),
    )
    parser.add_argument(
        "--duckdb-file", default=os.environ.get("DUCKDB_FILE", "iot_service.duckdb")
    )
    parser.add_argument("--dataset", default=os.environ.get("DATASET_NAME", "iot_stream"))
    parser.add_argument("--refresh", type=int, default=os.environ.get("DASHBOARD_REFRESH"))
    args, _ = parser.parse_known_args(sys.argv[1:])
    refresh = max(1, int(args.refresh or DEFAULT_REFRESH_S[args.dest]))
    if args.dest == "snowflake":
        if session is not None:
            return SnowflakeSource(dataset=args.dataset, session=session), refresh
        return SnowflakeSource.from_env(args.dataset), refresh
    return DuckDbSource(Path(args.duckdb_file).expanduser().resolve(), args.dataset), refresh


def active_snowflake_session():
    """The app's own session when it runs in Streamlit in Snowflake, else None."""
    try:
        from snowflake.snowpark.context import get_active_session
    except ImportError:
        return None
    try:
        return get_active_session()
    except Exception:  # Snowpark's error when there is no session: not inside Snowflake
        return None


SOURCE, REFRESH_S = settings()


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def ask(_source: Source, described: str, question: str, *args) -> pd.DataFrame:
    """A question of iot_dashboard's queries (or its lag) about one source, cached for
    one refresh period (by what `described` names: Streamlit does not hash the source
    itself)."""
    asked = next(m for m in (queries, lag) if hasattr(m, question))
    return getattr(asked, question)(_source, *args)


def answer(question: str, *args) -> pd.DataFrame | None:
    """The answer, or the last one with a note while the loader holds the file, or
    None with the reason shown when there is nothing to show."""
    key = (repr(SOURCE), question, *args)
    last = st.session_state.setdefault("last answers", {})
    try:
        frame = ask(SOURCE, *key)
    except Busy as e:
        if key in last:
            st.caption(f"Showing the data of the last refresh: {e}.")
            return last[key]
        st.info(f"{e}; the page tries again at the next refresh.")
        return None
    except Unavailable as e:
        # Once per refresh: the page's other questions usually meet the same cause.
        warned = st.session_state.setdefault("warned", set())
        if str(e) not in warned:
            warned.add(str(e))
            st.warning(str(e))
        return None
    last[key] = frame
    return frame


def fleet_map() -> None:
    st.header("Fleet map")
    overview = answer("overview")
    positions = answer("latest_positions")
    track = answer("tracks")
    cams = answer("cameras")
    incidents = answer("incidents")
    if overview is None or positions is None or track is None:
        return
    row = overview.iloc[0]
    cols = st.columns(4)
    cols[0].metric("Vehicles", int(row["vehicles"]))
    cols[1].metric("Trips", int(row["trips"]))
    cols[2].metric("Active incidents", int(row["active_incidents"]))
    cols[3].metric("GPS fixes", f"{int(row['gps_fixes']):,}")
    if positions.empty:
        st.info("No GPS fixes loaded yet: run `simulate`, then `load`.")
        return
    layers = [path_layer(track)]
    if cams is not None and not cams.empty:
        names = [f"camera, limit {limit} km/h" for limit in cams["speed_limit_kmh"]]
        layers.append(dots(cams.assign(label=names), [90, 90, 90], 5))
    if incidents is not None and not incidents.empty:
        names = [
            f"{kind}, {status}"
            for kind, status in zip(incidents.incident_type, incidents.status, strict=True)
        ]
        layers.append(dots(incidents.assign(label=names), [220, 40, 40], 9))
    names = [
        f"{make} {model}, {speed:.0f} km/h"
        for make, model, speed in zip(
            positions.make, positions.model, positions.speed_kmh, strict=True
        )
    ]
    layers.append(dots(positions.assign(label=names), [20, 90, 200], 11))
    layers.append(labels(track))
    view = pydeck.ViewState(
        latitude=float((track["lat"].min() + track["lat"].max()) / 2),
        longitude=float((track["lon"].min() + track["lon"].max()) / 2),
        zoom=zoom_for(track),
    )
    # The base map: the MapLibre style at DASHBOARD_MAP_STYLE (a tile server of your
    # own), else Streamlit's (CARTO's streets and borders). A browser that cannot
    # reach it draws the tracks on the plain canvas.
    style = os.environ.get("DASHBOARD_MAP_STYLE") or None
    st.pydeck_chart(
        pydeck.Deck(
            layers=layers, initial_view_state=view, map_style=style, tooltip={"text": "{label}"}
        ),
        height=520,
    )
    st.caption(
        f"{len(track):,} of {int(row['gps_fixes']):,} GPS fixes drawn, coloured by speed "
        "(blue slow, red fast); grey dots are cameras, red ones incidents, "
        "large blue ones each vehicle's latest position."
    )
    st.subheader("Latest positions")
    st.table(positions.assign(speed_kmh=positions["speed_kmh"].round(1)))


def zoom_for(track: pd.DataFrame) -> float:
    """A zoom at which every track fits the map: each level halves the degrees shown,
    about 360 across at level 0 (a degree of longitude is some 0.6 of one of latitude
    here)."""
    span = max(
        float(track["lat"].max() - track["lat"].min()),
        0.6 * float(track["lon"].max() - track["lon"].min()),
        0.01,
    )
    return float(min(13.0, max(3.0, math.log2(360 / span) - 1.6)))


def path_layer(track: pd.DataFrame) -> pydeck.Layer:
    """Each vehicle's track as segments between its fixes, coloured by speed."""
    segments = track.assign(
        to_lon=track.groupby("device_id")["lon"].shift(-1),
        to_lat=track.groupby("device_id")["lat"].shift(-1),
    ).dropna(subset=["to_lon"])
    fast = (segments["speed_kmh"].clip(0, 130) / 130).fillna(0)
    segments = segments.assign(
        color=[[int(255 * f), 60, int(255 * (1 - f))] for f in fast],
    )
    return pydeck.Layer(
        "LineLayer",
        segments[["lon", "lat", "to_lon", "to_lat", "color", "speed_kmh"]],
        get_source_position=["lon", "lat"],
        get_target_position=["to_lon", "to_lat"],
        get_color="color",
        get_width=3,
    )


def dots(frame: pd.DataFrame, color: list[int], radius: int) -> pydeck.Layer:
    """Points at (lat, lon), each named by its `label` when the pointer is on it."""
    return pydeck.Layer(
        "ScatterplotLayer",
        frame[["lon", "lat", "label"]],
        get_position=["lon", "lat"],
        get_fill_color=color,
        get_radius=radius,
        # A quoted string: pydeck reads a bare one as an expression.
        radius_units="'pixels'",
        pickable=True,
    )


def labels(track: pd.DataFrame) -> pydeck.Layer:
    """The towns the routes start from and go to: the places simulate knows nearest
    to each vehicle's first and last fix drawn."""
    ends = pd.concat([track.groupby("device_id").head(1), track.groupby("device_id").tail(1)])
    towns = places.nearest_places(ends)
    return pydeck.Layer(
        "TextLayer",
        towns[["lon", "lat", "name"]],
        get_position=["lon", "lat"],
        get_text="name",
        get_size=16,
        get_color=[30, 30, 30],
        get_alignment_baseline="'bottom'",
    )


def trips_page() -> None:
    st.header("Trips")
    trips = answer("trips")
    if trips is None:
        return
    st.metric("Trips", len(trips))
    if trips.empty:
        st.info("No trips built yet: dbt builds them after a load (`scripts/dbt.sh build`).")
        return
    newest = pd.to_datetime(trips["last_loaded_at"], utc=True).max()
    st.caption(
        f"Trips as dbt last built them, from readings stored up to {newest:%Y-%m-%d %H:%M} "
        "UTC (scripts/pipeline.sh or the flow builds after every load); a trip's "
        "readings and cameras below are live."
    )
    st.dataframe(trips.drop(columns=["last_loaded_at"]), hide_index=True, width="stretch")
    chosen = pick_trip(trips)
    series = answer("trip_series", chosen)
    if series is not None and not series.empty:
        st.subheader("Speed, km/h")
        st.line_chart(series, x="timestamp", y="speed_kmh")
        left, right = st.columns(2)
        left.subheader("Fuel or battery, %")
        left.line_chart(series, x="timestamp", y="fuel_level_pct")
        right.subheader("Odometer, km")
        right.line_chart(series, x="timestamp", y="odometer_km")
    passes = answer("trip_cameras", chosen)
    if passes is not None:
        st.subheader("Cameras passed: measured speed against the limit")
        if passes.empty:
            st.caption("This trip passed no camera.")
        else:
            st.dataframe(passes, hide_index=True, width="stretch")


def pick_trip(trips: pd.DataFrame) -> str:
    """The trip whose readings are charted: the one chosen before, as long as it
    is listed, however many trips arrived since (a list whose options change
    would otherwise start again from the first)."""
    ids = list(trips["trip_id"])
    names = {
        t.trip_id: f"{t.make} {t.model}, {t.started_at:%Y-%m-%d %H:%M} ({t.trip_id})"
        for t in trips.itertuples()
    }
    before = st.session_state.get("chosen trip")
    chosen = st.selectbox(
        "Trip", ids, index=ids.index(before) if before in ids else 0, format_func=names.get
    )
    st.session_state["chosen trip"] = chosen
    return chosen


def incidents_page() -> None:
    st.header("Incidents")
    incidents = answer("incidents")
    if incidents is None:
        return
    active = incidents[incidents["status"] == "active"]
    resolved = incidents[incidents["status"] == "resolved"]
    cols = st.columns(3)
    cols[0].metric("Active", len(active))
    cols[1].metric("Resolved", len(resolved))
    median = resolved["time_to_resolve_s"].median() if not resolved.empty else None
    cols[2].metric("Median time to resolve", "–" if median is None else f"{median / 60:.0f} min")
    if incidents.empty:
        st.info("No incidents reported yet.")
        return
    st.map(incidents, latitude="lat", longitude="lon", size=400)
    st.dataframe(incidents, hide_index=True, width="stretch")


def weather_page() -> None:
    st.header("Weather along the routes")
    weather = answer("weather")
    if weather is None:
        return
    if weather.empty:
        st.info("No weather readings loaded yet.")
        return
    st.subheader("Temperature, °C")
    st.line_chart(weather, x="period", y="temperature_c")
    left, right = st.columns(2)
    left.subheader("Precipitation, mm/h")
    if weather["precipitation_mm_h"].gt(0).any():
        left.bar_chart(weather, x="period", y="precipitation_mm_h")
    else:
        # A chart of zeros draws no bars and a lone "0.000000" tick.
        left.caption("None fell along the routes in these readings.")
    right.subheader("Wind, km/h")
    right.line_chart(weather, x="period", y="wind_speed_kmh")
    st.dataframe(weather, hide_index=True, width="stretch")


def health_page() -> None:
    st.header("Pipeline health")
    loads = answer("loads")
    if loads is None:
        return
    st.subheader("Runs of load")
    if loads.empty:
        st.info("`load` has not run on this file yet.")
    else:
        cols = st.columns(3)
        cols[0].metric("Runs", len(loads))
        cols[1].metric("Failed", int((loads["status"] == "failed").sum()))
        cols[2].metric("Rows, last run", int(loads.iloc[0]["rows_loaded"]))
        st.dataframe(loads, hide_index=True, width="stretch")
    reasons = answer("dead_letters_by_reason")
    newest = answer("newest_dead_letters")
    st.subheader("Dead letters")
    if reasons is not None and reasons.empty:
        st.caption("None: every message loaded.")
    elif reasons is not None:
        st.dataframe(reasons, hide_index=True, width="stretch")
        if newest is not None:
            st.dataframe(newest, hide_index=True, width="stretch")
    st.subheader("Offsets: stored, and the lag behind each partition's end")
    try:
        kafka = tuple(sorted(lag.kafka_settings().items()))
        offsets = answer("partition_lag", kafka, lag.kafka_topics())
    except lag.NoBroker as e:
        st.caption(f"Lag not shown: {e}.")
        offsets = answer("stored_offsets")
    if offsets is not None:
        if "lag" in offsets:
            st.metric("Messages not loaded yet", f"{int(offsets['lag'].sum()):,}")
        st.dataframe(offsets, hide_index=True, width="stretch")


PAGES = {
    "Fleet map": fleet_map,
    "Trips": trips_page,
    "Incidents": incidents_page,
    "Weather": weather_page,
    "Pipeline health": health_page,
}


@st.fragment(run_every=REFRESH_S)
def show(page: str) -> None:
    """One page, refreshed every REFRESH_S seconds on its own, not the whole app."""
    st.session_state["warned"] = set()
    PAGES[page]()


def main() -> None:
    st.set_page_config(page_title="iot-streaming", page_icon="🚗", layout="wide")
    page = st.sidebar.radio("Page", list(PAGES))
    every = f"{REFRESH_S // 60} min" if REFRESH_S % 60 == 0 else f"{REFRESH_S} s"
    cost = f": {refresh_cost(REFRESH_S)}" if isinstance(SOURCE, SnowflakeSource) else ""
    st.sidebar.caption(f"{SOURCE.describe()}; refreshed every {every}{cost}.")
    show(page)


main()
