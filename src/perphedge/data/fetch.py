"""Download a perpetual's history through ccxt into the local cache, incrementally.

``fetch_to_cache`` downloads, for one perpetual market: funding settlements, perp bars, the matching
spot market's bars, mark-price bars (where the exchange offers them) and leverage tiers (where they
can be had without or with API keys), and merges them into the cache (:mod:`perphedge.data.cache`).

Incremental: each data set is kept as one contiguous range of rows. A later fetch downloads only
what is missing: from the newest cached timestamp on (that row is downloaded again, so a bar that
was still open is replaced by its final values), and the stretch before the oldest cached row when
the requested start is earlier than any start already downloaded. Each data set is merged in memory
and written whole and atomically once all its pages have arrived, so an interrupted fetch leaves the
previous files intact and the next fetch resumes from them.

After the download the cached data set is loaded as a backtest would load it and checked with
:func:`perphedge.data.validate.validate_market`; what it finds (gaps with their size, NaN prices,
settlement gaps, spot/perp misalignment) is returned as warnings prefixed ``check:``: the data is what
the exchange served, so it is kept and reported, never repaired.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from perphedge.data.cache import (
    BAR_TS_COLUMN,
    FUNDING_NAME,
    LEVERAGE_TIERS_NAME,
    META_FORMAT,
    META_NAME,
    SETTLE_TS_COLUMN,
    bars_file_name,
    funding_frame,
    market_cache_dir,
    merge_frames,
    ohlcv_frame,
    read_meta,
    read_table,
    resolve_data_dir,
    write_json_atomic,
    write_parquet_atomic,
)
from perphedge.data.schema import TIMEFRAME_MS
from perphedge.errors import DataError, InputError, UnknownSymbolError, VenueError
from perphedge.units import ts_ms_to_datetime
from perphedge.venues.ccxt_common import (
    call_with_retries,
    require_capabilities,
    resolve_market,
    spot_symbol_for,
)
from perphedge.venues.history import (
    ProgressCallback,
    fetch_funding_rate_history,
    fetch_leverage_tiers_for,
    fetch_ohlcv_history,
)

Range = tuple[int, int | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetFetch:
    """What one fetch did to one cached data set (``funding``, ``perp_1h``, ``spot_1h``, ``mark_1h``).

    ``ranges`` are the [since, until] windows downloaded (UTC ms, inclusive; until None = up to the
    newest); ``rows_downloaded`` counts rows received (including the re-downloaded newest row);
    ``rows_added`` the rows the file gained.
    """

    name: str
    path: Path
    ranges: tuple[Range, ...]
    rows_before: int
    rows_downloaded: int
    rows_after: int
    first_ts_ms: int | None
    last_ts_ms: int | None

    @property
    def rows_added(self) -> int:
        """Return how many rows the cached file gained."""
        return self.rows_after - self.rows_before

    def to_dict(self) -> dict[str, Any]:
        """Return the stable JSON form used by ``perphedge data fetch --json``."""
        return {
            "name": self.name,
            "path": str(self.path),
            "ranges": [{"since_ms": s, "until_ms": u} for s, u in self.ranges],
            "rows_before": self.rows_before,
            "rows_downloaded": self.rows_downloaded,
            "rows_added": self.rows_added,
            "rows_after": self.rows_after,
            "first_ts_ms": self.first_ts_ms,
            "last_ts_ms": self.last_ts_ms,
            "first": _iso(self.first_ts_ms),
            "last": _iso(self.last_ts_ms),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSummary:
    """The outcome of :func:`fetch_to_cache`: one entry per data set, and warnings (e.g. tiers skipped)."""

    exchange: str
    ccxt_symbol: str
    market_id: str
    spot_symbol: str | None
    timeframe: str
    since_ms: int
    until_ms: int | None
    market_dir: Path
    datasets: tuple[DatasetFetch, ...]
    leverage_tiers: int | None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def requests_made(self) -> int:
        """Return the number of download windows (not HTTP calls) the fetch needed."""
        return sum(len(d.ranges) for d in self.datasets)

    def to_dict(self) -> dict[str, Any]:
        """Return the stable JSON form used by ``perphedge data fetch --json``."""
        return {
            "exchange": self.exchange,
            "symbol": self.ccxt_symbol,
            "market_id": self.market_id,
            "spot_symbol": self.spot_symbol,
            "timeframe": self.timeframe,
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "market_dir": str(self.market_dir),
            "datasets": [d.to_dict() for d in self.datasets],
            "leverage_tiers": self.leverage_tiers,
            "warnings": list(self.warnings),
        }


def check_cached(exchange_id: str, market_id: str, timeframe: str, data_dir: Path) -> list[str]:
    """Return the problems ``validate_market`` finds in a cached data set, as ``check: …`` warnings.

    Nothing is raised: a download keeps what the exchange served, and says what is wrong with it.
    An empty list when the data set has no bars yet (nothing to check) or nothing is wrong.
    """
    from perphedge.data.cache import load_cached
    from perphedge.data.validate import find_problems

    try:
        market = load_cached(exchange_id, market_id, timeframe, data_dir)
    except UnknownSymbolError:
        return []
    except DataError as e:
        return [f"check: {e}"]
    errors, warnings = find_problems(market)
    return [f"check: {problem}" for problem in (errors or warnings)]


def _iso(ts_ms: int | None) -> str | None:
    return None if ts_ms is None else ts_ms_to_datetime(ts_ms).isoformat().replace("+00:00", "Z")


def missing_ranges(
    *,
    first_cached_ms: int | None,
    last_cached_ms: int | None,
    covered_since_ms: int | None,
    since_ms: int,
    until_ms: int | None,
) -> list[Range]:
    """Return the [since, until] windows to download so the cache covers [since_ms, until_ms] contiguously.

    With nothing cached: the whole request. Else: the stretch before the oldest cached row when
    ``since_ms`` is earlier than every start already downloaded (``covered_since_ms``), and the
    stretch from the newest cached row on (that row again: a bar may have been open) unless
    ``until_ms`` is already cached. Windows start at the cache's edges, so the cache never has a hole.
    """
    if first_cached_ms is None or last_cached_ms is None:
        return [(since_ms, until_ms)]
    ranges: list[Range] = []
    covered = first_cached_ms if covered_since_ms is None else min(covered_since_ms, first_cached_ms)
    if since_ms < covered:
        ranges.append((since_ms, first_cached_ms))
    if until_ms is None or until_ms > last_cached_ms:
        ranges.append((last_cached_ms, until_ms))
    return ranges


def new_cache_meta(exchange_id: str, market: dict[str, Any], spot_symbol: str | None) -> dict[str, Any]:
    """Return the ``meta.json`` record of a new market directory of the cache (read by data.cache)."""
    return {
        "format": META_FORMAT,
        "exchange": exchange_id,
        "ccxt_symbol": market["symbol"],
        "market_id": market["id"],
        "spot_symbol": spot_symbol,
        "linear": bool(market.get("linear")),
        "datasets": {},
    }


def fetch_to_cache(
    exchange: Any,
    ccxt_symbol: str,
    *,
    since_ms: int,
    until_ms: int | None = None,
    timeframe: str = "1h",
    data_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchSummary:
    """Download what the cache lacks of one perpetual market's history and merge it in; return a summary.

    ``exchange`` is a ccxt exchange object (tests pass replaying ones; the CLI makes it with
    :func:`perphedge.venues.ccxt_common.create_exchange`). ``ccxt_symbol`` is the unified perp symbol
    (``BTC/USDT:USDT``) or the exchange's market id. Times are UTC epoch ms, both ends inclusive;
    ``until_ms`` None means up to the newest data. ``progress`` is called after every page.

    Raises:
        InputError: for since/until out of order, a timeframe perphedge or the exchange does not
            handle, or a market that is not a perpetual; UnknownSymbolError for an unlisted symbol.
        VenueError: when the exchange lacks funding history or OHLCV through ccxt, a download makes
            no progress, or a permanent exchange error; VenueUnavailable after the network retries.
            Data sets finished before the error are kept; the one in progress is left as it was.
    """
    if until_ms is not None and until_ms < since_ms:
        raise InputError(
            f"--until ({_iso(until_ms)}) is before --since ({_iso(since_ms)}); give an end after the start"
        )
    if timeframe not in TIMEFRAME_MS:
        raise InputError(f"timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}")
    if exchange.markets is None:
        call_with_retries(exchange.load_markets, exchange_id=exchange.id, action="load markets", sleep=sleep)
    market = resolve_market(exchange, ccxt_symbol)
    if not market.get("swap"):
        raise InputError(
            f"{market['symbol']} on {exchange.id} is not a perpetual (swap) market; give the perp's unified "
            "symbol such as BTC/USDT:USDT"
        )
    require_capabilities(exchange, ["fetchFundingRateHistory", "fetchOHLCV"])
    warnings: list[str] = []
    spot_symbol: str | None = spot_symbol_for(market)
    if spot_symbol not in (exchange.markets or {}):
        warnings.append(f"{exchange.id} lists no spot market {spot_symbol}: spot bars not downloaded")
        spot_symbol = None
    if not market.get("linear"):
        warnings.append(f"{market['symbol']} is an inverse perp: its bar volumes are in contracts, not coins")

    root = resolve_data_dir(data_dir)
    directory = market_cache_dir(root, exchange.id, market["id"])
    meta = read_meta(directory) or new_cache_meta(exchange.id, market, spot_symbol)
    write_json_atomic(meta, directory / META_NAME)

    def run(
        name: str, path: Path, ts_column: str, download: Callable[[int, int | None], pd.DataFrame]
    ) -> DatasetFetch:
        old = read_table(path, ts_column)
        first = int(old[ts_column].min()) if old is not None and not old.empty else None
        last = int(old[ts_column].max()) if old is not None and not old.empty else None
        record = meta["datasets"].get(name, {})
        ranges = missing_ranges(
            first_cached_ms=first,
            last_cached_ms=last,
            covered_since_ms=record.get("covered_since_ms"),
            since_ms=since_ms,
            until_ms=until_ms,
        )
        frames = [download(start, end) for start, end in ranges]  # all pages first, then one write
        downloaded = sum(len(f) for f in frames)
        merged = old
        for frame in frames:
            if not frame.empty:
                merged = merge_frames(merged, frame, ts_column)
        if merged is not None and not merged.empty and downloaded:
            write_parquet_atomic(merged, path)
        rows_after = 0 if merged is None else len(merged)
        first_ts_ms: int | None = None
        last_ts_ms: int | None = None
        if merged is not None and rows_after:
            first_ts_ms, last_ts_ms = int(merged[ts_column].min()), int(merged[ts_column].max())
            covered = since_ms if first is None else min(since_ms, record.get("covered_since_ms", first))
            meta["datasets"][name] = {
                "covered_since_ms": covered,
                "first_ts_ms": first_ts_ms,
                "last_ts_ms": last_ts_ms,
                "rows": rows_after,
            }
            write_json_atomic(meta, directory / META_NAME)
        return DatasetFetch(
            name=name,
            path=path,
            ranges=tuple(ranges),
            rows_before=0 if old is None else len(old),
            rows_downloaded=downloaded,
            rows_after=rows_after,
            first_ts_ms=first_ts_ms,
            last_ts_ms=last_ts_ms,
        )

    perp_symbol = market["symbol"]
    datasets = [
        run(
            "funding",
            directory / FUNDING_NAME,
            SETTLE_TS_COLUMN,
            lambda s, u: funding_frame(
                fetch_funding_rate_history(exchange, perp_symbol, s, u, progress=progress, sleep=sleep)
            ),
        ),
        run(
            f"perp_{timeframe}",
            directory / bars_file_name("perp", timeframe),
            BAR_TS_COLUMN,
            lambda s, u: ohlcv_frame(
                fetch_ohlcv_history(exchange, perp_symbol, timeframe, s, u, progress=progress, sleep=sleep)
            ),
        ),
    ]
    if spot_symbol is not None:
        spot = spot_symbol
        datasets.append(
            run(
                f"spot_{timeframe}",
                directory / bars_file_name("spot", timeframe),
                BAR_TS_COLUMN,
                lambda s, u: ohlcv_frame(
                    fetch_ohlcv_history(exchange, spot, timeframe, s, u, progress=progress, sleep=sleep)
                ),
            )
        )
    if exchange.has.get("fetchMarkOHLCV"):
        datasets.append(
            run(
                f"mark_{timeframe}",
                directory / bars_file_name("mark", timeframe),
                BAR_TS_COLUMN,
                lambda s, u: ohlcv_frame(
                    fetch_ohlcv_history(
                        exchange, perp_symbol, timeframe, s, u, price="mark", progress=progress, sleep=sleep
                    )
                ),
            )
        )
    else:
        warnings.append(f"{exchange.id} offers no mark-price bars through ccxt: mark_close stays unknown")

    tiers_count: int | None = None
    try:
        tiers = fetch_leverage_tiers_for(exchange, perp_symbol, sleep=sleep)
    except VenueError as e:
        warnings.append(f"leverage tiers not downloaded: {e}")
    else:
        if tiers.available:
            tiers_count = len(tiers.tiers)
            write_json_atomic(
                {"exchange": exchange.id, "symbol": perp_symbol, "tiers": list(tiers.tiers)},
                directory / LEVERAGE_TIERS_NAME,
            )
        else:
            warnings.append(f"leverage tiers not downloaded: {tiers.skipped_reason}")

    warnings.extend(check_cached(exchange.id, market["id"], timeframe, root))
    return FetchSummary(
        exchange=exchange.id,
        ccxt_symbol=perp_symbol,
        market_id=market["id"],
        spot_symbol=spot_symbol,
        timeframe=timeframe,
        since_ms=since_ms,
        until_ms=until_ms,
        market_dir=directory,
        datasets=tuple(datasets),
        leverage_tiers=tiers_count,
        warnings=tuple(warnings),
    )
