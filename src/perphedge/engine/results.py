"""What a backtest returns: time series, the ledger of every cash flow, events and the attribution.

The ledger is the source of truth: the attribution is the sum of ledger entries by component, so
"components sum to the change in equity" holds by construction and is checked by a property test.
USDT is treated as USD throughout (1 USDT = 1 USD).

``timeseries`` (index ``ts``: tz-aware UTC, one row per bar, at the bar's **close**), float columns:
    equity_usd                 total account value: spot wallet + futures wallet + borrow account
    spot_value_usd             spot coins × spot price (negative when short via borrow)
    perp_value_usd             futures wallet balance + unrealised PnL, in USD
    cash_usd                   USD cash in the spot wallet (including any reserve)
    net_exposure_base          spot coins + signed perp coins (linear) / coin-equivalent (inverse)
    net_exposure_pct           net exposure / base quantity (0 = neutral, 1 = 100 % long, 2 = 200 %)
    hedge_ratio                |perp notional| / spot notional (0 when no spot); the spot notional is
                               |spot_value_usd| (linear) or, inverse, the account's coins at the spot
                               price (spot_value_usd + perp_value_usd)
    margin_ratio               maintenance margin / margin balance (Binance's definition; 1 = liquidation)
    liquidation_distance_pct   (liquidation price − mark) / mark; NaN when there is no liquidation price
    cumulative_funding_usd     funding received to date (negative = paid)
    basis_fraction             (perp close − spot close) / spot close
    spot_close, perp_close, mark_close   the prices used
    buy_and_hold_equity_usd    the same initial capital held as spot only (the benchmark)

``ledger`` (one row per cash flow, in time order), columns:
    ts (UTC), kind (trade|fee|slippage|funding|borrow|transfer|liquidation|price_pnl),
    leg (spot|perp|borrow|reserve), component (spot_pnl|perp_pnl|funding|fees|slippage|borrow|
    liquidation|transfer), amount_usd (signed, + = gain to the account), qty_base, price_usd, note.

``attribution`` (USD): spot_pnl_usd, perp_pnl_usd, funding_usd, fees_usd, slippage_usd, borrow_usd,
liquidation_usd; their sum equals final_equity_usd − initial_equity_usd − net external transfers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

ATTRIBUTION_KEYS: tuple[str, ...] = (
    "spot_pnl_usd",
    "perp_pnl_usd",
    "funding_usd",
    "fees_usd",
    "slippage_usd",
    "borrow_usd",
    "liquidation_usd",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestEvent:
    """Something a user must see: a liquidation, a hedge switch, a top-up, a margin call."""

    ts: pd.Timestamp
    kind: str  # liquidation | switch | top_up | rebalance | reduce | withdraw | open | close
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    """The full outcome of one strategy over one market data set."""

    strategy: str
    symbol: str
    exchange: str
    timeframe: str
    settings: dict[str, Any]  # JSON-able: every option that shaped the run
    initial_equity_usd: float
    final_equity_usd: float
    base_qty: float  # the base quantity Q the strategy's fractions refer to
    timeseries: pd.DataFrame
    ledger: pd.DataFrame
    events: tuple[BacktestEvent, ...] = field(default_factory=tuple)
    attribution: dict[str, float] = field(default_factory=dict)
    trades: int = 0
    switches: int = 0
    liquidations: int = 0
    net_transfers_usd: float = 0.0  # external deposits (+) and withdrawals (−): flows, not returns
