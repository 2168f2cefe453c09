"""The questions the pages ask: each function answers one, with a small frame, from
a source (sources.py). SQL does the aggregating and the thinning, so
no table is ever pulled whole into pandas.

What the pages show is defined once, by the dbt project (analytics/), in the
dataset's analytics schema ({a}: `<dataset>_analytics`, or DBT_SCHEMA): events
counted once per id (its staging views), trips and incidents (its marts), each
vehicle's latest position. The staging views and latest positions read the
loader's tables as they are, so the map, the weather and a trip's readings are
live; trips and incidents are as of the last dbt build (scripts/pipeline.sh and
the flow build after every load). Pipeline health reads the loader's own tables
({s}: the dataset).
"""

from __future__ import annotations

import math

import pandas as pd

from iot_dashboard.sources import Source

# At most this many GPS points reach the browser, however many rows the table holds.
TRACK_POINTS = 3000
# At most this many points of one trip's series.
SERIES_POINTS = 1500


# The Fleet map page.


def overview(source: Source) -> pd.DataFrame:
    """One row: what the models hold (every event counted once)."""
    return source.query(
        """
        SELECT f.vehicles,
               (SELECT count(*) FROM {a}.trips) AS trips,
               (SELECT count(*) FROM {a}.incidents WHERE status = 'active') AS active_incidents,
               f.gps_fixes, f.latest_fix
        FROM {a}.fleet_summary f
        """
    )


def latest_positions(source: Source) -> pd.DataFrame:
    """Each vehicle's latest fix, with the make and model of its trip."""
    return source.query(
        """
        SELECT device_id, make, model, event_at AS "timestamp", lat, lon, speed_kmh
        FROM {a}.latest_positions
        ORDER BY device_id
        """
    )


def tracks(source: Source, points: int = TRACK_POINTS) -> pd.DataFrame:
    """Every vehicle's track, thinned to about `points` fixes in all: one in k of
    the fixes, k chosen from the number of fixes, picked by a hash of the event's
    id. No sorting of the whole table, evenly spread over every vehicle whatever
    order their messages came in, and the copies of an event sent again are picked
    together: the same point, drawn once."""
    fixes = int(source.query("SELECT gps_fixes FROM {a}.fleet_summary")["gps_fixes"].iloc[0])
    k = max(1, math.ceil(fixes / points))
    # k as a literal, not a value the query computes: only then does DuckDB filter
    # while it scans, reading the other columns of the chosen rows alone.
    return source.query(
        f"""
        SELECT DISTINCT device_id, "TIMESTAMP" AS "timestamp", lat, lon, speed_kmh
        FROM {{s}}.gps_data
        WHERE mod(hash(id), {k}) = 0
        ORDER BY device_id, 2
        """
    )


def cameras(source: Source) -> pd.DataFrame:
    return source.query(
        """
        SELECT camera_id, any_value(lat) AS lat, any_value(lon) AS lon,
               any_value(speed_limit_kmh) AS speed_limit_kmh, count(*) AS passes,
               sum(CASE WHEN measured_speed_kmh > speed_limit_kmh THEN 1 ELSE 0 END)
                   AS speeding
        FROM {a}.stg_camera_passes
        GROUP BY camera_id
        """
    )


# The Trips page.


def trips(source: Source) -> pd.DataFrame:
    """dbt's trips, with when the loader stored the newest reading it was built from."""
    return source.query(
        """
        SELECT trip_id, device_id, make, model, route_source, started_at, ended_at,
               duration_s, distance_km, avg_speed_kmh, max_speed_kmh, readings,
               last_loaded_at
        FROM {a}.trips ORDER BY started_at, trip_id
        """
    )


def trip_series(source: Source, trip_id: str, points: int = SERIES_POINTS) -> pd.DataFrame:
    """One trip's speed, fuel or battery level and odometer over time, thinned."""
    return source.query(
        """
        WITH readings AS (
            SELECT event_at AS ts, speed_kmh, fuel_level_pct, odometer_km,
                   row_number() OVER (ORDER BY event_at) AS n,
                   count(*) OVER () AS total
            FROM {a}.stg_vehicle_readings WHERE trip_id = ?
        )
        SELECT ts AS "timestamp", speed_kmh, fuel_level_pct, odometer_km
        FROM readings
        WHERE total <= ? OR mod(n, greatest(1, ceil(total / CAST(? AS DOUBLE)))) = 0
        ORDER BY ts
        """,
        (trip_id, points, points),
    )


def trip_cameras(source: Source, trip_id: str) -> pd.DataFrame:
    return source.query(
        """
        SELECT event_at AS "timestamp", camera_id, measured_speed_kmh, speed_limit_kmh,
               measured_speed_kmh - speed_limit_kmh AS over_limit_kmh
        FROM {a}.stg_camera_passes WHERE trip_id = ? ORDER BY 1
        """,
        (trip_id,),
    )


# The Incidents page (the Fleet map marks them too).


def incidents(source: Source) -> pd.DataFrame:
    return source.query(
        """
        SELECT incident_id, incident_type, status, device_id, description, lat, lon,
               reported_at, resolved_at, time_to_resolve_s
        FROM {a}.incidents ORDER BY reported_at DESC
        """
    )


# The Weather page.


def weather(source: Source) -> pd.DataFrame:
    """Weather along the routes, averaged over 5-minute periods of simulated time."""
    frame = source.query(
        """
        SELECT date_trunc('hour', event_at) AS hour,
               floor(date_part('minute', event_at) / 5) AS slot,
               round(avg(temperature_c), 1) AS temperature_c,
               round(avg(humidity_pct), 1) AS humidity_pct,
               round(avg(precipitation_mm_h), 2) AS precipitation_mm_h,
               round(avg(wind_speed_kmh), 1) AS wind_speed_kmh,
               mode(condition) AS condition
        FROM {a}.stg_weather_readings
        GROUP BY 1, 2 ORDER BY 1, 2
        """
    )
    period = pd.to_datetime(frame["hour"]) + pd.to_timedelta(frame["slot"] * 5, unit="min")
    return frame.drop(columns=["hour", "slot"]).assign(period=period)[
        ["period", *frame.columns.drop(["hour", "slot"])]
    ]


# The Pipeline health page: the loader's own tables ({s}).


def loads(source: Source, newest: int = 50) -> pd.DataFrame:
    return source.query(
        f"""
        SELECT load_id, status, started_at, finished_at, rows_loaded, dead_letters,
               round(datediff('millisecond', started_at, finished_at) / 1000, 1) AS duration_s,
               round(rows_loaded * 1000
                     / nullif(datediff('millisecond', started_at, finished_at), 0))
                   AS rows_per_s,
               error
        FROM {{s}}._loads ORDER BY started_at DESC LIMIT {int(newest)}
        """
    )


def dead_letters_by_reason(source: Source) -> pd.DataFrame:
    return source.query(
        """
        SELECT topic, split_part(error, ':', 1) AS reason, count(*) AS messages,
               max(failed_at) AS newest
        FROM {s}._dead_letters GROUP BY 1, 2 ORDER BY messages DESC
        """
    )


def newest_dead_letters(source: Source, newest: int = 20) -> pd.DataFrame:
    return source.query(
        f"""
        SELECT failed_at, topic, "PARTITION" AS "partition", "OFFSET" AS "offset", error,
               left(payload_text, 200) AS payload
        FROM {{s}}._dead_letters ORDER BY failed_at DESC, "OFFSET" DESC LIMIT {int(newest)}
        """
    )


def stored_offsets(source: Source) -> pd.DataFrame:
    return source.query(
        """
        SELECT topic, "PARTITION" AS "partition", next_offset, updated_at
        FROM {s}._kafka_offsets ORDER BY 1, 2
        """
    )
