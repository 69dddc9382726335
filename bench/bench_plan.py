"""Wall time of ``perphedge plan`` as a user runs it: a fresh process each time (imports included).

Target (issue 2): under 0.5 s. Prints the median, min and max over repeated runs; no assertion.
Run: .venv/bin/python bench/bench_plan.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 15
PERPHEDGE = Path(sys.executable).parent / "perphedge"
CASES = {
    "plan table (linear, bundled brackets)": ["plan", "--spot-qty", "1", "--price", "60000"],
    "plan --json (linear)": ["plan", "--spot-qty", "1", "--price", "60000", "--json"],
    "plan --json (inverse, --mmr)": [
        "plan",
        "--spot-qty",
        "1",
        "--price",
        "60000",
        "--contract",
        "inverse",
        "--mmr",
        "0.004",
        "--json",
    ],
    "--help": ["--help"],
}


def wall_seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(PERPHEDGE), *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    print(f"perphedge plan wall time, {RUNS} fresh processes per case (target < 0.5 s)")
    for name, args in CASES.items():
        wall_seconds(args)  # warm the OS file cache once
        times = [wall_seconds(args) for _ in range(RUNS)]
        print(
            f"{name:40s} median {statistics.median(times):.3f} s   min {min(times):.3f} s   max {max(times):.3f} s"
        )


if __name__ == "__main__":
    main()
