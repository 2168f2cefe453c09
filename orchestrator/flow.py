"""The pipeline as a Prefect flow: `load`, then `dbt build` when rows were stored,
then dbt's results as the flow's outcome (a failed model or test fails the run).

    scripts/flow.sh                  one run, in Prefect's ephemeral mode (a temporary
                                     local server, no setup)
    scripts/flow.sh --serve          a run every IOT_FLOW_EVERY seconds (default 300)
                                     until Ctrl-C, on a Prefect server (the script
                                     starts one unless PREFECT_API_URL names one),
                                     whose UI shows the runs

Arguments after the script's own go to `load`; both steps read load's variables
(DUCKDB_FILE, LOAD_DEST, KAFKA_BOOTSTRAP_SERVERS, the Snowflake credentials...).
Prefect was chosen over Dagster because the pipeline is two programs in a row: a
Prefect flow is that, as plain Python functions, and its ephemeral mode runs it with
no server or project layout to set up, while Dagster's assets want the dbt project
and the tables modelled in its own terms first.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^Done load [^:]*: (\d+) rows in ", re.M)


class StepFailed(Exception):
    """A step's program failed: its exit status and what it said."""


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


@task
def load(args: list[str]) -> int:
    """Runs `load` (cron mode) and returns the rows it stored."""
    done = subprocess.run([load_binary(), *args], capture_output=True, text=True, check=False)
    get_run_logger().info("load said:\n%s", done.stderr.strip())
    if done.returncode != 0:
        raise StepFailed(f"load failed with exit status {done.returncode} (see `load --help`)")
    found = SUMMARY.search(done.stderr)
    if found is None:
        raise StepFailed("load printed no summary line")
    return int(found.group(1))


@task
def dbt_build(target: str) -> dict[str, int]:
    """Runs `dbt build` on the analytics project and returns how many nodes ended
    in each status (success, pass, fail, error, skipped, warn)."""
    results = REPO / "analytics" / "target" / "run_results.json"
    results.unlink(missing_ok=True)
    done = subprocess.run(
        [str(REPO / "scripts" / "dbt.sh"), "build", "--target", target],
        capture_output=True,
        text=True,
        check=False,
    )
    get_run_logger().info("dbt said:\n%s", done.stdout.strip()[-4000:])
    if not results.exists():
        raise StepFailed(f"dbt build failed with exit status {done.returncode} before running")
    counts: dict[str, int] = {}
    for result in json.loads(results.read_text())["results"]:
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    return counts


@flow(name="iot-pipeline", log_prints=True)
def pipeline(load_args: list[str] | None = None) -> str:
    """load, then dbt build if rows were stored; fails if a model or test failed."""
    args = load_args or []
    rows = load(args)
    if rows == 0:
        return "load stored no new rows; dbt not run"
    target = os.environ.get("LOAD_DEST", "duckdb")
    for i, arg in enumerate(args):
        if arg == "--dest" and i + 1 < len(args):
            target = args[i + 1]
        elif arg.startswith("--dest="):
            target = arg.split("=", 1)[1]
    counts = dbt_build(target)
    summary = f"load stored {rows} rows; dbt build: " + ", ".join(
        f"{n} {status}" for status, n in sorted(counts.items())
    )
    if counts.get("fail") or counts.get("error"):
        raise StepFailed(summary)
    return summary


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--serve"]:
        every = int(os.environ.get("IOT_FLOW_EVERY", "300"))
        # Ctrl-C becomes the SIGTERM on which Prefect's runner stops gracefully
        # (in-flight runs cancelled, then the loop ends). A KeyboardInterrupt instead
        # lands wherever the loop happens to be, and was seen swallowed there: the
        # runner went on starting runs every few seconds.
        signal.signal(signal.SIGINT, lambda *_: signal.raise_signal(signal.SIGTERM))
        # One run at a time: a run falling due while the last one still loads or
        # builds waits for it, rather than fighting it for the DuckDB file.
        pipeline.serve(
            name="iot-pipeline", interval=every, parameters={"load_args": args[1:]}, limit=1
        )
        return
    state = pipeline(args, return_state=True)
    # What the flow returned, or the exception that failed it.
    print(f"iot-pipeline: {state.name}: {state.result(raise_on_failure=False)}")
    sys.exit(0 if state.is_completed() else 1)


if __name__ == "__main__":
    main()
