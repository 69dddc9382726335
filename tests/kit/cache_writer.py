"""Write real (bundled) market data into the download cache's layout, for tests of cached-data paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perphedge.data.schema import MarketData


def write_cache(market: MarketData, root: Path, *, exchange: str = "binance", market_id: str = "BTCUSDT",
                ccxt_symbol: str = "BTC/USDT:USDT") -> None:
    """Store ``market`` (real bundled data) under ``root`` as ``perphedge data fetch`` would."""
    from perphedge.data import cache as c

    directory = c.market_cache_dir(root, exchange, market_id)
    ts = market.bars.index.as_unit("ms").asi8.astype(np.int64)
    for leg in ("perp", "spot"):
        frame = pd.DataFrame({c.BAR_TS_COLUMN: ts})
        for col in ("open", "high", "low", "close"):
            frame[col] = market.bars[f"{leg}_{col}"].to_numpy()
        frame["volume"] = market.bars[f"{leg}_volume_base"].to_numpy()
        c.write_parquet_atomic(frame, directory / c.bars_file_name(leg, market.timeframe))
    funding = pd.DataFrame(
        {
            c.SETTLE_TS_COLUMN: market.funding.index.as_unit("ms").asi8.astype(np.int64),
            "rate_per_interval": market.funding["rate_per_interval"].to_numpy(),
            "mark_price": market.funding["mark_price"].to_numpy(),
        }
    )
    c.write_parquet_atomic(funding, directory / c.FUNDING_NAME)
    meta = {"format": 1, "exchange": exchange, "ccxt_symbol": ccxt_symbol, "market_id": market_id, "datasets": {}}
    c.write_json_atomic(meta, directory / c.META_NAME)
