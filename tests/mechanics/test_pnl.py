"""PnL and average entry against Bybit's published examples (linear and inverse)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.errors import InputError
from perphedge.mechanics.pnl import (
    average_entry_inverse,
    average_entry_linear,
    realized_pnl_inverse_coin,
    realized_pnl_linear,
    unrealized_pnl_inverse_coin,
    unrealized_pnl_linear,
)


def test_bybit_linear_unrealized_pnl_examples() -> None:
    # Bybit "P&L calculations (USDT contract)": 0.2 long 7,000 → 7,500 = +100; 0.4 short 6,000 → 5,000 = +400
    assert unrealized_pnl_linear(0.2, 7_000, 7_500) == pytest.approx(100)
    assert unrealized_pnl_linear(-0.4, 6_000, 5_000) == pytest.approx(400)
    assert realized_pnl_linear(-0.4, 6_000, 5_000) == pytest.approx(400)


def test_bybit_inverse_pnl_examples() -> None:
    # Bybit inverse P&L: 1,000 long (1 USD contracts) 5,000 → 5,500 = 0.01819 BTC (0.0181818… rounded up on
    # the page); realised 10,000 long 8,000 → 12,500 = 0.45 BTC
    assert unrealized_pnl_inverse_coin(1_000, 1.0, 5_000, 5_500) == pytest.approx(0.01819, abs=1e-5)
    assert realized_pnl_inverse_coin(10_000, 1.0, 8_000, 12_500) == pytest.approx(0.45, abs=1e-12)


def test_bybit_average_entry_examples_arithmetic_and_harmonic() -> None:
    assert average_entry_linear([0.5, 0.3], [5_000, 6_000]) == pytest.approx(5_375)
    assert average_entry_inverse([1_000, 2_000], [5_000, 6_000]) == pytest.approx(5_625)


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(
    contracts=st.lists(st.integers(1, 10_000), min_size=1, max_size=6),
    prices=st.lists(st.floats(100, 100_000), min_size=6, max_size=6),
    mark=st.floats(100, 100_000),
)
def test_harmonic_entry_makes_one_position_equal_to_its_fills(
    contracts: list[int], prices: list[float], mark: float
) -> None:
    prices = prices[: len(contracts)]
    entry = average_entry_inverse(contracts, prices)
    total = sum(unrealized_pnl_inverse_coin(c, 100, p, mark) for c, p in zip(contracts, prices, strict=True))
    scale = sum(contracts) * 100 / min(prices + [mark])  # coin size of the position
    one = unrealized_pnl_inverse_coin(sum(contracts), 100, entry, mark)
    assert one == pytest.approx(total, rel=1e-9, abs=1e-12 * scale)


def test_average_entry_refuses_mismatched_or_empty_fills() -> None:
    with pytest.raises(InputError, match="one price per fill"):
        average_entry_linear([1.0], [1.0, 2.0])
    with pytest.raises(InputError, match="fill size must be greater than 0"):
        average_entry_linear([0.0], [1.0])
