"""The market-data cache: data dir, atomic writes, merging, listing and loading as MarketData."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.data import cache as c
from perphedge.data.fetch import missing_ranges
from perphedge.data.schema import BAR_COLUMNS, FUNDING_COLUMNS
from perphedge.errors import DataError, UnknownSymbolError


def test_default_data_dir_honours_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(c.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert c.default_data_dir() == tmp_path / "mine"
    assert c.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_default_data_dir_is_the_platform_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv(c.DATA_DIR_ENV, raising=False)
    assert c.default_data_dir() == Path(platformdirs.user_cache_dir("perphedge", appauthor=False))
    assert c.default_data_dir().name == "perphedge"


def test_market_dir_names_are_file_system_safe() -> None:
    assert c.market_dir_name("BTC-USDT-SWAP") == "BTC-USDT-SWAP"
    assert c.market_dir_name("BTC/USDT:USDT") == "BTC_USDT_USDT"


# --- atomic writes -------------------------------------------------------------------------------------


def _frame(ts: list[int], close: list[float]) -> pd.DataFrame:
    return pd.DataFrame({c.BAR_TS_COLUMN: np.array(ts, dtype=np.int64), "close": close})


def test_a_crash_before_the_rename_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "perp_1h.parquet"
    c.write_parquet_atomic(_frame([1, 2], [10.0, 11.0]), path)
    before = path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated power cut before the rename")

    monkeypatch.setattr(c.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        c.write_parquet_atomic(_frame([1, 2, 3], [10.0, 11.0, 12.0]), path)

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["perp_1h.parquet"]


def test_a_crash_half_way_through_writing_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "perp_1h.parquet"
    c.write_parquet_atomic(_frame([1, 2], [10.0, 11.0]), path)
    before = path.read_bytes()

    def half_write(self: pd.DataFrame, target: Path, **kwargs: object) -> None:
        Path(target).write_bytes(before[: len(before) // 2])  # a torn file
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_write)
    with pytest.raises(KeyboardInterrupt):
        c.write_parquet_atomic(_frame([1, 2, 3], [10.0, 11.0, 12.0]), path)

    assert path.read_bytes() == before
    assert list(pd.read_parquet(path)["close"]) == [10.0, 11.0]
    assert [p.name for p in tmp_path.iterdir()] == ["perp_1h.parquet"]


def test_a_damaged_cache_file_is_reported_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "perp_1h.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="delete it and run perphedge data fetch again"):
        c.read_table(path, c.BAR_TS_COLUMN)


# --- merging and the incremental plan --------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    old=st.dictionaries(st.integers(0, 50), st.floats(1, 100), max_size=20),
    new=st.dictionaries(st.integers(0, 50), st.floats(1, 100), max_size=20),
)
def test_merge_keeps_one_row_per_timestamp_sorted_and_new_rows_win(
    old: dict[int, float], new: dict[int, float]
) -> None:
    old_frame = _frame(list(old), list(old.values())) if old else None
    merged = c.merge_frames(old_frame, _frame(list(new), list(new.values())), c.BAR_TS_COLUMN)
    ts = merged[c.BAR_TS_COLUMN].tolist()
    assert ts == sorted(set(old) | set(new))
    assert dict(zip(ts, merged["close"], strict=True)) == {**old, **new}


@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(100, 200),
    length=st.integers(0, 100),
    covered_back=st.integers(0, 50),
    since=st.integers(0, 400),
    span=st.integers(0, 400),
    open_end=st.booleans(),
)
def test_missing_ranges_cover_the_request_without_holes(
    first: int, length: int, covered_back: int, since: int, span: int, open_end: bool
) -> None:
    last = first + length
    covered = first - covered_back
    until = None if open_end else since + span
    ranges = missing_ranges(
        first_cached_ms=first, last_cached_ms=last, covered_since_ms=covered, since_ms=since, until_ms=until
    )
    # every window touches the cached block, so cache + windows stay one contiguous range
    for start, end in ranges:
        assert end == first or start == last
    starts = {s for s, _ in ranges}
    assert (since < covered) == (since in starts and (since, first) in ranges)
    assert (until is None or until > last) == any(s == last for s, _ in ranges)
    # nothing is downloaded when the request lies inside what is known
    if since >= covered and until is not None and until <= last:
        assert ranges == []


def test_missing_ranges_with_nothing_cached_is_the_whole_request() -> None:
    assert missing_ranges(
        first_cached_ms=None, last_cached_ms=None, covered_since_ms=None, since_ms=5, until_ms=None
    ) == [(5, None)]


# --- loading a cache built from the bundled real Binance hourly data --------------------------------------


@pytest.fixture(scope="module")
def bundled_btc_1h() -> object:
    bundled = pytest.importorskip("perphedge.data.bundled")
    return bundled.load_bundled("BTCUSDT", "1h").between(
        pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-03-04", tz="UTC")
    )


def _write_cache_from(market: object, root: Path) -> Path:
    """Write bundled Binance data in the cache layout; funding without mark price (as Bybit/OKX give it)."""
    directory = c.market_cache_dir(root, "binance", "BTCUSDT")
    ts = (market.bars.index.as_unit("ms").asi8).astype(np.int64)
    for leg in ("perp", "spot"):
        frame = pd.DataFrame({c.BAR_TS_COLUMN: ts})
        for col in ("open", "high", "low", "close"):
            frame[col] = market.bars[f"{leg}_{col}"].to_numpy()
        frame["volume"] = market.bars[f"{leg}_volume_base"].to_numpy()
        c.write_parquet_atomic(frame, directory / c.bars_file_name(leg, "1h"))
    mark = pd.DataFrame(
        {
            c.BAR_TS_COLUMN: ts,
            "open": np.nan,
            "high": np.nan,
            "low": np.nan,
            "close": market.bars["mark_close"].to_numpy(),
            "volume": np.nan,
        }
    )
    c.write_parquet_atomic(mark, directory / c.bars_file_name("mark", "1h"))
    funding = pd.DataFrame(
        {
            c.SETTLE_TS_COLUMN: (market.funding.index.as_unit("ms").asi8).astype(np.int64),
            "rate_per_interval": market.funding["rate_per_interval"].to_numpy(),
            "mark_price": np.nan,
        }
    )
    c.write_parquet_atomic(funding, directory / c.FUNDING_NAME)
    c.write_json_atomic(
        {
            "format": 1,
            "exchange": "binance",
            "ccxt_symbol": "BTC/USDT:USDT",
            "market_id": "BTCUSDT",
            "spot_symbol": "BTC/USDT",
            "datasets": {},
        },
        directory / c.META_NAME,
    )
    return directory


def test_load_cached_gives_canonical_market_data(bundled_btc_1h: object, tmp_path: Path) -> None:
    _write_cache_from(bundled_btc_1h, tmp_path)
    data = c.load_cached("binance", "BTC/USDT:USDT", "1h", data_dir=tmp_path)

    assert data.source == "cache" and data.symbol == "BTCUSDT" and data.ccxt_symbol == "BTC/USDT:USDT"
    assert list(data.bars.columns[: len(BAR_COLUMNS)]) == list(BAR_COLUMNS)
    assert str(data.bars.index.tz) == "UTC" and data.bars.index.name == "ts"
    pd.testing.assert_frame_equal(
        data.bars[list(BAR_COLUMNS)], bundled_btc_1h.bars[list(BAR_COLUMNS)], check_freq=False
    )
    assert list(data.funding.columns) == list(FUNDING_COLUMNS)
    assert (data.funding["interval_hours"] == 8.0).all()
    assert not data.has_mark_ohlc  # only the mark close is known here


def test_funding_mark_price_comes_from_the_mark_bar_ending_at_the_settlement(
    bundled_btc_1h: object, tmp_path: Path
) -> None:
    # Binance's own markPrice per settlement (GET /fapi/v1/fundingRate, kept in the bundled data) must
    # equal the close of the mark bar that ends at the settlement time
    _write_cache_from(bundled_btc_1h, tmp_path)
    data = c.load_cached("binance", "BTCUSDT", "1h", data_dir=tmp_path)
    known = data.funding["mark_price"].notna()
    assert known.sum() >= 6
    np.testing.assert_allclose(
        data.funding.loc[known, "mark_price"], bundled_btc_1h.funding.loc[known, "mark_price"], rtol=1e-12
    )


def test_list_cached_reports_each_timeframe(bundled_btc_1h: object, tmp_path: Path) -> None:
    _write_cache_from(bundled_btc_1h, tmp_path)
    (info,) = c.list_cached(tmp_path)
    assert (info.exchange, info.symbol, info.timeframe) == ("binance", "BTCUSDT", "1h")
    assert info.bars == len(bundled_btc_1h.bars)
    assert info.funding_settlements == len(bundled_btc_1h.funding)
    assert info.first_bar == bundled_btc_1h.bars.index[0] and info.source.startswith("cache:")


def test_load_cached_unknown_market_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(
        UnknownSymbolError, match="perphedge data fetch --exchange okx --symbol ETH/USDT:USDT"
    ):
        c.load_cached("okx", "ETH/USDT:USDT", "1h", data_dir=tmp_path)


def test_load_cached_missing_timeframe_names_the_cached_ones(bundled_btc_1h: object, tmp_path: Path) -> None:
    _write_cache_from(bundled_btc_1h, tmp_path)
    with pytest.raises(UnknownSymbolError, match=r"cached for timeframes \['1h'\].*--timeframe 4h"):
        c.load_cached("binance", "BTCUSDT", "4h", data_dir=tmp_path)


def test_list_cached_of_an_empty_dir_is_empty(tmp_path: Path) -> None:
    assert c.list_cached(tmp_path / "nothing-here") == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("perp_1h.parquet", b"PAR1 this is not parquet", "the cached file cannot be read"),
        ("meta.json", "é".encode("latin-1"), "meta.json cannot be read"),
        ("meta.json", b"[1, 2]", "holds a list, not an object"),
    ],
)
def test_list_cached_reports_a_damaged_file_instead_of_a_traceback(
    bundled_btc_1h: object, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    # data list / backtest died with pyarrow's ArrowInvalid, UnicodeDecodeError or AttributeError here
    directory = _write_cache_from(bundled_btc_1h, tmp_path)
    (directory / name).write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        c.list_cached(tmp_path)
    assert str(info.value).startswith(str(directory / name)) and "fetch again" in str(info.value)
