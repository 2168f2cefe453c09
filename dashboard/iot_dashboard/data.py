"""The one module that talks to the database: each function answers one question
the pages ask, with a small frame. SQL does the aggregating and the thinning, so
no table is ever pulled whole into pandas.

What the pages show is defined once, by the dbt project (analytics/), in the
dataset's analytics schema ({a}: `<dataset>_analytics`, or DBT_SCHEMA): events
counted once per id (its staging views), trips and incidents (its marts), each
vehicle's latest position. The staging views and latest positions read the
loader's tables as they are, so the map, the weather and a trip's readings are
live; trips and incidents are as of the last dbt build (scripts/pipeline.sh and
the flow build after every load). Pipeline health reads the loader's own tables
({s}: the dataset).

The DuckDB file belongs to `load`: DuckDB lets one process write a file, and a
reader holds it too. So every question opens the file read-only, asks, and closes
it at once; a file the loader holds at that instant is tried again briefly, then
reported as `Busy` (the pages keep showing what they had). A Snowflake database
keeps one session open instead: there the loader and the dashboard do not block
each other.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

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


def analytics_schema(dataset: str, env: Mapping[str, str] = os.environ) -> str:
    """Where dbt builds the models for `dataset` (analytics/profiles.yml)."""
    return env.get("DBT_SCHEMA") or f"{dataset}_analytics"


def not_built(where: str, schema: str, error: Exception) -> Unavailable:
    return Unavailable(
        f"{where} has no analytics models in {schema} yet ({first_line(error)}): the "
        "pages read what dbt builds from the loader's tables. Run `scripts/dbt.sh build` "
        "once (scripts/pipeline.sh and scripts/flow.sh load and build). Pipeline health "
        "reads the loader's own tables and shows them now."
    )


class Source(Protocol):
    """Where `load` wrote: something that answers SQL with a small frame. The SQL
    is written once, in what DuckDB and Snowflake both read, with {s} for the
    dataset's schema and {a} for the analytics schema; it marks values with ? and
    holds no % sign (Snowflake's connector formats it)."""

    def describe(self) -> str: ...

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame: ...


@dataclass(frozen=True)
class DuckDbSource:
    """A DuckDB file written by `load --dest duckdb`, and its dataset (schema)."""

    path: Path
    dataset: str = "iot_stream"
    # How long a question waits for a loader holding the file.
    patience_s: float = 1.5
    analytics: str = ""

    def analytics_schema(self) -> str:
        return self.analytics or analytics_schema(self.dataset)

    def describe(self) -> str:
        return f"DuckDB file {self.path}, dataset {self.dataset}"

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """Runs `sql` ({s} the dataset, {a} the analytics schema, quoted) on a
        read-only connection that is closed before this returns."""
        if not self.path.exists():
            raise Unavailable(
                f"There is no database file at {self.path} yet. Load some events first: "
                f"`scripts/demo.sh`, or `load --dest duckdb --duckdb-file {self.path}` "
                "after `simulate`."
            )
        # Imported here: the app in Streamlit in Snowflake reads no file and has none.
        import duckdb

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
                        f"{self.path} is held by another program right now (the loader, a dbt "
                        "build or DBeaver)"
                    ) from e
                time.sleep(0.1)
        try:
            # A name DuckDB does not find in the file is otherwise looked up among
            # Python variables (replacement scans): a missing view would meet a
            # function of this module of the same name.
            connection.execute("SET python_enable_replacements = false")
            # Hours and days in UTC, as dbt's models and every other layer count them.
            connection.execute("SET TimeZone = 'UTC'")
            text = sql.format(s=quoted(self.dataset), a=quoted(self.analytics_schema()))
            # Through Arrow: DuckDB's own .df() uses a pandas call pandas 3.1 deprecates.
            return connection.execute(text, params).fetch_arrow_table().to_pandas()
        except duckdb.CatalogException as e:
            if "{a}" in sql:
                raise not_built(self.describe(), self.analytics_schema(), e) from e
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


# The variables `load --dest snowflake` reads, named as the Python pipeline (dlt)
# named them; SNOWFLAKE_URL sends requests elsewhere (an emulator, a proxy).
SNOWFLAKE_ENV = {
    "account": "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST",
    "user": "DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME",
    "password": "DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD",
    "private_key_path": "DESTINATION__SNOWFLAKE__CREDENTIALS__PRIVATE_KEY_PATH",
    "database": "DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE",
    "warehouse": "DESTINATION__SNOWFLAKE__CREDENTIALS__WAREHOUSE",
    "role": "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE",
    "url": "SNOWFLAKE_URL",
}


@dataclass(frozen=True)
class SnowflakeSource:
    """A Snowflake database written by `load --dest snowflake`, and its dataset
    (schema, upper-cased as `load` creates it). One session per settings serves
    every question; a session that fails is dropped and opened again next time.

    In Streamlit in Snowflake, `session` is the app's own (get_active_session())
    and no credentials are needed."""

    account: str = ""
    user: str = ""
    database: str = ""
    password: str = field(default="", repr=False)
    private_key_path: str = ""
    warehouse: str = ""
    role: str = ""
    url: str = ""
    dataset: str = "iot_stream"
    session: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_env(cls, dataset: str, env: Mapping[str, str] = os.environ) -> SnowflakeSource:
        return cls(dataset=dataset, **{k: env.get(v, "") for k, v in SNOWFLAKE_ENV.items()})

    def describe(self) -> str:
        where = "this account" if self.session else (self.url or self.account or "?")
        return f"Snowflake {where}, database {self.database}, dataset {self.schema()}"

    def schema(self) -> str:
        return quoted(self.dataset.upper())

    def analytics_schema(self) -> str:
        return analytics_schema(self.dataset).upper()

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        text = sql.format(s=self.schema(), a=quoted(self.analytics_schema()))
        if self.session is not None:
            frame = self.session.sql(text, params=list(params) or None).to_pandas()
            return tidy(frame.columns, frame.itertuples(index=False))
        from snowflake.connector import errors

        # One session serves every viewer; each question has a cursor of its own, so
        # questions of different viewers run side by side (the connector shares a
        # connection between threads: threadsafety 2).
        with SESSIONS_LOCK:
            connection = self.connect()
        cursor = connection.cursor()
        try:
            # The connector puts the values in itself (its default "pyformat"
            # style, %s for each ?), so the server sees plain SQL: the
            # emulator mistranslates bound values inside a WITH.
            cursor.execute(text.replace("?", "%s"), params or None)
            return tidy([c[0] for c in cursor.description], cursor.fetchall())
        except errors.ProgrammingError as e:
            # The schema the question reads: the models', or the loader's own.
            schema = self.analytics_schema() if "{a}" in sql else self.dataset.upper()
            if e.errno == 2003 and "{a}" in sql:
                # Not built yet, or the role may not see it.
                built = not_built(self.describe(), schema, e)
                raise Unavailable(f"{built}{self.grants_hint(schema)}") from e
            if e.errno == 2003:  # an object does not exist, or the role may not see it
                raise Unavailable(
                    f"{self.describe()} lacks what this page reads ({first_line(e)}). "
                    "Run `load --dest snowflake` with this --dataset to create its tables."
                    + self.grants_hint(schema)
                ) from e
            if e.errno == 3001:  # insufficient privileges
                raise Unavailable(
                    f"{self.describe()} refused a query for want of a privilege "
                    f"({first_line(e)}).{self.grants_hint(schema)}"
                ) from e
            if e.errno == 904:  # an invalid identifier: a column is missing
                raise Unavailable(
                    f"{self.describe()} has an older layout ({first_line(e)}). Run "
                    "`load --dest snowflake` once: it adds the missing columns."
                ) from e
            raise Unavailable(f"{self.describe()} refused a query ({first_line(e)}).") from e
        except errors.Error as e:
            SESSIONS.pop(self, None)
            raise Unavailable(self.failure(e)) from e

    def grants_hint(self, schema: str) -> str:
        """What an administrator grants a role the dashboard signs in with on
        `schema`, as config/snowflake/provision.sql grants its reporter role (where
        tables exist that the role cannot see, Snowflake says they do not exist)."""
        if not self.role:
            return ""
        role, where = self.role.upper(), f"{self.database.upper()}.{schema}"
        return (
            f" If they exist, the role {role} may not read them: an administrator runs "
            f"GRANT USAGE ON SCHEMA {where} TO ROLE {role}; "
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {where} TO ROLE {role}; "
            f"GRANT SELECT ON ALL VIEWS IN SCHEMA {where} TO ROLE {role}; "
            "(and the same ON FUTURE …, as config/snowflake/provision.sql grants its reporter "
            "role)."
        )

    def connect(self):
        """This source's open session, opened now if it has none (under SESSIONS_LOCK).
        A login that failed is not tried again for a few seconds: the other
        questions of the page get its answer at once."""
        if self in SESSIONS:
            return SESSIONS[self]
        failed_at, failure = FAILED_LOGINS.get(self, (float("-inf"), ""))
        if time.monotonic() - failed_at < LOGIN_PAUSE_S:
            raise Unavailable(failure)
        try:
            SESSIONS[self] = self.login()
        except Unavailable as e:
            FAILED_LOGINS[self] = (time.monotonic(), str(e))
            raise
        except Exception as e:  # the connector's errors, and a key file that is not one
            FAILED_LOGINS[self] = (time.monotonic(), self.failure(e))
            raise Unavailable(self.failure(e)) from e
        FAILED_LOGINS.pop(self, None)
        return SESSIONS[self]

    def login(self):
        import snowflake.connector

        missing = [SNOWFLAKE_ENV[k] for k in ("user", "database") if not getattr(self, k)]
        if not self.account and not self.url:
            missing.insert(0, SNOWFLAKE_ENV["account"])
        if not self.password and not self.private_key_path:
            missing.append(f"{SNOWFLAKE_ENV['password']} (or {SNOWFLAKE_ENV['private_key_path']})")
        if missing:
            raise Unavailable(
                "The Snowflake dashboard needs the settings `load --dest snowflake` uses; "
                f"set {', '.join(missing)} (in the environment or .env)."
            )
        settings: dict[str, Any] = {
            "account": self.account or "emulator",
            "user": self.user,
            "database": self.database,
            "login_timeout": 20,
            "network_timeout": 60,
            "application": "iot-streaming-dashboard",
        }
        if self.password:
            settings["password"] = self.password
        else:
            settings["private_key_file"] = self.private_key_path
        settings.update({k: getattr(self, k) for k in ("warehouse", "role") if getattr(self, k)})
        if self.url:
            url = urlsplit(self.url)
            settings.update(host=url.hostname, port=url.port, protocol=url.scheme)
        return snowflake.connector.connect(**settings)

    def failure(self, error: Exception) -> str:
        """What a failed login or request means, naming the setting to look at."""
        text = first_line(error)
        where = self.url or f"{self.account}.snowflakecomputing.com"
        if "390100" in text or "Incorrect username or password" in text:
            return (
                f"Snowflake refused the login of {self.user} ({text}). Check "
                f"{SNOWFLAKE_ENV['user']} and {SNOWFLAKE_ENV['password']}."
            )
        if "390144" in text or "JWT" in text:
            return (
                f"Snowflake refused the key pair of {self.user} ({text}). Check "
                f"{SNOWFLAKE_ENV['private_key_path']} and the public key set on the user."
            )
        return (
            f"Snowflake at {where} cannot be reached or failed ({text}). Check "
            f"{SNOWFLAKE_ENV['account']} (or SNOWFLAKE_URL) and the network; the page "
            "tries again at the next refresh."
        )


# Open Snowflake sessions, by source; the lock keeps two viewers from opening one each.
SESSIONS: dict[SnowflakeSource, Any] = {}
# The last failed login of each source: when, and what it means.
FAILED_LOGINS: dict[SnowflakeSource, tuple[float, str]] = {}
LOGIN_PAUSE_S = 5.0
SESSIONS_LOCK = threading.Lock()


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tidy(names, rows) -> pd.DataFrame:
    """Snowflake's answer as DuckDB's would be: lower-case names (Snowflake upper-cases
    unquoted ones), and fixed-point numbers (Decimal) as floats."""
    frame = pd.DataFrame.from_records(list(rows), columns=[n.lower() for n in names])
    for name in frame.columns:
        if any(isinstance(v, Decimal) for v in frame[name].head(5)):
            frame[name] = frame[name].astype(float)
    return frame


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


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


def incidents(source: Source) -> pd.DataFrame:
    return source.query(
        """
        SELECT incident_id, incident_type, status, device_id, description, lat, lon,
               reported_at, resolved_at, time_to_resolve_s
        FROM {a}.incidents ORDER BY reported_at DESC
        """
    )


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


# The Kafka settings `load` reads, each under its two names, and librdkafka's
# property for it.
KAFKA_ENV = {
    "bootstrap.servers": (
        "KAFKA_BOOTSTRAP_SERVERS",
        "SOURCES__KAFKA__CREDENTIALS__BOOTSTRAP_SERVERS",
    ),
    "security.protocol": (
        "KAFKA_SECURITY_PROTOCOL",
        "SOURCES__KAFKA__CREDENTIALS__SECURITY_PROTOCOL",
    ),
    "sasl.mechanisms": ("KAFKA_SASL_MECHANISMS", "SOURCES__KAFKA__CREDENTIALS__SASL_MECHANISMS"),
    "sasl.username": ("KAFKA_SASL_USERNAME", "SOURCES__KAFKA__CREDENTIALS__SASL_USERNAME"),
    "sasl.password": ("KAFKA_SASL_PASSWORD", "SOURCES__KAFKA__CREDENTIALS__SASL_PASSWORD"),
}


# The topics `load` reads, by the variables and defaults it reads them from.
TOPICS_ENV = {
    "VEHICLE_TOPIC": "vehicle_data",
    "GPS_TOPIC": "gps_data",
    "TRAFFIC_TOPIC": "traffic_data",
    "WEATHER_TOPIC": "weather_data",
    "EMERGENCY_TOPIC": "emergency_data",
}


def kafka_topics(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    return tuple(env.get(name) or default for name, default in TOPICS_ENV.items())


def kafka_settings(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """librdkafka's settings from the variables `load` reads; load's default broker."""
    settings = {"bootstrap.servers": "127.0.0.1:9092"}
    for key, names in KAFKA_ENV.items():
        value = next((env[n] for n in names if env.get(n)), None)
        if value:
            settings[key] = value
    return settings


class NoBroker(Exception):
    """No broker answered: the lag cannot be shown (the rest of the page can)."""


# The last time no broker answered at given settings, and what was said: the page
# does not wait for it again at every refresh, only once this long has passed.
BROKER_PAUSE_S = 60.0
FAILED_BROKERS: dict[tuple, tuple[float, str]] = {}


def partition_lag(
    source: Source, kafka: tuple, topics: tuple[str, ...], timeout_s: float = 3.0
) -> pd.DataFrame:
    """Every partition of `topics` (those that exist) and of the topics the dataset
    has offsets for: the next offset stored, the end of the partition as the
    broker `kafka` (librdkafka settings, as pairs) reports it, and the lag between
    them, the messages `load` has yet to read. A partition with nothing stored
    yet lags by all it holds."""
    try:
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    except ImportError as e:  # Streamlit in Snowflake offers no Kafka client
        raise NoBroker("confluent-kafka, which asks the broker, is not installed here") from e
    failed_at, said = FAILED_BROKERS.get(kafka, (float("-inf"), ""))
    if time.monotonic() - failed_at < BROKER_PAUSE_S:
        raise NoBroker(f"{said}; asked again within a minute")

    stored = stored_offsets(source)
    # No group is joined and nothing is committed: the id only satisfies the client.
    # librdkafka's own log is off: a broker that does not answer is said on the page.
    settings = {
        **dict(kafka),
        "group.id": "iot-dashboard",
        "enable.auto.commit": False,
        "log_level": 0,
    }
    consumer = Consumer(settings)
    rows = []
    try:
        for topic in sorted(set(stored["topic"]) | set(topics)):
            found = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
            if found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue  # not created yet: nothing to read
            for partition in sorted(found.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s
                )
                rows.append((topic, partition, low, high))
    except KafkaException as e:
        said = (
            f"no Kafka broker answered at {settings['bootstrap.servers']} within "
            f"{timeout_s:.0f} s ({e.args[0].str()}): set KAFKA_BOOTSTRAP_SERVERS (and the "
            "credentials `load` uses) to see the lag per partition"
        )
        FAILED_BROKERS[kafka] = (time.monotonic(), said)
        raise NoBroker(said) from e
    finally:
        consumer.close()
    ends = pd.DataFrame(rows, columns=["topic", "partition", "start_offset", "end_offset"])
    FAILED_BROKERS.pop(kafka, None)
    frame = ends.merge(stored, on=["topic", "partition"], how="left")
    behind = frame["next_offset"].fillna(frame["start_offset"]).clip(lower=frame["start_offset"])
    frame["lag"] = (frame["end_offset"] - behind).clip(lower=0).astype("int64")
    return frame[["topic", "partition", "next_offset", "end_offset", "lag", "updated_at"]]
