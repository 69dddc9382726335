"""CcxtVenue: the trading port over a real exchange through ccxt (live mode).

Reads go through ``call_with_retries`` (backoff on VenueUnavailable); ``create_order`` is NEVER
retried here: a timeout raises VenueUnavailable and the keeper looks the order up by its client
order id (ccxt's unified ``clientOrderId`` param: Binance newClientOrderId, Bybit orderLinkId, OKX
clOrdId). Amounts go through ``amount_to_precision``; orders below the market minimums are refused
before anything is sent. ccxt's ``OrderNotFound`` on a client-id look-up means "no such order".

Per-exchange parameter names for looking an order up by client id (ccxt 4.5):
binance ``origClientOrderId``, bybit ``orderLinkId`` (open, then closed orders), okx ``clOrdId``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt

from perphedge.errors import VenueError
from perphedge.venues.ccxt_common import (
    Credentials,
    call_with_retries,
    create_exchange,
    require_capabilities,
    resolve_market,
    translate_ccxt_errors,
)
from perphedge.venues.port import (
    Balances,
    ClientOrderId,
    FundingPayment,
    FundingRateEvent,
    MarketRules,
    OrderRequest,
    OrderSide,
    OrderState,
    OrderStatus,
    PerpPosition,
    Quote,
    require_tradeable,
    to_decimal,
)

REQUIRED_METHODS = [
    "createOrder",
    "fetchOrder",
    "cancelOrder",
    "fetchBalance",
    "fetchPositions",
    "fetchFundingHistory",
    "fetchFundingRateHistory",
    "fetchTicker",
    "fetchOHLCV",
    "transfer",
]
_CLIENT_ID_PARAM = {"binance": "origClientOrderId", "bybit": "orderLinkId", "okx": "clOrdId"}
_STATES = {
    "open": OrderState.OPEN,
    "closed": OrderState.CLOSED,
    "canceled": OrderState.CANCELED,
    "cancelled": OrderState.CANCELED,
    "expired": OrderState.CANCELED,
    "rejected": OrderState.REJECTED,
}


def _dec(value: Any) -> Decimal | None:
    return (
        None if value is None else to_decimal(value if not isinstance(value, int | float) else float(value))
    )


class CcxtVenue:
    """``TradingVenue`` over a ccxt exchange object (synchronous API)."""

    def __init__(
        self, exchange: Any, *, spot_symbol: str, perp_symbol: str, check_capabilities: bool = True
    ) -> None:
        self.exchange = exchange
        self.name = exchange.id
        self.spot_symbol = spot_symbol
        self.perp_symbol = perp_symbol
        if check_capabilities:
            require_capabilities(exchange, REQUIRED_METHODS)

    @classmethod
    def connect(
        cls, exchange_id: str, *, credentials: Credentials, spot_symbol: str, perp_symbol: str
    ) -> CcxtVenue:
        """Create the exchange with credentials, load its markets and check the symbols exist."""
        exchange = create_exchange(exchange_id, credentials=credentials)
        call_with_retries(exchange.load_markets, exchange_id=exchange_id, action="load markets")
        resolve_market(exchange, spot_symbol)
        resolve_market(exchange, perp_symbol)
        return cls(exchange, spot_symbol=spot_symbol, perp_symbol=perp_symbol)

    def _read(self, action: str, fn: Any) -> Any:
        return call_with_retries(fn, exchange_id=self.name, action=action)

    # -- market facts ----------------------------------------------------------------------------

    def market_rules(self, symbol: str) -> MarketRules:
        return market_rules_from_ccxt(self.exchange, symbol)

    def fetch_quote(self, spot_symbol: str, perp_symbol: str) -> Quote:
        spot = self._read("fetch spot ticker", lambda: self.exchange.fetch_ticker(spot_symbol))
        perp = self._read("fetch perp ticker", lambda: self.exchange.fetch_ticker(perp_symbol))
        rate: dict[str, Any] = {}
        if self.exchange.has.get("fetchFundingRate"):
            rate = self._read("fetch funding rate", lambda: self.exchange.fetch_funding_rate(perp_symbol))
        mark = rate.get("markPrice") or perp.get("markPrice") or perp["last"]
        stamps = [t for t in (spot.get("timestamp"), perp.get("timestamp")) if t]
        if not stamps:
            raise VenueError(
                "tickers carry no timestamp; cannot tell whether prices are fresh", exchange=self.name
            )
        return Quote(
            ts_ms=int(min(stamps)),
            spot_price_usd=to_decimal(float(spot["last"])),
            perp_price_usd=to_decimal(float(perp["last"])),
            mark_price_usd=to_decimal(float(mark)),
            funding_rate_per_interval=rate.get("fundingRate"),
            next_funding_ts_ms=rate.get("nextFundingTimestamp") or rate.get("fundingTimestamp"),
        )

    def fetch_balances(self, spot_symbol: str, perp_symbol: str) -> Balances:
        spot_market = resolve_market(self.exchange, spot_symbol)
        perp_market = resolve_market(self.exchange, perp_symbol)
        spot = self._read("fetch spot balance", lambda: self.exchange.fetch_balance())
        futures = self._read("fetch futures balance", lambda: self.exchange.fetch_balance({"type": "swap"}))
        total_spot = spot.get("total") or {}
        return Balances(
            spot_base=to_decimal(float(total_spot.get(spot_market["base"]) or 0)),
            spot_usd=to_decimal(float(total_spot.get(spot_market["quote"]) or 0)),
            futures_wallet_usd=futures_wallet_balance_usd(futures, perp_market["settle"]),
        )

    def fetch_perp_position(self, perp_symbol: str) -> PerpPosition | None:
        positions = self._read("fetch positions", lambda: self.exchange.fetch_positions([perp_symbol]))
        for p in positions:
            if p.get("symbol") != perp_symbol or not p.get("contracts"):
                continue
            qty = to_decimal(float(p["contracts"]) * float(p.get("contractSize") or 1))
            signed = -qty if p.get("side") == "short" else qty
            return PerpPosition(
                symbol=perp_symbol,
                signed_qty_base=signed,
                entry_price_usd=to_decimal(float(p["entryPrice"])),
                mark_price_usd=to_decimal(float(p["markPrice"])),
                unrealized_pnl_usd=to_decimal(float(p.get("unrealizedPnl") or 0)),
                maintenance_margin_usd=_dec(p.get("maintenanceMargin")),
                liquidation_price_usd=_dec(p.get("liquidationPrice")),
                leverage=p.get("leverage"),
                margin_mode=p.get("marginMode"),
            )
        return None

    def fetch_funding_history(self, perp_symbol: str, since_ts_ms: int) -> list[FundingPayment]:
        rows = self._read(
            "fetch funding history", lambda: self.exchange.fetch_funding_history(perp_symbol, since_ts_ms)
        )
        payments = [
            FundingPayment(
                symbol=perp_symbol,
                settle_ts_ms=int(r["timestamp"]),
                amount_usd=to_decimal(float(r["amount"])),
                payment_id=r.get("id"),
            )
            for r in rows
            if r.get("timestamp") is not None and r["timestamp"] >= since_ts_ms
        ]
        return sorted(payments, key=lambda p: p.settle_ts_ms)

    def fetch_funding_rates(self, perp_symbol: str, since_ts_ms: int) -> list[FundingRateEvent]:
        rows = self._read(
            "fetch funding rate history",
            lambda: self.exchange.fetch_funding_rate_history(perp_symbol, since_ts_ms),
        )
        events = []
        for r in rows:
            mark = (r.get("info") or {}).get("markPrice")
            events.append(
                FundingRateEvent(
                    settle_ts_ms=int(r["timestamp"]),
                    rate_per_interval=float(r["fundingRate"]),
                    mark_price_usd=float(mark) if mark not in (None, "") else None,
                )
            )
        return sorted(events, key=lambda e: e.settle_ts_ms)

    def fetch_spot_closes(self, spot_symbol: str, limit: int) -> list[tuple[int, float]]:
        bars = self._read(
            "fetch spot bars", lambda: self.exchange.fetch_ohlcv(spot_symbol, "1h", limit=limit)
        )
        return [(int(b[0]), float(b[4])) for b in bars[:-1]]  # the last bar is still forming

    # -- orders ----------------------------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> OrderStatus:
        """Place a market order once (never retried here); VenueUnavailable means the outcome is unknown."""
        rules = self.market_rules(request.symbol)
        with translate_ccxt_errors(
            self.name, f"order {request.client_order_id} amount"
        ):  # below precision → rejected
            amount = self.exchange.amount_to_precision(request.symbol, float(request.qty_base))
        ticker_price = self._read("fetch ticker", lambda: self.exchange.fetch_ticker(request.symbol))["last"]
        require_tradeable(rules, Decimal(amount), to_decimal(float(ticker_price)))
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        with translate_ccxt_errors(self.name, f"create order {request.client_order_id}"):
            order = self.exchange.create_order(
                request.symbol, "market", request.side.value, float(amount), None, params
            )
        return self._status(order, request.client_order_id, request.symbol, request.side, Decimal(amount))

    def fetch_order_by_client_id(self, symbol: str, client_order_id: ClientOrderId) -> OrderStatus | None:
        param = _CLIENT_ID_PARAM.get(self.name, "clientOrderId")

        def lookup() -> Any:
            try:
                if self.name == "bybit":
                    try:
                        return self.exchange.fetch_open_order(None, symbol, {param: client_order_id})
                    except ccxt.OrderNotFound:
                        return self.exchange.fetch_closed_order(None, symbol, {param: client_order_id})
                return self.exchange.fetch_order(None, symbol, {param: client_order_id})
            except ccxt.OrderNotFound:
                return None

        order = self._read(f"fetch order {client_order_id}", lookup)
        if order is None:
            return None
        return self._status(
            order, client_order_id, symbol, OrderSide(order["side"]) if order.get("side") else None, None
        )

    def cancel_order(self, symbol: str, client_order_id: ClientOrderId) -> None:
        status = self.fetch_order_by_client_id(symbol, client_order_id)
        if status is None or status.is_final:
            return
        with translate_ccxt_errors(self.name, f"cancel order {client_order_id}"):
            self.exchange.cancel_order(status.exchange_order_id, symbol)

    def transfer_margin(self, amount_usd: Decimal, *, to_futures: bool, transfer_id: str) -> None:
        code = resolve_market(self.exchange, self.perp_symbol)["settle"]
        source, target = ("spot", "swap") if to_futures else ("swap", "spot")
        with translate_ccxt_errors(self.name, f"transfer {amount_usd} {code} {source}→{target}"):
            self.exchange.transfer(code, float(amount_usd), source, target)

    def has_transfer(self, transfer_id: str) -> bool | None:
        return None  # exchanges do not take our transfer ids; the keeper treats this as "cannot tell"

    def _status(
        self,
        order: dict[str, Any],
        cid: ClientOrderId,
        symbol: str,
        side: OrderSide | None,
        amount: Decimal | None,
    ) -> OrderStatus:
        qty = _dec(order.get("amount")) or amount or Decimal(0)
        filled = _dec(order.get("filled")) or Decimal(0)
        fee = self._fee_usd(order, symbol)
        state = _STATES.get(order.get("status") or "open", OrderState.OPEN)
        return OrderStatus(
            client_order_id=cid,
            exchange_order_id=order.get("id"),
            symbol=symbol,
            side=side or OrderSide(order.get("side") or "buy"),
            state=state,
            qty_base=qty,
            filled_qty_base=filled,
            average_price_usd=_dec(order.get("average")),
            fee_usd=fee,
            # ccxt's unified last fill time, else the order's time (a market order fills as it is placed)
            last_fill_ts_ms=None
            if not filled
            else _int_or_none(order.get("lastTradeTimestamp") or order.get("timestamp")),
        )

    def _fee_usd(self, order: dict[str, Any], symbol: str) -> Decimal:
        """Return the order's fees in USD(T): quote-currency fees as they are, base-coin fees (a spot buy's
        fee is taken from the coins received on Binance and OKX) at the order's average price, any other
        coin (BNB, OKB discounts) at its ``<coin>/<quote>`` ticker."""
        market = resolve_market(self.exchange, symbol)
        quote = market.get("settle") or market["quote"]
        fee = Decimal(0)
        for f in order.get("fees") or ([order["fee"]] if order.get("fee") else []):
            if not f or f.get("cost") is None:
                continue
            cost = to_decimal(float(f["cost"]))
            currency = f.get("currency") or quote
            if currency == quote:
                fee += cost
            elif currency == market["base"] and order.get("average") is not None:
                fee += cost * to_decimal(float(order["average"]))
            else:
                pair = f"{currency}/{quote}"
                if pair not in (self.exchange.markets or {}):
                    raise VenueError(
                        f"order {order.get('id')} paid a fee of {cost} {currency}, which cannot be valued in "
                        f"{quote} (no {pair} market); pay fees in {quote} or {market['base']}",
                        exchange=self.name,
                    )
                last = self._read(f"fetch {pair} ticker", lambda p=pair: self.exchange.fetch_ticker(p))[
                    "last"
                ]
                fee += cost * to_decimal(float(last))
        return fee


def futures_wallet_balance_usd(balance: dict[str, Any], code: str) -> Decimal:
    """Return the futures wallet balance of ``code`` WITHOUT unrealised PnL (``Balances.futures_wallet_usd``).

    ccxt's ``total`` for Binance USDⓈ-M is the asset's ``marginBalance`` (wallet + unrealised PnL,
    https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Account-Information-V3),
    so the raw ``walletBalance`` is read when the response carries it; Bybit's ``total`` is already
    the coin's ``walletBalance`` (equity = walletBalance + unrealisedPnl).
    """
    info = balance.get("info")
    assets = info.get("assets") if isinstance(info, dict) else None
    for asset in assets or []:
        if asset.get("asset") == code and asset.get("walletBalance") is not None:
            return Decimal(str(asset["walletBalance"]))
    return to_decimal(float((balance.get("total") or {}).get(code) or 0))


def market_rules_from_ccxt(exchange: Any, symbol: str) -> MarketRules:
    """Return precision and minimums of a loaded ccxt market (amounts in coins: step × contract size)."""
    market = resolve_market(exchange, symbol)
    step = market["precision"]["amount"]
    limits = market.get("limits") or {}
    min_amount = (limits.get("amount") or {}).get("min") or step
    min_cost = (limits.get("cost") or {}).get("min") or 0
    contract_size = market.get("contractSize") or 1
    return MarketRules(
        symbol=market["symbol"],
        amount_step_base=to_decimal(float(step) * float(contract_size)),
        min_amount_base=to_decimal(float(min_amount) * float(contract_size)),
        min_notional_usd=to_decimal(float(min_cost)),
    )


class LivePublicFeed:
    """Live public prices of a real exchange for the paper venue (no API keys; ``venues.paper.PriceFeed``).

    Each position (the paper venue's step, one per keeper cycle) is one poll: the spot ticker and the
    perp's funding-rate record (mark price, predicted rate, next settlement; ``fetch_funding_rate``).
    The perp reference price is the **mark** price (no second ticker call; paper fills at mark ±
    slippage). Settled funding comes from ``fetch_funding_rate_history``, with the settlement's mark
    price when the exchange returns one (Binance ``markPrice``), else the paper venue uses the current
    mark. Spot bars for signals come from ``fetch_ohlcv`` (the still-forming last bar dropped).
    """

    def __init__(self, exchange: Any, *, spot_symbol: str, perp_symbol: str, timeframe: str = "1h") -> None:
        self.exchange = exchange
        self.spot_symbol = spot_symbol
        self.perp_symbol = perp_symbol
        self.timeframe = timeframe
        self.timeframe_ms = int(exchange.parse_timeframe(timeframe) * 1000)
        self._position: int | None = None
        self._snapshot: tuple[int, float, float, int | None] = (0, 0.0, 0.0, None)

    def _read(self, action: str, fn: Any) -> Any:
        return call_with_retries(fn, exchange_id=self.exchange.id, action=action)

    def _poll(self, position: int) -> tuple[int, float, float, int | None]:
        if position != self._position:
            ticker = self._read("fetch spot ticker", lambda: self.exchange.fetch_ticker(self.spot_symbol))
            rate = self._read(
                "fetch funding rate", lambda: self.exchange.fetch_funding_rate(self.perp_symbol)
            )
            stamps = [t for t in (ticker.get("timestamp"), rate.get("timestamp")) if t]
            if not stamps or ticker.get("last") is None or rate.get("markPrice") is None:
                raise VenueError(
                    "public prices came without a timestamp, last or mark price; cannot use them",
                    exchange=self.exchange.id,
                )
            self._snapshot = (
                int(min(stamps)),
                float(ticker["last"]),
                float(rate["markPrice"]),
                rate.get("nextFundingTimestamp") or rate.get("fundingTimestamp"),
            )
            self._position = position
        return self._snapshot

    def last_position(self) -> int | None:
        return None

    def time_ms(self, position: int) -> int:
        return self._poll(position)[0]

    def prices(self, position: int) -> tuple[float, float, float]:
        _, spot, mark, _ = self._poll(position)
        return spot, mark, mark

    def next_settlement_ts_ms(self, position: int) -> int | None:
        return self._poll(position)[3]

    def settled_rates(self, since_ts_ms: int, until_ts_ms: int) -> list[FundingRateEvent]:
        rows = self._read(
            "fetch funding rate history",
            lambda: self.exchange.fetch_funding_rate_history(self.perp_symbol, since_ts_ms),
        )
        events = []
        for r in rows:
            if since_ts_ms <= r["timestamp"] <= until_ts_ms:
                mark = (r.get("info") or {}).get("markPrice")
                events.append(
                    FundingRateEvent(
                        settle_ts_ms=int(r["timestamp"]),
                        rate_per_interval=float(r["fundingRate"]),
                        mark_price_usd=float(mark) if mark not in (None, "") else None,
                    )
                )
        return sorted(events, key=lambda e: e.settle_ts_ms)

    def spot_closes(self, position: int, limit: int) -> list[tuple[int, float]]:
        bars = self._read(
            "fetch spot bars",
            lambda: self.exchange.fetch_ohlcv(self.spot_symbol, self.timeframe, limit=limit + 1),
        )
        return [(int(b[0]), float(b[4])) for b in bars[:-1]]


__all__ = ["CcxtVenue", "LivePublicFeed", "market_rules_from_ccxt"]


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
