"""The canonical in-memory form of market data: one ``MarketData`` per (exchange, symbol, timeframe).

Bar alignment (the rule every layer relies on):
- A price bar is labelled by its **open** time (UTC). The bar labelled T covers [T, T + timeframe).
- Funding is a list of **settlement events** at their exact times, never a rate forward-filled
  onto bars. The funding settled at time S belongs to the **end** of the bar that opened before S:
  with 8-hour bars opening at 00/08/16 UTC, the settlement at 08:00 is paid at the end of the bar
  that opened at 00:00 (and before anything decided on the 08:00 bar's open).
- A position is charged at S if it is open at S (Binance: positions open at the funding timestamp).

Frames (pandas, tz-aware UTC ``DatetimeIndex`` named ``ts``, strictly increasing, no duplicates):

``bars`` (index = bar open time), float64 columns:
    spot_open, spot_high, spot_low, spot_close            spot last-trade OHLC in USD(T) per coin
    perp_open, perp_high, perp_low, perp_close            perpetual last-trade OHLC
    mark_close                                            perp mark price at the bar's close (NaN when unknown)
    spot_volume_base, perp_volume_base                    volumes in coins (NaN when unknown)
  Optional: mark_open, mark_high, mark_low (mark OHLC when the source has it).

``funding`` (index = settlement time, exact to the millisecond), columns:
    rate_per_interval   float64  the settled rate, a decimal fraction (0.0001 = 0.01 %)
    interval_hours      float64  the interval this settlement covers (inferred from spacing)
    mark_price          float64  mark price at the settlement (NaN when unknown)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from perphedge.errors import DataError

BAR_COLUMNS: tuple[str, ...] = (
    "spot_open",
    "spot_high",
    "spot_low",
    "spot_close",
    "perp_open",
    "perp_high",
    "perp_low",
    "perp_close",
    "mark_close",
    "spot_volume_base",
    "perp_volume_base",
)
OPTIONAL_BAR_COLUMNS: tuple[str, ...] = ("mark_open", "mark_high", "mark_low")
FUNDING_COLUMNS: tuple[str, ...] = ("rate_per_interval", "interval_hours", "mark_price")

TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "8h": 28_800_000,
    "1d": 86_400_000,
}


def time_index(table: pd.DataFrame | pd.Series, what: str) -> pd.DatetimeIndex:
    """Return the index of ``table`` as the ``DatetimeIndex`` the frames above are indexed by.

    Raises:
        DataError: the index is not a DatetimeIndex (``what`` names the table in the message).
    """
    index = table.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"the index must be a DatetimeIndex of UTC times; it was {type(index).__name__}", where=what
        )
    return index


def utc_index_from_ms(ts_ms: np.ndarray) -> pd.DatetimeIndex:
    """Return the canonical ``ts`` index (tz-aware UTC, millisecond resolution) of epoch-ms times."""
    return pd.DatetimeIndex(np.asarray(ts_ms, dtype=np.int64).astype("datetime64[ms]"), name="ts").tz_localize(
        "UTC"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketData:
    """Price bars and funding settlements for one symbol on one exchange.

    ``symbol`` is the exchange-native id used for bundled data (``BTCUSDT``); ``ccxt_symbol`` is the
    unified perp symbol (``BTC/USDT:USDT``). ``source`` says where the data came from (bundled,
    cache, import) for ``perphedge data list``.
    """

    exchange: str
    symbol: str
    ccxt_symbol: str
    timeframe: str
    bars: pd.DataFrame
    funding: pd.DataFrame
    source: str = "bundled"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def timeframe_ms(self) -> int:
        """Return the bar length in milliseconds."""
        return TIMEFRAME_MS[self.timeframe]

    @property
    def has_mark_ohlc(self) -> bool:
        """Return True when the bars carry mark-price high/low (else liquidation uses perp high/low)."""
        return all(c in self.bars.columns for c in OPTIONAL_BAR_COLUMNS) and bool(
            self.bars["mark_high"].notna().any()
        )

    def between(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> MarketData:
        """Return the bars opening in [start, end) and the settlements that belong to them.

        A settlement belongs to the bar that opened before it, and exchanges stamp settlements a few
        milliseconds late (Binance ``fundingTime`` 16:00:00.001). So settlements are kept in
        (start, end] with ``SETTLEMENT_JITTER_TOLERANCE_MS`` of slack: the one stamped at
        ``start`` + 2 ms belongs to the bar before the window, the one at ``end`` + 2 ms to the
        window's last bar.
        """
        from perphedge.mechanics.funding import SETTLEMENT_JITTER_TOLERANCE_MS

        slack = pd.Timedelta(milliseconds=SETTLEMENT_JITTER_TOLERANCE_MS)
        bars = self.bars
        funding = self.funding
        if start is not None:
            bars = bars[bars.index >= start]
            funding = funding[funding.index > start + slack]
        if end is not None:
            bars = bars[bars.index < end]
            funding = funding[funding.index <= end + slack]
        return replace(self, bars=bars, funding=funding)


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetInfo:
    """One line of ``perphedge data list``: a data set that can be loaded offline."""

    exchange: str
    symbol: str
    timeframe: str
    first_bar: pd.Timestamp | None
    last_bar: pd.Timestamp | None
    bars: int
    funding_settlements: int
    source: str  # "bundled" or "cache:<path>" or "import:<path>"
