"""The scanner's funding history, cached through the data layer (``perphedge.data.cache``).

A ``--history`` scan needs the last 30 days of settlements of a few dozen perpetuals. They are kept
in the same cache as ``perphedge data fetch`` (``<data_dir>/<exchange>/<MARKET_ID>/funding.parquet``,
same columns, same atomic writes, the same ``meta.json`` record of what was downloaded), so:

- a second scan downloads only the settlements since the newest cached one (that one again, as
  ``data fetch`` does), usually one short request per pair instead of a 30-day page walk;
- history downloaded by ``data fetch`` serves the scan, and the scan's downloads serve a later
  ``data fetch`` (which then adds the bars).

Which windows to download is :func:`perphedge.data.fetch.missing_ranges`, the rule ``data fetch``
uses, so the cached range stays contiguous (no holes). Nothing is filled in: a settlement the
exchange did not return stays missing, and the window statistics report the gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perphedge.data.cache import (
    FUNDING_NAME,
    META_NAME,
    SETTLE_TS_COLUMN,
    funding_frame,
    market_cache_dir,
    merge_frames,
    read_meta,
    read_table,
    write_json_atomic,
    write_parquet_atomic,
)
from perphedge.venues.funding_snapshot import FundingHistory, fetch_recent_funding_rows


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedHistory:
    """The settlements of one perpetual in the requested window, and what the cache did for them.

    ``downloaded_ranges`` are the ``(since_ms, until_ms)`` windows fetched from the exchange (empty
    when the cache already held everything); ``rows_downloaded`` the settlements they returned.
    """

    history: FundingHistory
    path: Path
    downloaded_ranges: tuple[tuple[int, int | None], ...]
    rows_downloaded: int


async def cached_funding_history(
    exchange: Any,
    perp_symbol: str,
    *,
    since_ms: int,
    until_ms: int,
    data_dir: Path,
    spot_symbol: str | None = None,
    retry_sleep: Callable[[float], None] | None = None,
) -> CachedHistory:
    """Return the settlements of ``perp_symbol`` in ``[since_ms, until_ms]``, downloading only what the cache lacks.

    ``exchange`` is the scan's ``ccxt.async_support`` exchange (markets loaded). The merged history
    is written to the cache atomically before it is returned.

    Raises:
        VenueError: when a missing stretch cannot be downloaded (the cache is left as it was).
        DataError: when the cached file is unreadable or a settlement has no rate or timestamp.
    """
    from perphedge.data.fetch import missing_ranges, new_cache_meta  # imports ccxt: only when fetching

    market = exchange.market(perp_symbol)
    directory = market_cache_dir(data_dir, exchange.id, str(market["id"]))
    path = directory / FUNDING_NAME
    old = await asyncio.to_thread(read_table, path, SETTLE_TS_COLUMN)
    meta = await asyncio.to_thread(read_meta, directory)
    record = (meta or {}).get("datasets", {}).get("funding", {})
    first = None if old is None or old.empty else int(old[SETTLE_TS_COLUMN].min())
    last = None if old is None or old.empty else int(old[SETTLE_TS_COLUMN].max())
    ranges = missing_ranges(
        first_cached_ms=first,
        last_cached_ms=last,
        covered_since_ms=record.get("covered_since_ms"),
        since_ms=since_ms,
        until_ms=until_ms,
    )
    frames = []
    for start, end in ranges:  # all pages first, then one write (as data fetch does)
        rows = await fetch_recent_funding_rows(
            exchange, perp_symbol, since_ms=start, until_ms=end, retry_sleep=retry_sleep
        )
        frames.append(funding_frame(rows))
    downloaded = sum(len(f) for f in frames)
    merged = old
    for frame in frames:
        if not frame.empty:
            merged = merge_frames(merged, frame, SETTLE_TS_COLUMN)
    if merged is not None and not merged.empty and (downloaded or ranges):
        meta = meta or new_cache_meta(exchange.id, market, spot_symbol)
        covered = since_ms if first is None else min(since_ms, record.get("covered_since_ms", first))
        meta.setdefault("datasets", {})["funding"] = {
            "covered_since_ms": covered,
            "first_ts_ms": int(merged[SETTLE_TS_COLUMN].min()),
            "last_ts_ms": int(merged[SETTLE_TS_COLUMN].max()),
            "rows": len(merged),
        }
        if downloaded:
            await asyncio.to_thread(write_parquet_atomic, merged, path)
        await asyncio.to_thread(write_json_atomic, meta, directory / META_NAME)
    stamps: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    if merged is not None and not merged.empty:
        ts = merged[SETTLE_TS_COLUMN].to_numpy()
        inside = (ts >= since_ms) & (ts <= until_ms)
        stamps = tuple(int(t) for t in ts[inside])
        rates = tuple(float(r) for r in merged["rate_per_interval"].to_numpy()[inside])
    return CachedHistory(
        history=FundingHistory(perp_symbol=perp_symbol, settle_ts_ms=stamps, rates=rates, since_ms=since_ms),
        path=path,
        downloaded_ranges=tuple(ranges),
        rows_downloaded=downloaded,
    )
