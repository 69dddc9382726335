"""Liquidation prices against the sources' worked examples, plus the defining balance property."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perphedge.errors import InputError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.liquidation import (
    bankruptcy_price_bybit_linear_isolated,
    liquidation_distance,
    liquidation_price_bybit_linear_isolated,
    liquidation_price_inverse,
    liquidation_price_linear,
    wallet_balance_for_liquidation_price_inverse,
    wallet_balance_for_liquidation_price_linear,
)
from perphedge.mechanics.margin import maintenance_margin
from tests.mechanics.tables import BTCUSDT_2021, BTCUSDT_2024

# --- Binance USDⓈ-M: the liquidation FAQ's cross-margin example ------------------------------------
# https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93 (one-way, cross)
FAQ_WALLET = 1_535_443.01


def test_binance_faq_cross_example_ethusdt_1153_26() -> None:
    lp = liquidation_price_linear(
        side=1,
        qty_base=3_683.979,
        entry_price=1_456.84,
        wallet_balance_usd=FAQ_WALLET,
        table=BracketTable.single("ETHUSDT", 0.10, 135_365),
        other_maintenance_margin_usd=71_200.81144,  # BTC position's MM
        other_unrealized_pnl_usd=-56_354.57,  # BTC position's UPNL
    )
    assert lp == pytest.approx(1_153.26, abs=0.005)


def test_binance_faq_cross_example_btcusdt_26316_89_with_the_2021_bracket_table() -> None:
    # the ~2021 table puts 109.488 BTC at ~26,317 (2.88M notional) in bracket 4: MMR 2.5 %, cum 16,300,
    # the values the FAQ states; so the full table gives the published price too.
    lp = liquidation_price_linear(
        side=1,
        qty_base=109.488,
        entry_price=32_481.98,
        wallet_balance_usd=FAQ_WALLET,
        table=BTCUSDT_2021,
        other_maintenance_margin_usd=356_512.508,  # ETH position's MM
        other_unrealized_pnl_usd=-448_192.89,  # ETH position's UPNL
    )
    assert lp == pytest.approx(26_316.89, abs=0.005)


@pytest.mark.parametrize(
    ("qty", "entry", "mmr", "cum", "expected"),
    [(3_683.979, 1_456.84, 0.10, 135_365, 1_114.78), (109.488, 32_481.98, 0.025, 16_300, 18_778.73)],
)
def test_freqtrade_asserted_isolated_values(
    qty: float, entry: float, mmr: float, cum: float, expected: float
) -> None:
    # freqtrade@5a97760 tests/leverage/test_liquidation_price.py (asserted values, not its docstrings): the FAQ
    # positions with the cross wallet as isolated balance (exchange-mechanics.md §10.9f)
    lp = liquidation_price_linear(
        side=1,
        qty_base=qty,
        entry_price=entry,
        wallet_balance_usd=FAQ_WALLET,
        table=BracketTable.single("X", mmr, cum),
    )
    assert lp == pytest.approx(expected, abs=0.005)


def test_discrepancy_example_binance_8_0808_vs_bybit_8_1() -> None:
    # exchange-mechanics.md §10.7: EP 10, 5x, MMR 1 %, no cum. Binance: MM at LP; Bybit: MM at entry.
    binance = liquidation_price_linear(
        side=1, qty_base=1, entry_price=10, wallet_balance_usd=2, table=BracketTable.single("X", 0.01)
    )
    bybit = liquidation_price_bybit_linear_isolated(side=1, qty_base=1, entry_price=10, leverage=5, mmr=0.01)
    assert binance == pytest.approx(8.0808, abs=5e-5)
    assert bybit == pytest.approx(8.1, abs=1e-12)


def test_bracket_at_the_liquidation_price_is_used_not_the_entry_bracket() -> None:
    # short 10 BTC at 58,000 (580k: bracket 2 of the 2024 table) with 300k: LP ≈ 87k → 870k notional, bracket 3
    kwargs = {"side": -1, "qty_base": 10.0, "entry_price": 58_000.0, "wallet_balance_usd": 300_000.0}
    lp = liquidation_price_linear(**kwargs, table=BTCUSDT_2024)
    entry_bracket = BTCUSDT_2024.for_notional(580_000)
    naive = liquidation_price_linear(
        **kwargs, table=BracketTable.single("X", entry_bracket.mmr, entry_bracket.maintenance_amount_usd)
    )
    assert lp is not None and naive is not None
    assert BTCUSDT_2024.for_notional(10 * lp).mmr == 0.0065  # bracket 3
    # closed form with bracket 3: (WB + cum + Q·EP) / (Q·(1 + MMR))
    assert lp == pytest.approx((300_000 + 950 + 580_000) / (10 * 1.0065), rel=1e-12)
    assert naive != pytest.approx(lp, rel=1e-6)


def test_no_liquidation_price_is_none_never_negative() -> None:
    table = BracketTable.single("X", 0.004)
    # a long fully paid for (wallet = notional) cannot be liquidated by a fall
    assert (
        liquidation_price_linear(side=1, qty_base=1, entry_price=100, wallet_balance_usd=100, table=table)
        is None
    )
    small = liquidation_price_linear(side=1, qty_base=1, entry_price=100, wallet_balance_usd=99, table=table)
    assert small == pytest.approx(1 / 0.996)
    assert liquidation_distance(None, 100.0) is None


def test_liquidation_distance_is_a_fraction() -> None:
    assert liquidation_distance(150.0, 100.0) == pytest.approx(0.5)
    assert liquidation_distance(80.0, 100.0) == pytest.approx(-0.2)


def test_bad_side_and_quantities_are_refused() -> None:
    table = BracketTable.single("X", 0.004)
    with pytest.raises(InputError, match="side must be"):
        liquidation_price_linear(side=0, qty_base=1, entry_price=1, wallet_balance_usd=1, table=table)
    with pytest.raises(InputError, match="qty_base must be greater than 0"):
        liquidation_price_linear(side=1, qty_base=-1, entry_price=1, wallet_balance_usd=1, table=table)


# --- Binance COIN-M ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("cum", "expected"), [(11.605, 33_599.42), (11.81, 33_578.86)])
def test_binance_coin_m_calculator_example_dev_forum_6292(cum: float, expected: float) -> None:
    # https://dev.binance.vision/t/…/6292: WB 101 BTC, long 100,000 contracts (100 USD) at 45,000, MMR 12.5 %.
    # cum 11.605 (newer FAQ) gives the calculator's 33,599.4; 11.81 (older FAQ) the user's 33,578.86.
    lp = liquidation_price_inverse(
        side=1,
        contracts=100_000,
        contract_size_usd=100,
        entry_price=45_000,
        wallet_balance_coin=101,
        table=BracketTable.single("BTCUSD", 0.125, cum),
    )
    assert lp == pytest.approx(expected, abs=0.005)


def test_coin_margined_1x_short_hedge_has_no_liquidation_price() -> None:
    # post 1 BTC, short its USD value (500 contracts × 100 USD at 50,000): no rise can liquidate it
    lp = liquidation_price_inverse(
        side=-1,
        contracts=500,
        contract_size_usd=100,
        entry_price=50_000,
        wallet_balance_coin=1.0,
        table=BracketTable.single("BTCUSD", 0.004),
    )
    assert lp is None


# --- Bybit classic linear -----------------------------------------------------------------------------
# https://testnet.bybit.com/en-US/help-center/s/article/Liquidation-Price-USDT-Contract


@pytest.mark.parametrize(
    ("side", "entry", "leverage", "expected"),
    [(1, 20_000, 50, 19_700), (1, 10_000, 50, 9_850), (-1, 8_000, 40, 8_160)],
)
def test_bybit_linear_isolated_examples(side: int, entry: float, leverage: float, expected: float) -> None:
    lp = liquidation_price_bybit_linear_isolated(
        side=side, qty_base=1, entry_price=entry, leverage=leverage, mmr=0.005
    )
    assert lp == pytest.approx(expected, abs=1e-9)


def test_bybit_linear_bankruptcy_example_9800() -> None:
    assert bankruptcy_price_bybit_linear_isolated(side=1, entry_price=10_000, leverage=50) == pytest.approx(
        9_800
    )


def test_bybit_extra_margin_and_deduction_move_the_price() -> None:
    base = liquidation_price_bybit_linear_isolated(
        side=1, qty_base=2, entry_price=20_000, leverage=50, mmr=0.005
    )
    extra = liquidation_price_bybit_linear_isolated(
        side=1, qty_base=2, entry_price=20_000, leverage=50, mmr=0.005, extra_margin_usd=200
    )
    deducted = liquidation_price_bybit_linear_isolated(
        side=1, qty_base=2, entry_price=20_000, leverage=50, mmr=0.005, maintenance_deduction_usd=20
    )
    assert base - extra == pytest.approx(100)  # 200 USD over 2 BTC
    assert base - deducted == pytest.approx(10)  # MM lower by 20 → IM − MM larger by 20 over 2 BTC


# --- the defining property: at LP, margin balance == maintenance margin ------------------------------

sides = st.sampled_from([1, -1])
tables = st.sampled_from([BTCUSDT_2021, BTCUSDT_2024, BracketTable.single("X", 0.01, 0.0)])


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(
    side=sides,
    qty=st.floats(0.001, 20_000),
    entry=st.floats(1.0, 200_000),
    wallet_fraction=st.floats(0.005, 3.0),
    table=tables,
)
def test_isolated_linear_balance_equals_maintenance_at_lp(
    side: int, qty: float, entry: float, wallet_fraction: float, table: BracketTable
) -> None:
    wallet = wallet_fraction * qty * entry
    lp = liquidation_price_linear(
        side=side, qty_base=qty, entry_price=entry, wallet_balance_usd=wallet, table=table
    )
    if lp is None:
        assert side == 1  # only a long can be safe at every price (a short always has a rise that kills it)
        return
    assert lp > 0
    balance = wallet + side * qty * (lp - entry)
    assert balance == pytest.approx(maintenance_margin(qty * lp, table), rel=1e-9, abs=1e-9 * qty * lp)
    # and the inverse problem returns the wallet
    assert wallet_balance_for_liquidation_price_linear(
        side=side, qty_base=qty, entry_price=entry, liquidation_price=lp, table=table
    ) == pytest.approx(wallet, rel=1e-9, abs=1e-9 * qty * entry)


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(
    side=sides,
    qty=st.floats(0.01, 5_000),
    entry=st.floats(10.0, 100_000),
    wallet=st.floats(1_000, 5e7),
    other_mm=st.floats(0, 1e6),
    other_upnl=st.floats(-1e6, 1e6),
    table=tables,
)
def test_cross_linear_balance_equals_maintenance_at_lp(
    side: int,
    qty: float,
    entry: float,
    wallet: float,
    other_mm: float,
    other_upnl: float,
    table: BracketTable,
) -> None:
    lp = liquidation_price_linear(
        side=side,
        qty_base=qty,
        entry_price=entry,
        wallet_balance_usd=wallet,
        table=table,
        other_maintenance_margin_usd=other_mm,
        other_unrealized_pnl_usd=other_upnl,
    )
    assume(lp is not None)
    assert lp is not None and lp > 0
    balance = wallet - other_mm + other_upnl + side * qty * (lp - entry)
    scale = max(qty * lp, abs(wallet), other_mm, abs(other_upnl))
    assert balance == pytest.approx(maintenance_margin(qty * lp, table), rel=1e-9, abs=1e-12 * scale)


coin_tables = st.sampled_from(
    [
        BracketTable.single("BTCUSD", 0.004),
        BracketTable.from_rows(
            "BTCUSD", [[0, 5, 0.004, 0, 125], [5, 50, 0.025, 0.105, 20], [50, 1e4, 0.05, 1.355, 10]]
        ),
    ]
)


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(
    side=sides,
    contracts=st.integers(1, 1_000_000),
    entry=st.floats(100.0, 200_000),
    wallet_fraction=st.floats(0.005, 3.0),
    table=coin_tables,
)
def test_inverse_balance_equals_maintenance_at_lp(
    side: int, contracts: int, entry: float, wallet_fraction: float, table: BracketTable
) -> None:
    size_usd = contracts * 100.0
    wallet = wallet_fraction * size_usd / entry
    lp = liquidation_price_inverse(
        side=side,
        contracts=contracts,
        contract_size_usd=100.0,
        entry_price=entry,
        wallet_balance_coin=wallet,
        table=table,
    )
    if lp is None:
        return
    balance = wallet + side * size_usd * (1 / entry - 1 / lp)
    mm = maintenance_margin(size_usd / lp, table)
    assert balance == pytest.approx(mm, rel=1e-9, abs=1e-12 * max(size_usd / lp, wallet))
    assert wallet_balance_for_liquidation_price_inverse(
        side=side,
        contracts=contracts,
        contract_size_usd=100.0,
        entry_price=entry,
        liquidation_price=lp,
        table=table,
    ) == pytest.approx(wallet, rel=1e-9, abs=1e-12 * size_usd / entry)


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(qty=st.floats(0.01, 100), entry=st.floats(100, 100_000), w1=st.floats(0.01, 2), w2=st.floats(0.01, 2))
def test_more_collateral_moves_a_short_liquidation_price_up(
    qty: float, entry: float, w1: float, w2: float
) -> None:
    low, high = sorted((w1, w2))
    lp_low = liquidation_price_linear(
        side=-1, qty_base=qty, entry_price=entry, wallet_balance_usd=low * qty * entry, table=BTCUSDT_2024
    )
    lp_high = liquidation_price_linear(
        side=-1, qty_base=qty, entry_price=entry, wallet_balance_usd=high * qty * entry, table=BTCUSDT_2024
    )
    assert lp_low is not None and lp_high is not None
    assert lp_low <= lp_high * (1 + 1e-12)


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(
    side=sides,
    contracts=st.integers(1, 1_000_000),
    entry=st.floats(100.0, 200_000),
    wallet_fraction=st.floats(0.005, 3.0),
    other_mm_fraction=st.floats(0.0, 0.2),
    other_upnl_fraction=st.floats(-0.2, 0.2),
    table=coin_tables,
)
def test_cross_inverse_balance_equals_maintenance_at_lp(
    side: int,
    contracts: int,
    entry: float,
    wallet_fraction: float,
    other_mm_fraction: float,
    other_upnl_fraction: float,
    table: BracketTable,
) -> None:
    # COIN-M cross: WB − TMM1 + UPNL1 + side·Q·CS·(1/EP − 1/LP) = MM(LP) (all in coins)
    size_usd = contracts * 100.0
    coin_notional = size_usd / entry
    wallet = wallet_fraction * coin_notional
    other_mm, other_upnl = other_mm_fraction * coin_notional, other_upnl_fraction * coin_notional
    lp = liquidation_price_inverse(
        side=side,
        contracts=contracts,
        contract_size_usd=100.0,
        entry_price=entry,
        wallet_balance_coin=wallet,
        table=table,
        other_maintenance_margin_coin=other_mm,
        other_unrealized_pnl_coin=other_upnl,
    )
    assume(lp is not None)
    assert lp is not None and lp > 0
    balance = wallet - other_mm + other_upnl + side * size_usd * (1 / entry - 1 / lp)
    scale = max(size_usd / lp, wallet, other_mm, abs(other_upnl))
    assert balance == pytest.approx(maintenance_margin(size_usd / lp, table), rel=1e-9, abs=1e-12 * scale)
