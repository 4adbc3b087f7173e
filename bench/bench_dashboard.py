"""How long the dashboard's data takes over 100,000 runs (server/ops/dashboard.py, issue 17).

Runs are written straight into a lineage file (30 days, 26 s apart, a third of them on a second profile),
then `dashboard_data` is timed by hour (723 buckets) and by day, median of --repeats, with the load
average beside it: run it on an idle machine.
Usage: python bench/bench_dashboard.py [--runs 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_dashboard import fill_runs

from deskpilot.server.lineage import LineageStore
from deskpilot.server.ops.dashboard import dashboard_data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    base = datetime(2026, 3, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as folder:
        store = LineageStore(Path(folder) / "deskpilot.db")
        fill_runs(store, args.runs, base)
        for bucket in ("hour", "day"):
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                data = dashboard_data(store, base, bucket)  # type: ignore[arg-type]
                times.append(time.perf_counter() - started)
            print(
                f"dashboard_data over {args.runs:,} runs by {bucket} ({len(data.latency)} buckets): "
                f"median {statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms "
                f"(load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)"
            )
        store.close()


if __name__ == "__main__":
    main()
