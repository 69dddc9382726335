"""``perphedge.data.catalog``: bundled first, then imported, then cached; windows; errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perphedge.data.bundled import load_bundled
from perphedge.data.catalog import list_datasets, load_market, to_utc_timestamp, window_market
from perphedge.errors import InputError, UnknownSymbolError
from tests.kit.cache_writer import write_cache as _write_cache


def test_load_market_returns_the_bundled_history_by_default(tmp_path: Path) -> None:
    market = load_market("BTCUSDT", data_dir=tmp_path)
    bundled = load_bundled("BTCUSDT")
    assert market.source == "bundled"
    pd.testing.assert_frame_equal(market.bars, bundled.bars)
    pd.testing.assert_frame_equal(market.funding, bundled.funding)


def test_window_keeps_bars_in_start_end_and_the_settlements_that_belong_to_them(tmp_path: Path) -> None:
    market = load_market("ETHUSDT", data_dir=tmp_path, start="2021-01-01", end="2022-01-01")
    assert market.bars.index[0] == pd.Timestamp("2021-01-01", tz="UTC")
    assert market.bars.index[-1] == pd.Timestamp("2021-12-31 16:00", tz="UTC")
    # 2021-01-01 00:00:00.00x settles the 2020-12-31 16:00 bar (outside); 2022-01-01 00:00:00.00x settles
    # the last bar (inside), despite Binance's few-ms-late fundingTime
    assert len(market.funding) == len(market.bars) == 1095
    assert market.funding.index[0].floor("s") == pd.Timestamp("2021-01-01 08:00", tz="UTC")
    assert market.funding.index[-1].floor("s") == pd.Timestamp("2022-01-01 00:00", tz="UTC")


def test_window_accepts_datetimes_and_refuses_naive_ones() -> None:
    market = load_bundled("BTCUSDT")
    aware = window_market(market, pd.Timestamp("2024-01-01", tz="UTC"), None)
    assert aware.bars.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    with pytest.raises(InputError, match="has no timezone"):
        to_utc_timestamp(pd.Timestamp("2024-01-01"), "start")
    assert to_utc_timestamp("2024-01-01T02:00+02:00", "start") == pd.Timestamp("2024-01-01", tz="UTC")


def test_empty_or_reversed_window_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must be after start"):
        load_market("BTCUSDT", data_dir=tmp_path, start="2024-01-01", end="2023-01-01")
    with pytest.raises(
        InputError,
        match=r"no BTCUSDT 8h bars open from 2030-01-01T00:00:00\+00:00; the data covers 2020-01-01",
    ):
        load_market("BTCUSDT", data_dir=tmp_path, start="2030-01-01")
    with pytest.raises(InputError, match=r"bars open before 2019-01-01T00:00:00\+00:00; the data covers"):
        load_market("BTCUSDT", data_dir=tmp_path, end="2019-01-01")


def test_unknown_timeframe_is_an_input_error_not_an_unknown_symbol(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"timeframe '3h' is not one of 1m, 5m, 15m, 1h, 4h, 8h, 1d"):
        load_market("BTCUSDT", timeframe="3h", data_dir=tmp_path)


def test_unknown_symbol_lists_what_exists_and_how_to_get_more(tmp_path: Path) -> None:
    with pytest.raises(UnknownSymbolError) as info:
        load_market("PEPEUSDT", data_dir=tmp_path)
    message = str(info.value)
    assert (
        "binance:BTCUSDT" in message
        and "perphedge data fetch" in message
        and "perphedge data import" in message
    )


def test_unknown_source_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="source 'web' is not one of"):
        load_market("BTCUSDT", data_dir=tmp_path, source="web")


def test_hourly_bundled_data_loads_by_timeframe(tmp_path: Path) -> None:
    market = load_market(
        "BTC/USDT:USDT", timeframe="1h", data_dir=tmp_path, start="2024-03-01", end="2024-03-02"
    )
    assert len(market.bars) == 24
    assert [ts.hour for ts in market.funding.index] == [8, 16, 0]


def test_list_datasets_of_an_empty_data_dir_is_the_bundled_list(tmp_path: Path) -> None:
    datasets = list_datasets(tmp_path)
    assert len(datasets) == 18
    assert {d.source for d in datasets} == {"bundled"}


def test_cached_data_is_listed_and_loaded_when_asked_for(tmp_path: Path) -> None:
    pytest.importorskip("perphedge.data.cache")
    market = window_market(load_bundled("BTCUSDT"), "2024-01-01", "2024-02-01")
    _write_cache(market, tmp_path)
    cached = [d for d in list_datasets(tmp_path) if d.source.startswith("cache:")]
    assert [(d.exchange, d.symbol, d.timeframe, d.bars) for d in cached] == [("binance", "BTCUSDT", "8h", 93)]
    loaded = load_market("BTC/USDT:USDT", data_dir=tmp_path, source="cache", start="2024-01-10")
    assert loaded.source == "cache"
    assert loaded.bars.index[0] == pd.Timestamp("2024-01-10", tz="UTC")
    np.testing.assert_array_equal(
        loaded.bars["perp_close"], market.bars["perp_close"][market.bars.index >= "2024-01-10"]
    )
    # by default the bundled history wins for a bundled symbol
    assert load_market("BTCUSDT", data_dir=tmp_path).source == "bundled"
