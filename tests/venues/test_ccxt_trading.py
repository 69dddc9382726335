"""CcxtVenue on REAL ccxt objects answering from recorded exchange responses (tests/fixtures/ccxt, MIT)."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from perphedge.errors import OrderRejected, VenueUnavailable
from perphedge.venues.ccxt_trading import CcxtVenue
from perphedge.venues.port import ClientOrderId, Leg, OrderRequest, OrderSide, OrderState
from tests.kit.ccxt_replay import fixture_body, fixture_entry, replay_exchange

_BYBIT_CLASSIC = {"enableUnifiedMargin": False, "enableUnifiedAccount": False}


def _venue(exchange_id: str, routes: dict, spot: str = "BTC/USDT", perp: str = "BTC/USDT:USDT") -> CcxtVenue:
    return CcxtVenue(replay_exchange(exchange_id, routes), spot_symbol=spot, perp_symbol=perp)


def test_binance_position_from_recorded_position_risk() -> None:
    venue = _venue(
        "binance", {"/fapi/v3/positionRisk": fixture_body("binance", "static_response", "fetchPositions", 1)}
    )
    position = venue.fetch_perp_position("BTC/USDT:USDT")
    expected = fixture_entry("binance", "static_response", "fetchPositions", 1)["parsed_ccxt_4_5_90"][0]
    assert position.signed_qty_base == Decimal("0.009")  # a recorded long
    assert position.entry_price_usd == Decimal(str(expected["entryPrice"])) == Decimal("67445.9")
    assert position.liquidation_price_usd == Decimal("64846.78939917")
    assert position.maintenance_margin_usd == Decimal("2.4329592") and position.margin_mode == "cross"


def test_bybit_position_from_recorded_position_list() -> None:
    venue = _venue(
        "bybit",
        {"/v5/position/list": fixture_body("bybit", "static_response", "fetchPositions")},
        spot="LTC/USDT",
        perp="LTC/USDT:USDT",
    )
    position = venue.fetch_perp_position("LTC/USDT:USDT")
    assert position.signed_qty_base == Decimal("1.2") and position.mark_price_usd == Decimal("71.1")
    assert position.unrealized_pnl_usd == Decimal("7.800625")


def test_binance_balances_from_recorded_spot_and_futures_accounts() -> None:
    spot_body = fixture_body("binance", "static_response", "fetchBalance", 0)
    futures_body = fixture_body("binance", "static_response", "fetchBalance", 1)
    venue = _venue("binance", {"/api/v3/account": spot_body, "/fapi/v3/account": futures_body})
    balances = venue.fetch_balances("BTC/USDT", "BTC/USDT:USDT")
    spot_parsed = fixture_entry("binance", "static_response", "fetchBalance", 0)["parsed_ccxt_4_5_90"][
        "total"
    ]
    futures_parsed = fixture_entry("binance", "static_response", "fetchBalance", 1)["parsed_ccxt_4_5_90"][
        "total"
    ]
    assert balances.spot_base == Decimal(repr(float(spot_parsed.get("BTC") or 0)))
    assert balances.spot_usd == Decimal(repr(float(spot_parsed.get("USDT") or 0)))
    # the wallet balance WITHOUT unrealised PnL: the asset's walletBalance, not ccxt's total (= marginBalance).
    # In this recording unrealizedProfit is 0, so both are 31.022612; the choice of field is tested below.
    usdt = next(a for a in futures_body["assets"] if a["asset"] == "USDT")
    assert (
        balances.futures_wallet_usd
        == Decimal(usdt["walletBalance"])
        == Decimal(repr(float(futures_parsed["USDT"])))
    )


def test_futures_wallet_balance_reads_wallet_not_margin_balance() -> None:
    from perphedge.venues.ccxt_trading import futures_wallet_balance_usd

    # ccxt's parse of the recorded Binance /fapi/v3/account body, with the asset's margin balance
    # (wallet + unrealised PnL) made different from its wallet balance as it is whenever a position
    # is open: the wallet balance must win
    parsed = fixture_entry("binance", "static_response", "fetchBalance", 1)["parsed_ccxt_4_5_90"]
    body = fixture_body("binance", "static_response", "fetchBalance", 1)
    asset = {**body["assets"][0], "unrealizedProfit": "12.50000000", "marginBalance": "43.52261200"}
    balance = {**parsed, "info": {**body, "assets": [asset]}, "total": {"USDT": 43.522612}}
    assert futures_wallet_balance_usd(balance, "USDT") == Decimal("31.022612")
    # Bybit: total is already the coin's walletBalance (recorded unified account, USDT wallet 3322.25896609)
    bybit = fixture_entry("bybit", "static_response", "fetchBalance")["parsed_ccxt_4_5_90"]
    assert futures_wallet_balance_usd(bybit, "USDT") == Decimal("3322.25896609")


def test_fee_in_the_base_coin_is_valued_at_the_fill_price() -> None:
    # recorded OKX spot buy: 0.1 LTC at 101.58, fee 0.0001 LTC taken from the coins received
    ex = replay_exchange("okx", {"/api/v5/trade/order": fixture_body("okx", "static_response", "fetchOrder")})
    venue = CcxtVenue(ex, spot_symbol="LTC/USDT", perp_symbol="LTC/USDT:USDT")
    status = venue.fetch_order_by_client_id("LTC/USDT", ClientOrderId("phbtcdemod1sm0"))
    assert "clOrdId=phbtcdemod1sm0" in ex.replay_calls[0].url
    assert status.filled_qty_base == Decimal("0.1") and status.average_price_usd == Decimal("101.58")
    assert status.fee_usd == Decimal("0.0001") * Decimal("101.58")  # 0.010158 USDT, not 0.0001
    assert status.last_fill_ts_ms == 1712410901850  # the recorded fillTime, not the creation time (…848)


def test_binance_order_looked_up_by_client_id() -> None:
    ex = replay_exchange(
        "binance", {"/api/v3/order": fixture_body("binance", "static_response", "fetchOrder")}
    )
    venue = CcxtVenue(ex, spot_symbol="LTC/USDT", perp_symbol="BTC/USDT:USDT")
    status = venue.fetch_order_by_client_id("LTC/USDT", ClientOrderId("phbtcdemod1sm0"))
    assert "origClientOrderId=phbtcdemod1sm0" in ex.replay_calls[0].url
    assert status.state is OrderState.CLOSED and status.filled_qty_base == Decimal("0.1")
    assert status.average_price_usd == Decimal("90.8") and status.side is OrderSide.SELL
    assert status.last_fill_ts_ms == 1679571174472  # the recorded order's time (a filled market order)


def test_order_not_found_means_none_and_outage_is_unavailable() -> None:
    venue = _venue("binance", {"/api/v3/order": ccxt.OrderNotFound("Order does not exist.")})
    assert venue.fetch_order_by_client_id("BTC/USDT", ClientOrderId("phxd1sm0")) is None
    down = _venue("binance", {"/api/v3/order": ccxt.ExchangeNotAvailable("maintenance")})
    down._read = lambda action, fn: __import__(
        "perphedge.venues.ccxt_common", fromlist=["x"]
    ).call_with_retries(fn, exchange_id="binance", action=action, sleep=lambda s: None)
    with pytest.raises(VenueUnavailable):
        down.fetch_order_by_client_id("BTC/USDT", ClientOrderId("phxd1sm0"))


def test_bybit_create_order_sends_the_client_id_once_and_never_retries() -> None:
    routes = {
        "/v5/order/create": fixture_body("bybit", "static_response", "createOrder"),
        "/v5/market/tickers": fixture_body("bybit", "static_response", "fetchTicker"),
    }
    # the account type is given as options (what ccxt caches after asking /v5/user/query-api), so no
    # account-info response has to be made up: every body served here was recorded
    ex = replay_exchange("bybit", routes, options=_BYBIT_CLASSIC)
    venue = CcxtVenue(ex, spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT")
    request = OrderRequest(
        client_order_id=ClientOrderId("phbtcdemod1pm0"),
        leg=Leg.PERP,
        symbol="BTC/USDT:USDT",
        side=OrderSide.SELL,
        qty_base=Decimal("0.01"),
    )
    status = venue.create_order(request)
    creates = [c for c in ex.replay_calls if "/v5/order/create" in c.url]
    assert len(creates) == 1 and '"orderLinkId": "phbtcdemod1pm0"' in creates[0].body.replace('":"', '": "')
    assert status.exchange_order_id == "1609920528435648000"
    failing = replay_exchange(
        "bybit", {**routes, "/v5/order/create": ccxt.RequestTimeout("timed out")}, options=_BYBIT_CLASSIC
    )
    with pytest.raises(VenueUnavailable):
        CcxtVenue(failing, spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT").create_order(request)
    assert len([c for c in failing.replay_calls if "/v5/order/create" in c.url]) == 1


def test_create_order_below_the_minimum_is_refused_before_sending() -> None:
    ex = replay_exchange(
        "binance", {"/fapi/v1/ticker/24hr": fixture_body("binance", "static_response", "fetchTicker")}
    )
    venue = CcxtVenue(ex, spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT")
    request = OrderRequest(
        client_order_id=ClientOrderId("phxd1pm0"),
        leg=Leg.PERP,
        symbol="BTC/USDT:USDT",
        side=OrderSide.SELL,
        qty_base=Decimal("0.0004"),
    )
    with pytest.raises(OrderRejected):
        venue.create_order(request)
    assert not [c for c in ex.replay_calls if "/order" in c.url]


def test_funding_history_from_recorded_bybit_executions() -> None:
    venue = _venue(
        "bybit",
        {"/v5/execution/list": fixture_body("bybit", "static_response", "fetchFundingHistory")},
        spot="LTC/USDT",
        perp="LTC/USDT:USDT",
    )
    payments = venue.fetch_funding_history("LTC/USDT:USDT", 0)
    parsed = fixture_entry("bybit", "static_response", "fetchFundingHistory")["parsed_ccxt_4_5_90"]
    got = [(p.settle_ts_ms, p.amount_usd) for p in payments]
    assert got == sorted(got) and len(got) > 2  # oldest first, every recorded execution
    for r in parsed:  # ccxt's own parse of the recorded body (limit 2) is among them, exactly
        assert (r["timestamp"], Decimal(repr(float(r["amount"])))) in got
    assert (1710921600000, Decimal("-0.00708126")) in got  # a negative payment: the position paid


def test_funding_history_from_recorded_binance_income() -> None:
    venue = _venue("binance", {"/income": fixture_body("binance", "static_response", "fetchFundingHistory")})
    payments = venue.fetch_funding_history("BTC/USDT:USDT", 0)
    parsed = fixture_entry("binance", "static_response", "fetchFundingHistory")["parsed_ccxt_4_5_90"]
    assert [p.settle_ts_ms for p in payments] == [r["timestamp"] for r in parsed]
    assert [p.amount_usd for p in payments] == [Decimal(repr(float(r["amount"]))) for r in parsed]


def test_bybit_order_looked_up_by_order_link_id_in_open_then_closed_orders() -> None:
    closed_body = fixture_body("bybit", "static_response", "fetchClosedOrder")
    ex = replay_exchange(
        "bybit",
        {"/v5/order/realtime": ccxt.OrderNotFound("not among open orders"), "/v5/order/history": closed_body},
        options=_BYBIT_CLASSIC,
    )
    venue = CcxtVenue(ex, spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT")
    status = venue.fetch_order_by_client_id("BTC/USDT:USDT", ClientOrderId("phbtcdemod1pm0"))
    urls = [c.url for c in ex.replay_calls]
    assert "/v5/order/realtime" in urls[0] and "/v5/order/history" in urls[1]
    assert all("orderLinkId=phbtcdemod1pm0" in u for u in urls)
    assert status.state is OrderState.CLOSED and status.filled_qty_base == Decimal("0.001")
    assert status.average_price_usd == Decimal("123498") and status.fee_usd == Decimal("0.0679239")
    open_ex = replay_exchange(
        "bybit",
        {"/v5/order/realtime": fixture_body("bybit", "static_response", "fetchOpenOrder")},
        options=_BYBIT_CLASSIC,
    )
    still_open = CcxtVenue(
        open_ex, spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT"
    ).fetch_order_by_client_id("BTC/USDT:USDT", ClientOrderId("phbtcdemod1pm0"))
    assert still_open.state is OrderState.OPEN and still_open.filled_qty_base == 0 and not still_open.is_final
