"""Initial/maintenance margin, max leverage and margin ratio against Binance's published examples."""

from __future__ import annotations

import math

import pytest

from perphedge.errors import InputError, MarginError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.margin import (
    initial_margin_usd,
    maintenance_margin_coin,
    maintenance_margin_usd,
    margin_ratio,
    max_leverage_for_notional,
    require_leverage_allowed,
)
from tests.mechanics.tables import BTCUSDT_2021, BTCUSDT_2024


@pytest.mark.parametrize(
    ("leverage", "imr"), [(125, 0.008), (100, 0.01), (50, 0.02), (20, 0.05), (10, 0.10), (2, 0.5)]
)
def test_initial_margin_rate_is_one_over_leverage_binance_table(leverage: float, imr: float) -> None:
    # Binance FAQ 360033162192 IMR table: 125x → 0.8 %, 100x → 1 %, …
    assert initial_margin_usd(100_000, leverage) == pytest.approx(100_000 * imr)


def test_maintenance_margin_uses_the_bracket_of_the_notional_with_its_amount() -> None:
    # FAQ: 500,000 USDT of BTCUSDT (~2021) is in Level 3: 500,000 × 1 % − 1,300 = 3,700
    assert maintenance_margin_usd(500_000, BTCUSDT_2021) == pytest.approx(3_700)
    # 2024-10: 1,000,000 in bracket 3 (0.65 %, cum 950) → 5,550
    assert maintenance_margin_usd(1_000_000, BTCUSDT_2024) == pytest.approx(5_550)


def test_binance_coin_m_faq_maintenance_margin_0_0016_btc() -> None:
    # COIN-M FAQ: 100 BTCUSD contracts at mark 25,000 → notional 0.4 BTC, level 1 MMR 0.4 % → 0.0016 BTC
    notional_coin = 100 * 100 / 25_000
    assert notional_coin == pytest.approx(0.4)
    assert maintenance_margin_coin(notional_coin, BracketTable.single("BTCUSD", 0.004)) == pytest.approx(
        0.0016
    )


def test_max_leverage_follows_the_bracket_of_the_notional_and_refuses_above_the_top_cap() -> None:
    assert max_leverage_for_notional(BTCUSDT_2024, 40_000) == 125
    assert max_leverage_for_notional(BTCUSDT_2024, 1_000_000) == 75
    with pytest.raises(MarginError, match="exceeds the largest position BTCUSDT allows"):
        max_leverage_for_notional(BTCUSDT_2024, 2e9)
    with pytest.raises(MarginError, match="use --leverage 75 or less"):
        require_leverage_allowed(BTCUSDT_2024, 1_000_000, 100)


def test_margin_ratio_is_maintenance_over_balance_and_one_at_liquidation() -> None:
    assert margin_ratio(50.0, 200.0) == pytest.approx(0.25)
    assert margin_ratio(50.0, 50.0) == 1.0
    assert margin_ratio(50.0, -1.0) == math.inf


def test_bad_margin_inputs_are_refused() -> None:
    with pytest.raises(InputError, match="leverage must be greater than 0"):
        initial_margin_usd(100, 0)
    with pytest.raises(InputError, match="notional_usd must not be negative"):
        initial_margin_usd(-1, 2)
