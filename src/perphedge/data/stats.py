"""Funding and basis statistics of one ``MarketData``: what ``perphedge data show`` prints.

Definitions (every figure is over the settlements in the period, by the UTC calendar year of the
settlement time):
- ``mean_apr``: the mean of ``annualize_simple(rate, interval_hours)`` over the settlements, each
  annualised with its *own* interval (0.01 % per 8 h → 10.95 %; 0.005 % per 4 h → 10.95 %) and
  weighted by the time it paid for (``mechanics.funding.mean_apr_time_weighted``), i.e.
  ``Σ rate × 8760 / Σ interval_hours``: what holding the position earned per year. (An unweighted
  mean would count a 1-hour settlement as much as an 8-hour one.)
- ``share_negative``: fraction of settlements with rate < 0.
- ``share_at_baseline``: fraction exactly at Binance's default interest component scaled to the
  settlement's interval, ``0.0001 × interval_hours / 8`` (0.01 % per 8 h, 0.005 % per 4 h). Source:
  Binance funding FAQ https://www.binance.com/en/support/faq/360033525031 (I = 0.03 %/day; N-hour
  rate = 8-hour formula / (8 / N)). Symbols without an interest component (BNBUSDT) sit at 0 instead,
  so their share is near 0.
- ``min_rate`` / ``max_rate``: raw rates per interval (fractions).
- ``basis_bps``: ``(perp_close / spot_close − 1) × 10 000`` per bar: mean and 1st/99th percentiles
  (numpy's linear interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from perphedge.data.schema import MarketData
from perphedge.errors import DataError
from perphedge.mechanics.funding import BINANCE_INTEREST_PER_8H, interval_changes, mean_apr_time_weighted

BASELINE_TOLERANCE = 1e-12
"""Rates are decimal strings parsed to float64: "exactly at the baseline" means within 1e-12."""

BPS_PER_UNIT = 10_000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingPeriodStats:
    """Funding statistics of one period (a calendar year or the whole history)."""

    settlements: int
    mean_apr: float
    share_negative: float
    share_at_baseline: float
    min_rate: float
    max_rate: float

    def to_json(self) -> dict[str, Any]:
        """Return the stable-keyed JSON form."""
        return {
            "settlements": self.settlements,
            "mean_apr": self.mean_apr,
            "share_negative": self.share_negative,
            "share_at_baseline": self.share_at_baseline,
            "min_rate": self.min_rate,
            "max_rate": self.max_rate,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class IntervalChange:
    """The funding interval changed at settlement ``settle_ts`` (UTC) from ``from_hours`` to ``to_hours``."""

    settle_ts: pd.Timestamp
    from_hours: float
    to_hours: float

    def to_json(self) -> dict[str, Any]:
        """Return the stable-keyed JSON form (time as ISO 8601 UTC)."""
        return {
            "settle_ts": self.settle_ts.isoformat(),
            "from_hours": self.from_hours,
            "to_hours": self.to_hours,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BasisStats:
    """Perp-over-spot basis of the bar closes, in basis points."""

    bars: int
    mean: float
    p01: float
    p99: float

    def to_json(self) -> dict[str, Any]:
        """Return the stable-keyed JSON form."""
        return {"bars": self.bars, "mean": self.mean, "p01": self.p01, "p99": self.p99}


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingStats:
    """Per-year and whole-period funding statistics, interval changes and basis of one data set."""

    exchange: str
    symbol: str
    timeframe: str
    source: str
    first_settlement: pd.Timestamp
    last_settlement: pd.Timestamp
    per_year: dict[str, FundingPeriodStats]
    whole_period: FundingPeriodStats
    interval_changes: tuple[IntervalChange, ...]
    basis_bps: BasisStats

    def to_json(self) -> dict[str, Any]:
        """Return the JSON of ``perphedge data show --json``; keys are stable (documented in README)."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "source": self.source,
            "first_settlement": self.first_settlement.isoformat(),
            "last_settlement": self.last_settlement.isoformat(),
            "per_year": {year: stats.to_json() for year, stats in self.per_year.items()},
            "whole_period": self.whole_period.to_json(),
            "interval_changes": [change.to_json() for change in self.interval_changes],
            "basis_bps": self.basis_bps.to_json(),
        }


def baseline_rate(interval_hours: np.ndarray) -> np.ndarray:
    """Return Binance's default interest rate per settlement: 0.01 % per 8 h scaled to each interval."""
    return BINANCE_INTEREST_PER_8H * np.asarray(interval_hours, dtype=float) / 8.0


def calc_period_stats(rates: np.ndarray, interval_hours: np.ndarray) -> FundingPeriodStats:
    """Return the statistics of a set of settlements (rates per interval, and each one's interval)."""
    rates = np.asarray(rates, dtype=float)
    hours = np.asarray(interval_hours, dtype=float)
    if rates.size == 0:
        raise DataError("funding statistics need at least one settlement; there were none")
    return FundingPeriodStats(
        settlements=int(rates.size),
        mean_apr=mean_apr_time_weighted(rates, hours),
        share_negative=float(np.mean(rates < 0)),
        share_at_baseline=float(np.mean(np.abs(rates - baseline_rate(hours)) <= BASELINE_TOLERANCE)),
        min_rate=float(rates.min()),
        max_rate=float(rates.max()),
    )


def calc_basis_stats(bars: pd.DataFrame) -> BasisStats:
    """Return the mean and 1st/99th percentiles of the close basis ``perp/spot − 1`` in basis points."""
    basis = (bars["perp_close"].to_numpy(float) / bars["spot_close"].to_numpy(float) - 1.0) * BPS_PER_UNIT
    basis = basis[np.isfinite(basis)]
    if basis.size == 0:
        return BasisStats(bars=0, mean=float("nan"), p01=float("nan"), p99=float("nan"))
    p01, p99 = np.percentile(basis, [1.0, 99.0])
    return BasisStats(bars=int(basis.size), mean=float(basis.mean()), p01=float(p01), p99=float(p99))


def funding_stats(market: MarketData) -> FundingStats:
    """Return per-calendar-year and whole-period funding statistics plus basis statistics of ``market``.

    Raises:
        DataError: if the market has no funding settlements.
    """
    funding = market.funding
    if funding.empty:
        raise DataError(
            f"there are no funding settlements to describe in the {market.timeframe} data chosen; widen the window "
            "(--start/--end) to include at least one settlement (perphedge data list shows what each data set covers)",
            where=f"{market.exchange}:{market.symbol}",
        )
    rates = funding["rate_per_interval"].to_numpy(float)
    hours = funding["interval_hours"].to_numpy(float)
    index = pd.DatetimeIndex(funding.index)
    years = index.year.to_numpy()
    per_year = {
        str(int(year)): calc_period_stats(rates[years == year], hours[years == year])
        for year in np.unique(years)
    }
    ts_ms = index.as_unit("ms").asi8
    changes = tuple(
        IntervalChange(settle_ts=pd.Timestamp(ts, unit="ms", tz="UTC"), from_hours=old, to_hours=new)
        for ts, old, new in interval_changes(ts_ms, hours)
    )
    return FundingStats(
        exchange=market.exchange,
        symbol=market.symbol,
        timeframe=market.timeframe,
        source=market.source,
        first_settlement=index[0],
        last_settlement=index[-1],
        per_year=per_year,
        whole_period=calc_period_stats(rates, hours),
        interval_changes=changes,
        basis_bps=calc_basis_stats(market.bars),
    )
