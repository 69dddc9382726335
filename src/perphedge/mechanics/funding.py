"""Funding: the cash flow of a settlement, the rate from the premium index, annualisation, intervals.

Pure functions, no I/O. Rates are decimal fractions per funding interval (0.0001 = 0.01 %).
Sign convention (all exchanges): a positive rate means longs pay shorts, so the cash flow *to* a
position is ``-signed_size × value × rate``: a short (negative size) receives when the rate is > 0.

Sources (see docs/sources.md):
- Binance FAQ "Introduction to Binance Futures Funding Rates",
  https://www.binance.com/en/support/faq/360033525031 (premium index, interest, clamp, N-hour form,
  payment = nominal value × rate, nominal value = mark price × size).
- Binance COIN-M contract specifications, https://www.binance.com/en/support/faq/a4470430e3164c13932be8967961aede
  (inverse nominal value in coin = contracts × contract size / mark price).
- Annualisation: Binance FAQ "0.03 % per day"; simple APR = rate × periods per year (10.95 % for
  0.01 %/8 h); compounded APY = (1 + rate)^periods − 1 (11.57 %).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perphedge.errors import DataError, InputError
from perphedge.units import HOURS_PER_YEAR, MS_PER_HOUR, MS_PER_MINUTE, ts_ms_to_datetime

BINANCE_INTEREST_PER_8H = 0.0001
"""Binance's default interest component: 0.03 %/day = 0.01 % per 8 h (Binance funding FAQ)."""

PREMIUM_CLAMP = 0.0005
"""The ±0.05 % bound on (interest − premium) used by Binance, Bybit, OKX and BitMEX."""

STANDARD_INTERVALS_HOURS: tuple[int, ...] = (1, 2, 4, 8)
"""Funding intervals exchanges use; 8 h by default, 4 h / 2 h / 1 h for some symbols and periods."""

SETTLEMENT_JITTER_TOLERANCE_MS = 5 * MS_PER_MINUTE
"""Largest deviation of a settlement spacing from a whole number of hours that we still accept.

Binance's ``fundingTime`` carries millisecond jitter (16:00:00.001, up to ~50 ms in the bundled data);
the exchanges allow up to 15 s (Binance) or a minute (OKX) of settlement delay.
"""


# --- cash flow of one settlement -------------------------------------------------------------------


def funding_cashflow_linear_usd(signed_qty_base: float, mark_price_usd: float, rate_per_interval: float) -> float:
    """Return the funding paid *to* a linear (USDⓈ-M) position at one settlement, in USD(T).

    ``-signed_qty_base × mark_price_usd × rate_per_interval``: a short (qty < 0) receives when the
    rate is positive. Binance FAQ: Funding Amount = Nominal Value × Funding Rate, Nominal Value =
    Mark Price × Size; F > 0 means longs pay shorts.
    """
    return -signed_qty_base * mark_price_usd * rate_per_interval


def funding_cashflow_inverse_coin(
    signed_contracts: float, contract_size_usd: float, mark_price_usd: float, rate_per_interval: float
) -> float:
    """Return the funding paid *to* an inverse (COIN-M) position at one settlement, in coins.

    ``-signed_contracts × contract_size_usd / mark_price_usd × rate_per_interval``. Binance COIN-M:
    Nominal Value (coin) = Contract Multiplier × Contracts / Mark Price; same sign rule as linear.
    """
    return -signed_contracts * contract_size_usd / mark_price_usd * rate_per_interval


# --- the rate from the premium index ---------------------------------------------------------------


def premium_index(impact_bid: float, impact_ask: float, price_index: float) -> float:
    """Return one premium-index sample ``[max(0, IB − PI) − max(0, PI − IA)] / PI`` (Binance FAQ)."""
    return (max(0.0, impact_bid - price_index) - max(0.0, price_index - impact_ask)) / price_index


def time_weighted_average_premium(samples: Sequence[float] | np.ndarray) -> float:
    """Return ``(1·P1 + 2·P2 + … + n·Pn) / (1 + 2 + … + n)``: Binance's and Bybit's average premium.

    Later samples weigh more (Binance FAQ, 8-hour interval). For Binance's 1-hour interval the current
    FAQ uses an equal-weighted mean instead: use ``numpy.mean`` for that.
    """
    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        raise InputError("the average premium needs at least one premium-index sample; there were none")
    weights = np.arange(1, values.size + 1, dtype=float)
    return float(np.dot(weights, values) / weights.sum())


def funding_rate_from_premium(
    average_premium: float,
    *,
    interest_per_8h: float = BINANCE_INTEREST_PER_8H,
    interval_hours: float = 8.0,
    cap: float | None = None,
    floor: float | None = None,
    clamp: float = PREMIUM_CLAMP,
) -> float:
    """Return the funding rate per interval from the average premium index.

    ``F = [P̄ + clamp(I − P̄, −0.05 %, +0.05 %)] / (8 / N)`` then ``clamp(F, floor, cap)``
    (Binance FAQ, current text: the 8-hour formula scaled to an N-hour interval; I is the 8-hour
    interest, 0.01 % by default, 0 for some symbols). With P̄ in [−0.04 %, +0.06 %] and N = 8 the
    rate is exactly I. FAQ example 2020-08-28 08:00 UTC: P̄ = 0.0429 % gives F = 0.0100 %.

    ``cap``/``floor`` are the symbol's funding cap and floor (Binance: ±0.75 × MMR of the max-leverage
    tier for majors, e.g. ±0.3 % for BTCUSDT; per-symbol values from ``/fapi/v1/fundingInfo``).
    """
    if interval_hours <= 0:
        raise InputError(f"interval_hours must be > 0; it was {interval_hours!r}")
    adjustment = min(max(interest_per_8h - average_premium, -clamp), clamp)
    rate = (average_premium + adjustment) / (8.0 / interval_hours)
    if cap is not None:
        rate = min(rate, cap)
    if floor is not None:
        rate = max(rate, floor)
    return rate


def funding_cap_from_mmr(max_leverage_tier_mmr: float, multiplier: float = 0.75) -> float:
    """Return Binance's funding cap ``m × MMR`` of the max-leverage tier (the floor is its negative).

    Binance FAQ: cap = 0.75 × MMR for listed majors (BTCUSDT: 0.75 × 0.4 % = 0.3 %, matching
    ``fundingInfo.adjustedFundingRateCap`` = 0.003); the multiplier is 1 for some symbols; adjusted
    caps are bounded at ±1.
    """
    return min(multiplier * max_leverage_tier_mmr, 1.0)


# --- annualisation ---------------------------------------------------------------------------------


def periods_per_year(interval_hours: float | np.ndarray) -> float | np.ndarray:
    """Return the number of funding settlements in a 365-day year for an interval in hours."""
    if isinstance(interval_hours, np.ndarray):
        return HOURS_PER_YEAR / interval_hours.astype(float)
    return HOURS_PER_YEAR / float(interval_hours)


def annualize_simple(rate_per_interval: float | np.ndarray, interval_hours: float | np.ndarray) -> float | np.ndarray:
    """Return the simple APR of a funding rate: ``rate × (24 / interval_hours) × 365``.

    0.01 % per 8 h → 10.95 %; the same rate every 4 h → 21.9 % (Binance FAQ: 0.03 %/day; ccxt_client
    ``annualize(0.0001) = 0.1095``). Always pass the symbol's *actual* interval.
    """
    return rate_per_interval * periods_per_year(interval_hours)


def annualize_compound(
    rate_per_interval: float | np.ndarray, interval_hours: float | np.ndarray
) -> float | np.ndarray:
    """Return the compounded APY ``(1 + rate)^(periods per year) − 1``: 0.01 %/8 h → 11.57 %.

    Hyperliquid's docs call this figure "≈ 11.6 % APR"; it is really the compounded yield.
    """
    return np.expm1(periods_per_year(interval_hours) * np.log1p(rate_per_interval))


def mean_apr_time_weighted(
    rates_per_interval: np.ndarray,
    interval_hours: np.ndarray,
    weights_hours: np.ndarray | None = None,
) -> float:
    """Return the mean annualised funding of a run of settlements, weighted by the time each paid for.

    ``Σ annualize_simple(rate_i, h_i) × w_i / Σ w_i`` with ``w_i = h_i`` by default, which equals
    ``Σ rate_i × 8760 / Σ h_i``: the funding actually earned per year of holding. Weighting by time
    matters when intervals change: an unweighted mean counts a 1-hour settlement as much as an
    8-hour one (eight times its share of the period). ``weights_hours`` lets a caller count only part
    of a settlement's period (e.g. the part inside a window).
    """
    rates = np.asarray(rates_per_interval, dtype=float)
    hours = np.asarray(interval_hours, dtype=float)
    weights = hours if weights_hours is None else np.asarray(weights_hours, dtype=float)
    if rates.size == 0 or not float(weights.sum()) > 0:
        raise InputError("a mean APR needs at least one settlement with a positive period; there was none")
    return float(np.sum(annualize_simple(rates, hours) * weights) / weights.sum())


# --- intervals from settlement times ---------------------------------------------------------------


def infer_interval_hours(settle_ts_ms: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return the funding interval in hours for each settlement, from the spacing of settlement times.

    Settlement ``i`` covers the period since settlement ``i − 1``; its interval is that spacing,
    rounded to a whole number of hours (tolerating ``SETTLEMENT_JITTER_TOLERANCE_MS`` of jitter) and
    required to be one of ``STANDARD_INTERVALS_HOURS``. The first settlement takes the spacing to the
    second. Intervals change over time (Binance 8 h → 4 h → 1 h and back), so every settlement gets
    its own value; never assume 8 h.

    Raises:
        DataError: if timestamps are not strictly increasing, a spacing is not a whole number of
            hours, or a spacing is longer than 8 h (missing settlements: a gap, reported with its
            size, never silently bridged), or fewer than two settlements are given.
    """
    ts = np.asarray(settle_ts_ms, dtype=np.int64)
    if ts.size < 2:
        raise DataError(
            f"inferring the funding interval needs at least two settlements; there were {ts.size}"
        )
    spacing_ms = np.diff(ts)
    if np.any(spacing_ms <= 0):
        i = int(np.argmax(spacing_ms <= 0))
        raise DataError(
            f"settlement timestamps must be strictly increasing; settlement {i + 1} ({_utc(ts[i + 1])}) "
            f"is not after settlement {i} ({_utc(ts[i])}); sort and de-duplicate the funding data"
        )
    hours = np.rint(spacing_ms / MS_PER_HOUR)
    off_grid = np.abs(spacing_ms - hours * MS_PER_HOUR) > SETTLEMENT_JITTER_TOLERANCE_MS
    allowed = np.isin(hours, STANDARD_INTERVALS_HOURS)
    bad = off_grid | ~allowed
    if np.any(bad):
        i = int(np.argmax(bad))
        gap_h = spacing_ms[i] / MS_PER_HOUR
        kind = "a gap (missing settlements)" if gap_h > max(STANDARD_INTERVALS_HOURS) else "not a funding interval"
        raise DataError(
            f"settlements at {_utc(ts[i])} and {_utc(ts[i + 1])} are {gap_h:g} h apart, which is {kind}; "
            f"intervals must be one of {STANDARD_INTERVALS_HOURS} h; download the missing settlements "
            "(perphedge data fetch --since …) or start the data after the gap"
        )
    out = np.empty(ts.size, dtype=float)
    out[1:] = hours
    out[0] = hours[0]
    return out


def _utc(ts_ms: int | np.integer) -> str:
    return ts_ms_to_datetime(int(ts_ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def interval_changes(settle_ts_ms: Sequence[int] | np.ndarray, interval_hours: np.ndarray) -> list[tuple[int, float, float]]:
    """Return ``(settle_ts_ms, old_hours, new_hours)`` for every settlement where the interval changes."""
    ts = np.asarray(settle_ts_ms, dtype=np.int64)
    hours = np.asarray(interval_hours, dtype=float)
    idx = np.flatnonzero(hours[1:] != hours[:-1]) + 1
    return [(int(ts[i]), float(hours[i - 1]), float(hours[i])) for i in idx]
