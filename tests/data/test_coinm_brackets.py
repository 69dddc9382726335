"""The bundled COIN-M BTCUSD bracket table against Binance's published COIN-M figures."""

from __future__ import annotations

import pytest

from perphedge.data.brackets import bundled_coinm_bracket_table
from perphedge.errors import UnknownSymbolError
from perphedge.mechanics.liquidation import liquidation_price_inverse


@pytest.mark.parametrize("symbol", ["BTCUSD", "BTC/USD:BTC", "BTCUSD_PERP", "BTCUSDT", "BTC/USDT:USDT"])
def test_coinm_table_resolves_the_coin(symbol: str) -> None:
    assert bundled_coinm_bracket_table(symbol).symbol == "BTCUSD"


def test_300_btc_position_has_mmr_12_5_and_the_newer_faq_maintenance_amount_11_605() -> None:
    # Binance COIN-M liquidation FAQ (newer text): a 300 BTC position is at MMR 12.5 %, cum 11.605 BTC
    bracket = bundled_coinm_bracket_table("BTCUSD").for_notional(300.0)
    assert bracket.mmr == pytest.approx(0.125)
    assert bracket.maintenance_amount_usd == pytest.approx(11.605, abs=1e-9)  # the field holds coins here


def test_first_bracket_is_the_faq_mm_example_0_4_percent() -> None:
    # FAQ: 100 BTCUSD contracts at mark 25,000 = 0.4 BTC notional, level 1 (MMR 0.4 %) → MM 0.0016 BTC
    bracket = bundled_coinm_bracket_table("BTCUSD").for_notional(0.4)
    assert 0.4 * bracket.mmr - bracket.maintenance_amount_usd == pytest.approx(0.0016)


def test_dev_forum_calculator_liquidation_price_with_the_bundled_table() -> None:
    # dev.binance.vision thread 6292: WB 101 BTC, long 100,000 contracts (CS 100) at 45,000 → 33,599.40
    price = liquidation_price_inverse(
        side=1, contracts=100_000, contract_size_usd=100, entry_price=45_000, wallet_balance_coin=101,
        table=bundled_coinm_bracket_table("BTCUSD"),
    )
    assert price == pytest.approx(33_599.40, abs=0.05)


def test_unknown_coin_says_what_is_bundled() -> None:
    with pytest.raises(UnknownSymbolError, match="BTCUSD"):
        bundled_coinm_bracket_table("DOGEUSD")
