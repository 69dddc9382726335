"""Benchmark the backtest engine on the bundled Binance BTCUSDT data; prints its figures.

Targets (issue 4): one strategy over BTC hourly 2020–2026 (~54k bars, ~6.7k settlements) in under 1 s
including loading; all strategies plus buy-and-hold on one symbol's 8-hour data in under 2 s.
Run: ``.venv/bin/python bench/bench_backtest.py``. Figures go to docs/benchmarks.md ("Backtest engine").
"""

from __future__ import annotations

import subprocess
import sys
import time

from perphedge.data.bundled import load_bundled
from perphedge.engine.config import BacktestConfig
from perphedge.engine.loop import run_backtest, run_buy_and_hold
from perphedge.strategies.registry import STRATEGY_NAMES, build_strategy


def _timed(func, *args):  # noqa: ANN001, ANN202
    start = time.perf_counter()
    value = func(*args)
    return value, time.perf_counter() - start


def main() -> None:
    config = BacktestConfig()
    # 1. one strategy over BTC hourly, loading included (first call: cold caches)
    t0 = time.perf_counter()
    hourly = load_bundled("BTCUSDT", "1h")
    t_load = time.perf_counter() - t0
    result, t_run = _timed(run_backtest, hourly, build_strategy("full"), config)
    print(
        f"BTCUSDT 1h: {len(hourly.bars):,} bars, {len(hourly.funding):,} settlements; "
        f"load {t_load:.3f} s + full hedge {t_run:.3f} s = {t_load + t_run:.3f} s (first run)"
    )
    for name in STRATEGY_NAMES:
        options = BacktestConfig().cost_options() if name == "dynamic-neutral" else {}
        best = min(_timed(run_backtest, hourly, build_strategy(name, **options), config)[1] for _ in range(3))
        print(f"  {name:16s} 1h run: best of 3 {best:.3f} s")
    policy = BacktestConfig(
        collateral_policy="sell_spot", trigger_margin_ratio=0.05, target_margin_ratio=0.02
    )
    for name in ("full", "dynamic-neutral"):
        best = min(_timed(run_backtest, hourly, build_strategy(name), policy)[1] for _ in range(3))
        print(f"  {name} + sell_spot policy 1h run (hedged the whole history): best of 3 {best:.3f} s")
    print(f"  ledger rows (full, 1h): {len(result.ledger):,}")

    # 2. compare on 8-hour data: all strategies + buy-and-hold, loading included
    t0 = time.perf_counter()
    eight = load_bundled("ETHUSDT", "8h")
    for name in STRATEGY_NAMES:
        run_backtest(eight, build_strategy(name), config)
    run_buy_and_hold(eight, config)
    t_compare = time.perf_counter() - t0
    print(f"ETHUSDT 8h compare (load + {len(STRATEGY_NAMES)} strategies + buy-and-hold): {t_compare:.3f} s")

    # 3. a fresh process: interpreter start, imports (numpy, pandas), load and one run
    code = (
        "from perphedge.data.bundled import load_bundled;"
        "from perphedge.engine.config import BacktestConfig;"
        "from perphedge.engine.loop import run_backtest;"
        "from perphedge.strategies.registry import build_strategy;"
        "run_backtest(load_bundled('BTCUSDT', '1h'), build_strategy('full'), BacktestConfig())"
    )
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        walls.append(time.perf_counter() - t0)
    print(f"fresh process (start + imports + load 1h + full hedge): best of 3 {min(walls):.3f} s wall")


if __name__ == "__main__":
    main()
