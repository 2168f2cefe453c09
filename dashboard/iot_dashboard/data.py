"""The one module that talks to the database: each function answers one question
the pages ask, with a small frame. SQL does the aggregating and the thinning, so
no table is ever pulled whole into pandas.

The DuckDB file belongs to `load`: DuckDB lets one process write a file, and a
reader holds it too. So every question opens the file read-only, asks, and closes
it at once; a file the loader holds at that instant is tried again briefly, then
reported as `Busy` (the pages keep showing what they had).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

# At most this many GPS points reach the browser, however many rows the table holds.
TRACK_POINTS = 3000
# At most this many points of one trip's series.
SERIES_POINTS = 1500


# The places simulate knows by name (config/places.csv), to label where routes go.
PLACES = Path(__file__).resolve().parents[2] / "config" / "places.csv"


def places() -> pd.DataFrame:
    """Name, lat and lon of every place in simulate's list; empty if it is missing."""
    if not PLACES.exists():
        return pd.DataFrame(columns=["name", "lat", "lon"])
    return pd.read_csv(PLACES, comment="#", usecols=["name", "lat", "lon"])


def nearest_places(points: pd.DataFrame, within_km: float = 20.0) -> pd.DataFrame:
    """For each point (lat, lon), the nearest known place within `within_km`, with
    its position: the towns the routes start from and go to."""
    known = places()
    if known.empty or points.empty:
        return known.iloc[0:0]
    found = []
    for lat, lon in zip(points["lat"], points["lon"], strict=True):
        # Degrees to km: about 111 north-south, 111·cos(lat) east-west.
        km = (((known["lat"] - lat) * 111) ** 2 + ((known["lon"] - lon) * 70) ** 2) ** 0.5
        if km.min() <= within_km:
            found.append(known.loc[km.idxmin()])
    return pd.DataFrame(found).drop_duplicates("name") if found else known.iloc[0:0]


class Unavailable(Exception):
    """Nothing to show yet, and why: the message says what to do."""


class Busy(Exception):
    """The loader held the file for longer than the dashboard waits."""


@dataclass(frozen=True)
class DuckDbSource:
    """A DuckDB file written by `load --dest duckdb`, and its dataset (schema)."""

    path: Path
    dataset: str = "iot_stream"
    # How long a question waits for a loader holding the file.
    patience_s: float = 1.5

    def describe(self) -> str:
        return f"DuckDB file {self.path}, dataset {self.dataset}"

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """Runs `sql` ({s} is the dataset, quoted) on a read-only connection that is
        closed before this returns."""
        if not self.path.exists():
            raise Unavailable(
                f"There is no database file at {self.path} yet. Load some events first: "
                f"`scripts/demo.sh`, or `load --dest duckdb --duckdb-file {self.path}` "
                "after `simulate`."
            )
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                connection = duckdb.connect(str(self.path), read_only=True)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise Unavailable(f"{self.path} cannot be opened: {e}") from e
                if time.monotonic() > deadline:
                    raise Busy(
                        f"{self.path} is held by the loader (or another program) right now"
                    ) from e
                time.sleep(0.1)
        try:
            # A name DuckDB does not find in the file is otherwise looked up among
            # Python variables (replacement scans): a missing view would meet a
            # function of this module of the same name.
            connection.execute("SET python_enable_replacements = false")
            schema = '"' + self.dataset.replace('"', '""') + '"'
            # Through Arrow: DuckDB's own .df() uses a pandas call pandas 3.1 deprecates.
            return connection.execute(sql.format(s=schema), params).fetch_arrow_table().to_pandas()
        except duckdb.CatalogException as e:
            raise Unavailable(
                f"{self.describe()} lacks what this page reads ({first_line(e)}). "
                "Was it written by an older `load`, or to another --dataset? Run "
                "`load --dest duckdb` with this file to create or update its tables."
            ) from e
        except duckdb.BinderException as e:
            raise Unavailable(
                f"{self.describe()} has an older layout ({first_line(e)}). Run `load` once "
                "with this file: it adds the missing columns."
            ) from e
        finally:
            connection.close()


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def overview(source: DuckDbSource) -> pd.DataFrame:
    """One row: what the tables hold."""
    return source.query(
        """
        SELECT (SELECT count(DISTINCT device_id) FROM {s}.gps_data) AS vehicles,
               (SELECT count(*) FROM {s}.trips) AS trips,
               (SELECT count(*) FROM {s}.incidents WHERE status = 'active') AS active_incidents,
               (SELECT count(*) FROM {s}.gps_data) AS gps_fixes,
               (SELECT max("timestamp") FROM {s}.gps_data) AS latest_fix
        """
    )


def latest_positions(source: DuckDbSource) -> pd.DataFrame:
    return source.query(
        """
        SELECT p.device_id, t.make, t.model, p."timestamp", p.lat, p.lon, p.speed_kmh
        FROM {s}.latest_positions p LEFT JOIN {s}.trips t USING (trip_id)
        ORDER BY p.device_id
        """
    )


def tracks(source: DuckDbSource, points: int = TRACK_POINTS) -> pd.DataFrame:
    """Every vehicle's track, thinned to about `points` fixes in all: every k-th fix
    of each vehicle, k chosen from the table's size."""
    return source.query(
        """
        WITH step AS (
            SELECT greatest(1, ceil(count(*) / ?::DOUBLE))::BIGINT AS k FROM {s}.gps_data
        ),
        numbered AS (
            SELECT device_id, "timestamp", lat, lon, speed_kmh,
                   row_number() OVER (PARTITION BY device_id ORDER BY "timestamp") AS n
            FROM {s}.gps_data
        )
        SELECT device_id, "timestamp", lat, lon, speed_kmh
        FROM numbered, step
        WHERE n % step.k = 1 OR step.k = 1
        ORDER BY device_id, "timestamp"
        """,
        (points,),
    )


def cameras(source: DuckDbSource) -> pd.DataFrame:
    return source.query(
        """
        SELECT camera_id, any_value(lat) AS lat, any_value(lon) AS lon,
               any_value(speed_limit_kmh) AS speed_limit_kmh, count(*) AS passes,
               count(*) FILTER (WHERE measured_speed_kmh > speed_limit_kmh) AS speeding
        FROM {s}.traffic_data
        GROUP BY camera_id
        """
    )


def trips(source: DuckDbSource) -> pd.DataFrame:
    return source.query(
        """
        SELECT trip_id, device_id, make, model, route_source, started_at, ended_at,
               epoch(duration)::BIGINT AS duration_s, distance_km, avg_speed_kmh,
               max_speed_kmh, readings
        FROM {s}.trips ORDER BY started_at
        """
    )


def trip_series(source: DuckDbSource, trip_id: str, points: int = SERIES_POINTS) -> pd.DataFrame:
    """One trip's speed, fuel or battery level and odometer over time, thinned."""
    return source.query(
        """
        WITH readings AS (
            SELECT "timestamp", speed_kmh, fuel_level_pct, odometer_km,
                   row_number() OVER (ORDER BY "timestamp") AS n,
                   count(*) OVER () AS total
            FROM {s}.vehicle_data WHERE trip_id = ?
        )
        SELECT "timestamp", speed_kmh, fuel_level_pct, odometer_km
        FROM readings
        WHERE n % greatest(1, ceil(total / ?::DOUBLE))::BIGINT = 0 OR total <= ?
        ORDER BY "timestamp"
        """,
        (trip_id, points, points),
    )


def trip_cameras(source: DuckDbSource, trip_id: str) -> pd.DataFrame:
    return source.query(
        """
        SELECT "timestamp", camera_id, measured_speed_kmh, speed_limit_kmh,
               measured_speed_kmh - speed_limit_kmh AS over_limit_kmh
        FROM {s}.traffic_data WHERE trip_id = ? ORDER BY "timestamp"
        """,
        (trip_id,),
    )


def incidents(source: DuckDbSource) -> pd.DataFrame:
    return source.query(
        """
        SELECT incident_id, incident_type, status, device_id, description, lat, lon,
               reported_at, resolved_at, epoch(time_to_resolve)::BIGINT AS time_to_resolve_s
        FROM {s}.incidents ORDER BY reported_at DESC
        """
    )


def weather(source: DuckDbSource) -> pd.DataFrame:
    """Weather along the routes, averaged over 5-minute buckets of simulated time."""
    return source.query(
        """
        SELECT time_bucket(INTERVAL 5 MINUTE, "timestamp") AS period,
               round(avg(temperature_c), 1) AS temperature_c,
               round(avg(humidity_pct), 1) AS humidity_pct,
               round(avg(precipitation_mm_h), 2) AS precipitation_mm_h,
               round(avg(wind_speed_kmh), 1) AS wind_speed_kmh,
               mode(condition) AS condition
        FROM {s}.weather_data
        GROUP BY period ORDER BY period
        """
    )


def loads(source: DuckDbSource, newest: int = 50) -> pd.DataFrame:
    return source.query(
        """
        SELECT load_id, status, started_at, finished_at, rows_loaded, dead_letters,
               round(epoch(finished_at - started_at), 1) AS duration_s,
               round(rows_loaded / nullif(epoch(finished_at - started_at), 0)) AS rows_per_s,
               error
        FROM {s}._loads ORDER BY started_at DESC LIMIT ?
        """,
        (newest,),
    )


def dead_letters_by_reason(source: DuckDbSource) -> pd.DataFrame:
    return source.query(
        """
        SELECT topic, split_part(error, ':', 1) AS reason, count(*) AS messages,
               max(failed_at) AS newest
        FROM {s}._dead_letters GROUP BY ALL ORDER BY messages DESC
        """
    )


def newest_dead_letters(source: DuckDbSource, newest: int = 20) -> pd.DataFrame:
    return source.query(
        """
        SELECT failed_at, topic, "partition", "offset", error, left(payload_text, 200) AS payload
        FROM {s}._dead_letters ORDER BY failed_at DESC, "offset" DESC LIMIT ?
        """,
        (newest,),
    )


def stored_offsets(source: DuckDbSource) -> pd.DataFrame:
    return source.query(
        """
        SELECT topic, "partition", next_offset, updated_at
        FROM {s}._kafka_offsets ORDER BY topic, "partition"
        """
    )
