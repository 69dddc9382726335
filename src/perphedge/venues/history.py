"""Paginated history downloads through ccxt's unified methods: funding rates, OHLCV, leverage tiers.

Each exchange pages its history its own way; a :class:`PagingPlan` per (exchange, method) says how:

- **forward**: ask for ``since = cursor``, get the oldest rows at or after it, move the cursor past the
  newest row (Binance ``startTime``; Bybit ``start`` for klines).
- **backward**: ask for rows up to ``cursor`` (inclusive), get the newest rows at or before it, move
  the cursor below the oldest row (OKX ``after``; Bybit funding ``endTime``).

Page sizes are the exchanges' documented maxima:

- Binance ``GET /fapi/v1/fundingRate``: limit ≤ 1000, ascending from ``startTime``
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-History).
  Klines: ccxt caps every Binance kline request at 1000 (spot's documented maximum,
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#klinecandlestick-data).
- Bybit ``GET /v5/market/funding/history``: limit 1–200, newest first within [startTime, endTime]
  (https://bybit-exchange.github.io/docs/v5/market/history-fund-rate): paged backward.
  ``GET /v5/market/kline`` / ``mark-price-kline``: limit 1–1000
  (https://bybit-exchange.github.io/docs/v5/market/kline); with ``start`` and no ``end`` it returns
  the bars from ``start`` on (ccxt's recorded request ``start=1706630400000&limit=3``): paged forward.
- OKX ``GET /api/v5/public/funding-rate-history`` (limit ≤ 100) and ``history-candles`` /
  ``history-mark-price-candles`` (limit ≤ 100) return the newest rows before ``after``
  (https://www.okx.com/docs-v5/en/#public-data-rest-api-get-funding-rate-history,
  https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-candlesticks-history): paged backward.
- Any other exchange: forward with ccxt's unified ``until`` and the exchange's default page size.

Every loop ends: each page must move the cursor strictly (else :class:`VenueError` "no progress"),
and it stops on an empty page, a page shorter than the plan's full page (known exchanges only), or
on reaching the requested bound. Rows are de-duplicated on their timestamp (the later page wins) and
returned ascending, restricted to ``[since_ms, until_ms]`` (both inclusive, UTC epoch ms).

Rate limiting: exchanges made by :func:`perphedge.venues.ccxt_common.create_exchange` have ccxt's
``enableRateLimit`` on (ccxt spaces requests by ``exchange.rateLimit`` ms); an exchange with it off
gets an explicit pause of ``rateLimit`` ms between pages. Network errors are retried with backoff by
:func:`~perphedge.venues.ccxt_common.call_with_retries`; permanent errors are raised at once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import ccxt

from perphedge.errors import InputError, VenueError
from perphedge.venues.ccxt_common import call_with_retries, require_capabilities

Direction = Literal["forward", "backward"]
PriceKind = Literal["last", "mark"]

MAX_PAGES = 100_000
"""A last-resort bound on pages per download (100,000 × 1000 hourly bars is over 11,000 years)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PagingPlan:
    """How one exchange pages one history method.

    ``page_limit`` is the rows asked per request (None: the exchange's default). ``upper_param`` is
    the request parameter that carries the upper bound (``"until"``: ccxt's unified one; ``"after"``:
    OKX's exclusive one, sent as cursor + 1); None means the bound is applied locally only.
    ``short_page_is_last``: a page with fewer than ``page_limit`` rows means there is no more.
    """

    direction: Direction
    page_limit: int | None
    upper_param: str | None = "until"
    upper_is_exclusive: bool = False
    short_page_is_last: bool = True


_FUNDING_PLANS: dict[str, PagingPlan] = {
    "binance": PagingPlan(direction="forward", page_limit=1000),
    "bybit": PagingPlan(direction="backward", page_limit=200),
    "okx": PagingPlan(direction="backward", page_limit=100, upper_param="after", upper_is_exclusive=True),
}
_OHLCV_PLANS: dict[str, PagingPlan] = {
    "binance": PagingPlan(direction="forward", page_limit=1000),
    "bybit": PagingPlan(direction="forward", page_limit=1000, upper_param=None),
    # ccxt turns ``until`` into OKX's exclusive ``after`` itself; history candles hold at most 100 a page
    "okx": PagingPlan(direction="backward", page_limit=100, upper_param="until", upper_is_exclusive=True),
}
_DEFAULT_PLAN = PagingPlan(direction="forward", page_limit=None, short_page_is_last=False)


def funding_paging_plan(exchange_id: str) -> PagingPlan:
    """Return the paging plan for ``fetch_funding_rate_history`` on an exchange."""
    return _FUNDING_PLANS.get(exchange_id, _DEFAULT_PLAN)


def ohlcv_paging_plan(exchange_id: str) -> PagingPlan:
    """Return the paging plan for ``fetch_ohlcv`` (last and mark price) on an exchange."""
    return _OHLCV_PLANS.get(exchange_id, _DEFAULT_PLAN)


@dataclass(frozen=True, slots=True, kw_only=True)
class PageProgress:
    """One page done: what a progress bar needs. Timestamps are UTC epoch ms."""

    dataset: str
    direction: Direction
    pages: int
    rows: int
    cursor_ts_ms: int
    since_ms: int
    until_ms: int | None

    @property
    def fraction_done(self) -> float | None:
        """Return the share of [since, until] covered so far (None when the end is open)."""
        if self.until_ms is None or self.until_ms <= self.since_ms:
            return None
        span = self.until_ms - self.since_ms
        covered = (
            (self.cursor_ts_ms - self.since_ms)
            if self.direction == "forward"
            else (self.until_ms - self.cursor_ts_ms)
        )
        return min(max(covered / span, 0.0), 1.0)


ProgressCallback = Callable[[PageProgress], None]


def _require_range(since_ms: int, until_ms: int | None) -> None:
    if since_ms < 0:
        raise InputError(f"since_ms must be a UTC epoch-millisecond timestamp >= 0; it was {since_ms}")
    if until_ms is not None and until_ms < since_ms:
        raise InputError(
            f"until ({until_ms} ms) is before since ({since_ms} ms); give an end after the start"
        )


def _paginate(
    exchange: Any,
    *,
    dataset: str,
    plan: PagingPlan,
    call_page: Callable[[int | None, int | None, dict[str, Any]], list[Any]],
    timestamp_of: Callable[[Any], int],
    since_ms: int,
    until_ms: int | None,
    progress: ProgressCallback | None,
    sleep: Callable[[float], None],
) -> list[Any]:
    """Run the paging loop; ``call_page(since, limit, params)`` makes one request."""
    rows_by_ts: dict[int, Any] = {}
    pacing_s = 0.0 if getattr(exchange, "enableRateLimit", False) else float(exchange.rateLimit) / 1000.0
    if plan.direction == "forward":
        cursor = since_ms
    else:  # the newest end: the requested one, else the exchange's clock (ccxt's own milliseconds())
        cursor = until_ms if until_ms is not None else int(exchange.milliseconds())
    for page in range(1, MAX_PAGES + 1):
        if page > 1 and pacing_s > 0:
            sleep(pacing_s)
        params: dict[str, Any] = {}
        upper = until_ms if plan.direction == "forward" else cursor
        if plan.upper_param is not None and upper is not None:
            params[plan.upper_param] = upper + 1 if plan.upper_is_exclusive else upper
        since_arg = cursor if plan.direction == "forward" else since_ms
        batch = call_with_retries(
            functools.partial(call_page, since_arg, plan.page_limit, params),
            exchange_id=exchange.id,
            action=f"download {dataset} (page {page})",
            sleep=sleep,
        )
        if not batch:
            break
        stamps = [int(timestamp_of(row)) for row in batch]
        if plan.direction == "forward":
            fresh = [(ts, row) for ts, row in zip(stamps, batch, strict=True) if ts >= cursor]
            if not fresh:
                raise VenueError(
                    f"no progress downloading {dataset}: page {page} asked for rows from {cursor} ms and "
                    f"returned {len(batch)} rows all before it (newest {max(stamps)} ms); the exchange "
                    "seems to ignore the start time; report this with the exchange id",
                    exchange=exchange.id,
                )
            newest = max(ts for ts, _ in fresh)
            rows_by_ts.update(fresh)
            cursor = newest + 1
            done = until_ms is not None and newest >= until_ms
        else:
            fresh = [(ts, row) for ts, row in zip(stamps, batch, strict=True) if ts <= cursor]
            if not fresh:
                raise VenueError(
                    f"no progress downloading {dataset}: page {page} asked for rows up to {cursor} ms and "
                    f"returned {len(batch)} rows all after it (oldest {min(stamps)} ms); the exchange "
                    "seems to ignore the end time; report this with the exchange id",
                    exchange=exchange.id,
                )
            oldest = min(ts for ts, _ in fresh)
            rows_by_ts.update(fresh)
            cursor = oldest - 1
            done = oldest <= since_ms
        if progress is not None:
            progress(
                PageProgress(
                    dataset=dataset,
                    direction=plan.direction,
                    pages=page,
                    rows=len(rows_by_ts),
                    cursor_ts_ms=cursor,
                    since_ms=since_ms,
                    until_ms=until_ms,
                )
            )
        short = plan.page_limit is not None and len(batch) < plan.page_limit
        if done or (short and plan.short_page_is_last):
            break
    else:
        raise VenueError(
            f"downloading {dataset} did not finish within {MAX_PAGES} pages", exchange=exchange.id
        )
    return [
        rows_by_ts[ts] for ts in sorted(rows_by_ts) if ts >= since_ms and (until_ms is None or ts <= until_ms)
    ]


def fetch_funding_rate_history(
    exchange: Any,
    symbol: str,
    since_ms: int,
    until_ms: int | None = None,
    *,
    progress: ProgressCallback | None = None,
    plan: PagingPlan | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Return every funding settlement of ``symbol`` in [since_ms, until_ms], ascending, one per timestamp.

    Each item is ccxt's funding-rate-history structure: ``timestamp`` (settlement time, UTC ms),
    ``fundingRate`` (a fraction per interval) and ``info`` (the raw exchange record; Binance's carries
    ``markPrice``). ``until_ms`` None means up to the newest settlement.

    Raises:
        InputError: for since/until out of order.
        VenueError: when the exchange lacks ``fetchFundingRateHistory`` or a page makes no progress;
            VenueUnavailable after the retries on network errors; UnknownSymbolError for a bad symbol.
    """
    _require_range(since_ms, until_ms)
    require_capabilities(exchange, ["fetchFundingRateHistory"])
    return _paginate(
        exchange,
        dataset=f"{symbol} funding",
        plan=plan or funding_paging_plan(exchange.id),
        call_page=lambda since, limit, params: exchange.fetch_funding_rate_history(
            symbol, since, limit, params
        ),
        timestamp_of=lambda row: row["timestamp"],
        since_ms=since_ms,
        until_ms=until_ms,
        progress=progress,
        sleep=sleep,
    )


def fetch_ohlcv_history(
    exchange: Any,
    symbol: str,
    timeframe: str,
    since_ms: int,
    until_ms: int | None = None,
    *,
    price: PriceKind = "last",
    progress: ProgressCallback | None = None,
    plan: PagingPlan | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[list[float]]:
    """Return every ``[open_ts_ms, open, high, low, close, volume]`` bar opening in [since_ms, until_ms].

    ``price="last"``: last-trade bars (spot or perp); ``price="mark"``: the perp's mark-price bars
    (needs ``has['fetchMarkOHLCV']``). A bar is labelled by its open time (UTC ms). ``until_ms`` None
    means up to the newest bar, which may still be open: a later download replaces it.

    Raises:
        InputError: for since/until out of order, an unknown price kind or a timeframe the exchange lacks.
        VenueError: when the exchange lacks the method or a page makes no progress; VenueUnavailable
            after the retries on network errors; UnknownSymbolError for a bad symbol.
    """
    _require_range(since_ms, until_ms)
    if price not in ("last", "mark"):
        raise InputError(f"price must be 'last' or 'mark'; it was {price!r}")
    require_capabilities(exchange, ["fetchOHLCV"] + (["fetchMarkOHLCV"] if price == "mark" else []))
    timeframes = getattr(exchange, "timeframes", None) or {}
    if timeframes and timeframe not in timeframes:
        raise InputError(
            f"timeframe {timeframe!r} is not offered by {exchange.id}; use one of {', '.join(timeframes)}"
        )
    extra: dict[str, Any] = {"price": "mark"} if price == "mark" else {}
    return _paginate(
        exchange,
        dataset=f"{symbol} {_bar_kind(exchange, symbol, price)} {timeframe} bars",
        plan=plan or ohlcv_paging_plan(exchange.id),
        call_page=lambda since, limit, params: exchange.fetch_ohlcv(
            symbol, timeframe, since, limit, {**extra, **params}
        ),
        timestamp_of=lambda row: row[0],
        since_ms=since_ms,
        until_ms=until_ms,
        progress=progress,
        sleep=sleep,
    )


def _bar_kind(exchange: Any, symbol: str, price: PriceKind) -> str:
    if price == "mark":
        return "mark-price"
    market = (exchange.markets or {}).get(symbol) or {}
    return "spot" if market.get("spot") else "perp"


@dataclass(frozen=True, slots=True, kw_only=True)
class LeverageTiersResult:
    """Leverage (maintenance-margin) tiers of one market, or why they could not be had."""

    tiers: tuple[dict[str, Any], ...]
    skipped_reason: str | None = None

    @property
    def available(self) -> bool:
        """Return True when tiers were downloaded."""
        return self.skipped_reason is None


def _has_credentials(exchange: Any) -> bool:
    return bool(getattr(exchange, "apiKey", None)) and bool(getattr(exchange, "secret", None))


def fetch_leverage_tiers_for(
    exchange: Any, symbol: str, *, sleep: Callable[[float], None] = time.sleep
) -> LeverageTiersResult:
    """Return the leverage tiers of one market in ccxt's unified structure, or a skip reason.

    Uses ``fetch_market_leverage_tiers`` when the exchange has it natively, else ``fetch_leverage_tiers``.
    Exchanges whose tier endpoint is signed (Binance's ``GET /fapi/v1/leverageBracket``, USER_DATA:
    https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Notional-and-Leverage-Brackets)
    need API keys: without them, or when the keys are refused, the result says so instead of failing.
    Other errors (network after retries, bad symbol) are raised.
    """
    native_market = exchange.has.get("fetchMarketLeverageTiers") is True
    if native_market:

        def call() -> Any:
            return exchange.fetch_market_leverage_tiers(symbol)
    elif exchange.has.get("fetchLeverageTiers"):

        def call() -> Any:
            return exchange.fetch_leverage_tiers([symbol])
    else:
        return LeverageTiersResult(
            tiers=(), skipped_reason=f"{exchange.id} offers no leverage tiers through ccxt"
        )

    def guarded() -> Any:
        try:
            return call()
        except ccxt.AuthenticationError as e:
            raise _NeedsKeys() from e

    try:
        result = call_with_retries(
            guarded, exchange_id=exchange.id, action=f"download {symbol} leverage tiers", sleep=sleep
        )
    except _NeedsKeys:
        how = "no API keys were given" if not _has_credentials(exchange) else "the API keys were refused"
        return LeverageTiersResult(
            tiers=(),
            skipped_reason=(
                f"{exchange.id} serves leverage tiers only to signed requests and {how}; set the "
                "exchange's API key and secret (read-only permission is enough) to download them"
            ),
        )
    tiers = result if isinstance(result, list) else (result or {}).get(symbol, [])
    return LeverageTiersResult(tiers=tuple(tiers))


class _NeedsKeys(Exception):
    pass
