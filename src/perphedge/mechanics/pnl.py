"""Profit and loss and average entry price, linear (USDⓈ-M) and inverse (COIN-M).

Sources (docs/sources.md):
- Bybit "P&L calculations (USDT contract)", https://help.bybit.com/hc/en-us/articles/900000630066-P-L-calculations-USDT-Contract-:
  linear PnL = qty × side × (price − entry); AEP = Σ qty·price / Σ qty. Examples: 0.2 long 7,000 → 7,500
  = +100; 0.4 short 6,000 → 5,000 = +400; 0.5 @ 5,000 + 0.3 @ 6,000 → AEP 5,375.
- Bybit "Profit/Loss calculations (inverse contracts)",
  https://testnet.bytick.com/kk-KZ/help-center/article/Profit-Loss-calculations-Inverse-Contracts and
  Binance COIN-M beginner's guide: inverse PnL (coin) = contracts × size × side × (1/entry − 1/price);
  AEP is harmonic: Σ contracts / Σ (contracts / price). Examples: 1,000 long 5,000 → 5,500 = 0.01819 BTC
  (0.0181818… as printed rounded); 10,000 long 8,000 → 12,500 realised = 0.45 BTC;
  1,000 @ 5,000 + 2,000 @ 6,000 → AEP 5,625.

``signed_*`` quantities are positive for a long and negative for a short.
"""

from __future__ import annotations

from collections.abc import Sequence

from perphedge.errors import InputError
from perphedge.units import require_positive


def unrealized_pnl_linear(signed_qty_base: float, entry_price: float, mark_price: float) -> float:
    """Return the USD(T) PnL of a linear position at ``mark_price``: ``signed_qty × (mark − entry)``."""
    return signed_qty_base * (mark_price - entry_price)


def realized_pnl_linear(signed_qty_base: float, entry_price: float, exit_price: float) -> float:
    """Return the USD(T) PnL of closing a linear position at ``exit_price`` (same formula, exit price)."""
    return signed_qty_base * (exit_price - entry_price)


def unrealized_pnl_inverse_coin(
    signed_contracts: float, contract_size_usd: float, entry_price: float, mark_price: float
) -> float:
    """Return the coin PnL of an inverse position: ``contracts × size × (1/entry − 1/mark)``."""
    return signed_contracts * contract_size_usd * (1.0 / entry_price - 1.0 / mark_price)


def realized_pnl_inverse_coin(
    signed_contracts: float, contract_size_usd: float, entry_price: float, exit_price: float
) -> float:
    """Return the coin PnL of closing an inverse position at ``exit_price``."""
    return unrealized_pnl_inverse_coin(signed_contracts, contract_size_usd, entry_price, exit_price)


def _check_fills(name: str, sizes: Sequence[float], prices: Sequence[float]) -> None:
    if len(sizes) != len(prices) or not sizes:
        raise InputError(
            f"{name} needs one price per fill and at least one fill; there were {len(sizes)} sizes and "
            f"{len(prices)} prices"
        )
    for size in sizes:
        require_positive(f"{name} fill size", size)
    for price in prices:
        require_positive(f"{name} fill price", price)


def average_entry_linear(qtys: Sequence[float], prices: Sequence[float]) -> float:
    """Return the arithmetic average entry ``Σ qty·price / Σ qty`` of same-side linear fills (Bybit)."""
    _check_fills("average_entry_linear", qtys, prices)
    return sum(q * p for q, p in zip(qtys, prices, strict=True)) / sum(qtys)


def average_entry_inverse(contracts: Sequence[float], prices: Sequence[float]) -> float:
    """Return the harmonic average entry ``Σ contracts / Σ (contracts / price)`` of inverse fills (Bybit)."""
    _check_fills("average_entry_inverse", contracts, prices)
    return sum(contracts) / sum(c / p for c, p in zip(contracts, prices, strict=True))
