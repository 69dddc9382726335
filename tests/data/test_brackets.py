"""The bundled Binance USDⓈ-M bracket snapshots: loading, "in force at date", unknown symbols."""

from __future__ import annotations

import datetime

import pytest

from perphedge.data.brackets import (
    bundled_bracket_table,
    bundled_snapshot_dates,
    bundled_symbols,
    snapshot_in_force,
)
from perphedge.errors import DataError, UnknownSymbolError
from perphedge.mechanics.brackets import derive_maintenance_amounts
from tests.mechanics.tables import BTCUSDT_2024

D = datetime.date


def test_four_snapshots_are_bundled_oldest_first() -> None:
    assert bundled_snapshot_dates() == [D(2022, 2, 12), D(2023, 1, 13), D(2024, 2, 3), D(2024, 10, 24)]


def test_newest_btcusdt_table_is_the_published_2024_10_table() -> None:
    # exchange-mechanics.md §2 table (freqtrade dump of leverageBracket, 2024-10)
    assert bundled_bracket_table("BTCUSDT") == BTCUSDT_2024
    assert bundled_bracket_table("BTC/USDT:USDT") == BTCUSDT_2024


def test_snapshot_in_force_at_a_date() -> None:
    assert snapshot_in_force(D(2024, 10, 24)) == D(2024, 10, 24)
    assert snapshot_in_force(D(2024, 10, 23)) == D(2024, 2, 3)
    # 2023: bracket 3 of BTCUSDT was 250k–1M at 1 %/1,300 (the FAQ's ~2021 values), 2024-02 500k–10M
    assert (
        bundled_bracket_table("BTCUSDT", D(2023, 6, 1)).for_notional(500_000).maintenance_amount_usd == 1_300
    )
    assert (
        bundled_bracket_table("BTCUSDT", D(2024, 6, 1)).for_notional(500_000).maintenance_amount_usd == 2_550
    )


def test_before_the_first_snapshot_is_refused_unless_allowed() -> None:
    with pytest.raises(DataError, match="earliest is 2022-02-12"):
        bundled_bracket_table("BTCUSDT", D(2021, 1, 1))
    table = bundled_bracket_table("BTCUSDT", D(2021, 1, 1), allow_earlier=True)
    assert table == bundled_bracket_table("BTCUSDT", D(2022, 2, 12))


def test_unknown_symbol_lists_close_matches() -> None:
    with pytest.raises(UnknownSymbolError, match="did you mean BTCUSDT"):
        bundled_bracket_table("BTCUSTD")


def test_symbol_missing_from_an_older_snapshot_names_the_snapshots_that_have_it() -> None:
    newest_only = sorted(set(bundled_symbols()) - set(bundled_symbols(D(2022, 3, 1))))
    assert newest_only, "the 2024-10 snapshot lists symbols the 2022 one lacks"
    with pytest.raises(UnknownSymbolError, match="snapshots that have it: .*2024-10-24"):
        bundled_bracket_table(newest_only[0], D(2022, 3, 1))


@pytest.mark.parametrize("snapshot", [D(2022, 2, 12), D(2023, 1, 13), D(2024, 2, 3), D(2024, 10, 24)])
def test_every_bundled_table_obeys_the_maintenance_amount_recurrence(snapshot: datetime.date) -> None:
    for symbol in bundled_symbols(snapshot):
        table = bundled_bracket_table(symbol, snapshot)
        derived = derive_maintenance_amounts(table.floors_usd, [b.mmr for b in table.brackets])
        published = [b.maintenance_amount_usd for b in table.brackets]
        assert derived == pytest.approx(published, rel=1e-9, abs=1e-6), symbol
