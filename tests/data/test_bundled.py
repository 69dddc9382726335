"""The bundled real market data: contents, alignment, the hourly funding events, the loader's errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from perphedge.data.bundled import (
    bundled_symbols,
    ccxt_perp_symbol,
    funding_events_from_forward_filled,
    list_bundled,
    load_bundled,
    load_bundled_spot,
    market_dir,
    to_bundled_symbol,
)
from perphedge.data.schema import BAR_COLUMNS, FUNDING_COLUMNS
from perphedge.data.validate import validate_market
from perphedge.errors import DataError, InputError, UnknownSymbolError
from perphedge.mechanics.funding import infer_interval_hours

SYMBOLS_8H = [
    "ADAUSDT", "ARBUSDT", "ATOMUSDT", "AVAXUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "DOTUSDT",
    "ETHUSDT", "LINKUSDT", "LTCUSDT", "POLUSDT", "SOLUSDT", "UNIUSDT", "XRPUSDT",
]  # fmt: skip
SYMBOLS_1H = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
HOUR_MS = 3_600_000
ALL_SETS = [(s, "8h") for s in SYMBOLS_8H] + [(s, "1h") for s in SYMBOLS_1H]


def test_bundled_symbols_are_the_fifteen_8h_and_three_1h_symbols() -> None:
    assert bundled_symbols() == SYMBOLS_8H
    assert bundled_symbols("1h") == SYMBOLS_1H


def test_list_bundled_matches_what_load_bundled_returns() -> None:
    infos = {(d.symbol, d.timeframe): d for d in list_bundled()}
    assert set(infos) == set(ALL_SETS)
    for symbol, timeframe in [("BTCUSDT", "8h"), ("POLUSDT", "8h"), ("SOLUSDT", "1h")]:
        market = load_bundled(symbol, timeframe)
        info = infos[(symbol, timeframe)]
        assert info.bars == len(market.bars)
        assert info.funding_settlements == len(market.funding)
        assert info.first_bar == market.bars.index[0]
        assert info.last_bar == market.bars.index[-1]
        assert info.source == "bundled"


@pytest.mark.parametrize(("symbol", "timeframe"), ALL_SETS)
def test_every_bundled_set_has_the_canonical_form_and_validates(symbol: str, timeframe: str) -> None:
    market = load_bundled(symbol, timeframe)
    assert tuple(market.bars.columns) == BAR_COLUMNS
    assert tuple(market.funding.columns) == FUNDING_COLUMNS
    assert all(dtype == np.float64 for dtype in market.bars.dtypes)
    assert all(dtype == np.float64 for dtype in market.funding.dtypes)
    for frame in (market.bars, market.funding):
        assert str(frame.index.tz) == "UTC"
        assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert market.ccxt_symbol == ccxt_perp_symbol(symbol)
    validate_market(market)  # raises on any error


@pytest.mark.parametrize(("symbol", "timeframe"), ALL_SETS)
def test_settlements_fall_inside_the_bars_and_every_bar_end_is_covered(symbol: str, timeframe: str) -> None:
    # A bar labelled T covers [T, T + tf); the settlement at S belongs to the bar that opened before S.
    market = load_bundled(symbol, timeframe)
    tf = pd.Timedelta(milliseconds=market.timeframe_ms)
    settle = market.funding.index
    jitter = pd.Timedelta(seconds=1)  # Binance's fundingTime is a few ms late (16:00:00.001)
    assert settle[0] > market.bars.index[0] + jitter
    assert settle[-1] <= market.bars.index[-1] + tf + jitter
    # the last bar's end is a settlement (within Binance's ms jitter): no bar lacks its funding
    assert abs(settle[-1] - (market.bars.index[-1] + tf)) < pd.Timedelta(seconds=1)


def test_btc_8h_bar_opened_at_t_gets_the_settlement_at_t_plus_8h() -> None:
    market = load_bundled("BTCUSDT", "8h")
    settle_hours = market.funding.index.round("h")
    assert len(settle_hours) == len(market.bars)  # BTC settled every 8 h throughout
    assert (settle_hours == market.bars.index + pd.Timedelta(hours=8)).all()


def test_funding_times_keep_binance_millisecond_jitter() -> None:
    ts_ms = load_bundled("BTCUSDT").funding.index.as_unit("ms").asi8
    jitter = ts_ms % HOUR_MS
    assert (jitter > 0).any()  # e.g. 2020-01-02 00:00:00.002 as Binance reported it
    assert jitter.max() < 1_000


def test_interval_quirks_of_the_real_data_are_kept() -> None:
    # SOL: 4 h then 2 h settlements in Nov 2022 (source README); POL: 4 h throughout; BNB: no interest.
    sol = load_bundled("SOLUSDT").funding
    changes = sol["interval_hours"].diff().fillna(0) != 0
    assert [ts.strftime("%Y-%m-%d %H:%M") for ts in sol.index[changes]] == [
        "2022-11-09 20:00",
        "2022-11-10 06:00",
        "2022-11-18 16:00",
    ]
    assert set(sol["interval_hours"].unique()) == {2.0, 4.0, 8.0}
    assert set(load_bundled("POLUSDT").funding["interval_hours"].unique()) == {4.0}
    assert load_bundled("BNBUSDT").funding["rate_per_interval"].median() == 0.0


def test_interval_hours_stored_equal_inference_from_settlement_times() -> None:
    for symbol in ("SOLUSDT", "POLUSDT", "BTCUSDT"):
        funding = load_bundled(symbol).funding
        inferred = infer_interval_hours(funding.index.as_unit("ms").asi8)
        # the first stored value was inferred on the untrimmed history; the rest must agree exactly
        np.testing.assert_array_equal(funding["interval_hours"].to_numpy()[1:], inferred[1:])


@pytest.mark.parametrize("symbol", SYMBOLS_1H)
def test_hourly_derived_funding_events_equal_the_8h_file(symbol: str) -> None:
    hourly = load_bundled(symbol, "1h").funding
    eight = load_bundled(symbol, "8h").funding
    common_start = max(hourly.index[0], eight.index[0])
    common_end = min(hourly.index[-1], eight.index[-1])
    h = hourly[(hourly.index >= common_start) & (hourly.index <= common_end)]
    e = eight[(eight.index >= common_start) & (eight.index <= common_end)]
    assert len(h) > 5_000
    pd.testing.assert_index_equal(h.index, e.index)
    np.testing.assert_array_equal(h["rate_per_interval"].to_numpy(), e["rate_per_interval"].to_numpy())
    np.testing.assert_array_equal(h["interval_hours"].to_numpy(), e["interval_hours"].to_numpy())


@pytest.mark.parametrize("symbol", SYMBOLS_1H)
def test_mark_at_settlement_is_the_mark_close_of_the_hour_ending_then(symbol: str) -> None:
    market = load_bundled(symbol, "1h")
    funding = market.funding.dropna(subset=["mark_price"])
    assert len(funding) > 5_000
    hour_before = funding.index.round("h") - pd.Timedelta(hours=1)
    present = hour_before.isin(market.bars.index)
    marks = market.bars["mark_close"].reindex(hour_before[present]).to_numpy()
    np.testing.assert_array_equal(funding["mark_price"].to_numpy()[present], marks)
    # and the mark sits next to the perp close (a real mark price, not another column)
    ratio = market.bars["mark_close"] / market.bars["perp_close"] - 1
    assert ratio.abs().median() < 0.001


def test_hourly_bars_have_gaps_listed_in_notes_not_filled() -> None:
    market = load_bundled("SOLUSDT", "1h")
    step = np.diff(market.bars.index.as_unit("ms").asi8)
    assert (step % HOUR_MS == 0).all()
    assert (
        int((step // HOUR_MS - 1).sum()) == 139
    )  # 72 h + 48 h of perp and 19 h of spot missing in the source
    assert any("72 h without perp" in note for note in market.notes)
    assert not market.bars[["spot_close", "perp_close"]].isna().any().any()


def test_forward_filled_funding_round_trip_keeps_equal_consecutive_settlements() -> None:
    # Arrange: forward-fill the real BTC 8-hour settlements onto hours, as the hourly source does.
    market = load_bundled("BTCUSDT", "1h").between(
        pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-03-01", tz="UTC")
    )
    funding = market.funding
    rates = funding["rate_per_interval"].to_numpy()
    assert (
        np.diff(rates) == 0
    ).any()  # equal consecutive rates (0.01 % baseline): invisible in a ffill column
    # the window's last settlement (at its end) is refreshed in the hour row after its last bar
    hours = np.arange(
        market.bars.index[0].value // 1_000_000, market.bars.index[-1].value // 1_000_000 + 2 * HOUR_MS, HOUR_MS
    )
    settle_ms = funding.index.as_unit("ms").asi8
    idx = np.searchsorted(np.rint(settle_ms / HOUR_MS).astype(np.int64) * HOUR_MS, hours, side="right") - 1
    forward_filled = np.where(idx >= 0, rates[np.maximum(idx, 0)], np.nan)
    # Act
    events = funding_events_from_forward_filled(
        hour_open_ts_ms=hours,
        forward_filled_rate=forward_filled,
        mark_close=np.arange(hours.size, dtype=float) + 1.0,
        settle_ts_ms=settle_ms,
    )
    # Assert: every settlement, including the repeated rates, with the mark of the hour ending then
    np.testing.assert_array_equal(events.settle_ts_ms, settle_ms)
    np.testing.assert_array_equal(events.rate_per_interval, rates)
    expected_marks = np.searchsorted(hours, np.rint(settle_ms / HOUR_MS).astype(np.int64) * HOUR_MS) - 1 + 1.0
    np.testing.assert_array_equal(events.mark_price, expected_marks)


def test_forward_filled_funding_refuses_nan_at_a_settlement_and_missing_hours() -> None:
    hours = np.arange(0, 24) * HOUR_MS + 1_700_000_000_000 // HOUR_MS * HOUR_MS
    rates = np.full(hours.size, 0.0001)
    rates[:9] = np.nan
    with pytest.raises(DataError, match="NaN at the settlement"):
        funding_events_from_forward_filled(
            hour_open_ts_ms=hours, forward_filled_rate=rates, mark_close=rates, settle_ts_ms=hours[[8, 16]]
        )
    with pytest.raises(DataError, match="no hour opening at the settlement"):
        funding_events_from_forward_filled(
            hour_open_ts_ms=np.delete(hours, 16),
            forward_filled_rate=np.delete(rates, 16),
            mark_close=np.delete(rates, 16),
            settle_ts_ms=hours[[12, 16]],
        )


def test_manifest_counts_match_the_parquet_files() -> None:
    manifest = json.loads((market_dir() / "manifest.json").read_text())
    for timeframe, datasets in manifest["datasets"].items():
        for symbol, entry in datasets.items():
            name = "spot" if entry["kind"] == "spot" else "bars"
            assert (
                pq.ParquetFile(
                    market_dir() / "binance" / timeframe / f"{symbol}.{name}.parquet"
                ).metadata.num_rows
                == entry["bars"]
            )


def test_prices_and_rates_are_stored_as_float64_and_times_as_int64_ms() -> None:
    schema = pq.read_schema(market_dir() / "binance" / "8h" / "BTCUSDT.funding.parquet")
    assert str(schema.field("settle_ts_ms").type) == "int64"
    assert str(schema.field("rate_per_interval").type) == "double"
    bars_schema = pq.read_schema(market_dir() / "binance" / "1h" / "BTCUSDT.bars.parquet")
    assert {str(bars_schema.field(c).type) for c in BAR_COLUMNS} == {"double"}


def test_licence_and_attribution_ship_with_the_data() -> None:
    assert "MIT License" in (market_dir() / "LICENSE-PietroC21-MIT.txt").read_text()
    readme = (market_dir() / "README.md").read_text()
    assert "PietroC21/Crypto-PerpetualFutures" in readme and "daf5c0e" in readme


@pytest.mark.parametrize("alias", ["BTCUSDT", "btcusdt", "BTC/USDT", "BTC/USDT:USDT"])
def test_load_bundled_accepts_exchange_and_ccxt_spellings(alias: str) -> None:
    assert to_bundled_symbol(alias) == "BTCUSDT"
    assert load_bundled(alias).symbol == "BTCUSDT"


def test_load_bundled_unknown_symbol_lists_what_exists() -> None:
    with pytest.raises(UnknownSymbolError) as info:
        load_bundled("PEPEUSDT")
    assert "PEPEUSDT" in str(info.value) and "BTCUSDT" in str(info.value) and "XRPUSDT" in str(info.value)
    with pytest.raises(UnknownSymbolError, match="SOLUSDT"):
        load_bundled("XRPUSDT", "1h")  # XRP is bundled at 8 h only; the message lists the 1 h symbols


def test_load_bundled_unknown_timeframe_names_the_bundled_ones() -> None:
    with pytest.raises(InputError, match="8h, 1h"):
        load_bundled("BTCUSDT", "4h")


def test_matic_is_spot_only_and_says_so() -> None:
    with pytest.raises(DataError, match="spot history only"):
        load_bundled("MATICUSDT")
    spot = load_bundled_spot("MATICUSDT")
    assert spot.index[-1] == pd.Timestamp("2024-09-10", tz="UTC")
    assert set(spot.columns) == {"spot_open", "spot_high", "spot_low", "spot_close", "spot_volume_base"}
    assert "MATICUSDT" not in bundled_symbols()
