"""dbt beside `load` and the dashboard on a large file: how long dbt's builds hold
the DuckDB file, and what a cron `load` and the dashboard meet meanwhile.

    scripts/bench-dbt.sh              (makes the 5,000,000-event file first)
    python analytics/bench.py FILE    with a broker at BROKER_BOOTSTRAP

On a copy of FILE: a first, full `dbt build`; then new events on topics of their
own, loaded; then an incremental `dbt build`, once it holds the file, a cron `load`
(default --lock-timeout, 30 s) of more events is started, while a reader asks
the file every 0.1 s as the dashboard does (read-only, open and close). Prints
each build's time, the longest the file stayed held for a reader, and the cron
load's exit status, its time, and whether every message sent reached the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/iot-streaming/target"))
BROKER = os.environ["BROKER_BOOTSTRAP"]
FLAGS = ["--vehicle-topic", "--gps-topic", "--traffic-topic", "--weather-topic"]


def topics() -> list[str]:
    prefix = "bench" + uuid.uuid4().hex[:8]
    names = ["vehicle", "gps", "traffic", "weather", "emergency"]
    out = []
    for flag, name in zip([*FLAGS, "--emergency-topic"], names, strict=True):
        out += [flag, f"{prefix}.{name}"]
    return out


def simulate(named: list[str], seed: int, events: int) -> None:
    subprocess.run(
        [BIN / "release" / "simulate", "--from", "Potsdam", "--to", "Leipzig"]
        + ["--vehicles", "20", "--seed", str(seed), "--speed", "max"]
        + ["--max-events", str(events), "--progress", "false", "--bootstrap-servers", BROKER]
        + named,
        check=True,
        capture_output=True,
    )


def load(path: Path, named: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [BIN / "release" / "load", "--duckdb-file", str(path), "--progress", "false"]
        + ["--bootstrap-servers", BROKER, "--group-id", "bench-" + named[1], *named],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def dbt_build(path: Path, workdir: Path, *args: str) -> float:
    """Runs `dbt build ARGS` on `path`; returns its time, and prints how much of it
    went to models and how much to tests (dbt's run_results.json)."""
    started = time.monotonic()
    subprocess.run(
        [REPO / "scripts" / "dbt.sh", "build", *args, "--target-path", str(workdir / "target")]
        + ["--log-path", str(workdir)],
        env={**os.environ, "DUCKDB_FILE": str(path), "DATASET_NAME": "iot_stream"},
        check=True,
        capture_output=True,
    )
    took = time.monotonic() - started
    spent = {"model": 0.0, "test": 0.0}
    for node in json.loads((workdir / "target" / "run_results.json").read_text())["results"]:
        spent[node["unique_id"].split(".")[0]] += node["execution_time"]
    print(f"  of which models {spent['model']:.1f} s, tests {spent['test']:.1f} s")
    return took


class Reader(threading.Thread):
    """Asks the file every 0.1 s as the dashboard does; notes the longest time it
    stayed held (each failed open counts from the last successful one)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.stop, self.longest, self.refused = path, threading.Event(), 0.0, 0

    def run(self) -> None:
        since = None
        while not self.stop.is_set():
            try:
                duckdb.connect(str(self.path), read_only=True).close()
                if since is not None:
                    self.longest = max(self.longest, time.monotonic() - since)
                since = None
            except duckdb.IOException:
                self.refused += 1
                since = since or time.monotonic()
            time.sleep(0.1)
        if since is not None:
            self.longest = max(self.longest, time.monotonic() - since)


def stored(path: Path, named: list[str]) -> int:
    tables = ["vehicle_data", "gps_data", "traffic_data", "weather_data", "emergency_data"]
    names = ", ".join(f"'{t}'" for t in named[1::2])
    with duckdb.connect(str(path), read_only=True) as c:
        rows = sum(
            c.execute(
                f"SELECT count(*) FROM iot_stream.{t} WHERE _kafka_topic IN ({names})"
            ).fetchone()[0]
            for t in tables
        )
        dead = c.execute(
            f"SELECT count(*) FROM iot_stream._dead_letters WHERE topic IN ({names})"
        ).fetchone()[0]
    return rows + dead


def sent(named: list[str]) -> int:
    total = 0
    for topic in named[1::2]:
        out = subprocess.run(
            [REPO / "scripts" / "broker.sh", "kafka-get-offsets", "--bootstrap-server", BROKER]
            + ["--topic", topic],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        total += sum(int(line.rsplit(":", 1)[1]) for line in out.split())
    return total


def main() -> None:
    source = Path(sys.argv[1])
    work = Path(tempfile.mkdtemp(prefix="iot-bench-dbt-"))
    try:
        path = work / "fleet.duckdb"
        shutil.copyfile(source, path)
        with duckdb.connect(str(path), read_only=True) as c:
            events = c.execute("SELECT sum(next_offset) FROM iot_stream._kafka_offsets").fetchone()
        print(f"{source}: {int(events[0]):,} events, {path.stat().st_size / 2**20:,.0f} MiB")
        full = dbt_build(path, work, "--full-refresh")
        print(f"full dbt build (models and tests):          {full:6.1f} s")

        named = topics()
        simulate(named, seed=11, events=20_000)
        loaded = load(path, named)
        assert loaded.wait() == 0, loaded.stderr.read()
        simulate(named, seed=12, events=20_000)
        reader = Reader(path)
        reader.start()
        times: list[float] = []
        # Without the lookback: every row of this file was stored minutes ago, so
        # the 30 minutes an incremental run looks back would take them all in. In
        # a pipeline running every few minutes it re-reads the last 30 minutes.
        now = ["--vars", "{lookback_minutes: 0}"]
        builds = threading.Thread(target=lambda: times.append(dbt_build(path, work, *now)))
        builds.start()
        while not reader.refused and builds.is_alive():  # until dbt holds the file
            time.sleep(0.05)
        started = time.monotonic()
        cron = load(path, named)
        status = cron.wait()
        waited = time.monotonic() - started
        builds.join()
        reader.stop.set()
        reader.join()
        print(f"incremental dbt build (20,000 new events):  {times[0]:6.1f} s")
        print(f"longest the file was held for a reader:     {reader.longest:6.1f} s")
        print(f"cron load started during it: exit {status}, {waited:.1f} s")
        print(f"  every message sent is in the file once: {stored(path, named) == sent(named)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
