"""Initial and maintenance margin, maximum leverage and margin ratio.

Sources (docs/sources.md):
- Binance "Leverage and Margin of USDⓈ-M Futures", https://www.binance.com/en/support/faq/360033162192:
  IM = notional / leverage (IMR = 1 / leverage); MM = notional × MMR − maintenance amount, with the
  bracket of the position's notional at the **mark** price.
- Binance COIN-M liquidation FAQ, https://www.binance.com/en/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46:
  MM (coin) = contracts × contract size / mark × MMR − cum; example 100 BTCUSD contracts at 25,000:
  notional 0.4 BTC, MMR 0.4 % → MM 0.0016 BTC.
- Binance margin ratio (USDⓈ-M): maintenance margin / margin balance; liquidation at 100 %.
"""

from __future__ import annotations

import math
from enum import StrEnum

from perphedge.errors import MarginError
from perphedge.mechanics.brackets import BracketTable, require_notional_allowed
from perphedge.units import require_finite, require_non_negative, require_positive


class MarginMode(StrEnum):
    """Isolated: the position's own margin. Cross: the whole futures wallet (never the spot coins)."""

    ISOLATED = "isolated"
    CROSS = "cross"


def initial_margin_usd(notional_usd: float, leverage: float) -> float:
    """Return the initial margin ``notional / leverage`` (Binance FAQ 360033162192), in the notional's unit."""
    notional_usd = require_non_negative("notional_usd", notional_usd)
    leverage = require_positive("leverage", leverage)
    return notional_usd / leverage


def maintenance_margin(notional: float, table: BracketTable) -> float:
    """Return ``notional × MMR − cum`` with the bracket of ``notional`` (same unit as the table)."""
    bracket = table.for_notional(notional)
    return notional * bracket.mmr - bracket.maintenance_amount_usd


def maintenance_margin_usd(notional_usd: float, table: BracketTable) -> float:
    """Return the maintenance margin of a USDⓈ-M position: ``notional × MMR − cum`` (Binance FAQ).

    ``notional_usd`` is |qty| × mark price; the bracket is looked up by that notional.
    """
    return maintenance_margin(notional_usd, table)


def maintenance_margin_coin(notional_coin: float, table: BracketTable) -> float:
    """Return the maintenance margin of a COIN-M position in coins (table in coin notional).

    ``notional_coin = contracts × contract_size_usd / mark``; Binance COIN-M FAQ example: 0.4 BTC at
    MMR 0.4 % → 0.0016 BTC.
    """
    return maintenance_margin(notional_coin, table)


def max_leverage_for_notional(table: BracketTable, notional_usd: float) -> float:
    """Return the largest leverage Binance allows for a position of ``notional_usd`` (its bracket's).

    Raises:
        MarginError: the notional is above the table's top cap (no leverage allows it).
    """
    require_notional_allowed(table, notional_usd)
    return table.for_notional(notional_usd).max_leverage


def require_leverage_allowed(table: BracketTable, notional_usd: float, leverage: float) -> None:
    """Raise MarginError if ``leverage`` is above what the bracket of ``notional_usd`` allows."""
    allowed = max_leverage_for_notional(table, notional_usd)
    if leverage > allowed:
        raise MarginError(
            f"leverage {leverage:g} is above the {allowed:g}x that {table.symbol} allows for a notional of "
            f"{notional_usd:,.2f}; use --leverage {allowed:g} or less"
        )


def margin_ratio(maintenance_margin: float, margin_balance: float) -> float:
    """Return Binance's margin ratio ``maintenance margin / margin balance``; 1 (100 %) = liquidation.

    A margin balance ≤ 0 with positive maintenance margin gives ``inf`` (already beyond liquidation).
    """
    maintenance_margin = require_finite("maintenance_margin", maintenance_margin)
    margin_balance = require_finite("margin_balance", margin_balance)
    if margin_balance <= 0.0:
        if maintenance_margin <= 0.0:
            raise MarginError(
                f"margin ratio is undefined with margin balance {margin_balance!r} and maintenance margin "
                f"{maintenance_margin!r}; there is no position to measure"
            )
        return math.inf
    return maintenance_margin / margin_balance
