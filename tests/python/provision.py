"""Sets the Snowflake emulator up as a user sets up a real account: the statements of
config/snowflake/provision.sql, run one by one by an administrator, with a
dataset's own names (its schemas and its three roles), so that a test's load, dbt
and dashboard run under exactly the grants the script gives.

    python tests/python/provision.py URL DATASET   prints the roles as JSON
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

SCRIPT = Path(__file__).resolve().parents[2] / "config" / "snowflake" / "provision.sql"


def statements(names: dict[str, str] | None = None) -> list[str]:
    """The script's statements, with the `SET name = '…'` of each of `names` given
    that value instead."""
    names = {k.lower(): v for k, v in (names or {}).items()}

    def set_value(m: re.Match) -> str:
        value = names.get(m.group(1).lower())
        return m.group(0) if value is None else f"SET {m.group(1)} = '{value}';"

    lines = [line for line in SCRIPT.read_text().splitlines() if not line.lstrip().startswith("--")]
    text = re.sub(r"^SET (\w+) = '(?:[^']|'')*';$", set_value, "\n".join(lines), flags=re.M)
    return [s.strip() for s in re.split(r";\s*\n", text + "\n") if s.strip()]


def roles(dataset: str) -> dict[str, str]:
    """A dataset's own names for the script's variables: its schemas and roles."""
    upper = dataset.upper()
    return {
        "dataset_schema": upper,
        "analytics_schema": f"{upper}_ANALYTICS",
        "loader_role": f"LOADER_{upper}",
        "transformer_role": f"TRANSFORMER_{upper}",
        "reporter_role": f"REPORTER_{upper}",
    }


def connect(url: str, **settings):
    """An administrator's session on the emulator at `url`."""
    import snowflake.connector

    where = urlsplit(url)
    return snowflake.connector.connect(
        account="emulator",
        user="admin",
        password="admin",
        host=where.hostname,
        port=where.port,
        protocol=where.scheme,
        network_timeout=60,
        **settings,
    )


def provision(url: str, dataset: str) -> dict[str, str]:
    """Runs the script for `dataset` as an administrator; returns its names."""
    names = roles(dataset)
    with connect(url) as connection:
        cursor = connection.cursor()
        for statement in statements(names):
            cursor.execute(statement)
    return names


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(json.dumps(provision(sys.argv[1], sys.argv[2])))
