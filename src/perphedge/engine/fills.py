"""The fill model: taker fills at a reference price with slippage in basis points and a per-leg fee.

A buy fills at ``price × (1 + slippage_bps / 10 000)``, a sell at ``price × (1 − slippage_bps / 10 000)``;
the fee is ``|qty| × fill price × fee rate`` (Binance charges its taker rate on the traded notional:
https://www.binance.com/en/fee/trading, https://www.binance.com/en/fee/futureFee). The backtest books
a trade at the reference price and the slippage as a separate cost, so the ledger shows each.
Pure, no I/O: the paper venue uses the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

BPS = 10_000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One executed leg: signed quantity (+ buy), the reference and fill prices, and its costs in USD."""

    qty_base: float
    reference_price_usd: float
    fill_price_usd: float
    slippage_usd: float  # >= 0, the cost of filling worse than the reference price
    fee_usd: float  # >= 0


def fill_price(reference_price_usd: float, qty_base: float, slippage_bps: float) -> float:
    """Return the fill price: worse than the reference by ``slippage_bps`` in the trade's direction."""
    if qty_base > 0:
        return reference_price_usd * (1.0 + slippage_bps / BPS)
    if qty_base < 0:
        return reference_price_usd * (1.0 - slippage_bps / BPS)
    return reference_price_usd


def execute(qty_base: float, reference_price_usd: float, *, fee_rate: float, slippage_bps: float) -> Fill:
    """Return the fill of ``qty_base`` coins (+ buy, − sell) against ``reference_price_usd``.

    ``slippage_usd = |qty| × |fill − reference|`` and ``fee_usd = |qty| × fill × fee_rate``.
    """
    price = fill_price(reference_price_usd, qty_base, slippage_bps)
    size = abs(qty_base)
    return Fill(
        qty_base=qty_base,
        reference_price_usd=reference_price_usd,
        fill_price_usd=price,
        slippage_usd=size * abs(price - reference_price_usd),
        fee_usd=size * price * fee_rate,
    )
