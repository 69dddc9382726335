"""Strict validation of ``MarketData``: errors are raised, doubts are returned as warnings.

Nothing is dropped, filled or clipped here. Errors (``DataError``, one message listing every
problem with where it is and how to fix it): naive or non-UTC timestamps, unsorted or duplicate
timestamps, bars off the timeframe grid, NaN or non-positive prices, high below low, funding rates
that look like percent (|rate| > 0.05 per interval), NaN rates, funding gaps and interval columns that
disagree with the settlement spacing, a perp that sits far from spot all the time (wrong file or unit).
Warnings (returned): gaps in the bars (with their size), single bars whose basis exceeds
``BASIS_WARN_FRACTION``, settlements outside the bars, bars without funding coverage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perphedge.data.schema import BAR_COLUMNS, FUNDING_COLUMNS, MarketData
from perphedge.errors import DataError
from perphedge.mechanics.funding import (
    SETTLEMENT_JITTER_TOLERANCE_MS,
    STANDARD_INTERVALS_HOURS,
    infer_interval_hours,
)

PERCENT_LOOKING_RATE = 0.05
"""|rate| above this per interval looks like a percent (5 % per settlement is beyond every cap we know
except Binance's ±100 % bound on adjusted caps); the issue's rule."""

BASIS_WARN_FRACTION = 0.10
"""|perp / spot − 1| above 10 % on a bar is flagged: spot and perp are probably misaligned there."""

BASIS_ERROR_MEDIAN_FRACTION = 0.10
"""A median |basis| above 10 % means the two price files are not the same market (or not the same unit)."""

PRICE_COLUMNS: tuple[str, ...] = BAR_COLUMNS[:8]  # spot and perp OHLC (schema order)

MAX_LISTED = 5  # how many offending timestamps a message lists


def _stamps(index: pd.DatetimeIndex, mask: np.ndarray) -> str:
    where = index[mask]
    shown = ", ".join(ts.isoformat() for ts in where[:MAX_LISTED])
    more = f" and {len(where) - MAX_LISTED} more" if len(where) > MAX_LISTED else ""
    return shown + more


def _check_index(index: pd.Index, what: str, errors: list[str]) -> bool:
    """Check a frame's index is tz-aware UTC, sorted and unique; return True when usable."""
    if not isinstance(index, pd.DatetimeIndex):
        errors.append(
            f"{what}: the index must be a DatetimeIndex of UTC times; it was {type(index).__name__}"
        )
        return False
    if index.tz is None:
        errors.append(
            f"{what}: timestamps are naive (no timezone); give them in UTC, or say they are UTC "
            "(perphedge data import --assume-utc)"
        )
        return False
    if str(index.tz) != "UTC":
        errors.append(f"{what}: timestamps are in {index.tz}; convert them to UTC")
        return False
    if len(index) < 2:
        return True
    ts = index.asi8
    step = np.diff(ts)
    if np.any(step == 0):
        dup = np.zeros(len(index), dtype=bool)
        dup[1:] = step == 0
        errors.append(f"{what}: duplicate timestamps at {_stamps(index, dup)}; remove the duplicates")
    if np.any(step < 0):
        back = np.zeros(len(index), dtype=bool)
        back[1:] = step < 0
        errors.append(
            f"{what}: timestamps are not increasing: {_stamps(index, back)} come after a later time; sort the file"
        )
    return True


def _check_bars(market: MarketData, errors: list[str], warnings: list[str]) -> None:
    bars = market.bars
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        errors.append(f"bars: missing columns {', '.join(missing)}")
        return
    if bars.empty:
        errors.append("bars: there are no bars")
        return
    if not _check_index(bars.index, "bars", errors):
        return
    index: pd.DatetimeIndex = bars.index  # type: ignore[assignment]
    prices = bars[list(PRICE_COLUMNS)].to_numpy(float)
    for j, col in enumerate(PRICE_COLUMNS):
        nan = np.isnan(prices[:, j])
        if nan.any():
            errors.append(
                f"bars: {col} is NaN at {_stamps(index, nan)}; fill the gap from the exchange, do not guess"
            )
        infinite = np.isinf(prices[:, j])
        if infinite.any():
            errors.append(
                f"bars: {col} is infinite at {_stamps(index, infinite)}; correct those rows from the exchange"
            )
        nonpos = prices[:, j] <= 0
        if nonpos.any():
            errors.append(
                f"bars: {col} is zero or negative at {_stamps(index, nonpos)}; prices must be positive: "
                "correct those rows from the exchange"
            )
    for leg in ("spot", "perp"):
        high, low = bars[f"{leg}_high"].to_numpy(float), bars[f"{leg}_low"].to_numpy(float)
        inverted = high < low
        if inverted.any():
            errors.append(
                f"bars: {leg}_high is below {leg}_low at {_stamps(index, inverted)}; are the columns swapped?"
            )
    mark = bars["mark_close"].to_numpy(float)
    bad_mark = (mark <= 0) | np.isinf(mark)
    if bad_mark.any():
        errors.append(
            f"bars: mark_close is zero, negative or infinite at {_stamps(index, bad_mark)}; use NaN where the "
            "mark is unknown"
        )

    tf_ms = market.timeframe_ms
    ts = index.as_unit("ms").asi8
    off_grid = (ts % tf_ms) != 0
    if off_grid.any():
        errors.append(
            f"bars: {off_grid.sum()} bar(s) do not open on the {market.timeframe} grid (e.g. {_stamps(index, off_grid)}); "
            "bars are labelled by their open time"
        )
    step = np.diff(ts)
    gaps = np.flatnonzero(step > tf_ms)
    for i in gaps[:MAX_LISTED]:
        warnings.append(
            f"bars: gap of {(step[i] - tf_ms) / 3_600_000:g} h ({step[i] // tf_ms - 1} missing {market.timeframe} bar(s)) "
            f"after {index[i].isoformat()}"
        )
    if gaps.size > MAX_LISTED:
        missing_bars = int(((step[gaps] // tf_ms) - 1).sum())
        warnings.append(f"bars: {gaps.size} gaps in all, {missing_bars} missing bars")

    spot_close, perp_close = bars["spot_close"].to_numpy(float), bars["perp_close"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        basis = perp_close / spot_close - 1.0
    finite = np.isfinite(basis)
    if finite.any():
        median = float(np.median(np.abs(basis[finite])))
        if median > BASIS_ERROR_MEDIAN_FRACTION:
            errors.append(
                f"bars: perp and spot closes differ by {median:.1%} in the median bar; they are not the same market "
                "or not in the same unit (check the files and the column mapping)"
            )
        wide = finite & (np.abs(basis) > BASIS_WARN_FRACTION)
        if wide.any() and median <= BASIS_ERROR_MEDIAN_FRACTION:
            worst = int(np.nanargmax(np.abs(np.where(finite, basis, 0.0))))
            warnings.append(
                f"bars: basis beyond ±{BASIS_WARN_FRACTION:.0%} on {int(wide.sum())} bar(s), at {_stamps(index, wide)}; "
                f"widest {basis[worst]:+.1%} at {index[worst].isoformat()}: check spot/perp alignment there"
            )


def _check_funding(market: MarketData, errors: list[str], warnings: list[str]) -> None:
    funding = market.funding
    missing = [c for c in FUNDING_COLUMNS if c not in funding.columns]
    if missing:
        errors.append(f"funding: missing columns {', '.join(missing)}")
        return
    if funding.empty:
        errors.append("funding: there are no settlements")
        return
    if not _check_index(funding.index, "funding", errors):
        return
    index: pd.DatetimeIndex = funding.index  # type: ignore[assignment]
    rates = funding["rate_per_interval"].to_numpy(float)
    nan = np.isnan(rates)
    if nan.any():
        errors.append(
            f"funding: rate_per_interval is NaN at {_stamps(index, nan)}; a settlement without a rate is not data"
        )
    infinite = np.isinf(rates)
    if infinite.any():
        errors.append(
            f"funding: rate_per_interval is infinite at {_stamps(index, infinite)}; correct those settlements "
            "from the exchange"
        )
    big = np.abs(np.where(nan | infinite, 0.0, rates)) > PERCENT_LOOKING_RATE
    if big.any():
        worst = float(rates[big][np.argmax(np.abs(rates[big]))])
        errors.append(
            f"funding: rate_per_interval at {_stamps(index, big)} was {worst!r}, which looks like a percent "
            f"(|rate| > {PERCENT_LOOKING_RATE} per interval); rates are fractions: pass --rate-unit percent "
            "when importing percent values"
        )
    marks = funding["mark_price"].to_numpy(float)
    bad_mark = (marks <= 0) | np.isinf(marks)
    if bad_mark.any():
        errors.append(
            f"funding: mark_price is zero, negative or infinite at {_stamps(index, bad_mark)}; "
            "leave it empty where the mark is unknown"
        )
    intervals = funding["interval_hours"].to_numpy(float)
    odd = ~np.isin(intervals, STANDARD_INTERVALS_HOURS)
    if odd.any():
        errors.append(
            f"funding: interval_hours at {_stamps(index, odd)} is not one of {STANDARD_INTERVALS_HOURS} h"
        )
    ts_ms = index.as_unit("ms").asi8
    if len(ts_ms) >= 2 and np.all(np.diff(ts_ms) > 0):
        try:
            inferred = infer_interval_hours(ts_ms)
        except DataError as e:
            errors.append(f"funding: {e}")
        else:
            differs = inferred != intervals
            if differs.any() and not odd.any():
                errors.append(
                    f"funding: interval_hours disagrees with the spacing of settlements at {_stamps(index, differs)}; "
                    "derive it with perphedge.mechanics.funding.infer_interval_hours"
                )
    bars = market.bars
    if not bars.empty and isinstance(bars.index, pd.DatetimeIndex) and bars.index.tz is not None:
        first_open = bars.index[0]
        last_close = bars.index[-1] + pd.Timedelta(milliseconds=market.timeframe_ms)
        jitter = pd.Timedelta(milliseconds=SETTLEMENT_JITTER_TOLERANCE_MS)  # fundingTime's ms jitter
        outside = (index <= first_open + jitter) | (index > last_close + jitter)
        if outside.any():
            warnings.append(
                f"funding: {int(outside.sum())} settlement(s) fall outside the bars "
                f"({first_open.isoformat()} … {last_close.isoformat()}), e.g. {_stamps(index, outside)}"
            )
        if index[-1] + jitter < last_close:
            warnings.append(
                f"funding: the last settlement is {index[-1].isoformat()} but the bars run to {last_close.isoformat()}; "
                "bars after it carry no funding"
            )


def find_problems(market: MarketData) -> tuple[list[str], list[str]]:
    """Check ``market`` thoroughly; return ``(errors, warnings)``, one sentence each, raising nothing."""
    errors: list[str] = []
    warnings: list[str] = []
    _check_bars(market, errors, warnings)
    _check_funding(market, errors, warnings)
    return errors, warnings


def validate_market(market: MarketData) -> list[str]:
    """Check ``market`` thoroughly; return the warnings, raise ``DataError`` listing every error.

    Raises:
        DataError: on one line, every problem numbered (what, where, how to fix), ``where`` = the symbol.
    """
    errors, warnings = find_problems(market)
    if errors:
        # one line (the CLI prints it as its one 'error: …' line); the problems numbered in order
        listed = " ".join(f"({i}) {problem}" for i, problem in enumerate(errors, start=1))
        raise DataError(
            f"{len(errors)} problem(s) in the {market.timeframe} data: {listed}",
            where=f"{market.exchange}:{market.symbol}",
        )
    return warnings
