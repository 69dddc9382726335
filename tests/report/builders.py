"""Named builders of backtest results for the report tests, from the real bundled market data.

``spot_only_result`` holds the capital as spot coins bought at the first bar's open (the unhedged
benchmark) and is computed here from real Binance prices, so metrics and reports can be tested
independently of the engine. Every figure derives from the bundled data: nothing is invented.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from perphedge.data.bundled import load_bundled
from perphedge.data.schema import MarketData
from perphedge.engine.results import BacktestResult


@functools.cache
def btc_8h() -> MarketData:
    """Return the bundled Binance BTCUSDT 8-hour market data (2020–2026)."""
    return load_bundled("BTCUSDT", "8h")


def spot_closes(market: MarketData) -> pd.Series:
    """Return the spot close of each bar indexed at the bar's close time (open + timeframe), in USD."""
    closes = market.bars["spot_close"].astype(float)
    closes.index = market.bars.index + pd.Timedelta(milliseconds=market.timeframe_ms)
    return closes


def spot_only_result(market: MarketData, capital_usd: float = 10_000.0) -> BacktestResult:
    """Return the result of holding ``capital_usd`` of spot bought at the first open, with no fees."""
    qty = capital_usd / float(market.bars["spot_open"].iloc[0])
    closes = spot_closes(market)
    equity = qty * closes
    n = len(closes)
    timeseries = pd.DataFrame(
        {
            "equity_usd": equity,
            "spot_value_usd": equity,
            "perp_value_usd": np.zeros(n),
            "cash_usd": np.zeros(n),
            "net_exposure_base": np.full(n, qty),
            "net_exposure_pct": np.ones(n),
            "hedge_ratio": np.zeros(n),
            "margin_ratio": np.full(n, np.nan),
            "liquidation_distance_pct": np.full(n, np.nan),
            "cumulative_funding_usd": np.zeros(n),
            "basis_fraction": (market.bars["perp_close"].to_numpy() - closes.to_numpy()) / closes.to_numpy(),
            "spot_close": closes.to_numpy(),
            "perp_close": market.bars["perp_close"].to_numpy(),
            "mark_close": market.bars["mark_close"].to_numpy(),
            "buy_and_hold_equity_usd": equity,
        },
        index=closes.index.rename("ts"),
    )
    final = float(equity.iloc[-1])
    ledger = pd.DataFrame(
        {
            "ts": [closes.index[-1]],
            "kind": ["price_pnl"],
            "leg": ["spot"],
            "component": ["spot_pnl"],
            "amount_usd": [final - capital_usd],
            "qty_base": [qty],
            "price_usd": [float(closes.iloc[-1])],
            "note": ["mark-to-market of the spot coins"],
        }
    )
    return BacktestResult(
        strategy="spot buy-and-hold",
        symbol=market.symbol,
        exchange=market.exchange,
        timeframe=market.timeframe,
        settings={"capital_usd": capital_usd, "fees": 0.0},
        initial_equity_usd=capital_usd,
        final_equity_usd=final,
        base_qty=qty,
        timeseries=timeseries,
        ledger=ledger,
        attribution={"spot_pnl_usd": final - capital_usd},
    )
