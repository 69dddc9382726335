"""Speed of the download cache: write, merge, list and load six years of real hourly Binance data.

The cache is filled from the bundled real BTCUSDT hourly history (perp, spot, mark close, funding),
laid out exactly as ``perphedge data fetch`` writes it. Also times the paging loop per page on a
real ccxt Binance object replaying a recorded klines page (tests/fixtures/ccxt, MIT). Prints figures;
no assertion. Run: .venv/bin/python bench/bench_cache.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.kit (the replay kit)

from perphedge.data import cache as c  # noqa: E402
from perphedge.data.bundled import load_bundled  # noqa: E402
from perphedge.venues import history as h  # noqa: E402


def timed(fn, runs: int = 7) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, min(samples) * 1000


def write_cache(market, root: Path) -> Path:
    directory = c.market_cache_dir(root, "binance", "BTCUSDT")
    ts = market.bars.index.as_unit("ms").asi8.astype(np.int64)
    for leg in ("perp", "spot"):
        frame = pd.DataFrame({c.BAR_TS_COLUMN: ts})
        for col in ("open", "high", "low", "close"):
            frame[col] = market.bars[f"{leg}_{col}"].to_numpy()
        frame["volume"] = market.bars[f"{leg}_volume_base"].to_numpy()
        c.write_parquet_atomic(frame, directory / c.bars_file_name(leg, "1h"))
    mark = pd.DataFrame(
        {
            c.BAR_TS_COLUMN: ts,
            "open": np.nan,
            "high": np.nan,
            "low": np.nan,
            "close": market.bars["mark_close"].to_numpy(),
            "volume": np.nan,
        }
    )
    c.write_parquet_atomic(mark, directory / c.bars_file_name("mark", "1h"))
    funding = pd.DataFrame(
        {
            c.SETTLE_TS_COLUMN: market.funding.index.as_unit("ms").asi8.astype(np.int64),
            "rate_per_interval": market.funding["rate_per_interval"].to_numpy(),
            "mark_price": market.funding["mark_price"].to_numpy(),
        }
    )
    c.write_parquet_atomic(funding, directory / c.FUNDING_NAME)
    c.write_json_atomic(
        {
            "format": 1,
            "exchange": "binance",
            "ccxt_symbol": "BTC/USDT:USDT",
            "market_id": "BTCUSDT",
            "spot_symbol": "BTC/USDT",
            "datasets": {},
        },
        directory / c.META_NAME,
    )
    return directory


def main() -> None:
    market = load_bundled("BTCUSDT", "1h")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ms, best = timed(lambda: write_cache(market, root), runs=3)
        directory = root / "binance" / "BTCUSDT"
        size_mb = sum(p.stat().st_size for p in directory.iterdir()) / 1e6
        print(
            f"bars: {len(market.bars):,} hourly, funding: {len(market.funding):,} settlements "
            f"({market.bars.index[0]:%Y-%m-%d} … {market.bars.index[-1]:%Y-%m-%d})"
        )
        print(
            f"write whole cache (4 Parquet files, atomic):  median {ms:7.1f} ms  (min {best:.1f}), "
            f"{size_mb:.2f} MB on disk"
        )

        perp_path = directory / c.bars_file_name("perp", "1h")
        old = pd.read_parquet(perp_path)
        again = old.tail(1000)  # a re-download of the newest 1000 bars (same real rows)

        def merge_and_write() -> None:
            merged = c.merge_frames(pd.read_parquet(perp_path), again, c.BAR_TS_COLUMN)
            c.write_parquet_atomic(merged, perp_path)

        ms, best = timed(merge_and_write)
        print(f"incremental merge of 1,000 bars into perp_1h: median {ms:7.1f} ms  (min {best:.1f})")

        ms, best = timed(lambda: c.load_cached("binance", "BTCUSDT", "1h", data_dir=root))
        data = c.load_cached("binance", "BTCUSDT", "1h", data_dir=root)
        frame_mb = (
            data.bars.memory_usage(deep=True).sum() + data.funding.memory_usage(deep=True).sum()
        ) / 1e6
        print(
            f"load_cached (6 y hourly → MarketData):       median {ms:7.1f} ms  (min {best:.1f}), "
            f"frames {frame_mb:.1f} MB"
        )
        ms, best = timed(lambda: c.list_cached(root))
        print(f"list_cached (one market):                    median {ms:7.1f} ms  (min {best:.1f})")

    from tests.kit.ccxt_replay import fixture_body, replay_exchange
    from tests.venues.test_history import binance_window

    rows = fixture_body("binance", "static_response", "fetchOHLCV", 0)
    t0 = rows[0][0]

    ex = replay_exchange("binance", {"/api/v3/klines": binance_window(rows, lambda r: r[0])})

    def page_three_times() -> None:
        h.fetch_ohlcv_history(
            ex,
            "BTC/USDT",
            "1h",
            t0,
            t0 + 3 * 3_600_000,
            plan=h.PagingPlan(direction="forward", page_limit=1),
            sleep=lambda s: None,
        )

    ms, best = timed(page_three_times, runs=15)
    print(
        f"paging loop, replayed Binance klines:        median {ms / 4:7.2f} ms per page (4 pages, "
        "incl. ccxt request building and parsing; network excluded)"
    )


if __name__ == "__main__":
    main()
