"""Time ``perphedge compare`` on the bundled BTCUSDT data: load, run, metrics, report, and the whole CLI.

Target (issue 4): compare on one symbol's 8-hour data in under 2 s. Prints one line per figure
(median of ``REPEATS`` runs); record them in docs/benchmarks.md. Run: ``.venv/bin/python bench/bench_compare.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPEATS = 5
PERPHEDGE = Path(sys.executable).parent / "perphedge"


def median_seconds(work: Callable[[], Any], repeats: int = REPEATS) -> tuple[float, Any]:
    """Return the median wall time of ``work()`` over ``repeats`` runs and the last result."""
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    from perphedge.cli.backtest_cmd import run_comparison
    from perphedge.data.catalog import load_market
    from perphedge.engine.config import BacktestConfig
    from perphedge.report.html import render_compare_report
    from perphedge.report.metrics import calc_summary

    config = BacktestConfig()
    for timeframe in ("8h", "1h"):
        repeats = REPEATS if timeframe == "8h" else 2
        load_s, market = median_seconds(lambda tf=timeframe: load_market("BTCUSDT", timeframe=tf), repeats)
        run_s, results = median_seconds(lambda m=market: run_comparison(m, config), repeats)
        summary_s, _ = median_seconds(lambda r=results: [calc_summary(x) for x in r], repeats)
        report_s, page = median_seconds(
            lambda r=results, m=market: render_compare_report(r, market=m), repeats
        )
        print(
            f"BTCUSDT {timeframe}: {len(market.bars):,} bars, {len(market.funding):,} settlements, "
            f"{len(results)} runs (5 strategies + spot)"
        )
        print(f"  load_market            {load_s:7.3f} s")
        print(f"  run_comparison         {run_s:7.3f} s")
        print(f"  calc_summary x{len(results)}        {summary_s:7.3f} s")
        print(f"  render_compare_report  {report_s:7.3f} s  ({len(page) / 1e6:.1f} MB of HTML)")
        print(f"  library total          {load_s + run_s + summary_s:7.3f} s without the report")

    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("--json", ["--json"]), ("--report", ["--report", f"{tmp}/compare.html"])):
            cli_s, _ = median_seconds(
                lambda extra=extra: subprocess.run(
                    [str(PERPHEDGE), "compare", "--symbol", "BTCUSDT", *extra],
                    check=True,
                    capture_output=True,
                ),
                3,
            )
            print(
                f"CLI perphedge compare --symbol BTCUSDT {label:9s} {cli_s:7.3f} s wall (process start included)"
            )
    help_s, _ = median_seconds(
        lambda: subprocess.run([str(PERPHEDGE), "--help"], check=True, capture_output=True), 3
    )
    print(f"CLI perphedge --help                            {help_s:7.3f} s wall")


if __name__ == "__main__":
    main()
