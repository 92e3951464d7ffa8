"""How long `samcache --help` takes: what a newcomer waits for before reading anything.

Each command runs in a fresh process (as a user types it), several times; the median is reported,
beside a bare interpreter's start-up on the same machine (the floor no CLI can go under).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 5
COMMANDS = (("python -c pass (interpreter start-up)", ["-c", "pass"]),
            ("samcache --help", ["-m", "samcache", "--help"]),
            ("samcache zero-shot --help", ["-m", "samcache", "zero-shot", "--help"]),
            ("samcache extract --help", ["-m", "samcache", "extract", "--help"]))


def wall_seconds(args: list[str], runs: int = RUNS) -> float:
    """Median wall time of ``python ARGS`` in a new process (the first run warms the page cache and is dropped)."""
    times = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def run() -> list[dict]:
    return [{"benchmark": "cli", "metric": f"{name}, median of {RUNS} (goal < 0.5 s)" if "samcache" in name
             else f"{name}, median of {RUNS}", "value": f"{wall_seconds(args):.2f} s"} for name, args in COMMANDS]


if __name__ == "__main__":
    for row in run():
        print(f"{row['metric']:60s} {row['value']}")
