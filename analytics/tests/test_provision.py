"""config/snowflake/provision.sql against the Snowflake emulator, as far as the
emulator goes: it accepts the variables, USE and CREATE DATABASE, and refuses
warehouses, roles, users, grants and (with IDENTIFIER) schemas, which it does not
implement. Run twice, every statement ends the same way and the database is there."""

from __future__ import annotations

import re

import snowflake.connector

from conftest import REPO
from fleet import emulator_connection

SCRIPT = REPO / "config" / "snowflake" / "provision.sql"
# What the emulator (fakesnow) does not implement.
UNSUPPORTED = re.compile(r"^(CREATE (WAREHOUSE|ROLE|USER|SCHEMA)|ALTER USER|GRANT) ", re.IGNORECASE)


def statements() -> list[str]:
    text = "\n".join(
        line for line in SCRIPT.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in re.split(r";\s*\n", text) if s.strip()]


def run_script() -> dict[str, bool]:
    outcome = {}
    with emulator_connection() as connection:
        for statement in statements():
            try:
                connection.cursor().execute(statement)
                outcome[statement] = True
            except snowflake.connector.errors.ProgrammingError:
                outcome[statement] = False
        databases = connection.cursor().execute("SHOW DATABASES").fetchall()
    assert any("IOT" in str(row) for row in databases), databases
    return outcome


def test_the_provisioning_script_runs_twice_the_same_as_far_as_the_emulator_goes():
    first = run_script()
    assert len(first) == len(statements()) > 20
    refused = [s for s, ok in first.items() if not ok]
    assert all(UNSUPPORTED.match(s) for s in refused), refused
    accepted = [s for s, ok in first.items() if ok]
    assert any(s.startswith("CREATE DATABASE IF NOT EXISTS") for s in accepted), accepted
    assert sum(s.startswith("SET ") for s in accepted) == 8
    assert run_script() == first, "a second run ends every statement the same way"
