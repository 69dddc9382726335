"""The carry scan: fetch every exchange concurrently, build candidates, rank them.

One exchange failing (unreachable, refused, malformed answer) is recorded in ``ScanResult.errors``
and the others still answer. Network calls run through ``ccxt.async_support`` exchanges with
``enableRateLimit`` (each exchange throttles its own requests); exchanges run concurrently
(``asyncio.gather``) and per-symbol calls on one exchange are bounded by ``max_concurrency``.

With ``history=True`` the ``history_limit`` best candidates (after the filters, by the score without
history) get their last 30 days of settlements, then everything is ranked again with the 7/30-day
means and the negative-share penalty. Pairs whose exchange gave no funding interval (its interval
endpoint failed) get recent settlements too, up to ``history_limit`` of them, and their interval is
inferred from the spacing (3 days without ``history``, used for nothing else). The history is bounded on purpose: Binance's
``/fapi/v1/fundingRate`` shares 500 requests per 5 minutes per IP. It is cached through the data
layer (:mod:`perphedge.scan.history_cache`: the ``perphedge data fetch`` cache, same files), so a
repeated scan downloads only the settlements since the last one; ``data_dir=None`` turns the cache off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from perphedge.errors import DataError, InputError, PerphedgeError
from perphedge.mechanics.funding import infer_interval_hours
from perphedge.scan.rank import Candidate, ScanSettings, build_candidates, passes_filters, rank_candidates
from perphedge.venues.funding_snapshot import (
    ExchangeSnapshot,
    FundingHistory,
    Progress,
    fetch_exchange_snapshot,
    fetch_recent_funding_history,
    history_window_ms,
    mapping_for,
    with_interval,
)

JSON_SCHEMA_VERSION = 1
HISTORY_DAYS = 30
INTERVAL_HISTORY_DAYS = 3
"""Without ``--history``, a pair whose exchange gave no interval gets 3 days of settlements (≥ 9 at 8 h) to infer it."""

ExchangeFactory = Callable[[str], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeFailure:
    """An exchange that did not answer: its id, the error class and the message."""

    exchange: str
    error_type: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanWarning:
    """A partial failure on an exchange that still answered (a ticker, an interval, a history)."""

    exchange: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryCacheUse:
    """What the history cache did: its directory, the pairs read through it, settlements downloaded."""

    dir: str
    pairs: int
    settlements_downloaded: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult:
    """What a scan found. ``candidates`` are ranked, filtered and cut to ``settings.top``.

    ``as_of_ts_ms`` is the latest exchange clock reading (UTC ms); ``considered`` counts the spot/perp
    pairs before the filters; ``unpaired_perps`` the perpetuals without a spot market (not carry).
    """

    as_of_ts_ms: int | None
    settings: ScanSettings
    quote: str
    exchanges: tuple[str, ...]
    answered: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    considered: int
    unpaired_perps: int
    history_days: int | None
    errors: tuple[ExchangeFailure, ...] = ()
    warnings: tuple[ScanWarning, ...] = ()
    history_cache: HistoryCacheUse | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the stable ``--json`` document (keys documented in docs/scanner.md)."""
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "as_of_ts_ms": self.as_of_ts_ms,
            "quote": self.quote,
            "exchanges": list(self.exchanges),
            "answered": list(self.answered),
            "settings": asdict(self.settings),
            "score": "net_apr_horizon x (1 - negative_share) if >= 0 else x (1 + negative_share); "
            "negative_share from the 30-day window (7-day if 30 not covered), 0 without --history",
            "history_days": self.history_days,
            "history_cache": None if self.history_cache is None else asdict(self.history_cache),
            "considered": self.considered,
            "unpaired_perps": self.unpaired_perps,
            "candidates": [c.to_json() for c in self.candidates],
            "errors": [asdict(e) for e in self.errors],
            "warnings": [asdict(w) for w in self.warnings],
        }


def parse_exchange_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """Return the exchange ids of ``"binance,bybit"`` (lower-cased, de-duplicated, order kept).

    Raises:
        InputError: when the list is empty.
        ConfigError: for an exchange without a funding-field mapping.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    ids: list[str] = []
    for item in items:
        name = item.strip().lower()
        if name and name not in ids:
            mapping_for(name)
            ids.append(name)
    if not ids:
        raise InputError(f"no exchange given; it was {text!r}; pass e.g. --exchanges binance,bybit,okx")
    return tuple(ids)


def _default_factory(exchange_id: str) -> Any:
    from perphedge.venues.ccxt_common import create_exchange  # imports ccxt: only when scanning

    return create_exchange(exchange_id, async_=True)


async def scan(
    exchange_ids: Sequence[str],
    settings: ScanSettings,
    *,
    quote: str = "USDT",
    history: bool = False,
    history_limit: int = 30,
    max_concurrency: int = 8,
    retry_attempts: int = 3,
    progress: Progress | None = None,
    exchange_factory: ExchangeFactory | None = None,
    now_ms: Callable[[], int] | None = None,
    data_dir: Path | None = None,
) -> ScanResult:
    """Scan the exchanges and return the ranked candidates (see the module docstring).

    ``exchange_factory(exchange_id)`` returns a ``ccxt.async_support`` exchange (default:
    :func:`perphedge.venues.ccxt_common.create_exchange`); ``now_ms`` the clock (UTC ms) that ends the
    history windows (default: each exchange object's clock); ``data_dir`` the data cache that keeps
    the funding history between scans (None: no cache, every ``history`` scan downloads 30 days).
    """
    ids = parse_exchange_list(list(exchange_ids))
    if history_limit < 1:
        raise InputError(f"history_limit must be at least 1; it was {history_limit!r}")
    factory = exchange_factory or _default_factory
    exchanges: dict[str, Any] = {}
    try:
        for exchange_id in ids:
            exchanges[exchange_id] = factory(exchange_id)
        answers = await asyncio.gather(
            *(
                fetch_exchange_snapshot(
                    ex,
                    quote=quote,
                    max_concurrency=max_concurrency,
                    retry_attempts=retry_attempts,
                    progress=progress,
                    now_ms=now_ms,
                )
                for ex in exchanges.values()
            ),
            return_exceptions=True,
        )
        snapshots: list[ExchangeSnapshot] = []
        errors: list[ExchangeFailure] = []
        for exchange_id, answer in zip(ids, answers, strict=True):
            if isinstance(answer, ExchangeSnapshot):
                snapshots.append(answer)
            elif isinstance(answer, Exception):
                message = str(answer) if isinstance(answer, PerphedgeError) else f"unexpected: {answer!r}"
                errors.append(
                    ExchangeFailure(exchange=exchange_id, error_type=type(answer).__name__, message=message)
                )
            else:  # KeyboardInterrupt / CancelledError: not ours to swallow
                raise answer
        warnings = [ScanWarning(exchange=s.exchange_id, message=w) for s in snapshots for w in s.warnings]

        histories: dict[tuple[str, str], FundingHistory] = {}
        cache_use: HistoryCacheUse | None = None
        first_pass = build_candidates(snapshots, settings)
        unknown_interval = _interval_unknown(first_pass, settings, history_limit)
        chosen: list[Candidate] = []
        if history:
            scored = rank_candidates(first_pass, replace(settings, top=history_limit))
            chosen = [c for c in scored if c.score is not None]
        chosen += [c for c in unknown_interval if c not in chosen]
        if chosen:
            histories, history_warnings, downloaded = await _fetch_histories(
                exchanges,
                snapshots,
                chosen,
                days=HISTORY_DAYS if history else INTERVAL_HISTORY_DAYS,
                retry_attempts=retry_attempts,
                max_concurrency=max_concurrency,
                progress=progress,
                data_dir=data_dir,
            )
            warnings.extend(history_warnings)
            if data_dir is not None:
                cache_use = HistoryCacheUse(
                    dir=str(data_dir), pairs=len(histories), settlements_downloaded=downloaded
                )
        if not history:  # the settlements only gave the missing intervals: no 7/30-day figures
            snapshots = _with_inferred_intervals(snapshots, histories)
            histories = {}
        candidates = _rebuild(first_pass, snapshots, settings, histories, chosen)
        ranked = rank_candidates(candidates, settings)
        return ScanResult(
            as_of_ts_ms=max((s.recorded_ts_ms for s in snapshots), default=None),
            settings=settings,
            quote=quote,
            exchanges=ids,
            answered=tuple(s.exchange_id for s in snapshots),
            candidates=tuple(ranked),
            considered=len(candidates),
            unpaired_perps=sum(1 for s in snapshots for q in s.quotes if q.spot_symbol is None),
            history_days=HISTORY_DAYS if history else None,
            errors=tuple(errors),
            warnings=tuple(warnings),
            history_cache=cache_use,
        )
    finally:
        await asyncio.gather(*(ex.close() for ex in exchanges.values()), return_exceptions=True)


def _rebuild(
    first_pass: Sequence[Candidate],
    snapshots: Sequence[ExchangeSnapshot],
    settings: ScanSettings,
    histories: Mapping[tuple[str, str], FundingHistory],
    chosen: Sequence[Candidate],
) -> list[Candidate]:
    """Return ``first_pass`` with only the chosen pairs built again (with their history or interval)."""
    if not chosen:
        return list(first_pass)
    keys = {(c.exchange, c.perp_symbol) for c in chosen}
    subset = [
        replace(s, quotes=tuple(q for q in s.quotes if (s.exchange_id, q.perp_symbol) in keys))
        for s in snapshots
    ]
    rebuilt = {(c.exchange, c.perp_symbol): c for c in build_candidates(subset, settings, histories)}
    return [rebuilt.get((c.exchange, c.perp_symbol), c) for c in first_pass]


def _interval_unknown(candidates: Sequence[Candidate], settings: ScanSettings, limit: int) -> list[Candidate]:
    """Return up to ``limit`` pairs whose exchange gave no funding interval, largest |rate| first.

    They pass the volume filter (the APR filter cannot be judged before the interval is known).
    """
    volume_only = replace(settings, min_apr=None)
    unknown = [c for c in candidates if c.interval_hours is None and passes_filters(c, volume_only)]
    unknown.sort(key=lambda c: (-abs(c.funding_rate), c.exchange, c.perp_symbol))
    return unknown[:limit]


def _with_inferred_intervals(
    snapshots: Sequence[ExchangeSnapshot], histories: Mapping[tuple[str, str], FundingHistory]
) -> list[ExchangeSnapshot]:
    """Return the snapshots with each missing interval set from its settlements' spacing, where it can be."""
    out = []
    for snapshot in snapshots:
        quotes = []
        for quote in snapshot.quotes:
            history = histories.get((snapshot.exchange_id, quote.perp_symbol))
            if quote.interval_hours is None and history is not None and len(history.settle_ts_ms) >= 2:
                try:
                    hours = float(infer_interval_hours(history.settle_ts_ms)[-1])
                except DataError:
                    pass  # build_candidate notes the unknown interval
                else:
                    quote = with_interval(quote, hours, "inferred from the spacing of recent settlements")
            quotes.append(quote)
        out.append(replace(snapshot, quotes=tuple(quotes)))
    return out


async def _fetch_histories(
    exchanges: dict[str, Any],
    snapshots: Sequence[ExchangeSnapshot],
    chosen: Sequence[Candidate],
    *,
    days: int,
    retry_attempts: int,
    max_concurrency: int,
    progress: Progress | None,
    data_dir: Path | None,
) -> tuple[dict[tuple[str, str], FundingHistory], list[ScanWarning], int]:
    """Return the histories of the chosen candidates, the warnings, and the settlements downloaded."""
    recorded = {s.exchange_id: s.recorded_ts_ms for s in snapshots}
    semaphores = {exchange_id: asyncio.Semaphore(max_concurrency) for exchange_id in recorded}
    total = len(chosen)
    done = 0
    downloaded = 0

    async def one(candidate: Candidate) -> FundingHistory:
        nonlocal done, downloaded
        exchange = exchanges[candidate.exchange]
        since_ms = recorded[candidate.exchange] - history_window_ms(days)
        until_ms = recorded[candidate.exchange]
        retry_sleep = None if retry_attempts > 1 else _no_wait
        async with semaphores[candidate.exchange]:
            try:
                if data_dir is None:
                    fetched = await fetch_recent_funding_history(
                        exchange,
                        candidate.perp_symbol,
                        since_ms=since_ms,
                        until_ms=until_ms,
                        retry_sleep=retry_sleep,
                    )
                    downloaded += len(fetched.settle_ts_ms)
                    return fetched
                from perphedge.scan.history_cache import cached_funding_history

                try:
                    cached = await cached_funding_history(
                        exchange,
                        candidate.perp_symbol,
                        since_ms=since_ms,
                        until_ms=until_ms,
                        data_dir=data_dir,
                        spot_symbol=candidate.spot_symbol,
                        retry_sleep=retry_sleep,
                    )
                except OSError as e:  # an unwritable or full cache directory: this pair has no history
                    raise DataError(
                        f"the history cache cannot be used ({e}); give a writable --data-dir or pass --no-cache",
                        where=str(data_dir),
                    ) from e
                downloaded += cached.rows_downloaded
                return cached.history
            finally:
                done += 1
                if progress is not None:
                    progress("all", "funding history", done, total)

    answers = await asyncio.gather(*(one(c) for c in chosen), return_exceptions=True)
    histories: dict[tuple[str, str], FundingHistory] = {}
    warnings: list[ScanWarning] = []
    for candidate, answer in zip(chosen, answers, strict=True):
        if isinstance(answer, FundingHistory):
            histories[(candidate.exchange, candidate.perp_symbol)] = answer
        elif isinstance(answer, PerphedgeError):
            warnings.append(
                ScanWarning(
                    exchange=candidate.exchange,
                    message=f"funding history of {candidate.perp_symbol} unavailable ({answer})",
                )
            )
        elif isinstance(answer, BaseException):
            raise answer
    return histories, warnings, downloaded


def _no_wait(seconds: float) -> None:
    """With ``retry_attempts`` 1 the history downloader retries without waiting (it has its own count)."""


def run_scan(exchange_ids: Sequence[str], settings: ScanSettings, **kwargs: Any) -> ScanResult:
    """Synchronous wrapper of :func:`scan` (runs its own event loop)."""
    return asyncio.run(scan(exchange_ids, settings, **kwargs))
