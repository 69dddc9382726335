"""Benchmark: loading the bundled market data (targets: 8 h symbol < 100 ms; BTC 1 h < 300 ms, < 50 MB).

Cold-ish: a fresh Python process per measurement (imports done first, then one timed load; the OS
file cache is warm after the first run, so this is "fresh process", not "cold disk"). Warm: the
median of repeated loads in one process. Memory: ``DataFrame.memory_usage(deep=True)`` of bars +
funding, and the resident-set growth of the process across the load.

Run: ``.venv/bin/python bench/bench_load.py``. Prints one line per figure.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

CASES = [("BTCUSDT", "8h", 100.0, None), ("SOLUSDT", "8h", 100.0, None), ("BTCUSDT", "1h", 300.0, 50.0)]

CHILD = r"""
import json, os, resource, sys, time
def rss_mb():
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
import pandas, pyarrow.parquet  # noqa: F401  (the heavy imports every caller pays once)
from perphedge.data.bundled import load_bundled
t1 = time.perf_counter()
before = rss_mb()
t2 = time.perf_counter()
market = load_bundled(sys.argv[1], sys.argv[2])
t3 = time.perf_counter()
after = rss_mb()
frame_mb = (market.bars.memory_usage(deep=True).sum() + market.funding.memory_usage(deep=True).sum()) / 2**20
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_ms": (t3 - t2) * 1e3, "rss_delta_mb": after - before,
                  "frame_mb": frame_mb, "bars": len(market.bars), "settlements": len(market.funding)}))
"""


def cold(symbol: str, timeframe: str, runs: int = 5) -> list[dict[str, float]]:
    out = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, symbol, timeframe], capture_output=True, text=True, check=True
        )
        out.append(json.loads(done.stdout))
    return out


def warm(symbol: str, timeframe: str, runs: int = 20) -> float:
    from perphedge.data.bundled import load_bundled

    load_bundled(symbol, timeframe)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        load_bundled(symbol, timeframe)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    from perphedge.data.bundled import market_dir

    size_mb = sum(p.stat().st_size for p in market_dir().rglob("*") if p.is_file()) / 2**20
    print(f"bundled market data installed size: {size_mb:.1f} MiB")
    for symbol, timeframe, target_ms, target_mb in CASES:
        runs = cold(symbol, timeframe)
        load = statistics.median(r["load_ms"] for r in runs)
        imports = statistics.median(r["import_ms"] for r in runs)
        rss = statistics.median(r["rss_delta_mb"] for r in runs)
        frame = runs[0]["frame_mb"]
        warm_ms = warm(symbol, timeframe)
        verdict = (
            "ok"
            if load < target_ms and (target_mb is None or (frame < target_mb and rss < target_mb))
            else "OVER TARGET"
        )
        print(
            f"{symbol} {timeframe}: {runs[0]['bars']:,} bars + {runs[0]['settlements']:,} settlements | "
            f"fresh process: load {load:.1f} ms (median of {len(runs)}; imports {imports:.0f} ms before it) | "
            f"warm: {warm_ms:.1f} ms | frame {frame:.2f} MiB (deep) | RSS +{rss:.1f} MiB | "
            f"target < {target_ms:.0f} ms{'' if target_mb is None else f', < {target_mb:.0f} MiB'}: {verdict}"
        )


if __name__ == "__main__":
    main()
