"""Snowflake's access control, which the emulator (fakesnow) does not have: roles,
grants and ownership, and the check Snowflake makes before each statement of a
session whose role is not an administrator's.

The tests set an account up as users do, by running config/snowflake/provision.sql
as an administrator; its statements for roles, users, warehouses, grants and
resource monitors are taken here and not sent on. A session that logs in with one
of the roles created that way then meets the rules of a real account:

- `CREATE SCHEMA` needs CREATE SCHEMA on the database, even with IF NOT EXISTS
  and the schema there (Snowflake checks the privilege before it looks);
- `CREATE TABLE` / `CREATE VIEW` / `CREATE STAGE` need that privilege on the
  schema; `CREATE OR REPLACE` of an object another role owns is refused;
- `ALTER` and `DROP` need ownership;
- reading or writing a table needs ownership or the privilege (SELECT, INSERT,
  UPDATE, DELETE, TRUNCATE), granted on it or on all or future tables (views) of
  its schema;
- any use of a database or schema needs USAGE on it (or owning it).

A refusal is Snowflake's own: 003001 "Insufficient privileges to operate on …"
where the role can see the object, 002003 "… does not exist or not authorized"
where it holds nothing on it. Sessions of other roles (the administrators', or
none: the tests' own readers) are not checked.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

ADMINISTRATORS = {"", "ACCOUNTADMIN", "SYSADMIN", "SECURITYADMIN", "USERADMIN", "ORGADMIN"}
# The statements this layer answers itself: fakesnow implements none of them.
TAKEN = re.compile(
    r"\s*(CREATE\s+(OR\s+REPLACE\s+)?(ROLE|USER|WAREHOUSE|RESOURCE\s+MONITOR)|"
    r"ALTER\s+(USER|WAREHOUSE|RESOURCE\s+MONITOR)|GRANT|REVOKE|USE\s+ROLE)\b",
    re.I,
)
IDENTIFIER_VARIABLE = re.compile(r"IDENTIFIER\(\s*\$(\w+)\s*\)", re.I)
SET_VARIABLE = re.compile(r"\s*SET\s+(\w+)\s*=\s*'((?:[^']|'')*)'\s*;?\s*$", re.I | re.S)
NAME = r'(?:"(?:[^"]|"")+"|[\w$]+)'
QUALIFIED = rf"{NAME}(?:\.{NAME})*"
GRANT_ON = re.compile(
    rf"\s*(GRANT|REVOKE)\s+(.+?)\s+ON\s+(?:(ALL|FUTURE)\s+(TABLES|VIEWS|STAGES)\s+IN\s+SCHEMA|"
    rf"(DATABASE|SCHEMA|WAREHOUSE|TABLE|VIEW|STAGE))\s+({QUALIFIED})\s+(?:TO|FROM)\s+ROLE\s+({NAME})",
    re.I | re.S,
)
CREATE_ROLE = re.compile(
    rf"\s*CREATE\s+(?:OR\s+REPLACE\s+)?ROLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({NAME})", re.I
)
USE_ROLE = re.compile(rf"\s*USE\s+ROLE\s+({NAME})", re.I)
USE_WAREHOUSE = re.compile(r"\s*USE\s+WAREHOUSE\b", re.I)
USE = re.compile(rf"\s*USE\s+(DATABASE\s+|SCHEMA\s+)?({QUALIFIED})\s*;?\s*$", re.I)


# Statements that read or write no table's rows.
PASSED = (
    exp.Show,
    exp.Describe,
    exp.Use,
    exp.Command,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Set,
)


class Refused(Exception):
    """A statement Snowflake would refuse, with its error code and message."""

    def __init__(self, code: str, sqlstate: str, message: str):
        super().__init__(message)
        self.code, self.sqlstate, self.message = code, sqlstate, message


def insufficient(kind: str, object_name: str) -> Refused:
    """Snowflake's refusal of a statement on an object the role can see."""
    message = f"Insufficient privileges to operate on {kind} '{object_name}'"
    return Refused("003001", "42501", f"SQL access control error:\n{message}")


def not_authorized(what: str) -> Refused:
    """Snowflake's refusal where the role holds nothing on the object."""
    message = f"{what} does not exist or not authorized."
    return Refused("002003", "42S02", f"SQL compilation error:\n{message}")


def name(text: str) -> str:
    """A name as Snowflake stores it: unquoted upper-cased, quoted as written."""
    text = text.strip()
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text.upper()


def parts(text: str) -> list[str]:
    return [name(p) for p in re.findall(NAME, text)]


def ident(node) -> str:
    if isinstance(node, exp.Identifier):
        return node.this if node.quoted else node.this.upper()
    return name(node.sql()) if node is not None else ""


@dataclass
class Session:
    role: str
    database: str
    schema: str
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class AccessControl:
    roles: set[str] = field(default_factory=set)
    # (role, privilege, kind, object): kind DATABASE, SCHEMA, TABLE, VIEW, STAGE,
    # WAREHOUSE, or "ALL TABLES" / "FUTURE VIEWS" … with the schema as object.
    grants: set[tuple[str, str, str, str]] = field(default_factory=set)
    # "DB.SCHEMA.OBJECT" (or "DB.SCHEMA") -> (kind, owning role)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)

    def login(self, token: str, role: str, database: str, schema: str) -> None:
        self.sessions[token] = Session(name(role or ""), name(database or ""), name(schema or ""))

    def statement(self, token: str, sql: str) -> tuple[str, bool]:
        """The statement to send on, with the session's IDENTIFIER($var) filled in,
        and whether this layer took it (then nothing is to be sent). Raises Refused."""
        session = self.sessions.get(token)
        if session is None:
            return sql, False
        if m := SET_VARIABLE.match(sql):
            session.variables[m.group(1).upper()] = m.group(2).replace("''", "'")
        sql = IDENTIFIER_VARIABLE.sub(
            lambda m: session.variables.get(m.group(1).upper(), m.group(0)), sql
        )
        checked = session.role not in ADMINISTRATORS and session.role in self.roles
        if USE_WAREHOUSE.match(sql):
            # Warehouses are not emulated: using one has no effect.
            return sql, True
        if (m := USE.match(sql)) and not USE_ROLE.match(sql):
            names = parts(m.group(2))
            if (m.group(1) or "").upper().startswith("SCHEMA") or len(names) == 2:
                session.database, session.schema = self.qualify(session, names, 2)
            else:
                session.database, session.schema = names[0], ""
            return sql, False
        if TAKEN.match(sql):
            if checked:
                raise insufficient("account", "EMULATOR")
            self.take(session, sql)
            return sql, True
        if checked:
            try:
                self.check(session, sql)
            except Refused as e:
                print(
                    f"access: refused to {session.role}: {sql[:300]!r}: {e.message}",
                    file=sys.stderr,
                )
                raise
        else:
            self.note_owner(session, sql, session.role or "SYSADMIN")
        return sql, False

    # The account administrator's statements.

    def take(self, session: Session, sql: str) -> None:
        if m := USE_ROLE.match(sql):
            session.role = name(m.group(1))
        elif m := CREATE_ROLE.match(sql):
            self.roles.add(name(m.group(1)))
        elif m := GRANT_ON.match(sql):
            verb, privileges, scope, plural, kind, target, role = m.groups()
            target = ".".join(
                self.qualify(session, parts(target), 2 if (scope or kind == "SCHEMA") else 1)
            )
            kind = f"{scope.upper()} {plural.upper()}" if scope else kind.upper()
            if kind in ("TABLE", "VIEW", "STAGE"):
                target = ".".join(self.qualify(session, parts(m.group(6)), 3))
            for privilege in (" ".join(p.split()).upper() for p in privileges.split(",")):
                grant = (name(role), privilege, kind, target)
                if verb.upper() == "GRANT":
                    self.grants.add(grant)
                else:
                    self.grants.discard(grant)

    # The check.

    def qualify(self, session: Session, names: list[str], length: int) -> list[str]:
        """`names` completed from the session's database and schema to `length` parts."""
        defaults = [session.database, session.schema][: max(0, length - 1)]
        return defaults[: length - len(names)] + names

    def holds(self, role: str, privilege: str, kind: str, target: str) -> bool:
        owned = self.owners.get(target)
        return (owned is not None and owned[1] == role) or (
            role,
            privilege,
            kind,
            target,
        ) in self.grants

    def usage(self, session: Session, database: str, schema: str | None = None) -> None:
        role = session.role
        if not self.holds(role, "USAGE", "DATABASE", database):
            raise not_authorized(f"Database '{database}'")
        if schema is not None and not self.holds(role, "USAGE", "SCHEMA", f"{database}.{schema}"):
            raise not_authorized(f"Schema '{database}.{schema}'")

    def on_object(self, session: Session, privilege: str, table: list[str]) -> None:
        """`privilege` on table or view `table` (database, schema, name)."""
        database, schema, object_name = table
        if schema == "INFORMATION_SCHEMA":
            return
        self.usage(session, database, schema)
        target = ".".join(table)
        kind, owner = self.owners.get(target, ("TABLE", ""))
        if owner == session.role:
            return
        plural = "VIEWS" if kind == "VIEW" else "TABLES"
        held = {
            p
            for (r, p, k, t) in self.grants
            if r == session.role
            and (
                (k == kind and t == target)
                or (k in (f"ALL {plural}", f"FUTURE {plural}") and t == f"{database}.{schema}")
            )
        }
        if privilege in held:
            return
        if not held:
            raise not_authorized(f"Object '{target}'")
        raise insufficient(kind.lower(), object_name)

    def owned(self, session: Session, table: list[str]) -> None:
        database, schema, object_name = table
        self.usage(session, database, schema)
        kind, owner = self.owners.get(".".join(table), ("TABLE", ""))
        if owner != session.role:
            raise insufficient(kind.lower(), object_name)

    def table_of(self, session: Session, table: exp.Table) -> list[str]:
        names = [
            ident(p)
            for p in (table.args.get("catalog"), table.args.get("db"), table.this)
            if p is not None
        ]
        return self.qualify(session, names, 3)

    def check(self, session: Session, sql: str) -> None:
        try:
            statement = sqlglot.parse_one(sql, read="snowflake")
        except sqlglot.errors.ParseError as e:
            print(f"access: not checked (unparsed): {sql[:200]!r}: {e}", file=sys.stderr)
            return
        if statement is None or isinstance(statement, PASSED):
            return
        ctes = {
            ident(c.args["alias"].this) for c in statement.find_all(exp.CTE) if c.args.get("alias")
        }
        target = None
        if isinstance(statement, exp.Create):
            kind = str(statement.args.get("kind") or "").upper()
            if kind == "SCHEMA":
                schema = self.qualify(
                    session,
                    [ident(p) for p in (statement.this.args.get("db"), statement.this.this) if p],
                    2,
                )
                database = schema[0]
                self.usage(session, database)
                if not self.holds(session.role, "CREATE SCHEMA", "DATABASE", database):
                    raise insufficient("database", database)
                self.owners.setdefault(".".join(schema), ("SCHEMA", session.role))
                return
            if kind in ("TABLE", "VIEW", "STAGE"):
                node = (
                    statement.this.this
                    if isinstance(statement.this, exp.Schema)
                    else statement.this
                )
                target = self.table_of(session, node)
                database, schema, _ = target
                self.usage(session, database, schema)
                if not self.holds(session.role, f"CREATE {kind}", "SCHEMA", f"{database}.{schema}"):
                    raise insufficient("schema", schema)
                existing = self.owners.get(".".join(target))
                if existing and existing[1] != session.role and statement.args.get("replace"):
                    self.owned(session, target)
                if not existing or statement.args.get("replace"):
                    self.owners[".".join(target)] = (kind, session.role)
        elif isinstance(statement, (exp.Alter, exp.Drop)):
            if str(statement.args.get("kind") or "").upper() not in ("TABLE", "VIEW", "STAGE"):
                return
            node = (
                statement.this
                if isinstance(statement.this, exp.Table)
                else statement.find(exp.Table)
            )
            if node is None:
                return
            target = self.table_of(session, node)
            # An object no one created is the emulator's to report (or, with IF
            # EXISTS, to pass over), as Snowflake does.
            if ".".join(target) in self.owners:
                self.owned(session, target)
        elif isinstance(statement, (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Copy)):
            node = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
            if isinstance(node, exp.Table):
                target = self.table_of(session, node)
                privilege = {exp.Update: "UPDATE", exp.Delete: "DELETE"}.get(
                    type(statement), "INSERT"
                )
                self.on_object(session, privilege, target)
                if isinstance(statement, exp.Merge):
                    self.on_object(session, "UPDATE", target)
        for table in statement.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier) or table.name.startswith("@"):
                continue
            if not table.args.get("db") and ident(table.this) in ctes:
                continue
            read = self.table_of(session, table)
            if read != target:
                self.on_object(session, "SELECT", read)

    def note_owner(self, session: Session, sql: str, role: str) -> None:
        """An administrator's CREATE: the object is theirs (grants on it decide)."""
        if not re.match(r"\s*CREATE\b", sql, re.I):
            return
        try:
            statement = sqlglot.parse_one(sql, read="snowflake")
        except sqlglot.errors.ParseError:
            return
        if not isinstance(statement, exp.Create):
            return
        kind = str(statement.args.get("kind") or "").upper()
        node = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
        if kind == "SCHEMA":
            key = ".".join(
                self.qualify(session, [ident(p) for p in (node.args.get("db"), node.this) if p], 2)
            )
        elif kind == "DATABASE":
            key = ident(node.this)
        elif kind in ("TABLE", "VIEW", "STAGE"):
            key = ".".join(self.table_of(session, node))
        else:
            return
        self.owners.setdefault(key, (kind, role))
