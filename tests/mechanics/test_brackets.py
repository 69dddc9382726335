"""Bracket tables: the maintenance-amount recurrence, lookup by notional, reading ccxt tiers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.errors import DataError, InputError
from perphedge.mechanics.brackets import (
    BracketTable,
    MarginBracket,
    derive_maintenance_amounts,
    maintenance_amount_step,
)
from tests.kit.ccxt_replay import fixture_entry
from tests.mechanics.tables import BTCUSDT_2021, BTCUSDT_2021_ROWS, BTCUSDT_2024, BTCUSDT_2024_ROWS

FIXTURES = Path(__file__).parent / "fixtures"


def test_binance_faq_level_3_maintenance_amount_is_1300() -> None:
    # Binance FAQ 360033162192: Level 3 = 250,000 × (1 % − 0.5 %) + 50 = 1,300
    assert maintenance_amount_step(
        floor_usd=250_000, mmr=0.01, previous_mmr=0.005, previous_amount_usd=50
    ) == pytest.approx(1_300, abs=1e-9)


def test_binance_coin_m_faq_level_5_maintenance_amount_is_1_81_btc() -> None:
    # Binance COIN-M liquidation FAQ: BTCUSD Level 5 = 50 BTC × (5 % − 2.5 %) + 0.56 = 1.81 BTC
    assert maintenance_amount_step(
        floor_usd=50, mmr=0.05, previous_mmr=0.025, previous_amount_usd=0.56
    ) == pytest.approx(1.81, abs=1e-12)


@pytest.mark.parametrize("rows", [BTCUSDT_2021_ROWS, BTCUSDT_2024_ROWS], ids=["2021", "2024-10"])
def test_recurrence_reproduces_both_published_btcusdt_tables(rows: list[list[float]]) -> None:
    derived = derive_maintenance_amounts([r[0] for r in rows], [r[2] for r in rows])
    assert derived == pytest.approx([r[3] for r in rows], abs=1e-6)


def test_recurrence_reproduces_bingx_published_maintenance_amounts() -> None:
    # real BingX response (ccxt static fixture): maintAmount published per tier
    tiers = fixture_entry("bingx", "static_response", "fetchMarketLeverageTiers")["httpResponse"]["data"]
    floors = [float(t["minPositionVal"]) for t in tiers]
    mmrs = [float(t["maintMarginRatio"]) for t in tiers]
    assert derive_maintenance_amounts(floors, mmrs) == pytest.approx(
        [float(t["maintAmount"]) for t in tiers], abs=1e-6
    )


def test_faq_lookup_examples_264k_is_1_percent_and_500k_has_cum_1300() -> None:
    # Binance FAQ 360033162192 against the ~2021 table
    assert BTCUSDT_2021.for_notional(264_000).mmr == 0.01
    assert BTCUSDT_2021.for_notional(500_000).maintenance_amount_usd == 1_300


def test_lookup_is_by_notional_floor_inclusive() -> None:
    assert BTCUSDT_2024.for_notional(0).mmr == 0.004
    assert BTCUSDT_2024.for_notional(49_999.99).mmr == 0.004
    assert BTCUSDT_2024.for_notional(50_000).mmr == 0.005
    # above the top cap the top bracket answers (an existing position that grew)
    assert BTCUSDT_2024.for_notional(5e9).mmr == 0.5


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(st.floats(0, 2e9, allow_nan=False), st.floats(0, 2e9, allow_nan=False))
def test_lookup_is_monotone_in_notional(a: float, b: float) -> None:
    low, high = sorted((a, b))
    for table in (BTCUSDT_2021, BTCUSDT_2024):
        lo, hi = table.for_notional(low), table.for_notional(high)
        assert lo.mmr <= hi.mmr
        assert lo.floor_usd <= hi.floor_usd
        assert lo.max_leverage >= hi.max_leverage


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(st.integers(1, 11))
def test_maintenance_margin_is_continuous_at_every_boundary(i: int) -> None:
    table = BTCUSDT_2024
    boundary = table.brackets[i].floor_usd
    below, above = table.brackets[i - 1], table.brackets[i]
    mm_below = boundary * below.mmr - below.maintenance_amount_usd
    mm_above = boundary * above.mmr - above.maintenance_amount_usd
    assert mm_above == pytest.approx(mm_below, rel=1e-12)


def test_from_ccxt_tiers_reads_current_unified_fields_and_binance_info() -> None:
    tiers = json.loads((FIXTURES / "binance_leverage_tiers_btcusdt.json").read_text())[
        "2024-10-24 BTC/USDT:USDT"
    ]
    table = BracketTable.from_ccxt_tiers("BTCUSDT", tiers)
    assert table == BTCUSDT_2024


def test_from_ccxt_tiers_reads_2022_ccxt_field_names() -> None:
    tiers = json.loads((FIXTURES / "binance_leverage_tiers_btcusdt.json").read_text())["2022-02-12 BTC/USDT"]
    table = BracketTable.from_ccxt_tiers("BTCUSDT", tiers)
    assert [b.maintenance_amount_usd for b in table.brackets[:4]] == [0, 50, 1_300, 16_300]
    assert table.for_notional(264_000).mmr == 0.01


def test_from_ccxt_tiers_derives_cum_when_info_lacks_it() -> None:
    tiers = json.loads((FIXTURES / "binance_leverage_tiers_btcusdt.json").read_text())[
        "2024-10-24 BTC/USDT:USDT"
    ]
    stripped = [{k: v for k, v in t.items() if k != "info"} for t in tiers]
    table = BracketTable.from_ccxt_tiers("BTCUSDT", stripped)
    assert [b.maintenance_amount_usd for b in table.brackets] == pytest.approx(
        [r[3] for r in BTCUSDT_2024_ROWS], abs=1e-6
    )
    assert [b.mmr for b in table.brackets] == [r[2] for r in BTCUSDT_2024_ROWS]


def test_from_ccxt_tiers_rejects_published_cum_that_breaks_the_recurrence() -> None:
    tiers = json.loads((FIXTURES / "binance_leverage_tiers_btcusdt.json").read_text())[
        "2024-10-24 BTC/USDT:USDT"
    ]
    tiers[2] = {**tiers[2], "info": {**tiers[2]["info"], "cum": "951.0"}}
    with pytest.raises(DataError, match="tier 3 of 'BTCUSDT' publishes maintenance amount"):
        BracketTable.from_ccxt_tiers("BTCUSDT", tiers)


def test_from_ccxt_tiers_refuses_tiers_without_max_leverage_bingx() -> None:
    # ccxt 4.5.90 parses BingX tiers without maxLeverage: we say so rather than invent one
    tiers = fixture_entry("bingx", "static_response", "fetchMarketLeverageTiers")["parsed_ccxt_4_5_90"]
    with pytest.raises(DataError, match="lacks max leverage"):
        BracketTable.from_ccxt_tiers("ETHUSDT", tiers)


def test_single_table_applies_one_mmr_at_any_size() -> None:
    table = BracketTable.single("XUSDT", 0.01, 5.0)
    assert table.for_notional(1e12).mmr == 0.01
    assert table.max_notional_usd == math.inf


def test_bad_brackets_are_refused_with_the_value() -> None:
    with pytest.raises(InputError, match="looks like a percent"):
        MarginBracket(floor_usd=0, cap_usd=1, mmr=2.5, maintenance_amount_usd=0, max_leverage=10)
    with pytest.raises(InputError, match="gap or overlap"):
        BracketTable.from_rows("X", [[0, 10, 0.01, 0, 10], [20, 30, 0.02, 0.2, 5]])
    with pytest.raises(InputError, match="must start at notional 0"):
        BracketTable.from_rows("X", [[5, 10, 0.01, 0, 10]])
    with pytest.raises(InputError, match="notional_usd must not be negative"):
        BTCUSDT_2024.for_notional(-1.0)
    with pytest.raises(InputError):
        BTCUSDT_2024.for_notional(math.nan)
