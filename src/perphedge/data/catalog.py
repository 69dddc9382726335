"""One place to find market data: the bundled history, then imported files, then the download cache.

``load_market`` is what the backtest, the scanner and the CLI call; ``list_datasets`` feeds
``perphedge data list``. Bundled data comes with the package; imported data is what
``perphedge data import`` stored under ``<data_dir>/import/``; cached data is what
``perphedge data fetch`` downloaded (``perphedge.data.cache``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from perphedge.data import bundled, cache
from perphedge.data.schema import TIMEFRAME_MS, DatasetInfo, MarketData
from perphedge.errors import InputError, UnknownSymbolError
from perphedge.units import parse_utc

SOURCES: tuple[str, ...] = ("auto", "bundled", "import", "cache")

TimeBound = str | datetime | pd.Timestamp | None


def default_data_dir() -> Path:
    """Return the data directory used when none is given: ``$PERPHEDGE_DATA_DIR``, else the platform cache dir.

    The one environment read outside ``cli/``, kept here on purpose: library callers that pass no
    ``data_dir`` (the backtest command, scripts) find the same cached and imported data as
    ``perphedge data fetch|import|list``, whose ``--data-dir`` option reads the same variable. Pass
    ``data_dir`` explicitly to ignore the environment. Defined in :func:`perphedge.data.cache.default_data_dir`.
    """
    return cache.default_data_dir()


def _resolve_data_dir(data_dir: Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def to_utc_timestamp(bound: TimeBound, name: str) -> pd.Timestamp | None:
    """Return a tz-aware UTC Timestamp for a start/end given as ISO text, datetime or Timestamp.

    Text without an offset is read as UTC (as the CLI documents); a naive datetime is refused.
    """
    if bound is None:
        return None
    if isinstance(bound, str):
        return pd.Timestamp(parse_utc(bound))
    stamp = pd.Timestamp(bound)
    if stamp.tzinfo is None:
        raise InputError(f"{name} {bound!r} has no timezone; give it in UTC (e.g. '2024-01-01T00:00Z')")
    return stamp.tz_convert("UTC")


def window_market(market: MarketData, start: TimeBound = None, end: TimeBound = None) -> MarketData:
    """Return the bars opening in [start, end) and the settlements that belong to them.

    A settlement belongs to the bar that opened before it, and Binance's ``fundingTime`` is a few ms
    late (00:00:00.002): so settlements are kept in (start, end] compared with
    ``SETTLEMENT_JITTER_TOLERANCE_MS`` of slack — the 00:00:00.002 settlement at ``start`` belongs to the
    bar before the window, the one at ``end`` + 2 ms to the window's last bar.

    Raises:
        InputError: if end is not after start, or no bar opens in the window.
    """
    start_ts = to_utc_timestamp(start, "start")
    end_ts = to_utc_timestamp(end, "end")
    if start_ts is None and end_ts is None:
        return market
    if start_ts is not None and end_ts is not None and end_ts <= start_ts:
        raise InputError(f"end {end_ts.isoformat()} must be after start {start_ts.isoformat()}")
    windowed = market.between(start_ts, end_ts)
    bars = windowed.bars
    if bars.empty:
        first, last = market.bars.index[0], market.bars.index[-1]
        window = f"from {start_ts.isoformat()}" if start_ts is not None else ""
        if end_ts is not None:
            window += f"{' ' if window else ''}before {end_ts.isoformat()}"
        raise InputError(
            f"no {market.symbol} {market.timeframe} bars open {window}; "
            f"the data covers {first.isoformat()} … {last.isoformat()} (bar open times): choose dates inside it"
        )
    return windowed


def load_market(
    symbol: str,
    *,
    timeframe: str = "8h",
    exchange: str = "binance",
    data_dir: Path | None = None,
    start: TimeBound = None,
    end: TimeBound = None,
    source: str = "auto",
) -> MarketData:
    """Return the market data of ``symbol`` on ``exchange`` at ``timeframe``, optionally windowed.

    Looks in the bundled history first (Binance only), then in imported data, then in the download
    cache, unless ``source`` names one of them ("bundled", "import", "cache"). ``start``/``end`` keep
    the bars opening in [start, end) and their settlements (``window_market``: (start, end] with
    the ms jitter of ``fundingTime`` allowed for).

    Raises:
        UnknownSymbolError: if no source has the symbol (the message lists what exists).
        InputError: on an unknown source or timeframe, or an empty window.
    """
    if source not in SOURCES:
        raise InputError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    if timeframe not in TIMEFRAME_MS:
        raise InputError(f"timeframe {timeframe!r} is not one of {', '.join(TIMEFRAME_MS)}")
    exchange = exchange.lower()
    tried: list[str] = []
    if source in ("auto", "bundled") and exchange == bundled.BUNDLED_EXCHANGE:
        if timeframe in bundled.BUNDLED_TIMEFRAMES and bundled.to_bundled_symbol(
            symbol
        ) in bundled.bundled_symbols(timeframe):
            return window_market(bundled.load_bundled(symbol, timeframe), start, end)
        if source == "bundled":
            bundled.load_bundled(symbol, timeframe)  # raises the precise error
        tried.append("bundled")
    resolved_dir = _resolve_data_dir(data_dir)
    if source in ("auto", "import"):
        from perphedge.data import importers

        market = importers.load_imported(exchange, symbol, timeframe, resolved_dir)
        if market is not None:
            return window_market(market, start, end)
        tried.append(f"import ({resolved_dir / 'import'})")
    if source in ("auto", "cache"):
        try:
            return window_market(cache.load_cached(exchange, symbol, timeframe, resolved_dir), start, end)
        except UnknownSymbolError:
            tried.append(f"cache ({resolved_dir})")
    known = sorted({f"{d.exchange}:{d.symbol}" for d in list_datasets(data_dir) if d.timeframe == timeframe})
    raise UnknownSymbolError(
        f"{exchange}:{symbol}",
        known=known,
        hint=f"looked at {timeframe} in {', '.join(tried) or 'nothing'}; download it with "
        f"perphedge data fetch --exchange {exchange} --symbol … --timeframe {timeframe} or import it "
        "with perphedge data import",
    )


def list_datasets(data_dir: Path | None = None) -> list[DatasetInfo]:
    """Return every data set that can be loaded offline: bundled, imported and cached."""
    out = list(bundled.list_bundled())
    resolved_dir = _resolve_data_dir(data_dir)
    from perphedge.data import importers

    out.extend(importers.list_imported(resolved_dir))
    out.extend(cache.list_cached(resolved_dir))
    return out
