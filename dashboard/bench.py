"""How long the dashboard's pages take to ask what they show, on a big file.

    scripts/bench-dashboard.sh          (makes a 5,000,000-event file first)
    python dashboard/bench.py FILE [ROUNDS]

Each page's questions are asked as the app asks them on a refresh with a cold
cache: every question opens the file read-only, runs, and closes it. Prints,
per page, the fastest and the median of ROUNDS (default 5) refreshes, the rows
that reach the page, and the process's peak memory at the end.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from iot_dashboard import queries, sources  # noqa: E402


def pages(source: sources.DuckDbSource) -> dict[str, list]:
    """What each page asks, as app.py asks it (the Trips page: of the first trip)."""
    first_trip = queries.trips(source)["trip_id"].iloc[0]
    return {
        "Fleet map": [
            (queries.overview,),
            (queries.latest_positions,),
            (queries.tracks,),
            (queries.cameras,),
            (queries.incidents,),
        ],
        "Trips": [
            (queries.trips,),
            (queries.trip_series, first_trip),
            (queries.trip_cameras, first_trip),
        ],
        "Incidents": [(queries.incidents,)],
        "Weather": [(queries.weather,)],
        "Pipeline health": [
            (queries.loads,),
            (queries.dead_letters_by_reason,),
            (queries.newest_dead_letters,),
            (queries.stored_offsets,),
        ],
    }


def main() -> None:
    path = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    source = sources.DuckDbSource(path)
    (events,) = source.query("SELECT sum(next_offset) AS events FROM {s}._kafka_offsets").iloc[0]
    print(f"{path}: {int(events):,} events, {path.stat().st_size / 2**20:,.0f} MiB")
    print(f"{'page':<16} {'fastest':>9} {'median':>9} {'rows shown':>11}")
    total = [0.0] * rounds
    for page, questions in pages(source).items():
        times = []
        for r in range(rounds):
            started = time.perf_counter()
            shown = sum(len(question(source, *args)) for question, *args in questions)
            times.append(time.perf_counter() - started)
            total[r] += times[-1]
        print(
            f"{page:<16} {min(times) * 1000:>7.0f}ms {statistics.median(times) * 1000:>7.0f}ms "
            f"{shown:>11,}"
        )
    print(
        f"{'every page':<16} {min(total) * 1000:>7.0f}ms {statistics.median(total) * 1000:>7.0f}ms"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:,.0f} MB")


if __name__ == "__main__":
    main()
