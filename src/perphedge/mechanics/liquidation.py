"""Liquidation prices: Binance USDⓈ-M (isolated and cross, one-way), Binance COIN-M, Bybit classic linear.

**Which formula, and why.** perphedge uses Binance's formulas by default. They evaluate the maintenance
margin at the **liquidation price** (the notional there picks the bracket). Bybit's classic USDT formula
evaluates it at the **entry** position value; for EP 10, 5x, MMR 1 % Binance gives 8.0808 and Bybit 8.1
(exchange-mechanics.md §10.7). ``liquidation_price_bybit_linear_isolated`` is offered as the alternative.

Binance USDⓈ-M one-way (https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93), from
``WB − TMM1 + UPNL1 + side·Q·(LP − EP) = Q·LP·MMR − cum``::

    LP = (WB − TMM1 + UPNL1 + cum − side·Q·EP) / (Q·MMR − side·Q)

WB is the isolated wallet balance (isolated; TMM1 = UPNL1 = 0) or the cross wallet balance (cross;
TMM1, UPNL1 = maintenance margin and unrealised PnL of all *other* positions). FAQ cross example:
1,153.26 (ETHUSDT) and 26,316.89 (BTCUSDT).

Binance COIN-M (https://www.binance.com/en/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46), in coins, from
``WB − TMM1 + UPNL1 + side·Q·CS·(1/EP − 1/LP) = Q·CS/LP·MMR − cum``::

    LP = Q·CS·(MMR + side) / (WB − TMM1 + UPNL1 + cum + side·Q·CS/EP)

Reproduces the Binance calculator on dev.binance.vision thread 6292 (33,599.42 with cum 11.605;
33,578.86 with cum 11.81).

**Bracket consistency.** The maintenance margin is continuous and piecewise linear in the notional (that
is what the maintenance amount ensures), so the balance equation has exactly one root. Each bracket's
closed form is solved and the root whose notional *at the liquidation price* lies in that same bracket
is returned: the same answer as "solve, and re-solve with the bracket of the notional at LP", without
the risk of oscillating. No root above 0 → ``None`` (the UI's "--"); never a negative price.
"""

from __future__ import annotations

from enum import StrEnum

from perphedge.errors import InputError
from perphedge.mechanics.brackets import BracketTable
from perphedge.units import require_finite, require_non_negative, require_positive

_BOUNDARY_TOLERANCE = 1e-12


class LiquidationFormula(StrEnum):
    """Which published liquidation formula to use (they differ in where maintenance margin is evaluated)."""

    BINANCE = "binance"  # maintenance margin at the liquidation price (default)
    BYBIT = "bybit"  # Bybit classic USDT isolated: maintenance margin at the entry value


def _require_side(side: int) -> int:
    if side not in (1, -1):
        raise InputError(f"side must be +1 (long) or -1 (short); it was {side!r}")
    return side


def _in_bracket(notional: float, floor: float, cap: float, is_last: bool) -> bool:
    low = floor * (1.0 - _BOUNDARY_TOLERANCE) - _BOUNDARY_TOLERANCE
    high = cap * (1.0 + _BOUNDARY_TOLERANCE)
    return low <= notional and (is_last or notional <= high)


def liquidation_price_linear(
    *,
    side: int,
    qty_base: float,
    entry_price: float,
    wallet_balance_usd: float,
    table: BracketTable,
    other_maintenance_margin_usd: float = 0.0,
    other_unrealized_pnl_usd: float = 0.0,
) -> float | None:
    """Return the Binance USDⓈ-M one-way liquidation (mark) price, or ``None`` if there is none.

    Isolated when both ``other_*`` terms are 0 (``wallet_balance_usd`` = the position's isolated
    margin); cross otherwise (``wallet_balance_usd`` = the cross wallet balance). ``qty_base`` > 0 is
    the absolute size; ``side`` +1 long / −1 short. The bracket is that of the notional at LP.
    """
    side = _require_side(side)
    qty = require_positive("qty_base", qty_base)
    entry = require_positive("entry_price", entry_price)
    balance = (
        require_finite("wallet_balance_usd", wallet_balance_usd)
        - require_finite("other_maintenance_margin_usd", other_maintenance_margin_usd)
        + require_finite("other_unrealized_pnl_usd", other_unrealized_pnl_usd)
    )
    last = len(table.brackets) - 1
    for i, bracket in enumerate(table.brackets):
        denominator = qty * (bracket.mmr - side)
        price = (balance + bracket.maintenance_amount_usd - side * qty * entry) / denominator
        if price <= 0.0:
            continue
        if _in_bracket(qty * price, bracket.floor_usd, bracket.cap_usd, i == last):
            return price
    return None


def liquidation_price_inverse(
    *,
    side: int,
    contracts: float,
    contract_size_usd: float,
    entry_price: float,
    wallet_balance_coin: float,
    table: BracketTable,
    other_maintenance_margin_coin: float = 0.0,
    other_unrealized_pnl_coin: float = 0.0,
) -> float | None:
    """Return the Binance COIN-M one-way liquidation (mark) price, or ``None`` if there is none.

    ``table`` is in coin notional (``contracts × contract_size_usd / price``) and coin maintenance
    amounts. A short whose wallet holds at least the coins it shorts (a 1x coin-margined hedge) has no
    liquidation price on a rise: ``None``.
    """
    side = _require_side(side)
    size_usd = require_positive("contracts", contracts) * require_positive(
        "contract_size_usd", contract_size_usd
    )
    entry = require_positive("entry_price", entry_price)
    balance = (
        require_finite("wallet_balance_coin", wallet_balance_coin)
        - require_finite("other_maintenance_margin_coin", other_maintenance_margin_coin)
        + require_finite("other_unrealized_pnl_coin", other_unrealized_pnl_coin)
    )
    last = len(table.brackets) - 1
    for i, bracket in enumerate(table.brackets):
        denominator = balance + bracket.maintenance_amount_usd + side * size_usd / entry
        if denominator == 0.0:
            continue
        price = size_usd * (bracket.mmr + side) / denominator
        if price <= 0.0:
            continue
        if _in_bracket(size_usd / price, bracket.floor_usd, bracket.cap_usd, i == last):
            return price
    return None


def liquidation_price_bybit_linear_isolated(
    *,
    side: int,
    qty_base: float,
    entry_price: float,
    leverage: float,
    mmr: float,
    maintenance_deduction_usd: float = 0.0,
    extra_margin_usd: float = 0.0,
) -> float | None:
    """Return Bybit's classic USDT isolated liquidation price (maintenance margin at ENTRY), or ``None``.

    Bybit help "Liquidation Price (USDT Contract)",
    https://testnet.bybit.com/en-US/help-center/s/article/Liquidation-Price-USDT-Contract:
    ``PV = size × EP; IM = PV / L; MM = PV × MMR − deduction;
    LP_long = EP − (IM − MM)/size − extra/size; LP_short = EP + (IM − MM)/size + extra/size``.
    Examples: 1 BTC long at 20,000, 50x, MMR 0.5 % → 19,700; long 10,000 50x → 9,850; short 8,000 40x → 8,160.
    """
    side = _require_side(side)
    qty = require_positive("qty_base", qty_base)
    entry = require_positive("entry_price", entry_price)
    position_value = qty * entry
    initial = position_value / require_positive("leverage", leverage)
    maintenance = position_value * require_non_negative("mmr", mmr) - require_finite(
        "maintenance_deduction_usd", maintenance_deduction_usd
    )
    extra = require_finite("extra_margin_usd", extra_margin_usd)
    price = entry - side * ((initial - maintenance) + extra) / qty
    return price if price > 0.0 else None


def bankruptcy_price_bybit_linear_isolated(*, side: int, entry_price: float, leverage: float) -> float | None:
    """Return Bybit's isolated bankruptcy price ``EP × (1 − side / L)`` (long 10,000 at 50x → 9,800)."""
    side = _require_side(side)
    price = require_positive("entry_price", entry_price) * (
        1.0 - side / require_positive("leverage", leverage)
    )
    return price if price > 0.0 else None


def liquidation_distance(liquidation_price: float | None, mark_price: float) -> float | None:
    """Return ``(LP − mark) / mark`` as a fraction (+0.5 = the price must rise 50 %), ``None`` without LP."""
    if liquidation_price is None:
        return None
    mark = require_positive("mark_price", mark_price)
    return (liquidation_price - mark) / mark


# --- how much margin to post ----------------------------------------------------------------------


def wallet_balance_for_liquidation_price_linear(
    *, side: int, qty_base: float, entry_price: float, liquidation_price: float, table: BracketTable
) -> float:
    """Return the wallet balance (USD) that puts the Binance USDⓈ-M liquidation price at ``liquidation_price``.

    The balance equation solved for WB: ``WB = Q·LP·MMR − cum − side·Q·(LP − EP)`` with the bracket of
    the notional at LP (exact inverse of ``liquidation_price_linear`` in isolated mode). The result
    may be ≤ 0 when any collateral keeps the liquidation price beyond the target.
    """
    side = _require_side(side)
    qty = require_positive("qty_base", qty_base)
    target = require_positive("liquidation_price", liquidation_price)
    bracket = table.for_notional(qty * target)
    maintenance = qty * target * bracket.mmr - bracket.maintenance_amount_usd
    return maintenance - side * qty * (target - require_positive("entry_price", entry_price))


def wallet_balance_for_liquidation_price_inverse(
    *,
    side: int,
    contracts: float,
    contract_size_usd: float,
    entry_price: float,
    liquidation_price: float,
    table: BracketTable,
) -> float:
    """Return the wallet balance (coins) that puts the Binance COIN-M liquidation price at ``liquidation_price``.

    ``WB = Q·CS/LP·MMR − cum − side·Q·CS·(1/EP − 1/LP)`` with the bracket of the coin notional at LP.
    """
    side = _require_side(side)
    size_usd = require_positive("contracts", contracts) * require_positive(
        "contract_size_usd", contract_size_usd
    )
    target = require_positive("liquidation_price", liquidation_price)
    entry = require_positive("entry_price", entry_price)
    bracket = table.for_notional(size_usd / target)
    maintenance = size_usd / target * bracket.mmr - bracket.maintenance_amount_usd
    return maintenance - side * size_usd * (1.0 / entry - 1.0 / target)
