"""PaperVenue: a simulated exchange on real bundled history whose state survives a restart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from perphedge.errors import InsufficientFunds, OrderRejected, VenueUnavailable
from perphedge.keeper.wiring import build_paper_venue
from perphedge.venues.paper import Fault, FaultKind
from perphedge.venues.port import ClientOrderId, Leg, OrderRequest, OrderSide, OrderState
from tests.keeper.kit import make_spec

SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


def _order(cid: str, leg: Leg, side: OrderSide, qty: str, reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(
        client_order_id=ClientOrderId(cid),
        leg=leg,
        symbol=SPOT if leg is Leg.SPOT else PERP,
        side=side,
        qty_base=Decimal(qty),
        reduce_only=reduce_only,
    )


def test_fills_cost_the_backtest_fees_and_slippage(tmp_path: Path) -> None:
    venue = build_paper_venue(make_spec(tmp_path, paper={"slippage_bps": 2.0}))
    quote = venue.fetch_quote(SPOT, PERP)
    status = venue.create_order(_order("a1", Leg.SPOT, OrderSide.BUY, "0.1"))
    assert status.state is OrderState.CLOSED and status.filled_qty_base == Decimal("0.1")
    expected_price = quote.spot_price_usd * Decimal("1.0002")
    assert abs(status.average_price_usd - expected_price) < Decimal("0.00000001")
    assert abs(status.fee_usd - Decimal("0.1") * status.average_price_usd * Decimal("0.001")) < Decimal(
        "0.00000001"
    )
    balances = venue.fetch_balances(SPOT, PERP)
    assert balances.spot_usd == Decimal(25000) - Decimal("0.1") * status.average_price_usd - status.fee_usd


def test_state_survives_a_new_process_and_duplicate_client_ids_are_refused(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    venue = build_paper_venue(spec)
    venue.create_order(_order("b1", Leg.PERP, OrderSide.SELL, "0.2"))
    venue.advance(3)
    reloaded = build_paper_venue(spec)
    assert reloaded.cursor == venue.cursor
    assert reloaded.fetch_perp_position(PERP) == venue.fetch_perp_position(PERP)
    assert reloaded.fetch_order_by_client_id(PERP, ClientOrderId("b1")).filled_qty_base == Decimal("0.2")
    with pytest.raises(OrderRejected, match="duplicated"):
        reloaded.create_order(_order("b1", Leg.PERP, OrderSide.SELL, "0.2"))


def test_funding_is_paid_once_per_settlement_at_mark_times_rate(tmp_path: Path) -> None:
    venue = build_paper_venue(make_spec(tmp_path))
    venue.create_order(_order("c1", Leg.PERP, OrderSide.SELL, "0.5"))
    wallet = venue.fetch_balances(SPOT, PERP).futures_wallet_usd
    venue.advance(1)
    venue.advance(5)
    payments = venue.fetch_funding_history(PERP, 0)
    rates = venue.fetch_funding_rates(PERP, payments[0].settle_ts_ms)
    assert len(payments) == 6 == len({p.settle_ts_ms for p in payments})
    for payment, rate in zip(payments, rates, strict=True):
        # a short of 0.5 receives 0.5 × mark × rate (Binance funding FAQ: nominal value × rate)
        expected = Decimal("0.5") * Decimal(repr(rate.mark_price_usd)) * Decimal(repr(rate.rate_per_interval))
        assert abs(payment.amount_usd - expected) < Decimal("0.00000001")
    assert venue.fetch_balances(SPOT, PERP).futures_wallet_usd == wallet + sum(p.amount_usd for p in payments)


def test_minimums_precision_reduce_only_and_funds_are_enforced(tmp_path: Path) -> None:
    venue = build_paper_venue(make_spec(tmp_path))
    with pytest.raises(OrderRejected, match="not a multiple"):
        venue.create_order(_order("d1", Leg.PERP, OrderSide.SELL, "0.0015"))
    with pytest.raises(OrderRejected, match="would not reduce"):
        venue.create_order(_order("d2", Leg.PERP, OrderSide.BUY, "0.1", reduce_only=True))
    with pytest.raises(InsufficientFunds):
        venue.create_order(_order("d3", Leg.SPOT, OrderSide.SELL, "0.1"))  # no coins, no margin borrow
    with pytest.raises(InsufficientFunds, match="initial margin"):
        venue.create_order(_order("d4", Leg.PERP, OrderSide.SELL, "5"))


def test_unavailable_fault_blocks_the_next_calls_then_clears(tmp_path: Path) -> None:
    venue = build_paper_venue(make_spec(tmp_path))
    venue.inject(Fault(kind=FaultKind.UNAVAILABLE, times=2))
    for _ in range(2):
        with pytest.raises(VenueUnavailable):
            venue.fetch_quote(SPOT, PERP)
    assert venue.fetch_quote(SPOT, PERP).spot_price_usd > 0


def test_liquidation_closes_at_the_liquidation_price_and_charges_the_clearance_fee(tmp_path: Path) -> None:
    venue = build_paper_venue(make_spec(tmp_path))
    venue.create_order(_order("e1", Leg.PERP, OrderSide.SELL, "0.4"))
    position = venue.fetch_perp_position(PERP)
    wallet = venue.fetch_balances(SPOT, PERP).futures_wallet_usd
    lp = position.liquidation_price_usd
    venue.inject(Fault(kind=FaultKind.PRICE_GAP, price_factor=float(lp / position.mark_price_usd) * 1.01))
    assert venue.fetch_perp_position(PERP) is None
    (event,) = venue.liquidations
    loss = Decimal("0.4") * (lp - position.entry_price_usd)
    fee = Decimal("0.4") * lp * Decimal("0.0125")
    assert Decimal(event["price_usd"]) == lp
    assert venue.fetch_balances(SPOT, PERP).futures_wallet_usd == max(wallet - loss - fee, Decimal(0))
