"""perphedge: plan, backtest, scan and run spot + perpetual funding-rate hedges.

The package is layered (imports only point downwards):

    cli ─► keeper, scan, report, engine, data, venues, strategies, mechanics
    mechanics   pure formulas: funding, margin brackets, liquidation, PnL, the hedge plan
    data        load, validate and cache market data (bundled Parquet, ccxt downloads, imports)
    venues      the exchange edge (ccxt) and the paper exchange, behind one port
    strategies  decide only: a target hedge from what is known now
    engine      simulate only: the backtest loop and its ledger
    scan        the carry scanner
    keeper      run a hedge on paper or live, with its SQLite journal
    report      metrics and the self-contained HTML report
"""

from perphedge.errors import (
    ConfigError,
    DataError,
    InputError,
    InsufficientFunds,
    KeeperHalted,
    MarginError,
    OrderRejected,
    PerphedgeError,
    UnknownSymbolError,
    VenueError,
    VenueUnavailable,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "InputError",
    "InsufficientFunds",
    "KeeperHalted",
    "MarginError",
    "OrderRejected",
    "PerphedgeError",
    "UnknownSymbolError",
    "VenueError",
    "VenueUnavailable",
    "__version__",
]
