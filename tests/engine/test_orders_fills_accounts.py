"""orders_for, the fill model and the account rules, against published worked examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perphedge.engine.accounts import apply_perp_fill, split_capital
from perphedge.engine.fills import execute, fill_price
from perphedge.engine.orders import LegOrders, mode_of, orders_for
from perphedge.errors import InputError
from perphedge.strategies.base import HedgeMode, HedgeState, TargetHedge

CARRY = TargetHedge(spot_fraction=1.0, perp_fraction=-1.0, mode=HedgeMode.CARRY, reason="")
REVERSE = TargetHedge(spot_fraction=-1.0, perp_fraction=1.0, mode=HedgeMode.REVERSE_CARRY, reason="")


def state(spot: float, perp: float) -> HedgeState:
    return HedgeState(spot_fraction=spot, perp_fraction=perp, mode=mode_of(spot, perp))


def test_orders_for_opens_both_legs_from_flat() -> None:
    orders = orders_for(CARRY, state(0.0, 0.0), 2.5)
    assert orders == LegOrders(spot_delta_base=2.5, perp_delta_base=-2.5)


def test_orders_for_carry_to_reverse_sells_twice_the_base() -> None:
    orders = orders_for(REVERSE, state(1.0, -1.0), 0.4)
    assert orders.spot_delta_base == pytest.approx(-0.8) and orders.perp_delta_base == pytest.approx(0.8)


def test_orders_for_ignores_float_dust_and_below_minimum() -> None:
    assert orders_for(CARRY, state(1.0 + 1e-13, -1.0), 3.0).is_empty
    orders = orders_for(CARRY, state(1.0, -0.999), 1.0, min_qty_base=0.01)
    assert orders.is_empty
    with pytest.raises(InputError, match="base_qty"):
        orders_for(CARRY, state(0.0, 0.0), 0.0)


@pytest.mark.parametrize(
    ("spot", "perp", "mode"),
    [
        (1, -1, HedgeMode.CARRY),
        (1, -0.5, HedgeMode.PARTIAL),
        (1, 0, HedgeMode.UNHEDGED),
        (1, 1, HedgeMode.ARTICLE_LONG),
        (-1, 1, HedgeMode.REVERSE_CARRY),
        (0, 0, HedgeMode.FLAT),
    ],
)
def test_mode_of_names_holdings(spot: float, perp: float, mode: HedgeMode) -> None:
    assert mode_of(spot, perp) is mode


def test_fill_model_slippage_and_fee() -> None:
    # buy 2 coins at 100 with 10 bps slippage and 0.1 % fee: fill 100.1, slippage 0.2, fee 0.2002
    fill = execute(2.0, 100.0, fee_rate=0.001, slippage_bps=10)
    assert fill.fill_price_usd == pytest.approx(100.1)
    assert fill.slippage_usd == pytest.approx(0.2)
    assert fill.fee_usd == pytest.approx(0.2002)
    assert fill_price(100.0, -1.0, 10) == pytest.approx(99.9)


def test_split_capital_collateral_is_initial_margin() -> None:
    split = split_capital(10_000, 2.0)
    assert split.spot_budget_usd == pytest.approx(6_666.6667, rel=1e-7)
    assert split.collateral_usd == pytest.approx(split.spot_budget_usd / 2.0)


def test_apply_perp_fill_average_entry_bybit_example() -> None:
    # Bybit "P&L calculations (USDT contract)": 0.5 @ 5,000 then 0.3 @ 6,000 → average entry 5,375.
    first = apply_perp_fill(0.0, 0.0, 0.5, 5_000.0)
    second = apply_perp_fill(first.qty_base, first.entry_price_usd, 0.3, 6_000.0)
    assert second.qty_base == pytest.approx(0.8) and second.entry_price_usd == pytest.approx(5_375.0)


@pytest.mark.parametrize(
    ("qty", "entry", "exit_price", "pnl"),
    # Bybit examples: long 0.2 from 7,000 to 7,500 → +100; short 0.4 from 6,000 to 5,000 → +400
    [(0.2, 7_000.0, 7_500.0, 100.0), (-0.4, 6_000.0, 5_000.0, 400.0)],
)
def test_apply_perp_fill_realises_bybit_examples(
    qty: float, entry: float, exit_price: float, pnl: float
) -> None:
    closed = apply_perp_fill(qty, entry, -qty, exit_price)
    assert closed.qty_base == 0.0 and closed.realized_pnl_usd == pytest.approx(pnl)


def test_apply_perp_fill_flip_realises_all_and_reopens_at_fill() -> None:
    flipped = apply_perp_fill(-1.0, 100.0, 2.0, 90.0)
    assert (
        flipped.qty_base == 1.0
        and flipped.entry_price_usd == 90.0
        and flipped.realized_pnl_usd == pytest.approx(10.0)
    )


@given(
    st.floats(-5, 5).filter(lambda q: abs(q) > 1e-3),
    st.floats(10, 1e5),
    st.floats(-5, 5).filter(lambda q: abs(q) > 1e-3),
    st.floats(10, 1e5),
    st.floats(10, 1e5),
)
def test_perp_fill_conserves_value_at_the_fill_price(
    q: float, e: float, d: float, p: float, m: float
) -> None:
    # wallet + unrealised at any mark m, before and after a fill at p, differ exactly by (q+d−q)·(m−p) moves:
    # value at the fill price is conserved (a trade at the reference price is neither gain nor loss).
    after = apply_perp_fill(q, e, d, p)
    before_value = q * (p - e)
    after_value = after.realized_pnl_usd + after.qty_base * (p - after.entry_price_usd)
    assert after_value == pytest.approx(before_value, rel=1e-9, abs=1e-6)
