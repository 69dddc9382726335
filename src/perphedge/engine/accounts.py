"""The accounts of a backtest and the pure rules that move them.

Wallets (USDT is treated as USD, 1 USDT = 1 USD):
- spot wallet: coins ``spot_qty_base`` (negative = coins borrowed on margin and sold: reverse carry)
  and USD cash (including an isolated-mode reserve);
- futures wallet: the collateral ``wallet_balance_usd`` (Binance "wallet balance": deposits + realised
  PnL + funding − fees) backing the perp position ``perp_qty_base`` at ``entry_price_usd``;
- margin-borrow account: the coins owed, ``max(0, −spot_qty_base)``, accruing interest.

Equity = cash + spot coins × spot price + wallet balance + unrealised PnL (at the mark price).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from perphedge.errors import ConfigError
from perphedge.mechanics.brackets import BracketTable
from perphedge.units import require_positive


@dataclass(frozen=True, slots=True, kw_only=True)
class CapitalSplit:
    """How starting capital is divided: the spot budget and the futures collateral, in USD."""

    spot_budget_usd: float
    collateral_usd: float


def split_capital(capital_usd: float, leverage: float) -> CapitalSplit:
    """Return ``spot = capital × L / (1 + L)``, ``collateral = capital / (1 + L)``.

    With the perp notional equal to the spot notional, the collateral is then exactly the initial
    margin ``notional / L`` (Binance: IM = notional / leverage, FAQ 360033162192).
    """
    capital_usd = require_positive("capital_usd", capital_usd)
    leverage = require_positive("leverage", leverage)
    return CapitalSplit(
        spot_budget_usd=capital_usd * leverage / (1.0 + leverage),
        collateral_usd=capital_usd / (1.0 + leverage),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PerpPosition:
    """A one-way perp position: signed size in coins, entry price, and what a fill realised."""

    qty_base: float
    entry_price_usd: float
    realized_pnl_usd: float = 0.0


def apply_perp_fill(
    qty_base: float, entry_price_usd: float, delta_base: float, price_usd: float
) -> PerpPosition:
    """Return the position after a fill of ``delta_base`` at ``price_usd`` (one-way mode).

    Binance/Bybit rules (Bybit "P&L calculations (USDT contract)": AEP = Σ qty·price / Σ qty):
    adding to a position averages the entry price; reducing realises ``closed × (price − entry) × side``
    and keeps the entry; flipping through zero realises the whole old position and opens the rest at
    ``price_usd``.
    """
    new_qty = qty_base + delta_base
    if qty_base == 0.0 or (qty_base > 0) == (delta_base > 0):
        if new_qty == 0.0:
            return PerpPosition(qty_base=0.0, entry_price_usd=0.0)
        entry = (qty_base * entry_price_usd + delta_base * price_usd) / new_qty
        return PerpPosition(qty_base=new_qty, entry_price_usd=entry)
    # a remainder below 1e-12 of the traded size is float dust from closing exactly (e.g. 1e-22 coins
    # left by a fraction × base quantity): the position is closed, not flipped to a dust position
    if abs(delta_base) <= abs(qty_base) or abs(new_qty) <= 1e-12 * abs(delta_base):
        realized = -delta_base * (price_usd - entry_price_usd)
        if abs(new_qty) <= 1e-12 * max(abs(qty_base), abs(delta_base)):
            return PerpPosition(
                qty_base=0.0, entry_price_usd=0.0, realized_pnl_usd=qty_base * (price_usd - entry_price_usd)
            )
        return PerpPosition(qty_base=new_qty, entry_price_usd=entry_price_usd, realized_pnl_usd=realized)
    realized = qty_base * (price_usd - entry_price_usd)
    return PerpPosition(qty_base=new_qty, entry_price_usd=price_usd, realized_pnl_usd=realized)


@dataclass(frozen=True, slots=True, kw_only=True)
class InversePosition:
    """A one-way inverse (COIN-M) position: signed contracts, entry price, and the coins a fill realised."""

    contracts: float
    entry_price_usd: float
    realized_pnl_coin: float = 0.0


def apply_inverse_fill(
    contracts: float,
    entry_price_usd: float,
    delta_contracts: float,
    price_usd: float,
    contract_size_usd: float,
) -> InversePosition:
    """Return the inverse position after a fill of ``delta_contracts`` at ``price_usd`` (one-way mode).

    Binance COIN-M / Bybit inverse rules: adding averages the entry harmonically,
    ``AEP = Σ contracts / Σ (contracts / price)``; reducing realises
    ``closed × size × (1/entry − 1/price)`` (signed by side) in coins and keeps the entry; flipping
    realises the whole old position and opens the rest at ``price_usd``. Sources: Bybit "Profit/Loss
    calculations (Inverse contracts)" (1,000 @ 5,000 + 2,000 @ 6,000 → AEP 5,625; 10,000 long from
    8,000 to 12,500 → 0.45 BTC with 1-USD contracts); Binance COIN-M PnL = contracts × size × side ×
    (1/entry − 1/exit).
    """
    new = contracts + delta_contracts
    if contracts == 0.0 or (contracts > 0) == (delta_contracts > 0):
        if new == 0.0:
            return InversePosition(contracts=0.0, entry_price_usd=0.0)
        entry = new / (contracts / entry_price_usd + delta_contracts / price_usd) if contracts else price_usd
        return InversePosition(contracts=new, entry_price_usd=entry)
    if abs(delta_contracts) <= abs(contracts):
        closed = -delta_contracts
        realized = closed * contract_size_usd * (1.0 / entry_price_usd - 1.0 / price_usd)
        if new == 0.0:
            return InversePosition(contracts=0.0, entry_price_usd=0.0, realized_pnl_coin=realized)
        return InversePosition(contracts=new, entry_price_usd=entry_price_usd, realized_pnl_coin=realized)
    realized = contracts * contract_size_usd * (1.0 / entry_price_usd - 1.0 / price_usd)
    return InversePosition(contracts=new, entry_price_usd=price_usd, realized_pnl_coin=realized)


@dataclass(frozen=True, slots=True, kw_only=True)
class BracketSchedule:
    """Bracket tables by date: ``tables[i]`` is in force from ``start_ts_ms[i]`` (UTC ms) to the next start.

    Resolved once before a run (no I/O in the loop). ``note`` says how it was chosen (shown in results).
    """

    start_ts_ms: tuple[int, ...]
    tables: tuple[BracketTable, ...]
    note: str = ""

    def __post_init__(self) -> None:
        if not self.tables or len(self.tables) != len(self.start_ts_ms):
            raise ConfigError(
                f"a bracket schedule needs one start time per table; there were {len(self.start_ts_ms)} starts "
                f"and {len(self.tables)} tables"
            )
        if any(b <= a for a, b in zip(self.start_ts_ms, self.start_ts_ms[1:], strict=False)):
            raise ConfigError(f"bracket schedule start times must increase; they were {self.start_ts_ms}")

    @classmethod
    def single(cls, table: BracketTable, note: str = "") -> BracketSchedule:
        """Return a schedule with one table in force at all times."""
        return cls(start_ts_ms=(-(2**62),), tables=(table,), note=note or f"one table for {table.symbol}")


def date_to_ts_ms(day: datetime.date) -> int:
    """Return the UTC epoch ms of midnight at the start of ``day``."""
    moment = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)
