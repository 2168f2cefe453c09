"""config/snowflake/provision.sql against the Snowflake emulator, whose access
control (tests/snowflake/access.py) takes the roles, users, warehouse, resource
monitor and grants: every statement runs, twice, and leaves the database and both
schemas there. What the roles may then do is tested where they are used: load
(tests/snowflake), dbt (test_snowflake.py) and the dashboard (its own tests)."""

from __future__ import annotations

from fleet import emulator
from provision import connect, provision, statements


def test_the_provisioning_script_runs_twice_to_the_same_end():
    script = statements()
    assert len(script) > 40
    assert sum(s.startswith("GRANT ") for s in script) > 20
    dataset = "provision_twice"
    first = provision(emulator(), dataset)
    assert provision(emulator(), dataset) == first
    with connect(emulator(), database="IOT") as connection:
        schemas = {
            name
            for (name,) in connection.cursor()
            .execute("SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA")
            .fetchall()
        }
    assert {first["dataset_schema"], first["analytics_schema"]} <= schemas, schemas


def test_a_name_given_replaces_the_one_in_the_script_and_nothing_else():
    default = statements()
    renamed = statements({"dataset_schema": "ELSEWHERE"})
    changed = [(a, b) for a, b in zip(default, renamed, strict=True) if a != b]
    assert changed == [("SET dataset_schema = 'IOT_STREAM'", "SET dataset_schema = 'ELSEWHERE'")]
