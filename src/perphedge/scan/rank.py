"""Carry candidates from normalised funding snapshots, and their ranking. Pure: no I/O, no clock.

A candidate is one spot + perpetual pair on one exchange: hold the spot, short the perpetual,
receive the funding (positive rates are paid by longs to shorts). For each one:

    apr_current           = rate × (24 / interval_h) × 365               (simple APR, real interval)
    round_trip_cost       = 2 × (fee_spot + fee_perp)                    (open and close both legs)
    break_even_days       = round_trip_cost / (rate × 24 / interval_h)   (None when rate ≤ 0: never)
    net_apr_horizon       = apr_current − round_trip_cost × 365 / horizon_days
    basis_bps             = (perp − spot) / spot × 10 000                 (perp = mark, else last)
    apr_mean_Nd           = Σ settled rates in the last N days × 365 / days they paid for
                            (= time-weighted mean of each settlement's APR at its own interval)
    negative_share_Nd     = settlements with rate < 0 / settlements in the last N days

**Score** (the ranking key, highest first): ``net_apr_horizon`` penalised by the share of negative
settlements ``s`` in the 30-day window (the 7-day one when 30 days are not covered; no penalty
without ``--history``): ``net × (1 − s)`` when ``net ≥ 0``, ``net × (1 + s)`` when ``net < 0``.

Sources: annualisation — Binance funding FAQ (0.03 %/day, 10.95 % simple APR for 0.01 %/8 h),
https://www.binance.com/en/support/faq/360033525031, via :func:`perphedge.mechanics.funding.annualize_simple`.
Fees — Binance fee schedule (https://www.binance.com/en/fee/schedule, base tier: spot 0.10 % per side,
USDⓈ-M taker 0.05 %), so opening and closing both legs costs 0.30 % of notional: ten days (thirty
8-hour periods) of the 0.01 %/8 h baseline. Basis — perp price minus spot price as a fraction of spot
(docs/DOMAIN glossary; Binance "basis" = futures price − index/spot price).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from perphedge.errors import DataError, InputError
from perphedge.mechanics.fees import breakeven_days, round_trip_fee_fraction
from perphedge.mechanics.funding import (
    SETTLEMENT_JITTER_TOLERANCE_MS,
    annualize_compound,
    annualize_simple,
    infer_interval_hours,
    mean_apr_time_weighted,
)
from perphedge.units import (
    DAYS_PER_YEAR,
    HOURS_PER_YEAR,
    MS_PER_DAY,
    MS_PER_HOUR,
    require_finite,
    require_fraction,
    require_non_negative,
    require_positive,
)
from perphedge.venues.funding_snapshot import ExchangeSnapshot, FundingHistory, LegTicker, PerpFundingQuote

BPS_PER_UNIT = 10_000.0
HISTORY_WINDOWS_DAYS: tuple[int, int] = (7, 30)
MAX_APR_FILTER = 10.0
"""Largest |min_apr| accepted (1000 %): a larger value is almost surely a percent typed as a fraction."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSettings:
    """Costs, horizon and filters of a scan. Fees and rates are fractions (0.001 = 0.10 %).

    ``min_apr`` filters on the current simple APR (a fraction: 0.1 = 10 %); ``min_volume_usd`` on the
    smaller 24 h quote volume of the two legs; ``top`` keeps the best N (None: all).
    ``max_quote_gap_ms`` is the largest time between the perp and spot prices for a basis.
    """

    fee_spot: float = 0.001
    fee_perp: float = 0.0005
    horizon_days: float = 30.0
    min_apr: float | None = None
    min_volume_usd: float = 0.0
    top: int | None = 20
    max_quote_gap_ms: int = 60_000

    def __post_init__(self) -> None:
        require_fraction("fee_spot", self.fee_spot, high=0.05)
        require_fraction("fee_perp", self.fee_perp, high=0.05)
        require_positive("horizon_days", self.horizon_days)
        require_non_negative("min_volume_usd", self.min_volume_usd)
        if self.min_apr is not None and abs(require_finite("min_apr", self.min_apr)) > MAX_APR_FILTER:
            raise InputError(
                f"min_apr must be a fraction such as 0.1 for 10 % (at most {MAX_APR_FILTER:g} = "
                f"{MAX_APR_FILTER:.0%}); it was {self.min_apr!r}, which looks like a percent"
            )
        if self.top is not None and self.top < 1:
            raise InputError(f"top must be at least 1 (or None for all candidates); it was {self.top!r}")
        require_non_negative("max_quote_gap_ms", self.max_quote_gap_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowStats:
    """Settled funding over the last ``window_days``: mean APR and the share of negative settlements.

    ``covered_days`` is the time the settlements in the window paid for (the sum of their intervals);
    ``starts_inside`` is True when that span begins after the window's start (a new listing or a
    short answer); ``mean_apr`` is None when the span cannot be known (one settlement, interval unknown).
    """

    window_days: float
    settlements: int
    covered_days: float | None
    mean_apr: float | None
    negative_share: float
    has_gaps: bool = False
    starts_inside: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One spot + perp carry candidate. Field names are the stable ``--json`` keys (docs/scanner.md).

    Fractions throughout (apr 0.1095 = 10.95 %); None where the input was unknown, never a guess.
    """

    exchange: str
    perp_symbol: str
    spot_symbol: str
    base: str
    quote: str
    funding_rate: float
    rate_kind: str
    interval_hours: float | None
    interval_source: str | None
    next_settle_ts_ms: int | None
    apr_current: float | None
    apy_current: float | None
    apr_mean_7d: float | None
    apr_mean_30d: float | None
    negative_share_7d: float | None
    negative_share_30d: float | None
    settlements_7d: int | None
    settlements_30d: int | None
    mark_price_usd: float | None
    index_price_usd: float | None
    perp_price_usd: float | None
    spot_price_usd: float | None
    basis_bps: float | None
    basis_price_source: str | None
    quote_gap_ms: int | None
    spot_volume_24h_usd: float | None
    perp_volume_24h_usd: float | None
    min_volume_24h_usd: float | None
    round_trip_cost: float
    break_even_days: float | None
    net_apr_horizon: float | None
    horizon_days: float
    score: float | None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """Return the candidate as a JSON-ready dict with the documented keys."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


# --- the formulas ----------------------------------------------------------------------------------


def break_even_days(rate_per_interval: float, interval_hours: float, cost_fraction: float) -> float | None:
    """Return the days of funding at the current rate needed to earn back ``cost_fraction``.

    ``cost / (rate × 24 / interval_hours)``; None when the rate is ≤ 0 (the carry never pays back).
    0.30 % at 0.01 % per 8 h: 10 days.
    """
    return breakeven_days(cost_fraction, rate_per_interval * 24.0 / interval_hours)


def net_apr_over_horizon(apr: float, cost_fraction: float, horizon_days: float) -> float:
    """Return the APR left after paying ``cost_fraction`` once over a holding of ``horizon_days``.

    ``apr − cost × 365 / horizon_days``: 10.95 % gross less 0.30 % over 30 days gives 7.30 %.
    """
    return apr - cost_fraction * DAYS_PER_YEAR / horizon_days


def basis_bps(perp_price_usd: float, spot_price_usd: float) -> float:
    """Return the basis ``(perp − spot) / spot`` in basis points (positive: perp above spot)."""
    return (perp_price_usd - spot_price_usd) / spot_price_usd * BPS_PER_UNIT


def penalised_score(net_apr: float, negative_share: float | None) -> float:
    """Return the ranking score: ``net × (1 − s)`` for net ≥ 0, ``net × (1 + s)`` below 0 (s = share negative)."""
    if negative_share is None:
        return net_apr
    return net_apr * (1.0 - negative_share) if net_apr >= 0 else net_apr * (1.0 + negative_share)


def window_stats(
    settle_ts_ms: Sequence[int],
    rates: Sequence[float],
    *,
    as_of_ts_ms: int,
    window_days: float,
    interval_hours: float | None = None,
) -> WindowStats | None:
    """Return the mean APR and negative share of the settlements in ``(as_of − window, as_of]``.

    A settlement stamped just after the window start (Binance stamps 16:00:00.027 for the 16:00
    settlement, which paid for the hours up to 16:00) is counted with the few ms of its period that
    fall inside the window, so exchange jitter does not move the mean.

    Mean APR = the time-weighted mean of each settlement's own APR,
    ``Σ annualize_simple(rate_i, h_i) × w_i / Σ w_i``, with ``h_i`` the interval settlement ``i`` paid
    for (the spacing to its predecessor, :func:`perphedge.mechanics.funding.infer_interval_hours`) and
    ``w_i = h_i`` except for the first settlement, whose period may begin before the window: only its
    part inside the window counts. With all ``w_i = h_i`` this is ``Σ rate_i × 8760 / Σ h_i``, the
    funding actually paid over the covered time, annualised (Binance FAQ convention,
    https://www.binance.com/en/support/faq/360033525031). The still-running period after the last
    settlement is not counted (its rate is the current one, shown as ``apr_current``).
    ``interval_hours`` (the symbol's current interval) is used only for a lone settlement or when the
    spacing shows missing settlements (``has_gaps``: then the missing ones count as zero and the span
    runs from the first settlement's period start to the last settlement). None when no settlement
    falls in the window. ``settle_ts_ms`` must be increasing (oldest first).
    """
    ts = np.asarray(settle_ts_ms, dtype=np.int64)
    values = np.asarray(rates, dtype=float)
    window_start_ms = as_of_ts_ms - window_days * MS_PER_DAY
    inside = (ts > window_start_ms) & (ts <= as_of_ts_ms)
    if not inside.any():
        return None
    ts_in, rates_in = ts[inside], values[inside]
    hours_in: np.ndarray | None = None
    has_gaps = False
    if ts.size >= 2:
        try:  # the whole history first: the window's first settlement gets the spacing to its predecessor
            hours_in = infer_interval_hours(ts)[inside]
        except DataError:
            if ts_in.size >= 2:
                try:
                    hours_in = infer_interval_hours(ts_in)
                except DataError:  # missing settlements inside the window
                    has_gaps = True
    first_interval_h = float(hours_in[0]) if hours_in is not None else interval_hours
    first_period_start_ms = float(ts_in[0]) - (first_interval_h or 0.0) * MS_PER_HOUR
    # the first settlement's period may begin before the window: only its part inside counts
    clipped_first_h = (float(ts_in[0]) - max(first_period_start_ms, window_start_ms)) / MS_PER_HOUR
    covered_h: float | None
    mean_apr: float | None
    if hours_in is not None:
        weights = hours_in.astype(float).copy()
        weights[0] = clipped_first_h
        covered_h = float(weights.sum())
        mean_apr = mean_apr_time_weighted(rates_in, hours_in, weights)
    elif interval_hours is not None:  # a lone settlement, or gaps: missing settlements count as zero
        covered_h = (int(ts_in[-1]) - int(ts_in[0])) / MS_PER_HOUR + clipped_first_h
        funding_paid = np.concatenate(([rates_in[0] / interval_hours * clipped_first_h], rates_in[1:])).sum()
        mean_apr = float(funding_paid * HOURS_PER_YEAR / covered_h)
    else:
        covered_h = mean_apr = None
    return WindowStats(
        window_days=float(window_days),
        settlements=int(ts_in.size),
        covered_days=None if covered_h is None else covered_h / 24.0,
        mean_apr=mean_apr,
        negative_share=float(np.count_nonzero(rates_in < 0) / ts_in.size),
        has_gaps=has_gaps,
        starts_inside=first_period_start_ms > window_start_ms + SETTLEMENT_JITTER_TOLERANCE_MS,
    )


# --- candidates --------------------------------------------------------------------------------------


def build_candidate(
    quote: PerpFundingQuote,
    *,
    spot_ticker: LegTicker | None,
    perp_ticker: LegTicker | None,
    history: FundingHistory | None,
    as_of_ts_ms: int,
    settings: ScanSettings,
) -> Candidate:
    """Return the :class:`Candidate` of one perpetual that has a spot market on its exchange.

    Raises:
        InputError: when the quote has no matching spot market (it is not a spot/perp carry).
    """
    if quote.spot_symbol is None:
        raise InputError(
            f"{quote.exchange_id} {quote.perp_symbol} has no spot market on the same exchange; "
            "only spot/perp pairs are carry candidates"
        )
    notes: list[str] = []
    interval_h, interval_source = quote.interval_hours, quote.interval_source
    if interval_h is None and history is not None and len(history.settle_ts_ms) >= 2:
        try:
            interval_h = float(infer_interval_hours(history.settle_ts_ms)[-1])
            interval_source = "inferred from the spacing of recent settlements"
        except DataError as e:
            notes.append(f"interval not inferable from history ({e})")
    if interval_h is None:
        notes.append("funding interval unknown: APR, break-even and score left empty (try --history)")

    cost = round_trip_fee_fraction(settings.fee_spot, settings.fee_perp)
    apr = apy = be_days = net = None
    if interval_h is not None:
        apr = float(annualize_simple(quote.rate_per_interval, interval_h))
        apy = float(annualize_compound(quote.rate_per_interval, interval_h))
        be_days = break_even_days(quote.rate_per_interval, interval_h, cost)
        net = net_apr_over_horizon(apr, cost, settings.horizon_days)

    stats: dict[int, WindowStats | None] = {d: None for d in HISTORY_WINDOWS_DAYS}
    if history is not None:
        for days in HISTORY_WINDOWS_DAYS:
            stats[days] = window_stats(
                history.settle_ts_ms,
                history.rates,
                as_of_ts_ms=as_of_ts_ms,
                window_days=days,
                interval_hours=interval_h,
            )
        long_window = stats[30]
        if long_window is None:
            notes.append("no settlement in the last 30 days of history")
        else:
            if long_window.starts_inside and long_window.covered_days is not None:
                notes.append(f"history covers {long_window.covered_days:.1f} of 30 days")
            if long_window.has_gaps:
                notes.append("history has missing settlements (gaps): means count only those returned")
    penalty_window = stats[30] or stats[7]
    negative_share = None if penalty_window is None else penalty_window.negative_share

    perp_price, price_source, perp_ts = None, None, None
    if quote.mark_price_usd is not None:
        perp_price, price_source, perp_ts = quote.mark_price_usd, "mark", quote.observed_ts_ms
    elif perp_ticker is not None and perp_ticker.last_price_usd is not None:
        perp_price, price_source, perp_ts = perp_ticker.last_price_usd, "perp_last", perp_ticker.ts_ms
    spot_price = None if spot_ticker is None else spot_ticker.last_price_usd
    spot_ts = None if spot_ticker is None else spot_ticker.ts_ms
    gap = None if perp_ts is None or spot_ts is None else abs(perp_ts - spot_ts)
    basis = None
    if perp_price is not None and spot_price is not None and spot_price > 0:
        if gap is not None and gap > settings.max_quote_gap_ms:
            notes.append(f"perp and spot prices are {gap / 1000:.0f} s apart: basis not computed")
            price_source = None
        else:
            basis = basis_bps(perp_price, spot_price)
    else:
        price_source = None

    spot_volume = None if spot_ticker is None else spot_ticker.quote_volume_24h_usd
    perp_volume = None if perp_ticker is None else perp_ticker.quote_volume_24h_usd
    if perp_ticker is not None and perp_ticker.volume_estimated:
        notes.append("perp volume estimated as base volume × contract size × last price")
    volumes = [v for v in (spot_volume, perp_volume) if v is not None]
    min_volume = min(volumes) if len(volumes) == 2 else None
    if min_volume is None:
        notes.append("24 h volume of a leg unknown")

    return Candidate(
        exchange=quote.exchange_id,
        perp_symbol=quote.perp_symbol,
        spot_symbol=quote.spot_symbol,
        base=quote.base,
        quote=quote.quote,
        funding_rate=quote.rate_per_interval,
        rate_kind=quote.rate_kind,
        interval_hours=interval_h,
        interval_source=interval_source,
        next_settle_ts_ms=quote.next_settle_ts_ms,
        apr_current=apr,
        apy_current=apy,
        apr_mean_7d=None if stats[7] is None else stats[7].mean_apr,
        apr_mean_30d=None if stats[30] is None else stats[30].mean_apr,
        negative_share_7d=None if stats[7] is None else stats[7].negative_share,
        negative_share_30d=None if stats[30] is None else stats[30].negative_share,
        settlements_7d=None if stats[7] is None else stats[7].settlements,
        settlements_30d=None if stats[30] is None else stats[30].settlements,
        mark_price_usd=quote.mark_price_usd,
        index_price_usd=quote.index_price_usd,
        perp_price_usd=perp_price,
        spot_price_usd=spot_price,
        basis_bps=basis,
        basis_price_source=price_source,
        quote_gap_ms=gap,
        spot_volume_24h_usd=spot_volume,
        perp_volume_24h_usd=perp_volume,
        min_volume_24h_usd=min_volume,
        round_trip_cost=cost,
        break_even_days=be_days,
        net_apr_horizon=net,
        horizon_days=settings.horizon_days,
        score=None if net is None else penalised_score(net, negative_share),
        notes=tuple(notes),
    )


def build_candidates(
    snapshots: Iterable[ExchangeSnapshot],
    settings: ScanSettings,
    histories: Mapping[tuple[str, str], FundingHistory] | None = None,
) -> list[Candidate]:
    """Return a candidate for every perpetual with a spot market on its exchange (unranked).

    ``histories`` maps ``(exchange_id, perp_symbol)`` to its recent settlements; the 7/30-day
    windows end at each snapshot's ``recorded_ts_ms``.
    """
    histories = histories or {}
    out: list[Candidate] = []
    for snapshot in snapshots:
        for quote in snapshot.quotes:
            if quote.spot_symbol is None:
                continue
            out.append(
                build_candidate(
                    quote,
                    spot_ticker=snapshot.spot_tickers.get(quote.spot_symbol),
                    perp_ticker=snapshot.perp_tickers.get(quote.perp_symbol),
                    history=histories.get((snapshot.exchange_id, quote.perp_symbol)),
                    as_of_ts_ms=snapshot.recorded_ts_ms,
                    settings=settings,
                )
            )
    return out


def passes_filters(candidate: Candidate, settings: ScanSettings) -> bool:
    """Return True when the candidate meets ``min_apr`` and ``min_volume_usd`` (unknown values fail)."""
    if settings.min_apr is not None and (
        candidate.apr_current is None or candidate.apr_current < settings.min_apr
    ):
        return False
    if settings.min_volume_usd > 0 and (
        candidate.min_volume_24h_usd is None or candidate.min_volume_24h_usd < settings.min_volume_usd
    ):
        return False
    return True


def rank_candidates(candidates: Iterable[Candidate], settings: ScanSettings) -> list[Candidate]:
    """Return the candidates that pass the filters, best score first, cut to ``settings.top``.

    Candidates without a score (interval unknown) come last; ties break on exchange then symbol so
    the order is deterministic.
    """
    kept = [c for c in candidates if passes_filters(c, settings)]
    kept.sort(key=lambda c: (c.score is None, -(c.score or 0.0), c.exchange, c.perp_symbol))
    return kept if settings.top is None else kept[: settings.top]
