"""The pipeline as a Prefect flow: `load`, then, when rows were stored, `dbt source
freshness` and `dbt build` where load loaded, then dbt's results as the flow's
outcome (a failed model or test fails the run).

    scripts/flow.sh                  one run, in Prefect's ephemeral mode (a temporary
                                     local server, no setup)
    scripts/flow.sh --serve          runs on the cron schedule IOT_FLOW_CRON (default
                                     every 5 minutes, UTC; IOT_FLOW_EVERY=N seconds
                                     instead sets an interval) until Ctrl-C, on a Prefect
                                     server (the script starts one unless PREFECT_API_URL
                                     names one), whose UI shows the runs

Arguments after the script's own go to `load`; both steps read load's variables
(DUCKDB_FILE, LOAD_DEST, KAFKA_BOOTSTRAP_SERVERS, the Snowflake credentials...),
and dbt builds where load says it loaded (`load --json`), whichever flags chose it.

As an operator expects of a scheduled job: `load` is tried again, 30 s, 1 min and
2 min later (IOT_FLOW_RETRY_DELAYS=30,60,120), when what failed may pass by itself
(exit 75: the DuckDB file is held by another program; 5: the broker cannot be
reached); a topic recreated under the stored offsets (3) fails at once with what
to do; each step is stopped after IOT_FLOW_LOAD_TIMEOUT (default 900) or
IOT_FLOW_DBT_TIMEOUT (1800) seconds. A run that fails exits with the failed
step's status (load's, or 1 for dbt).

Prefect was chosen over Dagster because the pipeline is two programs in a row: a
Prefect flow is that, as plain Python functions, and its ephemeral mode runs it with
no server or project layout to set up, while Dagster's assets want the dbt project
and the tables modelled in its own terms first.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from prefect import flow, get_run_logger, task

REPO = Path(__file__).resolve().parents[1]
# load's exit statuses for failures that may pass by themselves (see `load --help`).
LOCKED, NO_BROKER, OFFSETS_BEYOND_END = 75, 5, 3
PASSING = {LOCKED: "the DuckDB file is held by another program", NO_BROKER: "no broker answered"}


class StepFailed(Exception):
    """A step's program failed: what happened and what to do, in one line."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class OneLine(logging.Filter):
    """Prefect logs a failed task or flow with the exception's traceback. For a
    StepFailed, whose message already says what happened and what to do, the
    traceback is Prefect's and the flow's own code: it goes, the message stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], StepFailed):
            # The flow's "Encountered exception" repeats the failed state said next.
            if record.getMessage().startswith("Encountered exception during execution"):
                return False
            record.exc_info = None
            record.exc_text = None
        return True


def one_line_failures() -> None:
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(OneLine())


def timeout(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def may_pass(_task, _run, state) -> bool:
    """Whether a failed `load` is worth trying again: a held file or a broker away."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, StepFailed) and error.status in PASSING


def load_binary() -> str:
    if os.environ.get("LOAD"):
        return os.environ["LOAD"]
    target = os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/iot-streaming/target"
    binary = Path(target) / "release" / "load"
    if not binary.exists():
        subprocess.run(
            ["cargo", "build", "--release", "--locked", "-p", "iot-load"], cwd=REPO, check=True
        )
    return str(binary)


# The waits before each new try of `load`, seconds (IOT_FLOW_RETRY_DELAYS).
RETRY_DELAYS = [int(s) for s in os.environ.get("IOT_FLOW_RETRY_DELAYS", "30,60,120").split(",")]


@task(retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=may_pass)
def load(args: list[str]) -> dict:
    """Runs `load --json` (cron mode) and returns its outcome: the rows it stored
    and where."""
    limit = timeout("IOT_FLOW_LOAD_TIMEOUT", 900)
    try:
        done = subprocess.run(
            [load_binary(), "--json", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=limit,
        )
    except subprocess.TimeoutExpired as e:
        raise StepFailed(f"load did not finish within {limit} s (IOT_FLOW_LOAD_TIMEOUT)") from e
    said = done.stderr.strip().splitlines()
    if done.returncode != 0 and said and said[-1].startswith("error: "):
        said.pop()  # the failure itself, which the step's failure says
    if said:
        get_run_logger().info("load said:\n%s", "\n".join(said))
    try:
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        outcome = {"error": done.stderr.strip().splitlines()[-1:] or "nothing"}
    status = done.returncode
    if status == 0:
        return outcome
    why = f"load failed with exit status {status}: {outcome.get('error')}"
    if status in PASSING:
        why += f" ({PASSING[status]}: tried again {', '.join(map(str, RETRY_DELAYS))} s later)"
    if status == OFFSETS_BEYOND_END:
        why += " (run `load --reset-offsets` once if the topics were recreated)"
    raise StepFailed(why, status)


def dbt(outcome: dict, *command: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`scripts/dbt.sh COMMAND` where `outcome` says load loaded, with a target
    folder of its own; returns the run and that folder (removed by the caller)."""
    limit = timeout("IOT_FLOW_DBT_TIMEOUT", 1800)
    folder = Path(tempfile.mkdtemp(prefix="iot-flow-dbt-"))
    (folder / "load.json").write_text(json.dumps(outcome))
    try:
        done = subprocess.run(
            [str(REPO / "scripts" / "dbt.sh"), *command, "--target-path", str(folder)],
            env={**os.environ, "LOAD_OUTCOME": str(folder / "load.json"), "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            check=False,
            timeout=limit,
        )
    except subprocess.TimeoutExpired as e:
        remove(folder)
        raise StepFailed(f"dbt {command[0]} did not finish within {limit} s") from e
    return done, folder


def remove(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


@task
def source_freshness(outcome: dict) -> str:
    """`dbt source freshness`: how long ago load last stored rows of each table; a
    table quiet for a day is a warning in the log, not a failure."""
    done, folder = dbt(outcome, "source", "freshness")
    try:
        sources = folder / "sources.json"
        if not sources.exists():
            raise StepFailed(f"dbt source freshness failed with exit status {done.returncode}")
        results = json.loads(sources.read_text())["results"]
    finally:
        remove(folder)
    logger = get_run_logger()
    for result in results:
        name = result["unique_id"].removeprefix("source.iot_streaming.")
        age = result.get("max_loaded_at_time_ago_in_s")
        # dbt reads an empty table's newest row as stored in the year 1.
        empty = str(result.get("max_loaded_at", "")).startswith("0001-")
        said = f"freshness {name}: {result['status']}" + (
            ", no row stored yet"
            if empty
            else f", newest row stored {age / 60:.0f} min ago"
            if age is not None
            else ""
        )
        (logger.warning if result["status"] != "pass" else logger.info)(said)
    stale = [r for r in results if r["status"] != "pass"]
    return f"{len(results) - len(stale)} of {len(results)} sources fresh"


@task
def dbt_build(outcome: dict) -> dict[str, int]:
    """Runs `dbt build` where load loaded, logs each model's and test's result, and
    returns how many nodes ended in each status (success, pass, fail, error,
    skipped, warn)."""
    done, folder = dbt(outcome, "build")
    try:
        results = folder / "run_results.json"
        if not results.exists():
            last = done.stdout.strip().splitlines()[-1:] or ["nothing"]
            raise StepFailed(
                f"dbt build failed with exit status {done.returncode} before running: {last[0]}"
            )
        nodes = json.loads(results.read_text())["results"]
    finally:
        remove(folder)
    logger = get_run_logger()
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node["status"]] = counts.get(node["status"], 0) + 1
        name = node["unique_id"].split(".", 2)[-1]
        said = f"dbt {name}: {node['status']} in {node['execution_time']:.1f} s"
        if node.get("message") and node["status"] in ("fail", "error", "warn"):
            said += f" ({node['message']})"
        (logger.info if node["status"] in ("success", "pass") else logger.warning)(said)
    return counts


@flow(name="iot-pipeline", log_prints=True)
def pipeline(load_args: list[str] | None = None) -> str:
    """load, then dbt source freshness and build where it loaded if it stored rows;
    fails if a model or test failed."""
    outcome = load(load_args or [])
    rows = outcome["rows"]
    if rows == 0:
        return "load stored no new rows; dbt not run"
    fresh = source_freshness(outcome)
    counts = dbt_build(outcome)
    summary = f"load stored {rows} rows; {fresh}; dbt build: " + ", ".join(
        f"{n} {status}" for status, n in sorted(counts.items())
    )
    if counts.get("fail") or counts.get("error"):
        raise StepFailed(summary)
    return summary


def main() -> None:
    one_line_failures()
    args = sys.argv[1:]
    if args[:1] == ["--serve"]:
        every = os.environ.get("IOT_FLOW_EVERY")
        schedule = (
            {"interval": int(every)}
            if every
            else {"cron": os.environ.get("IOT_FLOW_CRON") or "*/5 * * * *"}
        )
        # Ctrl-C becomes the SIGTERM on which Prefect's runner stops gracefully
        # (in-flight runs cancelled, then the loop ends). A KeyboardInterrupt instead
        # lands wherever the loop happens to be, and was seen swallowed there: the
        # runner went on starting runs every few seconds.
        signal.signal(signal.SIGINT, lambda *_: signal.raise_signal(signal.SIGTERM))
        # One run at a time: a run falling due while the last one still loads or
        # builds waits for it, rather than fighting it for the DuckDB file.
        pipeline.serve(name="iot-pipeline", parameters={"load_args": args[1:]}, limit=1, **schedule)
        return
    state = pipeline(args, return_state=True)
    # What the flow returned, or the exception that failed it.
    result = state.result(raise_on_failure=False)
    print(f"iot-pipeline: {state.name}: {result}")
    if state.is_completed():
        sys.exit(0)
    sys.exit(getattr(result, "status", None) or 1)


if __name__ == "__main__":
    main()
