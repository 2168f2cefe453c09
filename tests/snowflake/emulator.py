"""The Snowflake emulator the tests load into: fakesnow's server (an in-memory
DuckDB behind Snowflake's REST API), with the response fields it leaves out
filled in.

The snowflake-api crate that `load --dest snowflake` uses decodes responses
strictly: a login needs `sessionId`, `masterToken`, the token lifetimes and
`sessionInfo.roleName`; a query result needs `returned`, `finalRoleName` and
`version`; an error needs `age`, `internalError`, `queryId` and `sqlState`.
Real Snowflake always sends them; fakesnow 0.12 does not. This layer adds
them, with plausible values, so the loader under test is the one users run
against a real account.

One behaviour is added too. Snowflake ends a session that stops talking to it
(a client killed in the middle of a transaction) and rolls back what that
transaction held; fakesnow keeps every session for ever, so a killed client's
transaction would block every later writer for good. Here a session that sits
in a transaction without a request for ABANDONED_AFTER seconds is closed, which
rolls the transaction back: Snowflake's behaviour, on a test's time scale.

Snowflake's access control is added too (access.py): the roles and grants that
config/snowflake/provision.sql sets up are kept here, and a session that logs in
with such a role has each statement checked as Snowflake checks it, refused with
Snowflake's own errors (003001, 002003) where its grants fall short.

`REMOVE @stage/path/`, which fakesnow does not implement, removes the files of
an internal stage under that path (see `remove_staged`). A view's comment, which
fakesnow drops, is kept here and read back from INFORMATION_SCHEMA.VIEWS (see
`view_comments`).

One Snowflake statement with nothing to act on here is accepted rather than
refused: `ALTER SESSION SET LOCK_TIMEOUT` (see `accept_lock_timeout`). A row
that breaks a NOT NULL column fails with Snowflake's own error, not a server
error (see `refuse_like_snowflake`). A login with the password WRONG_PASSWORD is
refused with Snowflake's 390100. And for tests of commits that stall, a
session whose user name starts with "slow" has each COMMIT answered late (see
SLOW_USER). For tests of loaders killed at each step of a commit, a session whose
user name is "stall-copy", "stall-copied" or "stall-commit" stops at that step
and waits there until its client is gone (see STALL_USER).

Usage: python3 tests/snowflake/emulator.py --port PORT
"""

import argparse
import asyncio
import gzip
import json
import re
import secrets
import shutil
import sys
import time
from urllib.parse import parse_qs

import duckdb
import snowflake.connector.errors
import uvicorn
from access import AccessControl, Refused
from fakesnow.cursor import FakeSnowflakeCursor

# The module's own dict of sessions: `fakesnow.server` the attribute is a function.
from fakesnow.server import app as fakesnow
from fakesnow.server import sessions
from fakesnow.transforms import stage

ABANDONED_AFTER = 10.0

# Session token -> time of its last request, for sessions inside a transaction.
in_transaction: dict[str, float] = {}
# Session token -> requests still running. A session waiting for an answer is not
# idle, however long its statement takes (fakesnow translates a 512 KB INSERT for
# many seconds on a slow machine).
in_flight: dict[str, int] = {}


def refuse_like_snowflake(execute):
    """A row that breaks a column's NOT NULL fails as Snowflake fails it (100072, a
    statement error), not as an unhandled server error (fakesnow's 261000, which
    Snowflake's clients read as a passing HTTP failure)."""

    def wrapped(self, *args, **kwargs):
        try:
            return execute(self, *args, **kwargs)
        except duckdb.ConstraintException as e:
            text = str(e).split("\n")[0]
            # Only a row's NOT NULL: fakesnow's own catalog raises other constraint
            # errors when sessions create tables at once, which pass when retried.
            if "NOT NULL constraint failed" not in text:
                raise
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"NULL result in a non-nullable column ({text})", errno=100072, sqlstate="22000"
            ) from e

    return wrapped


FakeSnowflakeCursor.execute = refuse_like_snowflake(FakeSnowflakeCursor.execute)


def request_json(body: bytes):
    """The query request's JSON (gzipped or not), or None."""
    try:
        request = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
    except (ValueError, TypeError, OSError):
        return None
    return (
        request if isinstance(request, dict) and isinstance(request.get("sqlText"), str) else None
    )


# A session parameter Snowflake accepts and fakesnow 0.12 refuses, with nothing to
# act on here: DuckDB never makes a statement wait for a lock (a second writer fails
# at once), so no statement can outlast a lock timeout. It is sent on as a statement
# fakesnow answers with success and no effect.
LOCK_TIMEOUT = re.compile(r"\s*ALTER\s+SESSION\s+SET\s+LOCK_TIMEOUT\s*=\s*\d+\s*;?\s*", re.I)
NO_EFFECT = "ALTER SESSION SET QUOTED_IDENTIFIERS_IGNORE_CASE = FALSE"


def with_statement(body: bytes, sql: str) -> bytes:
    """The query request `body` with its statement replaced by `sql`."""
    request = request_json(body)
    if request is None or request["sqlText"] == sql:
        return body
    request["sqlText"] = sql
    out = json.dumps(request).encode()
    return gzip.compress(out) if body[:2] == b"\x1f\x8b" else out


def accept_lock_timeout(body: bytes) -> bytes:
    request = request_json(body)
    if request is None or not LOCK_TIMEOUT.fullmatch(request["sqlText"]):
        return body
    return with_statement(body, NO_EFFECT)


access = AccessControl()

REMOVE = re.compile(
    r"\s*REMOVE\s+@((?:\"[^\"]+\"|[\w$]+)(?:\.(?:\"[^\"]+\"|[\w$]+)){0,2})(/\S*)?\s*;?\s*$", re.I
)


def remove_staged(token: str, body: bytes) -> bytes:
    """A `REMOVE @stage/path/` done here, sent on as a statement with no effect."""
    request = request_json(body)
    match = REMOVE.match(request["sqlText"]) if request else None
    session = sessions.get(token)
    if match is None or session is None:
        return body
    names = stage.parts_from_var(match.group(1), session.database, session.schema)
    directory = stage.internal_dir(".".join(names), (match.group(2) or "/").lstrip("/"))
    shutil.rmtree(directory, ignore_errors=True)
    return with_statement(body, NO_EFFECT)


# A view's comment, by "SCHEMA.NAME" (Snowflake's upper-cased names).
comments: dict[str, str] = {}
NAME = r'(?:"[^"]+"|[\w$]+)'
CREATE_VIEW = re.compile(
    rf"\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+((?:{NAME}\.){{0,2}}{NAME})\s+"
    r"COMMENT\s*=\s*'((?:[^']|'')*)'\s+AS\b",
    re.I,
)
VIEWS_COMMENT = re.compile(
    r"^(\s*SELECT\s.*?)\bCOMMENT\b(.*?\bFROM\s+INFORMATION_SCHEMA\.VIEWS\b)", re.I | re.S
)


def unquoted(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name.upper()


def view_comments(token: str, body: bytes) -> bytes:
    """Notes the comment a CREATE VIEW gives its view, and serves it to a query of
    INFORMATION_SCHEMA.VIEWS that selects COMMENT (fakesnow answers NULL)."""
    request = request_json(body)
    if request is None:
        return body
    sql = request["sqlText"]
    if created := CREATE_VIEW.match(sql):
        parts = [unquoted(p) for p in re.findall(NAME, created.group(1))]
        session = sessions.get(token)
        schema = parts[-2] if len(parts) > 1 else (session.schema if session else "") or ""
        comments[f"{schema.upper()}.{parts[-1]}"] = created.group(2).replace("''", "'")
        return body
    if VIEWS_COMMENT.match(sql) and comments:
        cases = " ".join(
            f"WHEN '{name}' THEN '{text.replace(chr(39), chr(39) * 2)}'"
            for name, text in comments.items()
        )
        noted = f"CASE TABLE_SCHEMA || '.' || TABLE_NAME {cases} END AS COMMENT"
        return with_statement(body, VIEWS_COMMENT.sub(rf"\g<1>{noted}\g<2>", sql, count=1))
    return body


# What clients sent, for the benchmarks (GET /iot-emulator/stats): statements and
# the bytes of their SQL text, and files uploaded to stages and their bytes.
stats = {"statements": 0, "sql_bytes": 0, "uploads": 0, "upload_bytes": 0, "stalled": 0}


def check_access(token: str, body: bytes) -> bytes:
    """The request as access control lets it through (raises Refused)."""
    request = request_json(body)
    if request is None:
        return body
    sql, taken = access.statement(token, request["sqlText"])
    return with_statement(body, NO_EFFECT if taken else sql)


def refusal(error: Refused) -> bytes:
    return json.dumps(
        {
            "data": {"errorCode": error.code, "sqlState": error.sqlstate},
            "code": error.code,
            "message": error.message,
            "success": False,
            "headers": None,
        }
    ).encode()


# A login with this password is refused as Snowflake refuses a wrong one, for the
# tests of clients that must say which credential was refused (fakesnow accepts
# every password).
WRONG_PASSWORD = "wrong-password"
REFUSED_LOGIN = {
    "data": {"authnMethod": "USERNAME_PASSWORD", "nextAction": "RETRY_LOGIN"},
    "code": "390100",
    "message": "Incorrect username or password was specified.",
    "success": False,
    "headers": None,
}


def password(body: bytes) -> str:
    """The password a login request gives, or ''."""
    try:
        request = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
        return str(request["data"].get("PASSWORD", ""))
    except (ValueError, TypeError, KeyError, AttributeError, OSError):
        return ""


# Sessions whose user name starts with "slow": each of their COMMITs is answered
# late, a stand-in for a contended warehouse, for the tests of loaders whose
# commits stall: by the seconds the name gives ("slow20_loader"), else 3.
SLOW_USER = re.compile(r"slow(\d*)", re.I)
slow_sessions: dict[str, float] = {}


# Sessions whose user name is "stall-<step>" stop at that step of their first
# commit, until the client goes away (a test kills it there): "copy" before a
# COPY INTO runs, "copied" after it ran (its answer never sent), "commit" before
# COMMIT. stats["stalled"] counts the stops, so that a test knows when to strike.
STALL_USER = re.compile(r"stall-(copy|copied|commit)$", re.I)
stall_sessions: dict[str, str] = {}


def stall_step(token: str | None, body: bytes) -> str | None:
    """The step at which this request of a stalling session stops, if it does."""
    step = stall_sessions.get(token or "")
    request = request_json(body)
    if step is None or request is None:
        return None
    statement = request["sqlText"].lstrip().upper()
    if step in ("copy", "copied") and statement.startswith("COPY INTO"):
        return step
    return step if step == "commit" and statement.startswith("COMMIT") else None


async def stall_until_gone(receive) -> None:
    stats["stalled"] += 1
    print("stalled a session until its client is gone", file=sys.stderr)
    try:
        while (await asyncio.wait_for(receive(), timeout=600))["type"] != "http.disconnect":
            pass
    except TimeoutError:
        pass
    print("the stalled session's client is gone", file=sys.stderr)


def login_name(body: bytes) -> str:
    """The user name a login request gives, or ''."""
    try:
        request = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
        return str(request["data"]["LOGIN_NAME"])
    except (ValueError, TypeError, KeyError, OSError):
        return ""


def is_commit(body: bytes) -> bool:
    request = request_json(body)
    return request is not None and request["sqlText"].strip().upper().startswith("COMMIT")


def track(token: str, body: bytes) -> None:
    """Notes when a session begins, ends or works in a transaction."""
    request = request_json(body)
    if request is None:
        return
    statement = request["sqlText"].strip().upper()
    if statement.startswith("BEGIN") or statement.startswith("START TRANSACTION"):
        in_transaction[token] = time.monotonic()
    elif statement.startswith("COMMIT") or statement.startswith("ROLLBACK"):
        in_transaction.pop(token, None)
    elif token in in_transaction:
        in_transaction[token] = time.monotonic()


async def end_abandoned_sessions() -> None:
    while True:
        await asyncio.sleep(1)
        now = time.monotonic()
        for token, last in list(in_transaction.items()):
            if now - last <= ABANDONED_AFTER or in_flight.get(token):
                continue
            in_transaction.pop(token, None)
            session = sessions.pop(token, None)
            if session is None:
                continue
            try:
                session.close()
                print(
                    f"closed a session abandoned in a transaction ({token[:8]}…)", file=sys.stderr
                )
            except Exception as e:  # keep reaping the others
                print(f"closing an abandoned session failed: {e!r}", file=sys.stderr)


def fill(path: str, body: bytes) -> bytes:
    try:
        response = json.loads(body)
    except ValueError:
        return body
    if not isinstance(response, dict):
        return body

    if path.endswith("/login-request") and response.get("success"):
        data = response["data"]
        data.setdefault("sessionId", secrets.randbelow(2**53))
        data.setdefault("masterToken", "master-" + data["token"])
        data.setdefault("validityInSeconds", 3600)
        data.setdefault("masterValidityInSeconds", 14400)
        info = data.setdefault("sessionInfo", {})
        info.setdefault("roleName", "ACCOUNTADMIN")
    elif path.endswith("/query-request"):
        if response.get("success"):
            data = response["data"]
            rowset = data.get("rowset")
            data.setdefault(
                "returned", len(rowset) if isinstance(rowset, list) else data.get("total", 0)
            )
            data.setdefault("finalRoleName", "ACCOUNTADMIN")
            data.setdefault("version", 1)
            data.setdefault("parameters", [])
            data.setdefault("rowtype", [])
        else:
            data = response.get("data") or {}
            code = data.get("errorCode") or response.get("code") or "000000"
            data.setdefault("errorCode", code)
            data.setdefault("age", 0)
            data.setdefault("internalError", False)
            data.setdefault("queryId", "")
            if data.get("sqlState") is None:
                data["sqlState"] = "42000"
            response["data"] = data
    return json.dumps(response).encode()


async def reply(send, out: bytes) -> None:
    """Answers a request with the JSON `out`, without asking fakesnow."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


class FillResponses:
    """ASGI middleware: buffers each response body and rewrites it with `fill`."""

    def __init__(self, app):
        self.app = app
        self.reaper = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == "/iot-emulator/stats":
            out = json.dumps(stats).encode()
            await reply(send, out)
            return
        if self.reaper is None:
            self.reaper = asyncio.get_running_loop().create_task(end_abandoned_sessions())
        start = {}
        chunks = []
        # The whole request first, so that its statement is noted before it runs:
        # a client killed while waiting for the answer is still seen.
        request = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            request.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(request)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        token = (
            authorization.split("Token=", 1)[1].strip('"') if "Token=" in authorization else None
        )
        query = scope["path"].endswith("/query-request") and token is not None
        login = scope["path"].endswith("/login-request")
        if login and password(body) == WRONG_PASSWORD:
            out = json.dumps(REFUSED_LOGIN).encode()
            await reply(send, out)
            return
        slow_user = SLOW_USER.match(login_name(body)) if login else None
        stall_user = STALL_USER.match(login_name(body)) if login else None
        if query and (request := request_json(body)) is not None:
            stats["statements"] += 1
            stats["sql_bytes"] += len(request["sqlText"].encode())
        elif scope["path"].startswith("/fs_bucket/"):
            stats["uploads"] += 1
            stats["upload_bytes"] += len(body)
        if query:
            try:
                body = check_access(token, body)
            except Refused as e:
                out = fill(scope["path"], refusal(e))
                await reply(send, out)
                return
            body = accept_lock_timeout(remove_staged(token, view_comments(token, body)))
            track(token, body)
            in_flight[token] = in_flight.get(token, 0) + 1
        stall = stall_step(token, body) if query else None

        async def rewrite(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            out = fill(scope["path"], b"".join(chunks))
            if login:
                try:
                    session = json.loads(out)["data"]["token"]
                    params = parse_qs(scope.get("query_string", b"").decode())
                    role, database, schema = (
                        params.get(k, [""])[0] for k in ("roleName", "databaseName", "schemaName")
                    )
                    access.login(session, role, database, schema)
                except (ValueError, TypeError, KeyError):
                    pass
            if slow_user or stall_user:
                try:
                    session = json.loads(out)["data"]["token"]
                    if slow_user:
                        slow_sessions[session] = float(slow_user.group(1) or 3)
                    else:
                        stall_sessions[session] = stall_user.group(1).lower()
                except (ValueError, TypeError, KeyError):
                    pass
            if stall == "copied":
                await stall_until_gone(receive)
                return
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(out)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": out})

        try:
            if stall in ("copy", "commit"):
                await stall_until_gone(receive)
                # The statement never ran: the session is still in its transaction
                # (`track` took a COMMIT for done), to be ended as an abandoned one.
                in_transaction[token] = time.monotonic()
                return
            if token in slow_sessions and is_commit(body):
                await asyncio.sleep(slow_sessions[token])
            await self.app(scope, replay, rewrite)
        finally:
            # A long statement is not idleness: the clock starts when it ends.
            if query:
                in_flight[token] -= 1
                if not in_flight[token]:
                    del in_flight[token]
                if token in in_transaction:
                    in_transaction[token] = time.monotonic()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        uvicorn.run(FillResponses(fakesnow), host=args.host, port=args.port, log_level="warning")
    finally:
        # fakesnow keeps every stage's files in a temporary folder it makes on import
        # and never removes.
        shutil.rmtree(stage.LOCAL_BUCKET_PATH, ignore_errors=True)
