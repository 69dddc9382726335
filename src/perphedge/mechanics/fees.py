"""Trading fees and how long funding takes to pay them back.

Sources (docs/sources.md):
- Binance fee schedule, https://www.binance.com/en/fee/schedule (base tier: spot 0.10 % per side;
  USDⓈ-M futures 0.02 % maker / 0.05 % taker; a fee is notional × rate).
- The round-trip example in DOMAIN.md: opening and closing both legs at taker prices costs
  2 × (0.10 % + 0.05 %) = 0.30 % of notional, thirty 8-hour periods of the 0.01 % baseline funding.
"""

from __future__ import annotations

from perphedge.units import require_finite, require_non_negative

BINANCE_SPOT_TAKER_FEE = 0.001
"""Binance spot base tier, per side (fee schedule)."""

BINANCE_USDM_TAKER_FEE = 0.0005
"""Binance USDⓈ-M base tier taker (0.02 % maker), per side (fee schedule)."""


def trade_fee_usd(notional_usd: float, fee_rate: float) -> float:
    """Return the fee of one trade: ``|notional| × fee_rate`` (fee_rate a fraction per side)."""
    return abs(require_finite("notional_usd", notional_usd)) * require_non_negative("fee_rate", fee_rate)


def round_trip_fee_fraction(fee_spot: float, fee_perp: float) -> float:
    """Return the cost of opening and closing both legs as a fraction of notional: ``2 × (spot + perp)``.

    Binance base tier: 2 × (0.10 % + 0.05 %) = 0.30 % (Binance fee schedule), i.e. thirty 8-hour
    periods of the 0.01 % baseline funding.
    """
    return 2.0 * (require_non_negative("fee_spot", fee_spot) + require_non_negative("fee_perp", fee_perp))


def breakeven_days(total_fees_usd: float, funding_per_day_usd: float) -> float | None:
    """Return the days of funding income that pay ``total_fees_usd``; ``None`` if funding does not pay (≤ 0)."""
    fees = require_non_negative("total_fees_usd", total_fees_usd)
    income = require_finite("funding_per_day_usd", funding_per_day_usd)
    if income <= 0.0:
        return None
    return fees / income
