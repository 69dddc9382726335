"""PaperVenue: a simulated exchange behind the same trading port as the real one.

It replays real market history (``ReplayFeed``, built from the bundled bars and funding settlements)
at any speed: the venue's clock is a bar cursor that ``advance()`` moves one bar on; prices are the
closes of the bar at the cursor and its time is that bar's close. Funding settlements that fall at
or before the venue's time are paid to the open perp position exactly once (a settled-through
watermark), at ``funding_cashflow_linear_usd(qty, mark at settlement, rate)`` (Binance funding FAQ).

Its whole state (wallets, perp position, orders by client id, funding paid, transfers, pending
faults, the cursor) is a JSON file written atomically (temp file + ``os.replace``) after every
change, so a keeper process killed at any point and restarted sees the same "exchange".

Fills: market orders fill at a reference price (spot close for spot, perp close for the perp) through
the injected ``FillModel``; the keeper hands in the backtest's own model (``engine.fills``: slippage
in bps against the taker, fee = rate × filled value), so paper and backtest cost the same.

Margin: one-way, cross, linear (USDⓈ-M). Maintenance margin and the liquidation price come from
``perphedge.mechanics`` with the symbol's bracket table; when the mark price reaches the liquidation
price the position is closed there and the clearance fee (``liquidation_fee``, Binance BTCUSDT
``liquidationFee`` 0.0125, exchange-mechanics.md §2) is charged on the notional.

Fault injection (``inject``): reject a leg, timeout after submit (the order is filled but the call
raises VenueUnavailable), partial fill, unavailable for N calls, price gap from now on, and a crash
after submit (the order is persisted, then ``crash_hook`` runs: the CLI makes it ``os._exit``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from perphedge.errors import InputError, InsufficientFunds, OrderRejected, VenueError, VenueUnavailable
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.funding import funding_cashflow_linear_usd
from perphedge.mechanics.liquidation import liquidation_price_linear
from perphedge.mechanics.margin import maintenance_margin_usd
from perphedge.venues.port import (
    Balances,
    ClientOrderId,
    FundingPayment,
    FundingRateEvent,
    Leg,
    MarketRules,
    OrderRequest,
    OrderSide,
    OrderState,
    OrderStatus,
    PerpPosition,
    Quote,
    to_decimal,
)

STATE_VERSION = 1
BINANCE_BTCUSDT_LIQUIDATION_FEE = Decimal("0.0125")  # exchangeInfo.liquidationFee (exchange-mechanics.md §2)


class SimulatedCrash(BaseException):  # noqa: N818 - a BaseException so no `except Exception` swallows it
    """Raised by the default crash hook: the process "dies" right after an order was submitted."""


# --- price feeds -----------------------------------------------------------------------------------


class PriceFeed(Protocol):
    """Where the paper exchange's prices come from. ``position`` is the venue's step counter.

    ``ReplayFeed`` replays bundled history (position = bar index); ``ccxt_trading.LivePublicFeed``
    polls an exchange's public endpoints (position = poll number).
    """

    @property
    def timeframe_ms(self) -> int:
        """Return the bar length in milliseconds (read-only, so frozen dataclasses conform)."""
        ...

    def last_position(self) -> int | None:
        """Return the last position there is (None: endless, live)."""
        ...

    def time_ms(self, position: int) -> int:
        """Return the time of the prices at ``position`` (UTC ms)."""
        ...

    def prices(self, position: int) -> tuple[float, float, float]:
        """Return (spot, perp, mark) prices in USD at ``position``."""
        ...

    def next_settlement_ts_ms(self, position: int) -> int | None: ...

    def settled_rates(self, since_ts_ms: int, until_ts_ms: int) -> list[FundingRateEvent]:
        """Return settlements with ``since_ts_ms <= settle_ts_ms <= until_ts_ms``, oldest first."""
        ...

    def spot_closes(self, position: int, limit: int) -> list[tuple[int, float]]:
        """Return up to ``limit`` (bar open ts_ms, close) of completed spot bars at ``position``, oldest first."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayFeed:
    """Real price bars and funding settlements to replay, as numpy arrays (oldest first).

    The mark price of a bar is ``mark_close`` when known, else the perp close (the backtest engine's
    rule); at a settlement, the settlement's own mark price when known, else the mark of the bar that
    ends at it.
    """

    symbol: str
    timeframe_ms: int
    bar_open_ts_ms: np.ndarray
    spot_close: np.ndarray
    perp_close: np.ndarray
    mark_close: np.ndarray
    settle_ts_ms: np.ndarray
    rate_per_interval: np.ndarray
    settle_mark_price: np.ndarray

    @classmethod
    def from_frames(cls, *, symbol: str, timeframe_ms: int, bars: Any, funding: Any) -> ReplayFeed:
        """Build a feed from ``MarketData.bars`` / ``.funding`` frames (``perphedge.data.schema``)."""
        if len(bars) < 2:
            raise InputError(f"a replay needs at least 2 bars of {symbol}; there were {len(bars)}")
        bar_ts = bars.index.as_unit("ms").asi8.astype(np.int64)
        settle_ts = funding.index.as_unit("ms").asi8.astype(np.int64)
        perp = bars["perp_close"].to_numpy(dtype=float)
        mark = bars["mark_close"].to_numpy(dtype=float)
        mark = np.where(np.isnan(mark), perp, mark)
        return cls(
            symbol=symbol,
            timeframe_ms=int(timeframe_ms),
            bar_open_ts_ms=bar_ts,
            spot_close=bars["spot_close"].to_numpy(dtype=float),
            perp_close=perp,
            mark_close=mark,
            settle_ts_ms=settle_ts,
            rate_per_interval=funding["rate_per_interval"].to_numpy(dtype=float),
            settle_mark_price=funding["mark_price"].to_numpy(dtype=float),
        )

    @property
    def bar_count(self) -> int:
        return int(self.bar_open_ts_ms.size)

    def close_ts_ms(self, cursor: int) -> int:
        return int(self.bar_open_ts_ms[cursor]) + self.timeframe_ms

    # PriceFeed
    def last_position(self) -> int | None:
        return self.bar_count - 1

    def time_ms(self, position: int) -> int:
        return self.close_ts_ms(position)

    def prices(self, position: int) -> tuple[float, float, float]:
        return (
            float(self.spot_close[position]),
            float(self.perp_close[position]),
            float(self.mark_close[position]),
        )

    def next_settlement_ts_ms(self, position: int) -> int | None:
        nxt = int(np.searchsorted(self.settle_ts_ms, self.time_ms(position), side="right"))
        return int(self.settle_ts_ms[nxt]) if nxt < self.settle_ts_ms.size else None

    def settled_rates(self, since_ts_ms: int, until_ts_ms: int) -> list[FundingRateEvent]:
        lo = int(np.searchsorted(self.settle_ts_ms, since_ts_ms, side="left"))
        hi = int(np.searchsorted(self.settle_ts_ms, until_ts_ms, side="right"))
        rates = self.rate_per_interval
        return [
            FundingRateEvent(
                settle_ts_ms=int(self.settle_ts_ms[i]),
                rate_per_interval=float(rates[i]),
                mark_price_usd=self.mark_at_settlement(i),
            )
            for i in range(lo, hi)
        ]

    def spot_closes(self, position: int, limit: int) -> list[tuple[int, float]]:
        start = max(0, position + 1 - limit)
        return [(int(self.bar_open_ts_ms[i]), float(self.spot_close[i])) for i in range(start, position + 1)]

    def start_position(self, start_ts_ms: int) -> int:
        """Return the first bar opening at or after ``start_ts_ms``."""
        return int(np.searchsorted(self.bar_open_ts_ms, start_ts_ms, side="left"))

    def mark_at_settlement(self, i: int) -> float:
        mark = float(self.settle_mark_price[i])
        if math.isnan(mark):
            bar = int(np.searchsorted(self.bar_open_ts_ms, self.settle_ts_ms[i], side="left")) - 1
            mark = float(self.mark_close[max(bar, 0)])
        return mark


# --- fills -----------------------------------------------------------------------------------------


class FillModel(Protocol):
    """Fill price and fee of a taker market order (the backtest's model, handed in by the keeper)."""

    def fill_price_usd(self, *, leg: Leg, side: OrderSide, reference_price_usd: Decimal) -> Decimal: ...

    def fee_usd(self, *, leg: Leg, notional_usd: Decimal) -> Decimal: ...


# --- faults ----------------------------------------------------------------------------------------


class FaultKind(StrEnum):
    REJECT = "reject"  # create_order on `leg` raises OrderRejected
    TIMEOUT_AFTER_SUBMIT = "timeout_after_submit"  # the order fills, then the call raises VenueUnavailable
    PARTIAL_FILL = "partial_fill"  # only `fill_fraction` fills; the rest stays open until cancelled
    UNAVAILABLE = "unavailable"  # the next `times` calls of any method raise VenueUnavailable
    PRICE_GAP = "price_gap"  # from now on every price is multiplied by `price_factor`
    CRASH_AFTER_SUBMIT = "crash_after_submit"  # the order is persisted, then crash_hook() runs
    # the next `times` look-ups of a `leg` order answer "no such order" although it exists (an exchange's
    # order index lagging behind its matching engine right after a timeout)
    LATE_VISIBLE = "late_visible"


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One injected fault; ``times`` is how many calls (or orders) it affects."""

    kind: FaultKind
    leg: Leg | None = None  # order faults: which leg (None = any)
    times: int = 1
    fill_fraction: float = 0.5
    price_factor: float = 1.0
    skip_calls: int = 0  # unavailable: let this many calls through first

    def __post_init__(self) -> None:
        if self.times < 1 or self.skip_calls < 0:
            raise InputError(f"fault times must be >= 1; it was {self.times}")
        if not 0.0 < self.fill_fraction < 1.0:
            raise InputError(f"fault fill_fraction must be in (0, 1); it was {self.fill_fraction}")
        if not self.price_factor > 0.0:
            raise InputError(f"fault price_factor must be > 0; it was {self.price_factor}")


# --- the venue -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperAccount:
    """Starting balances of a paper account."""

    spot_base: Decimal = Decimal(0)
    spot_usd: Decimal = Decimal(0)
    futures_usd: Decimal = Decimal(0)


@dataclass(slots=True, kw_only=True)
class _State:
    version: int = STATE_VERSION
    cursor: int = 0
    spot_base: str = "0"
    spot_usd: str = "0"
    futures_usd: str = "0"
    perp_qty: str = "0"
    perp_entry: str = "0"
    funding_through_ts_ms: int = 0
    price_factor: str = "1"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    funding: list[list[Any]] = field(default_factory=list)  # [settle_ts_ms, amount_usd as a decimal string]
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    liquidations: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)


class PaperVenue:
    """A simulated exchange implementing ``TradingVenue`` over a ``ReplayFeed``; state persists in a JSON file."""

    name = "paper"

    def __init__(
        self,
        *,
        feed: PriceFeed,
        state_path: Path,
        spot_symbol: str,
        perp_symbol: str,
        bracket_table: BracketTable,
        rules: Sequence[MarketRules],
        account: PaperAccount | None = None,
        start_cursor: int = 0,
        fill_model: FillModel,
        leverage: float = 2.0,
        liquidation_fee: Decimal = BINANCE_BTCUSDT_LIQUIDATION_FEE,
        crash_hook: Callable[[], None] | None = None,
    ) -> None:
        self.feed = feed
        self.state_path = Path(state_path)
        self.spot_symbol = spot_symbol
        self.perp_symbol = perp_symbol
        self.bracket_table = bracket_table
        self._rules = {r.symbol: r for r in rules}
        self.fill_model = fill_model
        self.leverage = leverage
        self.liquidation_fee = liquidation_fee
        self.crash_hook = crash_hook or _raise_simulated_crash
        if self.state_path.exists():
            self._s = _load_state(self.state_path)
        else:
            last = feed.last_position()
            if start_cursor < 0 or (last is not None and start_cursor > last):
                raise InputError(f"start_cursor must be in [0, {last}]; it was {start_cursor}")
            acct = account or PaperAccount()
            self._s = _State(
                cursor=start_cursor,
                spot_base=str(acct.spot_base),
                spot_usd=str(acct.spot_usd),
                futures_usd=str(acct.futures_usd),
                funding_through_ts_ms=feed.time_ms(start_cursor),
            )
            self._save()

    # -- time ------------------------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        return self._s.cursor

    def now_ms(self) -> int:
        """Return the venue's time: the close of the bar at the cursor (UTC ms)."""
        return self.feed.time_ms(self._s.cursor)

    def is_finished(self) -> bool:
        """Return True when the replay has reached its last bar."""
        last = self.feed.last_position()
        return last is not None and self._s.cursor >= last

    def advance(self, bars: int = 1) -> None:
        """Move the replay ``bars`` bars on, paying funding settled on the way and checking liquidation."""
        last = self.feed.last_position()
        target = self._s.cursor + bars if last is None else min(self._s.cursor + bars, last)
        while self._s.cursor < target:
            self._s.cursor += 1
            self._settle_funding()
            self._check_liquidation()
        self._save()

    # -- faults ----------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Arm a fault (persisted with the state, so it survives a restart until it fires)."""
        if fault.kind is FaultKind.PRICE_GAP:
            self._s.price_factor = str(Decimal(self._s.price_factor) * to_decimal(fault.price_factor))
            self._check_liquidation()
        else:
            record = asdict(fault)
            record["kind"] = fault.kind.value
            record["leg"] = fault.leg.value if fault.leg else None
            self._s.faults.append(record)
        self._save()

    def _take_fault(self, kind: FaultKind, leg: Leg | None = None) -> dict[str, Any] | None:
        for record in self._s.faults:
            if record["kind"] == kind.value and (
                record["leg"] is None or leg is None or record["leg"] == leg.value
            ):
                if record.get("skip_calls", 0) > 0:
                    record["skip_calls"] -= 1
                    self._save()
                    return None
                record["times"] -= 1
                if record["times"] <= 0:
                    self._s.faults.remove(record)
                self._save()
                return record
        return None

    def _gate(self, action: str) -> None:
        if self._take_fault(FaultKind.UNAVAILABLE) is not None:
            raise VenueUnavailable(
                f"{action}: paper exchange unavailable (injected fault)", exchange=self.name
            )

    # -- reads -----------------------------------------------------------------------------------

    def market_rules(self, symbol: str) -> MarketRules:
        try:
            return self._rules[symbol]
        except KeyError:
            raise InputError(
                f"paper venue has no market rules for {symbol!r}; it has {sorted(self._rules)}"
            ) from None

    def _prices(self) -> tuple[Decimal, Decimal, Decimal]:
        factor = Decimal(self._s.price_factor)
        spot, perp, mark = self.feed.prices(self._s.cursor)
        return to_decimal(spot) * factor, to_decimal(perp) * factor, to_decimal(mark) * factor

    def fetch_quote(self, spot_symbol: str, perp_symbol: str) -> Quote:
        self._gate("fetch quote")
        spot, perp, mark = self._prices()
        now = self.now_ms()
        next_ts = self.feed.next_settlement_ts_ms(self._s.cursor)
        return Quote(
            ts_ms=now,
            spot_price_usd=spot,
            perp_price_usd=perp,
            mark_price_usd=mark,
            funding_rate_per_interval=None,
            next_funding_ts_ms=next_ts,
        )

    def fetch_balances(self, spot_symbol: str, perp_symbol: str) -> Balances:
        self._gate("fetch balances")
        return Balances(
            spot_base=Decimal(self._s.spot_base),
            spot_usd=Decimal(self._s.spot_usd),
            futures_wallet_usd=Decimal(self._s.futures_usd),
        )

    def fetch_perp_position(self, perp_symbol: str) -> PerpPosition | None:
        self._gate("fetch positions")
        qty = Decimal(self._s.perp_qty)
        if qty == 0:
            return None
        entry = Decimal(self._s.perp_entry)
        _, _, mark = self._prices()
        notional = float(abs(qty) * mark)
        mm = to_decimal(maintenance_margin_usd(notional, self.bracket_table))
        return PerpPosition(
            symbol=perp_symbol,
            signed_qty_base=qty,
            entry_price_usd=entry,
            mark_price_usd=mark,
            unrealized_pnl_usd=qty * (mark - entry),
            maintenance_margin_usd=mm,
            liquidation_price_usd=self._liquidation_price(),
            leverage=self.leverage,
            margin_mode="cross",
        )

    def fetch_funding_history(self, perp_symbol: str, since_ts_ms: int) -> list[FundingPayment]:
        self._gate("fetch funding history")
        return [
            FundingPayment(
                symbol=perp_symbol, settle_ts_ms=ts, amount_usd=Decimal(amount), payment_id=f"paper-{ts}"
            )
            for ts, amount in self._s.funding
            if ts >= since_ts_ms
        ]

    def fetch_funding_rates(self, perp_symbol: str, since_ts_ms: int) -> list[FundingRateEvent]:
        self._gate("fetch funding rates")
        return self.feed.settled_rates(since_ts_ms, self.now_ms())

    def fetch_spot_closes(self, spot_symbol: str, limit: int) -> list[tuple[int, float]]:
        self._gate("fetch spot bars")
        factor = float(self._s.price_factor)
        return [(ts, close * factor) for ts, close in self.feed.spot_closes(self._s.cursor, limit)]

    # -- orders ----------------------------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> OrderStatus:
        self._gate("create order")
        if request.client_order_id in self._s.orders:
            raise OrderRejected(
                f"client order id {request.client_order_id} is duplicated", exchange=self.name
            )
        if self._take_fault(FaultKind.REJECT, request.leg) is not None:
            raise OrderRejected(
                f"{request.symbol} {request.side} {request.qty_base}: rejected (injected fault)",
                exchange=self.name,
            )
        rules = self.market_rules(request.symbol)
        if rules.round_amount(request.qty_base) != request.qty_base:
            raise OrderRejected(
                f"quantity {request.qty_base} is not a multiple of the step {rules.amount_step_base}",
                exchange=self.name,
            )
        spot, perp, _ = self._prices()
        reason = rules.check_tradeable(request.qty_base, spot if request.leg is Leg.SPOT else perp)
        if reason:
            raise OrderRejected(reason, exchange=self.name)
        partial = self._take_fault(FaultKind.PARTIAL_FILL, request.leg)
        fill_qty = request.qty_base
        if partial is not None:
            fill_qty = rules.round_amount(request.qty_base * to_decimal(partial["fill_fraction"]))
        status = self._fill(request, fill_qty)
        self._save()
        if self._take_fault(FaultKind.CRASH_AFTER_SUBMIT, request.leg) is not None:
            self.crash_hook()
        if self._take_fault(FaultKind.TIMEOUT_AFTER_SUBMIT, request.leg) is not None:
            raise VenueUnavailable(
                f"create order {request.client_order_id}: request timed out (injected fault)",
                exchange=self.name,
            )
        return status

    def _fill(self, request: OrderRequest, fill_qty: Decimal) -> OrderStatus:
        spot, perp, _ = self._prices()
        reference = spot if request.leg is Leg.SPOT else perp
        price = self.fill_model.fill_price_usd(
            leg=request.leg, side=request.side, reference_price_usd=reference
        )
        fee = self.fill_model.fee_usd(leg=request.leg, notional_usd=fill_qty * price)
        signed = fill_qty if request.side is OrderSide.BUY else -fill_qty
        if request.leg is Leg.SPOT:
            new_usd = Decimal(self._s.spot_usd) - signed * price - fee
            new_base = Decimal(self._s.spot_base) + signed
            if new_usd < 0:
                raise InsufficientFunds(
                    f"spot buy needs {signed * price + fee:.2f} USD; the spot wallet has {self._s.spot_usd}",
                    exchange=self.name,
                )
            if new_base < 0:
                raise InsufficientFunds(
                    f"spot sell of {fill_qty} exceeds the {self._s.spot_base} coins held "
                    "(paper has no margin borrow)",
                    exchange=self.name,
                )
            self._s.spot_usd, self._s.spot_base = str(new_usd), str(new_base)
        else:
            self._apply_perp_fill(signed, price, fee, reduce_only=request.reduce_only)
        state = OrderState.CLOSED if fill_qty == request.qty_base else OrderState.OPEN
        record = {
            "client_order_id": request.client_order_id,
            "exchange_order_id": f"paper{len(self._s.orders) + 1}",
            "leg": request.leg.value,
            "symbol": request.symbol,
            "side": request.side.value,
            "state": state.value,
            "qty_base": str(request.qty_base),
            "filled_qty_base": str(fill_qty),
            "average_price_usd": str(price),
            "fee_usd": str(fee),
            "ts_ms": self.now_ms(),
        }
        self._s.orders[request.client_order_id] = record
        return _status_from_record(record)

    def _apply_perp_fill(self, signed: Decimal, price: Decimal, fee: Decimal, *, reduce_only: bool) -> None:
        qty, entry = Decimal(self._s.perp_qty), Decimal(self._s.perp_entry)
        wallet = Decimal(self._s.futures_usd) - fee
        if reduce_only and (qty == 0 or (qty > 0) == (signed > 0) or abs(signed) > abs(qty)):
            raise OrderRejected(
                f"reduce-only order of {signed} would not reduce the position {qty}", exchange=self.name
            )
        if qty == 0 or (qty > 0) == (signed > 0):
            new_qty = qty + signed
            entry = (abs(qty) * entry + abs(signed) * price) / abs(new_qty)
        else:
            closed = min(abs(signed), abs(qty))
            wallet += closed * (price - entry) * (1 if qty > 0 else -1)  # realised PnL of the closed part
            new_qty = qty + signed
            if new_qty == 0:
                entry = Decimal(0)
            elif (new_qty > 0) != (qty > 0):
                entry = price
        _, _, mark = self._prices()
        required = abs(new_qty) * mark / to_decimal(self.leverage)
        if abs(new_qty) > abs(qty) and wallet + new_qty * (mark - entry) < required:
            raise InsufficientFunds(
                f"perp order needs {required:.2f} USD initial margin at {self.leverage:g}x; the "
                f"futures wallet has {wallet:.2f}",
                exchange=self.name,
            )
        self._s.perp_qty, self._s.perp_entry, self._s.futures_usd = str(new_qty), str(entry), str(wallet)

    def fetch_order_by_client_id(self, symbol: str, client_order_id: ClientOrderId) -> OrderStatus | None:
        self._gate("fetch order")
        record = self._s.orders.get(client_order_id)
        if record is None or self._take_fault(FaultKind.LATE_VISIBLE, Leg(record["leg"])) is not None:
            return None
        return _status_from_record(record)

    def cancel_order(self, symbol: str, client_order_id: ClientOrderId) -> None:
        self._gate("cancel order")
        record = self._s.orders.get(client_order_id)
        if record is None:
            raise OrderRejected(f"cancel: no order with client id {client_order_id}", exchange=self.name)
        if record["state"] == OrderState.OPEN.value:
            record["state"] = OrderState.CANCELED.value
            self._save()

    # -- transfers -------------------------------------------------------------------------------

    def transfer_margin(self, amount_usd: Decimal, *, to_futures: bool, transfer_id: str) -> None:
        self._gate("transfer")
        if amount_usd <= 0:
            raise InputError(f"transfer amount must be > 0; it was {amount_usd}")
        if transfer_id in self._s.transfers:
            raise OrderRejected(f"transfer id {transfer_id} was already used", exchange=self.name)
        source = "spot_usd" if to_futures else "futures_usd"
        target = "futures_usd" if to_futures else "spot_usd"
        available = Decimal(getattr(self._s, source))
        if available < amount_usd:
            raise InsufficientFunds(
                f"transfer of {amount_usd} USD needs more than the {available} USD in the "
                f"{'spot' if to_futures else 'futures'} wallet",
                exchange=self.name,
            )
        setattr(self._s, source, str(available - amount_usd))
        setattr(self._s, target, str(Decimal(getattr(self._s, target)) + amount_usd))
        self._s.transfers[transfer_id] = {
            "amount_usd": str(amount_usd),
            "to_futures": to_futures,
            "ts_ms": self.now_ms(),
        }
        self._save()

    def has_transfer(self, transfer_id: str) -> bool | None:
        self._gate("fetch transfers")
        return transfer_id in self._s.transfers

    # -- simulation ------------------------------------------------------------------------------

    @property
    def liquidations(self) -> list[dict[str, Any]]:
        return list(self._s.liquidations)

    def _liquidation_price(self) -> Decimal | None:
        qty = Decimal(self._s.perp_qty)
        if qty == 0:
            return None
        lp = liquidation_price_linear(
            side=1 if qty > 0 else -1,
            qty_base=float(abs(qty)),
            entry_price=float(Decimal(self._s.perp_entry)),
            wallet_balance_usd=float(Decimal(self._s.futures_usd)),
            table=self.bracket_table,
        )
        return None if lp is None else to_decimal(round(lp, 8))

    def _settle_funding(self) -> None:
        now = self.now_ms()
        qty = Decimal(self._s.perp_qty)
        for event in self.feed.settled_rates(self._s.funding_through_ts_ms + 1, now):
            if qty != 0:
                # the settlement's mark when the feed knows it, else the current mark (live feeds without it)
                mark = event.mark_price_usd if event.mark_price_usd is not None else float(self._prices()[2])
                amount = to_decimal(funding_cashflow_linear_usd(float(qty), mark, event.rate_per_interval))
                amount = amount.quantize(Decimal("0.00000001"))
                self._s.futures_usd = str(Decimal(self._s.futures_usd) + amount)
                self._s.funding.append([event.settle_ts_ms, str(amount)])
            self._s.funding_through_ts_ms = event.settle_ts_ms

    def _check_liquidation(self) -> None:
        lp = self._liquidation_price()
        if lp is None:
            return
        qty = Decimal(self._s.perp_qty)
        _, _, mark = self._prices()
        if (qty < 0 and mark >= lp) or (qty > 0 and mark <= lp):
            entry = Decimal(self._s.perp_entry)
            realised = qty * (lp - entry)
            fee = abs(qty) * lp * self.liquidation_fee
            wallet = Decimal(self._s.futures_usd) + realised - fee
            self._s.futures_usd = str(max(wallet, Decimal(0)))
            self._s.liquidations.append(
                {"ts_ms": self.now_ms(), "qty_base": str(qty), "price_usd": str(lp), "fee_usd": str(fee)}
            )
            self._s.perp_qty, self._s.perp_entry = "0", "0"

    def _save(self) -> None:
        _write_json_atomic(
            self.state_path, {name: getattr(self._s, name) for name in _State.__dataclass_fields__}
        )


def _raise_simulated_crash() -> None:
    raise SimulatedCrash("paper venue: simulated crash after submit (injected fault)")


def _status_from_record(record: dict[str, Any]) -> OrderStatus:
    return OrderStatus(
        client_order_id=ClientOrderId(record["client_order_id"]),
        exchange_order_id=record["exchange_order_id"],
        symbol=record["symbol"],
        side=OrderSide(record["side"]),
        state=OrderState(record["state"]),
        qty_base=Decimal(record["qty_base"]),
        filled_qty_base=Decimal(record["filled_qty_base"]),
        average_price_usd=Decimal(record["average_price_usd"]) if record["average_price_usd"] else None,
        fee_usd=Decimal(record["fee_usd"]),
        last_fill_ts_ms=int(record["ts_ms"]) if Decimal(record["filled_qty_base"]) else None,
    )


def _load_state(path: Path) -> _State:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise VenueError(
            f"paper exchange state {path} cannot be read ({e}); delete it to start a new paper account",
            exchange="paper",
        ) from e
    if raw.get("version") != STATE_VERSION:
        raise VenueError(
            f"paper exchange state {path} has version {raw.get('version')!r}, expected {STATE_VERSION}; "
            "delete it to start a new paper account",
            exchange="paper",
        )
    return _State(**raw)


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(payload, separators=(",", ":")))  # dumps uses the C encoder
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
