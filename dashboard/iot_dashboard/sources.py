"""Where the dashboard reads from: the DuckDB file `load` writes, or a Snowflake
database. Both answer SQL in one dialect (the queries module writes it once, with
{a} for the analytics schema and {s} for the loader's).

The DuckDB file belongs to `load`: DuckDB lets one process write a file, and a
reader holds it too. So every question opens the file read-only, asks, and closes
it at once; a file the loader holds at that instant is tried again briefly, then
reported as `Busy` (the pages keep showing what they had). A Snowflake database
keeps one session open instead: there the loader and the dashboard do not block
each other.
"""

from __future__ import annotations

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
