"""Turn a strategy's target into per-leg order quantities: one code path for backtest, paper and live.

Pure: no prices, no fees, no I/O. The backtest engine and the keeper both call :func:`orders_for`.
"""

from __future__ import annotations

from dataclasses import dataclass

from perphedge.strategies.base import HedgeMode, HedgeState, TargetHedge
from perphedge.units import require_non_negative, require_positive

RELATIVE_DUST = 1e-9
"""Deltas smaller than this fraction of the base quantity are float noise from ``qty / Q × Q``, not orders."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LegOrders:
    """Signed quantities to trade on each leg, in coins: + buy, − sell.

    ``spot_delta_base`` below the current holding means selling coins; below zero it means borrowing
    coins on margin and selling them (reverse carry). ``perp_delta_base`` is the change of the signed
    perp position (− = sell / short more).
    """

    spot_delta_base: float
    perp_delta_base: float

    @property
    def is_empty(self) -> bool:
        """Return True when neither leg trades."""
        return self.spot_delta_base == 0.0 and self.perp_delta_base == 0.0


NO_ORDERS = LegOrders(spot_delta_base=0.0, perp_delta_base=0.0)


def orders_for(
    target: TargetHedge,
    state: HedgeState,
    base_qty: float,
    *,
    min_qty_base: float = 0.0,
) -> LegOrders:
    """Return the per-leg quantities that move ``state`` to ``target`` for a hedge of ``base_qty`` coins.

    ``delta = (target fraction − held fraction) × base_qty`` on each leg. A delta smaller than
    ``min_qty_base`` (the market's minimum order size) or than ``RELATIVE_DUST × base_qty`` (float noise)
    is 0: such an order could not be placed. Both legs are returned together so that callers send
    them at the same step.

    Raises:
        InputError: ``base_qty`` is not positive or ``min_qty_base`` is negative.
    """
    base_qty = require_positive("base_qty", base_qty)
    min_qty_base = require_non_negative("min_qty_base", min_qty_base)
    threshold = max(min_qty_base, RELATIVE_DUST * base_qty)
    spot = (target.spot_fraction - state.spot_fraction) * base_qty
    perp = (target.perp_fraction - state.perp_fraction) * base_qty
    if abs(spot) < threshold:
        spot = 0.0
    if abs(perp) < threshold:
        perp = 0.0
    if spot == 0.0 and perp == 0.0:
        return NO_ORDERS
    return LegOrders(spot_delta_base=spot, perp_delta_base=perp)


def mode_of(spot_fraction: float, perp_fraction: float, *, tolerance: float = 1e-6) -> HedgeMode:
    """Return the ``HedgeMode`` that describes holdings given as fractions of the base quantity.

    spot > 0 with perp < 0: carry (|perp| ≈ spot) or partial; spot > 0, perp ≈ 0: unhedged; spot > 0
    and perp > 0: the article's long-long; spot < 0 and perp > 0: reverse carry; both ≈ 0: flat.
    Anything else (e.g. a naked perp) is reported by its perp side as partial/unhedged-like flat.
    """
    spot_zero = abs(spot_fraction) <= tolerance
    perp_zero = abs(perp_fraction) <= tolerance
    if spot_zero and perp_zero:
        return HedgeMode.FLAT
    if spot_fraction > tolerance:
        if perp_zero:
            return HedgeMode.UNHEDGED
        if perp_fraction > 0:
            return HedgeMode.ARTICLE_LONG
        return HedgeMode.CARRY if abs(spot_fraction + perp_fraction) <= tolerance else HedgeMode.PARTIAL
    if spot_fraction < -tolerance and perp_fraction > tolerance:
        return HedgeMode.REVERSE_CARRY
    return HedgeMode.PARTIAL if not perp_zero else HedgeMode.UNHEDGED
