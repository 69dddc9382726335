"""fetch_to_cache end to end on real ccxt exchange objects replaying recorded responses.

Only recorded rows are served (see tests/venues/test_history.py for the window routes). Where an
exchange has no recording for an endpoint we need, the nearest recording of the same endpoint family
is reused and said so (e.g. Binance's recorded spot 1h klines also answer the perp klines request:
no recorded Binance perp 1h page exists).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pandas as pd
import pytest

from perphedge.data import cache as c
from perphedge.data.fetch import fetch_to_cache
from perphedge.errors import InputError, UnknownSymbolError, VenueError
from perphedge.venues import history as h
from tests.kit.ccxt_replay import fixture_entry, replay_exchange
from tests.venues.test_history import (
    BINANCE_FUNDING,
    BINANCE_SPOT_1H,
    BYBIT_PERP_1H,
    HOUR,
    NO_SLEEP,
    OKX_CANDLES,
    OKX_FUNDING,
    T0,
    binance_window,
    bybit_kline_window,
    okx_window,
    param,
    query,
)

SETTLE = 1621267200000  # the recorded Binance funding settlement, 2021-05-17T16:00Z
BINANCE_MARK = fixture_entry("binance", "source_comment", "fetchMarkOHLCV")  # 1m sample, 2020-06-06


def binance_routes(**overrides: Any) -> dict[str, Any]:
    bars = BINANCE_SPOT_1H["httpResponse"]
    routes: dict[str, Any] = {
        "/fapi/v1/fundingRate": binance_window(BINANCE_FUNDING["httpResponse"], lambda r: r["fundingTime"]),
        "/fapi/v1/klines": binance_window(bars, lambda r: r[0]),  # recorded spot page reused for the perp
        "/api/v3/klines": binance_window(bars, lambda r: r[0]),
        "/fapi/v1/markPriceKlines": binance_window(BINANCE_MARK["httpResponse"], lambda r: r[0]),
    }
    routes.update(overrides)
    return routes


def binance(**overrides: Any) -> Any:
    ex = replay_exchange("binance", binance_routes(**overrides))
    ex.apiKey, ex.secret = "", ""  # like a user without keys: leverage brackets are signed
    return ex


def paths(ex: Any) -> list[str]:
    return [urlsplit(call.url).path for call in ex.replay_calls]


def calls_to(ex: Any, path: str) -> list[Any]:
    return [call for call in ex.replay_calls if urlsplit(call.url).path == path]


def test_first_fetch_writes_every_dataset_and_meta(tmp_path: Path) -> None:
    ex = binance()
    summary = fetch_to_cache(
        ex, "BTC/USDT:USDT", since_ms=SETTLE - HOUR, until_ms=T0 + 2 * HOUR, data_dir=tmp_path, sleep=NO_SLEEP
    )

    directory = tmp_path / "binance" / "BTCUSDT"
    assert summary.market_dir == directory and summary.spot_symbol == "BTC/USDT"
    by_name = {d.name: d for d in summary.datasets}
    assert set(by_name) == {"funding", "perp_1h", "spot_1h", "mark_1h"}
    assert by_name["funding"].rows_after == 1 and by_name["perp_1h"].rows_after == 3
    assert by_name["mark_1h"].rows_after == 0  # the recorded mark sample is from 2020: outside the window
    assert not (directory / "mark_1h.parquet").exists()

    spot = pd.read_parquet(directory / "spot_1h.parquet")
    assert spot.values.tolist() == [[float(x) for x in row] for row in BINANCE_SPOT_1H["parsed_ccxt_4_5_90"]]
    funding = pd.read_parquet(directory / "funding.parquet")
    assert funding[c.SETTLE_TS_COLUMN].tolist() == [SETTLE]
    assert funding["rate_per_interval"].tolist() == [0.00063521]

    meta = json.loads((directory / "meta.json").read_text())
    assert meta["ccxt_symbol"] == "BTC/USDT:USDT" and meta["market_id"] == "BTCUSDT"
    assert meta["datasets"]["perp_1h"]["covered_since_ms"] == SETTLE - HOUR
    # Binance's leverageBracket endpoint is signed: skipped with a clear warning, no crash
    assert summary.leverage_tiers is None
    assert any("API key" in w for w in summary.warnings)
    assert "/fapi/v1/leverageBracket" not in paths(ex)


def test_second_fetch_downloads_only_from_the_newest_cached_bar(tmp_path: Path) -> None:
    fetch_to_cache(
        binance(), "BTC/USDT:USDT", since_ms=T0, until_ms=T0 + HOUR, data_dir=tmp_path, sleep=NO_SLEEP
    )
    perp = tmp_path / "binance" / "BTCUSDT" / "perp_1h.parquet"
    assert pd.read_parquet(perp)[c.BAR_TS_COLUMN].tolist() == [T0, T0 + HOUR]

    ex = binance()
    summary = fetch_to_cache(
        ex, "BTC/USDT:USDT", since_ms=T0, until_ms=T0 + 2 * HOUR, data_dir=tmp_path, sleep=NO_SLEEP
    )

    (call,) = calls_to(ex, "/fapi/v1/klines")
    assert int(query(call.url)["startTime"]) == T0 + HOUR  # the newest cached bar, fetched again
    perp_fetch = next(d for d in summary.datasets if d.name == "perp_1h")
    assert (perp_fetch.rows_before, perp_fetch.rows_downloaded, perp_fetch.rows_added) == (2, 2, 1)
    assert pd.read_parquet(perp)[c.BAR_TS_COLUMN].tolist() == [T0, T0 + HOUR, T0 + 2 * HOUR]


def test_an_earlier_since_downloads_the_gap_before_and_a_repeat_downloads_no_bars(tmp_path: Path) -> None:
    fetch_to_cache(
        binance(),
        "BTC/USDT:USDT",
        since_ms=T0 + HOUR,
        until_ms=T0 + 2 * HOUR,
        data_dir=tmp_path,
        sleep=NO_SLEEP,
    )

    ex = binance()
    fetch_to_cache(
        ex, "BTC/USDT:USDT", since_ms=T0 - 3 * HOUR, until_ms=T0 + 2 * HOUR, data_dir=tmp_path, sleep=NO_SLEEP
    )
    (call,) = calls_to(ex, "/fapi/v1/klines")
    assert (param(ex, ex.replay_calls.index(call), "startTime"), int(query(call.url)["endTime"])) == (
        T0 - 3 * HOUR,
        T0 + HOUR,
    )  # only the gap before the oldest cached bar
    perp = tmp_path / "binance" / "BTCUSDT" / "perp_1h.parquet"
    assert pd.read_parquet(perp)[c.BAR_TS_COLUMN].tolist() == [T0, T0 + HOUR, T0 + 2 * HOUR]

    again = binance()
    summary = fetch_to_cache(
        again,
        "BTC/USDT:USDT",
        since_ms=T0 - 2 * HOUR,
        until_ms=T0 + 2 * HOUR,
        data_dir=tmp_path,
        sleep=NO_SLEEP,
    )
    assert calls_to(again, "/fapi/v1/klines") == [] and calls_to(again, "/api/v3/klines") == []
    assert next(d for d in summary.datasets if d.name == "perp_1h").ranges == ()


def test_an_interrupted_fetch_leaves_the_old_file_intact_and_the_next_fetch_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch_to_cache(binance(), "BTC/USDT:USDT", since_ms=T0, until_ms=T0, data_dir=tmp_path, sleep=NO_SLEEP)
    perp = tmp_path / "binance" / "BTCUSDT" / "perp_1h.parquet"
    before = perp.read_bytes()

    # one bar per page, and the process is killed while waiting for page 2
    monkeypatch.setitem(h._OHLCV_PLANS, "binance", h.PagingPlan(direction="forward", page_limit=1))
    page_one = binance_window(BINANCE_SPOT_1H["httpResponse"], lambda r: r[0])
    served: list[str] = []

    def dies_on_page_two(url: str, method: str, body: Any) -> Any:
        served.append(url)
        if len(served) == 2:
            raise KeyboardInterrupt
        return page_one(url, method, body)

    with pytest.raises(KeyboardInterrupt):
        fetch_to_cache(
            binance(**{"/fapi/v1/klines": dies_on_page_two}),
            "BTC/USDT:USDT",
            since_ms=T0,
            until_ms=T0 + 2 * HOUR,
            data_dir=tmp_path,
            sleep=NO_SLEEP,
        )
    assert perp.read_bytes() == before  # page 1 was never half-merged into the file
    assert not [p for p in perp.parent.iterdir() if p.name.endswith(".tmp")]

    ex = binance()
    fetch_to_cache(
        ex, "BTC/USDT:USDT", since_ms=T0, until_ms=T0 + 2 * HOUR, data_dir=tmp_path, sleep=NO_SLEEP
    )
    starts = [int(query(call.url)["startTime"]) for call in calls_to(ex, "/fapi/v1/klines")]
    assert starts == [T0, T0 + 1, T0 + HOUR + 1]  # resumed from the cached bar, one bar per page
    assert pd.read_parquet(perp)[c.BAR_TS_COLUMN].tolist() == [T0, T0 + HOUR, T0 + 2 * HOUR]


def test_a_permanent_error_keeps_finished_datasets_and_leaves_the_failed_one_untouched(
    tmp_path: Path,
) -> None:
    ex = binance(**{"/api/v3/klines": ccxt.ExchangeError("Service unavailable for this symbol")})
    with pytest.raises(VenueError, match="spot") as info:
        fetch_to_cache(
            ex, "BTC/USDT:USDT", since_ms=T0, until_ms=T0 + HOUR, data_dir=tmp_path, sleep=NO_SLEEP
        )
    assert info.value.exit_code == 3
    directory = tmp_path / "binance" / "BTCUSDT"
    assert (directory / "perp_1h.parquet").exists() and not (directory / "spot_1h.parquet").exists()
    assert len(calls_to(ex, "/api/v3/klines")) == 1  # not retried


def test_bybit_fetch_pages_klines_and_downloads_public_leverage_tiers(tmp_path: Path) -> None:
    tiers = fixture_entry("bybit", "source_comment", "fetchMarketLeverageTiers")
    kline = bybit_kline_window(BYBIT_PERP_1H["httpResponse"])  # also answers the spot request (same endpoint)
    ex = replay_exchange(
        "bybit",
        {
            "/v5/market/kline": kline,
            "/v5/market/mark-price-kline": bybit_kline_window(
                fixture_entry("bybit", "source_comment", "fetchMarkOHLCV")["httpResponse"]
            ),
            # no recorded Bybit funding-history body exists: the exchange refuses, so the fetch stops there
            "/v5/market/funding/history": ccxt.ExchangeError("no recorded body"),
            "/v5/market/risk-limit": tiers["httpResponse"],
        },
    )
    with pytest.raises(VenueError, match="funding"):
        fetch_to_cache(
            ex, "BTC/USDT:USDT", since_ms=T0, until_ms=T0 + 2 * HOUR, data_dir=tmp_path, sleep=NO_SLEEP
        )
    assert not (tmp_path / "bybit" / "BTCUSDT" / "funding.parquet").exists()
    (funding_call,) = [call for call in ex.replay_calls if "/v5/market/funding/history" in call.url]
    q = query(funding_call.url)  # paged backward: newest 200 settlements up to endTime
    assert (int(q["startTime"]), int(q["endTime"]), q["limit"]) == (T0, T0 + 2 * HOUR, "200")

    # the bars alone, through the same paging the fetch uses
    bars = h.fetch_ohlcv_history(ex, "BTC/USDT:USDT", "1h", T0, T0 + 2 * HOUR, sleep=NO_SLEEP)
    assert bars == BYBIT_PERP_1H["parsed_ccxt_4_5_90"]
    result = h.fetch_leverage_tiers_for(ex, "BTC/USDT:USDT", sleep=NO_SLEEP)
    assert result.available and result.tiers[0]["maxLeverage"] == 100.0


def test_okx_fetch_pages_backward_for_funding_and_bars(tmp_path: Path) -> None:
    first, newest = 1678928640000, 1678928760000
    funding_ts = 1597026383085
    tiers = fixture_entry("okx", "source_comment", "fetchMarketLeverageTiers")
    ex = replay_exchange(
        "okx",
        {
            "/api/v5/public/funding-rate-history": okx_window(
                OKX_FUNDING["httpResponse"], lambda r: r["fundingTime"]
            ),
            "/api/v5/market/": okx_window(
                OKX_CANDLES["httpResponse"], lambda r: r[0]
            ),  # swap page reused for spot
            "/api/v5/public/position-tiers": tiers["httpResponse"],
        },
    )
    summary = fetch_to_cache(
        ex,
        "BTC/USDT:USDT",
        since_ms=funding_ts - HOUR,
        until_ms=newest,
        timeframe="1m",
        data_dir=tmp_path,
        sleep=NO_SLEEP,
    )

    directory = tmp_path / "okx" / "BTC-USDT-SWAP"
    by_name = {d.name: d for d in summary.datasets}
    assert by_name["funding"].rows_after == 1  # the recorded duplicate settlement kept once
    assert by_name["perp_1m"].rows_after == 3 and by_name["mark_1m"].rows_after == 3
    candle_calls = [call for call in ex.replay_calls if "/api/v5/market/" in call.url]
    assert all(int(query(call.url)["after"]) == newest + 1 for call in candle_calls)
    assert {query(call.url)["instId"] for call in candle_calls} == {"BTC-USDT-SWAP", "BTC-USDT"}
    assert "/api/v5/market/history-mark-price-candles" in paths(ex)
    saved = json.loads((directory / "leverage_tiers.json").read_text())
    assert saved["tiers"][0]["maintenanceMarginRate"] == 0.03 and summary.leverage_tiers == 1
    bars = pd.read_parquet(directory / "perp_1m.parquet")
    assert bars[c.BAR_TS_COLUMN].tolist() == [first, first + 60_000, newest]


def test_bad_inputs_fail_before_any_download(tmp_path: Path) -> None:
    ex = binance()
    with pytest.raises(InputError, match="before --since"):
        fetch_to_cache(ex, "BTC/USDT:USDT", since_ms=T0, until_ms=T0 - 1, data_dir=tmp_path)
    with pytest.raises(InputError, match="timeframe '2m'"):
        fetch_to_cache(ex, "BTC/USDT:USDT", since_ms=T0, timeframe="2m", data_dir=tmp_path)
    with pytest.raises(InputError, match="not a perpetual"):
        fetch_to_cache(ex, "BTC/USDT", since_ms=T0, data_dir=tmp_path)
    with pytest.raises(UnknownSymbolError, match="close matches"):
        fetch_to_cache(ex, "BTC/USDT:USDC", since_ms=T0, data_dir=tmp_path)
    assert ex.replay_calls == [] and not (tmp_path / "binance").exists()


def test_fetched_cache_loads_as_market_data(tmp_path: Path) -> None:
    fetch_to_cache(
        binance(), "BTC/USDT:USDT", since_ms=T0, until_ms=T0 + 2 * HOUR, data_dir=tmp_path, sleep=NO_SLEEP
    )
    data = c.load_cached("binance", "BTC/USDT:USDT", "1h", data_dir=tmp_path)
    assert data.bars["spot_close"].tolist() == [43488.71, 43374.8, 43361.11]
    assert data.funding.empty and "no funding settlements cached" in data.notes
    (info,) = c.list_cached(tmp_path)
    assert info.bars == 3 and info.funding_settlements == 0


def test_a_crash_while_writing_the_merged_file_keeps_the_old_one_and_the_next_fetch_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch_to_cache(binance(), "BTC/USDT:USDT", since_ms=T0, until_ms=T0, data_dir=tmp_path, sleep=NO_SLEEP)
    directory = tmp_path / "binance" / "BTCUSDT"
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    real_replace = c.os.replace

    def power_cut(src: Any, dst: Any) -> None:
        if str(dst).endswith("perp_1h.parquet"):
            raise OSError("simulated power cut during the rename")
        real_replace(src, dst)

    monkeypatch.setattr(c.os, "replace", power_cut)
    with pytest.raises(OSError, match="power cut"):
        fetch_to_cache(
            binance(), "BTC/USDT:USDT", since_ms=T0, until_ms=T0 + 2 * HOUR, data_dir=tmp_path, sleep=NO_SLEEP
        )
    monkeypatch.setattr(c.os, "replace", real_replace)
    assert (directory / "perp_1h.parquet").read_bytes() == before["perp_1h.parquet"]
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]

    ex = binance()
    fetch_to_cache(
        ex, "BTC/USDT:USDT", since_ms=T0, until_ms=T0 + 2 * HOUR, data_dir=tmp_path, sleep=NO_SLEEP
    )
    (call,) = calls_to(ex, "/fapi/v1/klines")
    assert int(query(call.url)["startTime"]) == T0  # resumes from the newest bar the old file holds
    assert pd.read_parquet(directory / "perp_1h.parquet")[c.BAR_TS_COLUMN].tolist() == [
        T0,
        T0 + HOUR,
        T0 + 2 * HOUR,
    ]


def test_check_cached_reports_real_gaps_as_warnings_and_a_clean_set_as_none(tmp_path: Path) -> None:
    from perphedge.data.bundled import load_bundled
    from perphedge.data.fetch import check_cached
    from tests.data.test_cache import _write_cache_from

    hourly = load_bundled("BTCUSDT", "1h")
    day = pd.Timedelta(days=1)
    gap_start = pd.Timestamp("2020-02-19", tz="UTC")  # Binance's real 6-hour hole after 11:00 that day
    _write_cache_from(hourly.between(gap_start, gap_start + 2 * day), tmp_path / "gap")
    clean_start = pd.Timestamp("2024-03-01", tz="UTC")
    _write_cache_from(hourly.between(clean_start, clean_start + 3 * day), tmp_path / "clean")

    assert check_cached("binance", "BTCUSDT", "1h", tmp_path / "gap") == [
        "check: bars: gap of 5 h (5 missing 1h bar(s)) after 2020-02-19T11:00:00+00:00"
    ]
    assert check_cached("binance", "BTCUSDT", "1h", tmp_path / "clean") == []
    assert (
        check_cached("binance", "BTCUSDT", "4h", tmp_path / "clean") == []
    )  # nothing cached: nothing to check


def test_a_fetch_reports_what_the_check_finds_in_the_downloaded_data(tmp_path: Path) -> None:
    summary = fetch_to_cache(
        binance(),
        "BTC/USDT:USDT",
        since_ms=SETTLE - HOUR,
        until_ms=T0 + 2 * HOUR,
        data_dir=tmp_path,
        sleep=NO_SLEEP,
    )
    # one recorded settlement: its interval cannot be inferred, and the check says so instead of guessing 8 h
    assert [w for w in summary.warnings if w.startswith("check:")] == [
        "check: funding: interval_hours at 2021-05-17T16:00:00+00:00 is not one of (1, 2, 4, 8) h"
    ]
