"""``perphedge.data.importers`` on real data: bundled BTCUSDT written to CSV/Parquet, then corrupted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perphedge.data.bundled import load_bundled
from perphedge.data.catalog import list_datasets, load_market, window_market
from perphedge.data.importers import (
    ColumnNames,
    ImportRequest,
    import_market,
    imported_dir,
    list_imported,
    load_imported,
    parse_timestamps,
)
from perphedge.data.schema import MarketData
from perphedge.errors import DataError, InputError


@pytest.fixture(scope="module")
def btc() -> MarketData:
    """Real BTCUSDT 8-hour data, 2021-01-01 … 2021-03-31."""
    return window_market(load_bundled("BTCUSDT", "8h"), "2021-01-01", "2021-04-01")


def write_user_files(market: MarketData, folder: Path, *, fmt: str = "csv") -> dict[str, Path]:
    """Write the market as a user would have it: funding (timestamp, funding_rate) and OHLCV files."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = {
        "funding": pd.DataFrame(
            {
                "timestamp": market.funding.index.strftime("%Y-%m-%dT%H:%M:%S.%f%z"),
                "funding_rate": market.funding["rate_per_interval"],
            }
        ),
    }
    for leg in ("spot", "perp"):
        frames[leg] = pd.DataFrame(
            {
                "timestamp": market.bars.index.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "open": market.bars[f"{leg}_open"],
                "high": market.bars[f"{leg}_high"],
                "low": market.bars[f"{leg}_low"],
                "close": market.bars[f"{leg}_close"],
                "volume": market.bars[f"{leg}_volume_base"],
            }
        )
    paths = {}
    for name, frame in frames.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False, float_format="%.17g")
        else:
            frame.to_parquet(path, index=False)
        paths[name] = path
    return paths


def request_for(paths: dict[str, Path], **overrides: object) -> ImportRequest:
    fields: dict[str, object] = {
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "timeframe": "8h",
        "funding_path": paths["funding"],
        "spot_path": paths["spot"],
        "perp_path": paths["perp"],
    }
    fields.update(overrides)
    return ImportRequest(**fields)  # type: ignore[arg-type]


def test_import_round_trips_real_data_exactly(btc: MarketData, tmp_path: Path) -> None:
    # Arrange
    paths = write_user_files(btc, tmp_path / "user")
    data_dir = tmp_path / "data"
    # Act
    result = import_market(request_for(paths), data_dir)
    loaded = load_imported("binance", "BTCUSDT", "8h", data_dir)
    # Assert: prices, volumes, rates and settlement times (with their ms jitter) survive exactly
    assert result.warnings == ()
    assert loaded is not None
    cols = [c for c in btc.bars.columns if c != "mark_close"]
    pd.testing.assert_frame_equal(loaded.bars[cols], btc.bars[cols], check_freq=False)
    assert loaded.bars["mark_close"].isna().all()  # the user gave no mark price: unknown, not guessed
    pd.testing.assert_index_equal(loaded.funding.index, btc.funding.index)
    np.testing.assert_array_equal(loaded.funding["rate_per_interval"], btc.funding["rate_per_interval"])
    np.testing.assert_array_equal(loaded.funding["interval_hours"], btc.funding["interval_hours"])


def test_imported_set_is_listed_and_loads_through_the_catalog(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    data_dir = tmp_path / "data"
    import_market(request_for(paths, exchange="myexchange", symbol="BTC/USDT:USDT"), data_dir)
    infos = [d for d in list_datasets(data_dir) if d.source.startswith("import:")]
    assert [(d.exchange, d.symbol, d.timeframe, d.bars, d.funding_settlements) for d in infos] == [
        ("myexchange", "BTCUSDT", "8h", len(btc.bars), len(btc.funding))
    ]
    market = load_market("BTCUSDT", exchange="myexchange", data_dir=data_dir, start="2021-02-01")
    assert market.bars.index[0] == pd.Timestamp("2021-02-01", tz="UTC")
    assert market.source.startswith("import:")


def test_parquet_files_import_the_same_as_csv(btc: MarketData, tmp_path: Path) -> None:
    csv = import_market(request_for(write_user_files(btc, tmp_path / "csv")), tmp_path / "a").market
    parquet = import_market(
        request_for(write_user_files(btc, tmp_path / "pq", fmt="parquet")), tmp_path / "b"
    ).market
    pd.testing.assert_frame_equal(csv.bars, parquet.bars)
    pd.testing.assert_frame_equal(csv.funding, parquet.funding)


def test_percent_rates_need_the_percent_unit(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    funding = pd.read_csv(paths["funding"])
    funding["funding_rate"] = funding["funding_rate"] * 100
    funding.to_csv(paths["funding"], index=False, float_format="%.17g")
    with pytest.raises(DataError, match=r"looks like a percent.*--rate-unit percent"):
        import_market(request_for(paths), tmp_path / "data")
    assert list_imported(tmp_path / "data") == []  # nothing stored after a failed validation
    market = import_market(request_for(paths, rate_unit="percent"), tmp_path / "data").market
    np.testing.assert_allclose(
        market.funding["rate_per_interval"], btc.funding["rate_per_interval"], rtol=1e-15, atol=0
    )


def test_naive_timestamps_are_refused_unless_assume_utc(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    for name in ("funding", "spot", "perp"):
        frame = pd.read_csv(paths[name])
        frame["timestamp"] = (
            pd.to_datetime(frame["timestamp"], format="ISO8601").dt.tz_localize(None).astype(str)
        )
        frame.to_csv(paths[name], index=False, float_format="%.17g")
    with pytest.raises(DataError, match=r"have no timezone; if they are UTC pass --assume-utc"):
        import_market(request_for(paths), tmp_path / "data")
    market = import_market(request_for(paths, assume_utc=True), tmp_path / "data").market
    assert market.bars.index[0] == pd.Timestamp("2021-01-01", tz="UTC")


def test_naive_local_times_import_with_their_timezone_across_a_dst_change(
    btc: MarketData, tmp_path: Path
) -> None:
    # Arrange: Berlin wall-clock times without offset; the window crosses 2021-03-28 (CET → CEST)
    paths = write_user_files(btc, tmp_path / "user")
    for name in ("funding", "spot", "perp"):
        frame = pd.read_csv(paths[name])
        frame["timestamp"] = (
            pd.to_datetime(frame["timestamp"], format="ISO8601")
            .dt.tz_convert("Europe/Berlin")
            .dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        )
        frame.to_csv(paths[name], index=False, float_format="%.17g")
    # Act
    market = import_market(request_for(paths, timezone="Europe/Berlin"), tmp_path / "data").market
    # Assert: back on the exact UTC times, with the funding's millisecond jitter
    pd.testing.assert_index_equal(market.bars.index, btc.bars.index.as_unit("ms"), check_names=False)
    pd.testing.assert_index_equal(market.funding.index, btc.funding.index.as_unit("ms"), check_names=False)


def test_local_times_made_ambiguous_by_dst_are_refused_with_the_row(tmp_path: Path) -> None:
    values = pd.Series(["2021-10-31 00:30:00", "2021-10-31 01:30:00", "2021-10-31 02:30:00"])
    with pytest.raises(
        DataError, match=r"local time 2021-10-31T02:30:00 \(row 3\) is ambiguous or does not exist"
    ):
        parse_timestamps(
            values, path=tmp_path / "x.csv", assume_utc=False, epoch_unit="ms", timezone="Europe/Berlin"
        )
    with pytest.raises(DataError, match="--timezone Europe/Berlin"):
        parse_timestamps(values, path=tmp_path / "x.csv", assume_utc=False, epoch_unit="ms")


def test_unknown_or_contradictory_timezone_is_an_input_error(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    with pytest.raises(InputError, match="timezone 'Mars/Olympus' is not an IANA time zone name"):
        import_market(request_for(paths, timezone="Mars/Olympus"), tmp_path / "data")
    with pytest.raises(InputError, match="contradict each other"):
        import_market(request_for(paths, timezone="Asia/Tokyo", assume_utc=True), tmp_path / "data")


def test_explicit_offsets_are_converted_to_utc(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    for name in ("spot", "perp"):
        frame = pd.read_csv(paths[name])
        frame["timestamp"] = (
            pd.to_datetime(frame["timestamp"], format="ISO8601")
            .dt.tz_convert("Asia/Tokyo")
            .dt.strftime("%Y-%m-%dT%H:%M:%S%z")
        )
        frame.to_csv(paths[name], index=False, float_format="%.17g")
    market = import_market(request_for(paths), tmp_path / "data").market
    assert market.bars.index[0] == pd.Timestamp("2021-01-01 00:00", tz="UTC")


def test_epoch_milliseconds_import_and_seconds_need_the_flag(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    for name in ("funding", "spot", "perp"):
        frame = pd.read_csv(paths[name])
        frame["timestamp"] = (
            pd.to_datetime(frame["timestamp"], format="ISO8601").astype("datetime64[ms, UTC]").astype("int64")
        )
        frame.to_csv(paths[name], index=False, float_format="%.17g")
    assert import_market(request_for(paths), tmp_path / "data").market.bars.index[0] == btc.bars.index[0]
    for name in ("funding", "spot", "perp"):
        frame = pd.read_csv(paths[name])
        frame["timestamp"] = frame["timestamp"] // 1000
        frame.to_csv(paths[name], index=False)
    with pytest.raises(DataError, match="pass --epoch-unit s"):
        import_market(request_for(paths), tmp_path / "data")
    funding = pd.read_csv(paths["funding"])
    funding["timestamp"] = funding["timestamp"] + 0.5
    funding.to_csv(paths["funding"], index=False)
    with pytest.raises(DataError, match="whole numbers"):
        import_market(request_for(paths, epoch_unit="s"), tmp_path / "data")


def test_epoch_seconds_with_the_flag_import(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    for name in ("funding", "spot", "perp"):
        frame = pd.read_csv(paths[name])
        frame["timestamp"] = (
            pd.to_datetime(frame["timestamp"], format="ISO8601")
            .dt.floor("s")
            .astype("datetime64[s, UTC]")
            .astype("int64")
        )
        frame.to_csv(paths[name], index=False, float_format="%.17g")
    market = import_market(request_for(paths, epoch_unit="s"), tmp_path / "data").market
    assert market.bars.index[-1] == btc.bars.index[-1]
    assert len(market.funding) == len(btc.funding)


def test_duplicate_rows_are_an_error_with_row_numbers(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    spot = pd.read_csv(paths["spot"])
    pd.concat([spot.iloc[:5], spot.iloc[4:]]).to_csv(paths["spot"], index=False, float_format="%.17g")
    with pytest.raises(
        DataError, match=r"spot\.csv: duplicate timestamp 2021-01-02T08:00:00\+00:00 \(rows 5 and 6\)"
    ):
        import_market(request_for(paths), tmp_path / "data")


def test_unsorted_rows_are_an_error_not_sorted_silently(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    perp = pd.read_csv(paths["perp"])
    perp.iloc[[10, 11]] = perp.iloc[[11, 10]].to_numpy()
    perp.to_csv(paths["perp"], index=False, float_format="%.17g")
    with pytest.raises(DataError, match=r"perp\.csv: timestamps are not increasing: row 12 .* sort the file"):
        import_market(request_for(paths), tmp_path / "data")


def test_nan_price_is_an_error_naming_the_time(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    spot = pd.read_csv(paths["spot"])
    spot.loc[100, "close"] = np.nan
    spot.to_csv(paths["spot"], index=False, float_format="%.17g")
    with pytest.raises(DataError, match=r"spot_close is NaN at 2021-02-03T08:00:00\+00:00"):
        import_market(request_for(paths), tmp_path / "data")


def test_a_bar_missing_from_one_leg_inside_the_period_is_a_misalignment_error(
    btc: MarketData, tmp_path: Path
) -> None:
    paths = write_user_files(btc, tmp_path)
    spot = pd.read_csv(paths["spot"])
    spot.drop(index=50).to_csv(paths["spot"], index=False, float_format="%.17g")  # 2021-01-17T16:00
    with pytest.raises(
        DataError,
        match=r"spot and perp are misaligned: .*spot\.csv has no bar at 2021-01-17T16:00:00\+00:00 where "
        r".*perp\.csv has one\. Both files need the same bar open times",
    ):
        import_market(request_for(paths, trim_to_overlap=True), tmp_path / "data")
    assert not (tmp_path / "data").exists()  # nothing stored


def test_a_nan_price_in_the_first_row_is_not_trimmed_away_as_a_missing_leg(
    btc: MarketData, tmp_path: Path
) -> None:
    paths = write_user_files(btc, tmp_path)
    perp = pd.read_csv(paths["perp"])
    perp.loc[0, "close"] = np.nan
    perp.to_csv(paths["perp"], index=False, float_format="%.17g")
    with pytest.raises(DataError, match=r"perp_close is NaN at 2021-01-01T00:00:00\+00:00"):
        import_market(request_for(paths, trim_to_overlap=True), tmp_path / "data")


def test_missing_settlement_is_an_error_with_the_gap(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    funding = pd.read_csv(paths["funding"])
    funding.drop(index=[50, 51]).to_csv(paths["funding"], index=False, float_format="%.17g")
    before, after = (btc.funding.index[i].as_unit("ms").isoformat() for i in (49, 52))
    with pytest.raises(DataError) as info:
        import_market(request_for(paths), tmp_path / "data")
    assert str(info.value).endswith(
        f"funding.csv: settlements {before} (row 50) and {after} (row 51) are 24 h apart, which is a gap: "
        "settlements are missing between them (or the times are shifted: check the timezone); "
        "intervals are 1, 2, 4, 8 h. Add the missing settlements from the exchange (perphedge data fetch); "
        "nothing is filled in"
    )


def test_unknown_column_lists_the_columns_and_mapping_fixes_it(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    funding = pd.read_csv(paths["funding"]).rename(
        columns={"timestamp": "fundingTime", "funding_rate": "fundingRate"}
    )
    funding.to_csv(paths["funding"], index=False, float_format="%.17g")
    with pytest.raises(
        DataError, match=r"there is no column 'timestamp'; the columns are fundingTime, fundingRate"
    ):
        import_market(request_for(paths), tmp_path / "data")
    spot = pd.read_csv(paths["spot"]).rename(columns={"timestamp": "fundingTime"})
    spot.to_csv(paths["spot"], index=False, float_format="%.17g")
    perp = pd.read_csv(paths["perp"]).rename(columns={"timestamp": "fundingTime"})
    perp.to_csv(paths["perp"], index=False, float_format="%.17g")
    columns = ColumnNames(timestamp="fundingTime", funding_rate="fundingRate")
    market = import_market(request_for(paths, columns=columns), tmp_path / "data").market
    assert len(market.funding) == len(btc.funding)


def test_spot_and_perp_over_different_periods_need_trim_to_overlap(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    spot = pd.read_csv(paths["spot"])
    spot.iloc[6:].to_csv(paths["spot"], index=False, float_format="%.17g")  # spot starts two days later
    with pytest.raises(DataError, match=r"spot and perp cover different periods.*--trim-to-overlap"):
        import_market(request_for(paths), tmp_path / "data")
    result = import_market(request_for(paths, trim_to_overlap=True), tmp_path / "data")
    assert result.market.bars.index[0] == btc.bars.index[6]
    assert result.market.notes[0].startswith("trimmed 6 bar(s) before 2021-01-03T00:00:00+00:00")
    assert any("settlement(s) fall outside the bars" in w for w in result.warnings)


def test_second_import_replaces_the_first_atomically(btc: MarketData, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = window_market(btc, None, "2021-02-01")
    import_market(request_for(write_user_files(first, tmp_path / "one")), data_dir)
    import_market(request_for(write_user_files(btc, tmp_path / "two")), data_dir)
    target = imported_dir(data_dir, "binance", "BTCUSDT", "8h")
    meta = json.loads((target / "meta.json").read_text())
    assert sorted(p.name for p in target.iterdir()) == sorted(["meta.json", *meta["files"].values()])
    assert not list(target.glob("*.tmp"))
    loaded = load_imported("binance", "BTCUSDT", "8h", data_dir)
    assert loaded is not None and len(loaded.bars) == len(btc.bars)


def test_unreadable_inputs_are_input_errors(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    with pytest.raises(InputError, match="does not exist"):
        import_market(request_for(paths, spot_path=tmp_path / "nope.csv"), tmp_path / "data")
    other = tmp_path / "spot.xlsx"
    other.write_bytes(b"")
    with pytest.raises(InputError, match="neither CSV"):
        import_market(request_for(paths, spot_path=other), tmp_path / "data")
    with pytest.raises(InputError, match="rate unit 'bps'"):
        import_market(request_for(paths, rate_unit="bps"), tmp_path / "data")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"timestamp,open,high,low,close\n", "no data rows"),
        (bytes(range(128, 256)) * 8, "could not be read as CSV"),
        (b'timestamp,open\n"2021-01-01,1\n', "could not be read as CSV"),
    ],
    ids=["empty", "header-only", "not-utf8", "unterminated-quote"],
)
def test_empty_or_garbled_csv_is_one_line_data_error_naming_the_file(
    btc: MarketData, tmp_path: Path, content: bytes, message: str
) -> None:
    # used to escape as pandas' EmptyDataError / ParserError, UnicodeDecodeError or an IndexError
    paths = write_user_files(btc, tmp_path / "user")
    paths["spot"].write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        import_market(request_for(paths), tmp_path / "data")
    assert str(info.value).startswith(str(paths["spot"]))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "data").exists()  # nothing stored


@pytest.mark.parametrize("content", [b"", b"PAR1" + bytes(range(256)) * 4], ids=["empty", "garbled"])
def test_empty_or_garbled_parquet_is_a_data_error(btc: MarketData, tmp_path: Path, content: bytes) -> None:
    paths = write_user_files(btc, tmp_path / "user", fmt="parquet")
    paths["funding"].write_bytes(content)
    with pytest.raises(DataError, match="could not be read as Parquet") as info:
        import_market(request_for(paths), tmp_path / "data")
    assert str(info.value).startswith(str(paths["funding"])) and "\n" not in str(info.value)


def test_unparseable_timestamp_text_is_one_line_saying_the_format(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    spot = pd.read_csv(paths["spot"], dtype={"timestamp": str})
    spot.loc[3, "timestamp"] = "yesterday"
    spot.to_csv(paths["spot"], index=False, float_format="%.17g")
    with pytest.raises(DataError, match="not ISO 8601 dates or epoch numbers") as info:
        import_market(request_for(paths), tmp_path / "data")
    assert "\n" not in str(info.value) and "2024-01-01T08:00Z" in str(info.value)


@pytest.mark.parametrize(
    ("exchange", "symbol", "bad"),
    [
        ("binance", "", "--symbol"),
        ("binance", "../../x", "--symbol"),
        ("", "BTCUSDT", "--exchange"),
        ("../..", "BTCUSDT", "--exchange"),
    ],
)
def test_exchange_and_symbol_must_name_a_directory_inside_the_data_dir(
    btc: MarketData, tmp_path: Path, exchange: str, symbol: str, bad: str
) -> None:
    # '' stored the data one level up (import/binance/8h); '../..' wrote outside the data directory
    paths = write_user_files(btc, tmp_path / "user")
    with pytest.raises(InputError, match=bad):
        import_market(request_for(paths, exchange=exchange, symbol=symbol), tmp_path / "data")
    assert not (tmp_path / "data").exists() and not (tmp_path / "BTCUSDT").exists()
    assert load_imported(exchange, symbol, "8h", tmp_path / "data") is None


def test_a_data_dir_that_is_a_file_is_an_input_error(btc: MarketData, tmp_path: Path) -> None:
    paths = write_user_files(btc, tmp_path / "user")
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("mine")
    with pytest.raises(InputError, match="could not store the data set .*writable directory"):
        import_market(request_for(paths), not_a_dir)
    assert not_a_dir.read_text() == "mine"


@pytest.mark.parametrize(
    "damage",
    ["garble the bars file", "delete the funding file", "meta without keys", "meta not an object"],
)
def test_a_damaged_import_is_a_data_error_saying_to_import_again(
    btc: MarketData, tmp_path: Path, damage: str
) -> None:
    # load_imported / list_imported died with ArrowInvalid, FileNotFoundError, KeyError or TypeError
    paths = write_user_files(btc, tmp_path / "user")
    stored = import_market(request_for(paths), tmp_path / "data").stored_dir
    meta = json.loads((stored / "meta.json").read_text())
    if damage == "garble the bars file":
        (stored / meta["files"]["bars"]).write_bytes(b"PAR1 not parquet")
    elif damage == "delete the funding file":
        (stored / meta["files"]["funding"]).unlink()
    elif damage == "meta without keys":
        (stored / "meta.json").write_text('{"format": 1}')
    else:
        (stored / "meta.json").write_text("[1]")
    with pytest.raises(DataError, match="the imported data set is damaged .*import the files again") as info:
        load_imported("binance", "BTCUSDT", "8h", tmp_path / "data")
    assert str(info.value).startswith(str(stored))
    if damage.startswith("meta"):
        with pytest.raises(DataError, match="damaged"):
            list_imported(tmp_path / "data")


def test_bars_of_another_length_than_the_timeframe_are_refused_with_the_right_one(
    btc: MarketData, tmp_path: Path
) -> None:
    # 8-hour files imported as 1h were stored with 92 'gap' warnings and then failed in the backtest
    paths = write_user_files(btc, tmp_path / "user")
    with pytest.raises(
        DataError, match=r"no two bars are 1h apart \(the closest are 8 h apart\).*--timeframe 8h"
    ):
        import_market(request_for(paths, timeframe="1h"), tmp_path / "data")
    assert not (tmp_path / "data").exists()
