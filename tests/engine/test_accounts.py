"""Account rules against published worked examples (Bybit P&L pages) and a conservation property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perphedge.engine.accounts import apply_perp_fill, split_capital


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


def test_closing_with_float_dust_beyond_the_position_closes_it_instead_of_flipping() -> None:
    # found by the attribution property test: a close of 9.19e-07 coins overshot by 1e-22 left a
    # 1e-22-coin long whose initial margin was ~0, and withdrawing "excess" margin then divided by zero
    closing = 9.190952577778624e-07 + 1.0587911840678754e-22
    position = apply_perp_fill(-9.190952577778624e-07, 38_547.0, closing, 38_985.3)
    assert position.qty_base == 0.0 and position.entry_price_usd == 0.0
    assert position.realized_pnl_usd == pytest.approx(-9.190952577778624e-07 * (38_985.3 - 38_547.0))
    flipped = apply_perp_fill(-1.0, 100.0, 1.5, 110.0)  # a real flip still opens the rest at the fill price
    assert flipped.qty_base == pytest.approx(0.5) and flipped.entry_price_usd == 110.0
