"""Live funding snapshots for the carry scanner: the ccxt calls and the per-exchange field mapping.

ccxt's unified funding-rate structure does not mean the same thing on every exchange (which
timestamp is the *next* settlement, whether ``interval`` is filled, whether ``fundingRate`` is the
rate about to be settled or the last settled one). :data:`FIELD_MAPPINGS` writes down, per
exchange, what ccxt 4.5.90 fills and what it means; :func:`normalise_funding_rate` applies it and
returns a :class:`PerpFundingQuote` whose fields mean one thing everywhere. The same table is in
docs/scanner.md, with the exchange documentation each row was checked against.

Calls (all through ``ccxt.async_support`` exchanges with ``enableRateLimit``; reads retried with
backoff through :func:`perphedge.venues.ccxt_common.acall_with_retries`):

- ``fetch_funding_rates`` (one bulk call), or ``fetch_funding_rate`` per symbol where the exchange
  has no bulk call, with at most ``max_concurrency`` requests in flight per exchange;
- ``fetch_funding_intervals`` where the exchange publishes the interval separately (Binance's
  ``GET /fapi/v1/fundingInfo``, Bitget's current-fund-rate);
- ``fetch_tickers`` for the spot and the perpetual leg (24 h quote volume, last price), falling back
  to ``fetch_ticker`` per symbol for the symbols a bulk answer left out;
- ``fetch_funding_rate_history`` for the recent settlements of the candidates asked for, paged by
  :mod:`perphedge.venues.history` (the project's downloader) through a blocking facade.

A failed optional call (tickers, intervals, one symbol's funding) becomes a warning in the snapshot;
only a failure of the funding call itself makes the exchange fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from perphedge.errors import ConfigError, DataError, PerphedgeError, VenueError
from perphedge.units import MS_PER_HOUR

T = TypeVar("T")

RATE_PREDICTED_NEXT = "predicted_next"
"""``fundingRate`` is the rate that will be settled at ``next_settle_ts_ms`` (still moving until then)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingFieldMapping:
    """What ccxt 4.5.90's unified funding-rate fields mean on one exchange (see docs/scanner.md).

    ``next_settle_field`` is the ccxt field that holds the NEXT settlement time; ``rate_kind`` what
    ``fundingRate`` is; ``interval_from`` where the funding interval comes from;
    ``interval_when_absent_hours`` the documented default for symbols an interval endpoint omits.
    """

    exchange_id: str
    endpoint: str
    rate_field_meaning: str
    rate_kind: str
    next_settle_field: str
    interval_from: str
    bulk_funding: bool
    interval_when_absent_hours: float | None = None
    source_url: str = ""


FIELD_MAPPINGS: dict[str, FundingFieldMapping] = {
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Mark-Price
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-Info
    "binance": FundingFieldMapping(
        exchange_id="binance",
        endpoint="GET /fapi/v1/premiumIndex (all symbols)",
        rate_field_meaning="premiumIndex.lastFundingRate: the latest (estimated) rate for the coming settlement",
        rate_kind=RATE_PREDICTED_NEXT,
        next_settle_field="fundingTimestamp",  # ← premiumIndex.nextFundingTime
        interval_from="fetch_funding_intervals (GET /fapi/v1/fundingInfo: fundingIntervalHours)",
        bulk_funding=True,
        # fundingInfo lists only symbols with adjusted cap/floor/interval; the others keep the default 8 h
        interval_when_absent_hours=8.0,
        source_url="https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-Info",
    ),
    # https://bybit-exchange.github.io/docs/v5/market/tickers (fundingRate, nextFundingTime)
    # https://bybit-exchange.github.io/docs/v5/market/instrument (fundingInterval, minutes)
    "bybit": FundingFieldMapping(
        exchange_id="bybit",
        endpoint="GET /v5/market/tickers?category=linear",
        rate_field_meaning="tickers.fundingRate: the current rate, settled at nextFundingTime",
        rate_kind=RATE_PREDICTED_NEXT,
        next_settle_field="fundingTimestamp",  # ← tickers.nextFundingTime
        interval_from="ccxt 'interval' (instruments-info fundingInterval in minutes / 60)",
        bulk_funding=True,
        source_url="https://bybit-exchange.github.io/docs/v5/market/tickers",
    ),
    # https://www.okx.com/docs-v5/en/#public-data-rest-api-get-funding-rate
    "okx": FundingFieldMapping(
        exchange_id="okx",
        endpoint="GET /api/v5/public/funding-rate?instId=ANY",
        rate_field_meaning=(
            "funding-rate.fundingRate: the current period's rate, settled at fundingTime "
            "(nextFundingRate/nextFundingTime are the period AFTER that)"
        ),
        rate_kind=RATE_PREDICTED_NEXT,
        next_settle_field="fundingTimestamp",  # ← fundingTime (NOT nextFundingTimestamp)
        interval_from="ccxt 'interval' = nextFundingTime − fundingTime",
        bulk_funding=True,
        source_url="https://www.okx.com/docs-v5/en/#public-data-rest-api-get-funding-rate",
    ),
    # https://www.bitget.com/api-doc/contract/market/Get-All-Symbol-Ticker
    # https://www.bitget.com/api-doc/contract/market/Get-Current-Funding-Rate
    "bitget": FundingFieldMapping(
        exchange_id="bitget",
        endpoint="GET /api/v2/mix/market/tickers?productType=USDT-FUTURES",
        rate_field_meaning="tickers.fundingRate: the current rate for the coming settlement",
        rate_kind=RATE_PREDICTED_NEXT,
        next_settle_field="fundingTimestamp",  # ← nextFundingTime / current-fund-rate.nextUpdate
        interval_from="fetch_funding_intervals (current-fund-rate: fundingRateInterval, hours)",
        bulk_funding=True,
        source_url="https://www.bitget.com/api-doc/contract/market/Get-Current-Funding-Rate",
    ),
    # https://www.mexc.com/api-docs/futures/market-endpoints/get-funding-rate
    "mexc": FundingFieldMapping(
        exchange_id="mexc",
        endpoint="GET /api/v1/contract/funding_rate/{symbol} (one call per symbol; no bulk call in ccxt)",
        rate_field_meaning="funding_rate.fundingRate: the current rate, settled at nextSettleTime",
        rate_kind=RATE_PREDICTED_NEXT,
        next_settle_field="fundingTimestamp",  # ← nextSettleTime
        interval_from="ccxt 'interval' (collectCycle, hours)",
        bulk_funding=False,
        source_url="https://www.mexc.com/api-docs/futures/market-endpoints/get-funding-rate",
    ),
}
"""Exchanges whose funding fields are mapped and tested; others are refused rather than guessed."""

DEFAULT_EXCHANGES: tuple[str, ...] = ("binance", "bybit", "okx")


def mapping_for(exchange_id: str) -> FundingFieldMapping:
    """Return the field mapping of an exchange.

    Raises:
        ConfigError: for an exchange without a written-down mapping (its fields would be guessed).
    """
    try:
        return FIELD_MAPPINGS[exchange_id]
    except KeyError:
        raise ConfigError(
            f"exchange {exchange_id!r} has no funding-field mapping in perphedge (its ccxt fields would be "
            f"guessed); choose from {', '.join(sorted(FIELD_MAPPINGS))}",
            key_path="exchanges",
        ) from None


# --- normalised values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PerpFundingQuote:
    """The current funding of one perpetual, with fields that mean the same on every exchange.

    ``rate_per_interval`` is a fraction (0.0001 = 0.01 %) paid by longs to shorts when positive, at
    ``next_settle_ts_ms`` (UTC ms). ``interval_hours`` is None when the exchange did not say; the
    scanner then infers it from history or leaves the APR unknown (never assumed 8 h).
    ``observed_ts_ms`` is when the exchange produced the quote (None if it did not say).
    """

    exchange_id: str
    perp_symbol: str
    spot_symbol: str | None
    base: str
    quote: str
    rate_per_interval: float
    rate_kind: str
    next_settle_ts_ms: int | None
    interval_hours: float | None
    interval_source: str | None
    mark_price_usd: float | None
    index_price_usd: float | None
    observed_ts_ms: int | None
    contract_size_base: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LegTicker:
    """24 h figures of one market (spot or perpetual). USDT is taken as USD.

    ``quote_volume_24h_usd`` is the exchange's quote volume when given; otherwise base volume ×
    contract size × last price, and ``volume_estimated`` is True.
    """

    symbol: str
    last_price_usd: float | None
    quote_volume_24h_usd: float | None
    ts_ms: int | None
    volume_estimated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingHistory:
    """Settled funding of one perpetual, oldest first: ``settle_ts_ms[i]`` paid ``rates[i]``."""

    perp_symbol: str
    settle_ts_ms: tuple[int, ...]
    rates: tuple[float, ...]
    since_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeSnapshot:
    """Everything fetched from one exchange for the scanner. ``warnings`` list partial failures."""

    exchange_id: str
    recorded_ts_ms: int
    quotes: tuple[PerpFundingQuote, ...]
    spot_tickers: Mapping[str, LegTicker] = field(default_factory=dict)
    perp_tickers: Mapping[str, LegTicker] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


Progress = Callable[[str, str, int, int], None]
"""``progress(exchange_id, stage, done, total)``: called as work completes (for a progress bar)."""


# --- normalisation (pure; runs on ccxt's parsed structures) ----------------------------------------


def parse_interval_hours(text: Any, *, where: str) -> float | None:
    """Return hours from ccxt's ``interval`` string (``"8h"``, ``"4h"``), or None when it is empty.

    Raises:
        DataError: for a value that is not ``<positive number>h``.
    """
    if text is None or text == "":
        return None
    raw = str(text).strip()
    try:
        if not raw.endswith("h"):
            raise ValueError(raw)
        hours = float(raw[:-1])
    except ValueError:
        raise DataError(f"funding interval was {text!r}, expected hours such as '8h'", where=where) from None
    if not hours > 0:
        raise DataError(f"funding interval was {text!r}; it must be a positive number of hours", where=where)
    return hours


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def normalise_funding_rate(
    exchange_id: str, rate: Mapping[str, Any], market: Mapping[str, Any], *, spot_symbols: Iterable[str] = ()
) -> PerpFundingQuote:
    """Return the :class:`PerpFundingQuote` of one ccxt funding-rate structure, per :data:`FIELD_MAPPINGS`.

    ``market`` is the perpetual's ccxt market; ``spot_symbols`` the exchange's spot symbols (the
    quote's ``spot_symbol`` is set only when the matching spot market exists).

    Raises:
        ConfigError: for an exchange without a mapping.
        DataError: when the funding rate is missing or not finite, or the interval is malformed.
    """
    mapping = mapping_for(exchange_id)
    symbol = str(rate.get("symbol") or market["symbol"])
    where = f"{exchange_id} {symbol}"
    raw_rate = rate.get("fundingRate")
    if raw_rate is None:
        raise DataError("the exchange returned no fundingRate; it cannot be ranked", where=where)
    rate_value = float(raw_rate)
    if rate_value != rate_value or rate_value in (float("inf"), float("-inf")):
        raise DataError(f"fundingRate was {raw_rate!r}, not a finite number", where=where)
    next_settle = rate.get(mapping.next_settle_field)
    interval_hours = parse_interval_hours(rate.get("interval"), where=where)
    spot = (
        f"{market['base']}/{market['quote']}"  # as venues.ccxt_common.spot_symbol_for, without importing ccxt
    )
    return PerpFundingQuote(
        exchange_id=exchange_id,
        perp_symbol=symbol,
        spot_symbol=spot if spot in set(spot_symbols) else None,
        base=str(market["base"]),
        quote=str(market["quote"]),
        rate_per_interval=rate_value,
        rate_kind=mapping.rate_kind,
        next_settle_ts_ms=None if next_settle is None else int(next_settle),
        interval_hours=interval_hours,
        interval_source=None if interval_hours is None else f"{exchange_id}: {mapping.interval_from}",
        mark_price_usd=_optional_float(rate.get("markPrice")),
        index_price_usd=_optional_float(rate.get("indexPrice")),
        observed_ts_ms=None if rate.get("timestamp") is None else int(rate["timestamp"]),
        contract_size_base=float(market.get("contractSize") or 1.0),
    )


def with_interval(quote: PerpFundingQuote, interval_hours: float, source: str) -> PerpFundingQuote:
    """Return ``quote`` with its funding interval set (from an interval endpoint or from history)."""
    return replace(quote, interval_hours=float(interval_hours), interval_source=source)


def normalise_ticker(ticker: Mapping[str, Any], *, contract_size_base: float = 1.0) -> LegTicker:
    """Return the :class:`LegTicker` of a ccxt ticker.

    When ccxt gives no ``quoteVolume`` (OKX swaps give volume in contracts only), the quote volume is
    ``baseVolume × contract_size_base × last`` and marked as estimated.
    """
    last = _optional_float(ticker.get("last") if ticker.get("last") is not None else ticker.get("close"))
    quote_volume = _optional_float(ticker.get("quoteVolume"))
    estimated = False
    if quote_volume is None and ticker.get("baseVolume") is not None and last is not None:
        quote_volume = float(ticker["baseVolume"]) * contract_size_base * last
        estimated = True
    return LegTicker(
        symbol=str(ticker["symbol"]),
        last_price_usd=last,
        quote_volume_24h_usd=quote_volume,
        ts_ms=None if ticker.get("timestamp") is None else int(ticker["timestamp"]),
        volume_estimated=estimated,
    )


def linear_perpetuals(exchange: Any, quote: str) -> list[dict[str, Any]]:
    """Return the exchange's active linear perpetual markets quoted and settled in ``quote``."""
    out = []
    for market in (exchange.markets or {}).values():
        if (
            market.get("swap")
            and market.get("linear")
            and market.get("quote") == quote
            and market.get("settle") == quote
            and market.get("active") is not False
        ):
            out.append(market)
    return sorted(out, key=lambda m: m["symbol"])


def spot_markets(exchange: Any, quote: str) -> list[dict[str, Any]]:
    """Return the exchange's active spot markets quoted in ``quote``."""
    return sorted(
        (
            m
            for m in (exchange.markets or {}).values()
            if m.get("spot") and m.get("quote") == quote and m.get("active") is not False
        ),
        key=lambda m: m["symbol"],
    )


# --- fetching ---------------------------------------------------------------------------------------


async def _bounded_gather(
    items: Sequence[str],
    call: Callable[[str], Awaitable[T]],
    *,
    max_concurrency: int,
    on_done: Callable[[int], None] | None = None,
) -> list[T | PerphedgeError]:
    """Run ``call(item)`` for every item, at most ``max_concurrency`` at once; errors are returned."""
    semaphore = asyncio.Semaphore(max_concurrency)
    done = 0

    async def one(item: str) -> T | PerphedgeError:
        nonlocal done
        async with semaphore:
            try:
                return await call(item)
            except PerphedgeError as e:
                return e
            finally:
                done += 1
                if on_done is not None:
                    on_done(done)

    return list(await asyncio.gather(*(one(item) for item in items)))


def _summarise(problem: str, symbols: Sequence[str], errors: Sequence[Exception] = ()) -> str:
    shown = ", ".join(symbols[:5]) + (f" and {len(symbols) - 5} more" if len(symbols) > 5 else "")
    reason = f" ({errors[0]})" if errors else ""
    return f"{problem} for {len(symbols)} symbol(s): {shown}{reason}"


async def fetch_exchange_snapshot(
    exchange: Any,
    *,
    quote: str = "USDT",
    max_concurrency: int = 8,
    retry_attempts: int = 3,
    progress: Progress | None = None,
    now_ms: Callable[[], int] | None = None,
) -> ExchangeSnapshot:
    """Fetch and normalise the current funding of every linear ``quote`` perpetual on one exchange.

    ``exchange`` is a ``ccxt.async_support`` exchange (markets are loaded here if needed). Only
    perpetuals with a matching spot market get tickers; the others are kept for reporting but
    have ``spot_symbol`` None. ``now_ms`` is the clock stamped on the snapshot (UTC ms; the
    exchange object's clock by default); the history windows end there.

    Raises:
        ConfigError: for an exchange without a field mapping.
        VenueError: when the markets or the funding rates cannot be fetched at all.
    """
    exchange_id = exchange.id
    mapping = mapping_for(exchange_id)
    report = progress or (lambda *_: None)

    async def read(action: str, fn: Callable[[], Awaitable[T]]) -> T:
        from perphedge.venues.ccxt_common import acall_with_retries  # imports ccxt: only when fetching

        return await acall_with_retries(fn, exchange_id=exchange_id, action=action, attempts=retry_attempts)

    if not exchange.markets:
        await read("load markets", exchange.load_markets)
    recorded_ts_ms = int(now_ms() if now_ms is not None else exchange.milliseconds())
    perps = linear_perpetuals(exchange, quote)
    spot_symbols = {m["symbol"] for m in spot_markets(exchange, quote)}
    perp_by_symbol = {m["symbol"]: m for m in perps}
    warnings: list[str] = []
    if not perps:
        return ExchangeSnapshot(
            exchange_id=exchange_id,
            recorded_ts_ms=recorded_ts_ms,
            quotes=(),
            warnings=(f"no active linear {quote} perpetuals listed",),
        )
    symbols = list(perp_by_symbol)

    # 1. funding rates: one bulk call, or one call per symbol
    report(exchange_id, "funding", 0, len(symbols))
    raw_rates: dict[str, Mapping[str, Any]] = {}
    if exchange.has.get("fetchFundingRates") and mapping.bulk_funding:
        bulk = await read("fetch funding rates", lambda: exchange.fetch_funding_rates(symbols))
        raw_rates = {s: r for s, r in bulk.items() if s in perp_by_symbol}
        report(exchange_id, "funding", len(symbols), len(symbols))
    elif exchange.has.get("fetchFundingRate"):
        answers = await _bounded_gather(
            symbols,
            lambda s: read(f"fetch funding rate {s}", lambda: exchange.fetch_funding_rate(s)),
            max_concurrency=max_concurrency,
            on_done=lambda n: report(exchange_id, "funding", n, len(symbols)),
        )
        failed = [(s, a) for s, a in zip(symbols, answers, strict=True) if isinstance(a, PerphedgeError)]
        if len(failed) == len(symbols):
            raise VenueError(
                f"fetch funding rate failed for every symbol ({failed[0][1]})", exchange=exchange_id
            )
        if failed:
            warnings.append(
                _summarise("funding rate unavailable", [s for s, _ in failed], [a for _, a in failed])
            )
        raw_rates = {s: a for s, a in zip(symbols, answers, strict=True) if not isinstance(a, PerphedgeError)}
    else:
        raise VenueError(
            "offers neither fetchFundingRates nor fetchFundingRate through ccxt", exchange=exchange_id
        )

    quotes: dict[str, PerpFundingQuote] = {}
    bad: list[str] = []
    for symbol, raw in raw_rates.items():
        try:
            quotes[symbol] = normalise_funding_rate(
                exchange_id, raw, perp_by_symbol[symbol], spot_symbols=spot_symbols
            )
        except DataError as e:
            bad.append(f"{symbol}: {e}")
    if bad:
        warnings.append(f"{len(bad)} funding quote(s) unusable: " + "; ".join(bad[:3]))
    unanswered = [s for s in symbols if s not in raw_rates]
    if unanswered and mapping.bulk_funding:
        warnings.append(_summarise("no funding rate in the exchange's answer", unanswered))

    # 2. intervals the funding call left empty
    missing_interval = [s for s, q in quotes.items() if q.interval_hours is None]
    if missing_interval and exchange.has.get("fetchFundingIntervals"):
        try:
            intervals = await read(
                "fetch funding intervals", lambda: exchange.fetch_funding_intervals(missing_interval)
            )
        except (VenueError, DataError) as e:
            warnings.append(f"funding intervals unavailable ({e}); APR needs --history for those symbols")
            intervals = None
        if intervals is not None:
            for symbol in missing_interval:
                entry = intervals.get(symbol)
                hours = (
                    parse_interval_hours(entry.get("interval"), where=f"{exchange_id} {symbol}")
                    if entry
                    else None
                )
                if hours is not None:
                    quotes[symbol] = with_interval(
                        quotes[symbol], hours, f"{exchange_id}: {mapping.interval_from}"
                    )
                    if (
                        quotes[symbol].next_settle_ts_ms is None
                        and entry.get(mapping.next_settle_field) is not None
                    ):
                        quotes[symbol] = replace(
                            quotes[symbol], next_settle_ts_ms=int(entry[mapping.next_settle_field])
                        )
                elif mapping.interval_when_absent_hours is not None:
                    quotes[symbol] = with_interval(
                        quotes[symbol],
                        mapping.interval_when_absent_hours,
                        f"{exchange_id}: not listed by the interval endpoint, so the documented default "
                        f"{mapping.interval_when_absent_hours:g} h ({mapping.source_url})",
                    )

    # 3. tickers of both legs, for the perpetuals that have a spot market
    paired = sorted(q.perp_symbol for q in quotes.values() if q.spot_symbol is not None)
    spot_needed = sorted({spot for s in paired if (spot := quotes[s].spot_symbol) is not None})
    contract_sizes = {s: quotes[s].contract_size_base for s in paired}
    spot_tickers = await _fetch_tickers(
        exchange, spot_needed, {}, read, max_concurrency, warnings, "spot", report
    )
    perp_tickers = await _fetch_tickers(
        exchange, paired, contract_sizes, read, max_concurrency, warnings, "perp", report
    )
    return ExchangeSnapshot(
        exchange_id=exchange_id,
        recorded_ts_ms=recorded_ts_ms,
        quotes=tuple(quotes[s] for s in sorted(quotes)),
        spot_tickers=spot_tickers,
        perp_tickers=perp_tickers,
        warnings=tuple(warnings),
    )


MAX_SYMBOLS_IN_TICKER_REQUEST = 50
"""Above this many symbols the bulk ticker call asks for the whole market type and filters locally.

Binance spot puts a ``symbols=[...]`` list in the URL (weight 80 from 101 symbols, the same as all
symbols), so hundreds of names would only make a very long URL.
"""


def bulk_ticker_request(symbols: Sequence[str], leg: str) -> tuple[list[str] | None, dict[str, str]]:
    """Return the ``(symbols, params)`` of the bulk ``fetch_tickers`` call for one leg (``spot``/``perp``)."""
    if len(symbols) <= MAX_SYMBOLS_IN_TICKER_REQUEST:
        return list(symbols), {}
    return None, ({"type": "spot"} if leg == "spot" else {"type": "swap", "subType": "linear"})


async def _fetch_tickers(
    exchange: Any,
    symbols: list[str],
    contract_sizes: Mapping[str, float],
    read: Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]],
    max_concurrency: int,
    warnings: list[str],
    leg: str,
    report: Progress,
) -> dict[str, LegTicker]:
    """Bulk ``fetch_tickers`` then ``fetch_ticker`` for the symbols the bulk answer left out."""
    if not symbols:
        return {}
    exchange_id = exchange.id
    report(exchange_id, f"{leg} tickers", 0, len(symbols))
    tickers: dict[str, LegTicker] = {}
    if exchange.has.get("fetchTickers"):
        symbols_arg, params = bulk_ticker_request(symbols, leg)
        try:
            bulk = await read(f"fetch {leg} tickers", lambda: exchange.fetch_tickers(symbols_arg, params))
            for symbol in symbols:
                if symbol in bulk:
                    tickers[symbol] = normalise_ticker(
                        bulk[symbol], contract_size_base=contract_sizes.get(symbol, 1.0)
                    )
        except PerphedgeError as e:
            warnings.append(f"bulk {leg} tickers unavailable ({e}); fetching them one by one")
    missing = [s for s in symbols if s not in tickers]
    if missing and exchange.has.get("fetchTicker"):
        answers = await _bounded_gather(
            missing,
            lambda s: read(f"fetch {leg} ticker {s}", lambda: exchange.fetch_ticker(s)),
            max_concurrency=max_concurrency,
            on_done=lambda n: report(
                exchange_id, f"{leg} tickers", len(symbols) - len(missing) + n, len(symbols)
            ),
        )
        failed: list[tuple[str, Exception]] = []
        for symbol, answer in zip(missing, answers, strict=True):
            if isinstance(answer, PerphedgeError):
                failed.append((symbol, answer))
            elif answer.get("symbol") == symbol:
                tickers[symbol] = normalise_ticker(answer, contract_size_base=contract_sizes.get(symbol, 1.0))
            else:  # an answer for another instrument is not this symbol's ticker
                failed.append(
                    (
                        symbol,
                        VenueError(f"ticker answer was for {answer.get('symbol')!r}", exchange=exchange_id),
                    )
                )
        if failed:
            warnings.append(
                _summarise(
                    f"{leg} ticker unavailable (volume and basis unknown)",
                    [s for s, _ in failed],
                    [e for _, e in failed],
                )
            )
    report(exchange_id, f"{leg} tickers", len(symbols), len(symbols))
    return tickers


class _BlockingFacade:
    """A synchronous view of an async ccxt exchange, for the paginated history helper.

    :func:`perphedge.venues.history.fetch_funding_rate_history` pages with the exchange's own plan
    (forward for Binance, backward for Bybit and OKX) through a synchronous exchange. Run in a worker
    thread, this facade submits each request to the event loop that owns the async exchange, so the
    scanner keeps one exchange object, one session and one rate limiter per exchange.
    """

    def __init__(self, exchange: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._exchange = exchange
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exchange, name)

    def fetch_funding_rate_history(
        self,
        symbol: str,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        coroutine = self._exchange.fetch_funding_rate_history(symbol, since, limit, params or {})
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


async def fetch_recent_funding_rows(
    exchange: Any,
    perp_symbol: str,
    *,
    since_ms: int,
    until_ms: int | None = None,
    retry_sleep: Callable[[float], None] | None = None,
) -> list[dict[str, Any]]:
    """Return ccxt's funding-rate-history structures of one perpetual in ``[since_ms, until_ms]``, ascending.

    Uses the project's paginated downloader :func:`perphedge.venues.history.fetch_funding_rate_history`
    (each exchange's documented paging, retries with backoff) in a worker thread, its requests
    running on this event loop's async ``exchange``.

    Raises:
        VenueError: when the exchange cannot answer (VenueUnavailable after the retries).
    """
    from perphedge.venues.history import fetch_funding_rate_history

    facade = _BlockingFacade(exchange, asyncio.get_running_loop())
    extra: dict[str, Any] = {} if retry_sleep is None else {"sleep": retry_sleep}
    return await asyncio.to_thread(
        fetch_funding_rate_history, facade, perp_symbol, since_ms, until_ms, **extra
    )


def funding_history_from_rows(
    perp_symbol: str, rows: Iterable[Mapping[str, Any]], *, since_ms: int, where: str
) -> FundingHistory:
    """Return the :class:`FundingHistory` of ccxt funding-rate-history structures (oldest first).

    Raises:
        DataError: when a settlement has no rate or timestamp (never filled in).
    """
    stamps: list[int] = []
    rates: list[float] = []
    for row in rows:
        ts, value = row.get("timestamp"), row.get("fundingRate")
        if ts is None or value is None:
            raise DataError(
                f"a settlement had timestamp {ts!r} and rate {value!r}; both are needed", where=where
            )
        stamps.append(int(ts))
        rates.append(float(value))
    return FundingHistory(
        perp_symbol=perp_symbol, settle_ts_ms=tuple(stamps), rates=tuple(rates), since_ms=since_ms
    )


async def fetch_recent_funding_history(
    exchange: Any,
    perp_symbol: str,
    *,
    since_ms: int,
    until_ms: int | None = None,
    retry_sleep: Callable[[float], None] | None = None,
) -> FundingHistory:
    """Fetch the settlements of one perpetual in ``[since_ms, until_ms]``, oldest first (no cache).

    Raises:
        VenueError: when the exchange cannot answer (VenueUnavailable after the retries).
        DataError: when a settlement has no rate or timestamp.
    """
    rows = await fetch_recent_funding_rows(
        exchange, perp_symbol, since_ms=since_ms, until_ms=until_ms, retry_sleep=retry_sleep
    )
    return funding_history_from_rows(
        perp_symbol, rows, since_ms=since_ms, where=f"{exchange.id} {perp_symbol}"
    )


def history_window_ms(days: float) -> int:
    """Return ``days`` in milliseconds (the history window fetched for ``--history``)."""
    return int(round(days * 24 * MS_PER_HOUR))
