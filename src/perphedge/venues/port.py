"""The trading port: the few calls the hedge keeper needs from an exchange, and their value types.

Two adapters implement it: ``venues.paper.PaperVenue`` (a simulated exchange whose state persists
on disk) and ``venues.ccxt_trading.CcxtVenue`` (real orders through ccxt). The keeper only ever
talks to this protocol, so paper and live run the same code (STYLE-EXAMPLES §2 pattern 7).

Conventions:
- Quantities and prices that go to or come from an exchange are ``Decimal`` (rounded to the
  market's precision), never binary floats. ``*_usd`` amounts are in the quote stablecoin (USDT = USD).
- ``signed_qty_base`` is positive for a long, negative for a short.
- Timestamps are UTC epoch milliseconds (``*_ts_ms``).
- Every order carries a client order id (``ClientOrderId``) chosen by the keeper; the venue must be
  able to find an order by it (``fetch_order_by_client_id``), which is what makes retries idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from enum import StrEnum
from typing import NewType, Protocol, runtime_checkable

from perphedge.errors import InputError, OrderRejected

ClientOrderId = NewType("ClientOrderId", str)
"""A deterministic id chosen by the keeper: alphanumeric, at most 32 characters (OKX's limit)."""

CLIENT_ORDER_ID_MAX_LEN = 32  # OKX clOrdId: up to 32 alphanumerics; Binance allows 36, Bybit 36


class Leg(StrEnum):
    """Which side of the hedge an order belongs to."""

    SPOT = "spot"
    PERP = "perp"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderState(StrEnum):
    """Lifecycle of an order as the venue reports it (ccxt's ``status`` vocabulary)."""

    OPEN = "open"  # accepted, not (fully) filled yet
    CLOSED = "closed"  # fully filled
    CANCELED = "canceled"  # cancelled, possibly after a partial fill
    REJECTED = "rejected"  # refused by the exchange; nothing filled


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Return an exact Decimal for an exchange amount; floats go through ``repr`` (shortest round-trip)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketRules:
    """Precision and minimums of one market, as the exchange publishes them (ccxt ``market``)."""

    symbol: str
    amount_step_base: Decimal  # quantity tick, e.g. 0.001 BTC
    min_amount_base: Decimal  # smallest order quantity
    min_notional_usd: Decimal = Decimal(0)  # smallest order value (Binance MIN_NOTIONAL), 0 if none

    def round_amount(self, qty_base: Decimal) -> Decimal:
        """Return ``qty_base`` truncated to the amount step (never rounded up: no over-trading)."""
        steps = (abs(qty_base) / self.amount_step_base).to_integral_value(rounding=ROUND_DOWN)
        rounded = steps * self.amount_step_base
        return rounded if qty_base >= 0 else -rounded

    def round_amount_up(self, qty_base: Decimal) -> Decimal:
        """Return ``|qty_base|`` rounded up to the amount step (for sizes that must be at least enough)."""
        steps = (abs(qty_base) / self.amount_step_base).to_integral_value(rounding=ROUND_CEILING)
        return steps * self.amount_step_base

    def check_tradeable(self, qty_base: Decimal, price_usd: Decimal) -> str | None:
        """Return a one-line reason if an order of ``|qty_base|`` at ``price_usd`` is below the minimums."""
        qty = abs(qty_base)
        if qty < self.min_amount_base:
            return f"{self.symbol}: quantity {qty} is below the minimum {self.min_amount_base}"
        if qty * price_usd < self.min_notional_usd:
            return (
                f"{self.symbol}: order value {qty * price_usd:.2f} USD is below the minimum "
                f"{self.min_notional_usd} USD"
            )
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """Prices seen at ``ts_ms`` (the time of the exchange's data, not of our request)."""

    ts_ms: int
    spot_price_usd: Decimal
    perp_price_usd: Decimal
    mark_price_usd: Decimal
    funding_rate_per_interval: float | None = None  # current (not yet settled) rate, a fraction
    next_funding_ts_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Balances:
    """Wallet balances relevant to one hedge. ``futures_wallet_usd`` excludes unrealised PnL."""

    spot_base: Decimal  # coins in the spot wallet (negative = borrowed on margin)
    spot_usd: Decimal  # quote currency in the spot wallet
    futures_wallet_usd: Decimal  # quote currency in the futures wallet (wallet balance)


@dataclass(frozen=True, slots=True, kw_only=True)
class PerpPosition:
    """The perpetual position as the exchange reports it."""

    symbol: str
    signed_qty_base: Decimal
    entry_price_usd: Decimal
    mark_price_usd: Decimal
    unrealized_pnl_usd: Decimal
    maintenance_margin_usd: Decimal | None = None
    liquidation_price_usd: Decimal | None = None
    leverage: float | None = None
    margin_mode: str | None = None  # "isolated" | "cross"


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingPayment:
    """One funding settlement actually paid to (> 0) or by (< 0) our position."""

    symbol: str
    settle_ts_ms: int
    amount_usd: Decimal
    payment_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingRateEvent:
    """A settled funding rate (fraction per interval) and the mark price at settlement when known."""

    settle_ts_ms: int
    rate_per_interval: float
    mark_price_usd: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """A market order the keeper wants placed. ``qty_base`` is positive; ``side`` gives the direction."""

    client_order_id: ClientOrderId
    leg: Leg
    symbol: str
    side: OrderSide
    qty_base: Decimal
    reduce_only: bool = False

    def __post_init__(self) -> None:
        cid = self.client_order_id
        if not cid or len(cid) > CLIENT_ORDER_ID_MAX_LEN or not cid.isalnum():
            raise InputError(
                f"client order id must be 1..{CLIENT_ORDER_ID_MAX_LEN} alphanumerics; it was {cid!r}"
            )
        if self.qty_base <= 0:
            raise InputError(
                f"order quantity must be > 0 (the side gives the direction); it was {self.qty_base}"
            )

    @property
    def signed_qty_base(self) -> Decimal:
        return self.qty_base if self.side is OrderSide.BUY else -self.qty_base


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderStatus:
    """An order as the venue knows it now."""

    client_order_id: ClientOrderId
    exchange_order_id: str | None
    symbol: str
    side: OrderSide
    state: OrderState
    qty_base: Decimal
    filled_qty_base: Decimal
    average_price_usd: Decimal | None
    fee_usd: Decimal
    # when the venue last filled it (UTC ms; None when the venue does not say): a fill found only after a
    # restart is journalled at this time, so funding settled in between is modelled on the filled position
    last_fill_ts_ms: int | None = None

    @property
    def signed_filled_qty_base(self) -> Decimal:
        return self.filled_qty_base if self.side is OrderSide.BUY else -self.filled_qty_base

    @property
    def is_final(self) -> bool:
        return self.state is not OrderState.OPEN


@runtime_checkable
class TradingVenue(Protocol):
    """What the keeper needs from an exchange (paper or real).

    Errors: ``VenueUnavailable`` (retryable; for ``create_order`` it means *unknown outcome*: look
    the order up by client id, never blind-retry), ``OrderRejected``, ``InsufficientFunds``.
    """

    name: str

    def market_rules(self, symbol: str) -> MarketRules:
        """Return precision and minimums of ``symbol``."""
        ...

    def fetch_quote(self, spot_symbol: str, perp_symbol: str) -> Quote:
        """Return the current spot, perp and mark prices."""
        ...

    def fetch_balances(self, spot_symbol: str, perp_symbol: str) -> Balances:
        """Return the spot wallet (base coin and quote) and the futures wallet balance."""
        ...

    def fetch_perp_position(self, perp_symbol: str) -> PerpPosition | None:
        """Return the open perp position, or None when flat."""
        ...

    def fetch_funding_history(self, perp_symbol: str, since_ts_ms: int) -> list[FundingPayment]:
        """Return funding actually paid to/by the account at or after ``since_ts_ms``, oldest first."""
        ...

    def fetch_funding_rates(self, perp_symbol: str, since_ts_ms: int) -> list[FundingRateEvent]:
        """Return the settled funding rates at or after ``since_ts_ms``, oldest first."""
        ...

    def fetch_spot_closes(self, spot_symbol: str, limit: int) -> list[tuple[int, float]]:
        """Return up to ``limit`` (bar open ts_ms, close) pairs of completed spot bars, oldest first."""
        ...

    def create_order(self, request: OrderRequest) -> OrderStatus:
        """Place a market order. A VenueUnavailable here means the outcome is unknown."""
        ...

    def fetch_order_by_client_id(self, symbol: str, client_order_id: ClientOrderId) -> OrderStatus | None:
        """Return the order with this client id, or None if the venue has no such order."""
        ...

    def cancel_order(self, symbol: str, client_order_id: ClientOrderId) -> None:
        """Cancel the rest of an open order (a no-op for a final order)."""
        ...

    def transfer_margin(self, amount_usd: Decimal, *, to_futures: bool, transfer_id: str) -> None:
        """Move quote currency between the spot and the futures wallet."""
        ...

    def has_transfer(self, transfer_id: str) -> bool | None:
        """Return whether a transfer with this id happened; None when the venue cannot tell."""
        ...


def require_tradeable(rules: MarketRules, qty_base: Decimal, price_usd: Decimal) -> None:
    """Raise OrderRejected (before sending anything) if an order is below the market minimums."""
    reason = rules.check_tradeable(qty_base, price_usd)
    if reason is not None:
        raise OrderRejected(reason + "; raise the hedge size or skip this adjustment")
