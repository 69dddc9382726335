"""``--history`` through the data cache: real ccxt objects answering Binance's recorded funding history.

Body: tests/fixtures/ccxt/binance/source_comment/fetchFundingRateHistory.json (the maintainers'
sample of GET /fapi/v1/fundingRate: BTCUSDT 0.00063521 at 1621267200000 = 2021-05-17 16:00 UTC).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt
import pytest

from perphedge.data.cache import FUNDING_NAME, read_meta, read_table
from perphedge.errors import VenueUnavailable
from perphedge.scan.history_cache import cached_funding_history
from perphedge.scan.rank import ScanSettings
from perphedge.scan.scanner import run_scan
from tests.kit.ccxt_replay import fixture_body, replay_exchange_async
from tests.scan.test_scanner import Factory, recorded_routes

SETTLED = 1621267200000
HOUR = 3_600_000
DAY = 24 * HOUR


def _history(routes: dict[str, Any], data_dir: Path, since_ms: int, until_ms: int) -> tuple[Any, list[str]]:
    async def go() -> tuple[Any, list[str]]:
        ex = replay_exchange_async("binance", routes)
        try:
            cached = await cached_funding_history(
                ex,
                "BTC/USDT:USDT",
                since_ms=since_ms,
                until_ms=until_ms,
                data_dir=data_dir,
                spot_symbol="BTC/USDT",
                retry_sleep=lambda s: None,
            )
            return cached, [c.url for c in ex.replay_calls]
        finally:
            await ex.close()

    return asyncio.run(go())


def _start_time(url: str) -> int:
    return int(parse_qs(urlparse(url).query)["startTime"][0])


def test_history_is_written_in_the_data_cache_format_and_served_from_it(tmp_path: Path) -> None:
    body = fixture_body("binance", "source_comment", "fetchFundingRateHistory")
    cached, urls = _history({"/fapi/v1/fundingRate": body}, tmp_path, SETTLED - 30 * DAY, SETTLED + HOUR)
    assert cached.history.settle_ts_ms == (SETTLED,) and cached.history.rates == (0.00063521,)
    assert cached.rows_downloaded == 1 and len(urls) == 1
    # the same file and meta record that perphedge data fetch keeps for this market
    directory = tmp_path / "binance" / "BTCUSDT"
    assert cached.path == directory / FUNDING_NAME
    frame = read_table(directory / FUNDING_NAME, "settle_ts_ms")
    assert frame is not None and frame["settle_ts_ms"].tolist() == [SETTLED]
    assert frame["rate_per_interval"].tolist() == [0.00063521]
    assert frame["mark_price"].isna().all()  # the sample record has no markPrice: left unknown, not filled
    meta = read_meta(directory)
    assert meta is not None and meta["ccxt_symbol"] == "BTC/USDT:USDT" and meta["market_id"] == "BTCUSDT"
    assert meta["datasets"]["funding"] == {
        "covered_since_ms": SETTLED - 30 * DAY,
        "first_ts_ms": SETTLED,
        "last_ts_ms": SETTLED,
        "rows": 1,
    }

    # a window the cache already covers needs no request at all: the exchange is down and it still answers
    down = {"/fapi/v1/fundingRate": ccxt.ExchangeNotAvailable("down")}
    again, urls = _history(down, tmp_path, SETTLED - 29 * DAY, SETTLED)
    assert urls == [] and again.rows_downloaded == 0 and again.downloaded_ranges == ()
    assert again.history.settle_ts_ms == (SETTLED,) and again.history.rates == (0.00063521,)


def test_a_later_window_downloads_only_from_the_newest_cached_settlement(tmp_path: Path) -> None:
    body = fixture_body("binance", "source_comment", "fetchFundingRateHistory")
    _history({"/fapi/v1/fundingRate": body}, tmp_path, SETTLED - 30 * DAY, SETTLED + HOUR)
    later, urls = _history({"/fapi/v1/fundingRate": body}, tmp_path, SETTLED - 29 * DAY, SETTLED + DAY)
    # the newest cached settlement is asked for again (as data fetch does), nothing older
    assert len(urls) == 1 and _start_time(urls[0]) == SETTLED
    assert later.downloaded_ranges == ((SETTLED, SETTLED + DAY),)
    meta = read_meta(tmp_path / "binance" / "BTCUSDT")
    assert meta is not None and meta["datasets"]["funding"]["covered_since_ms"] == SETTLED - 30 * DAY


def test_a_failed_download_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    body = fixture_body("binance", "source_comment", "fetchFundingRateHistory")
    _history({"/fapi/v1/fundingRate": body}, tmp_path, SETTLED - 30 * DAY, SETTLED + HOUR)
    path = tmp_path / "binance" / "BTCUSDT" / FUNDING_NAME
    before = path.read_bytes()
    with pytest.raises(VenueUnavailable):
        _history(
            {"/fapi/v1/fundingRate": ccxt.ExchangeNotAvailable("down")}, tmp_path, SETTLED, SETTLED + DAY
        )
    assert path.read_bytes() == before


def test_scan_with_history_uses_the_cache_and_says_so(tmp_path: Path) -> None:
    as_of = SETTLED + HOUR

    def scan_once() -> tuple[Any, Factory]:
        factory = Factory(recorded_routes())
        result = run_scan(
            ["binance"],
            ScanSettings(),
            retry_attempts=1,
            history=True,
            exchange_factory=factory,
            now_ms=lambda: as_of,
            data_dir=tmp_path,
        )
        return result, factory

    first, factory = scan_once()
    urls = [c.url for c in factory.built["binance"].replay_calls if "/fapi/v1/fundingRate" in c.url]
    assert [_start_time(u) for u in urls] == [as_of - 30 * DAY]
    assert first.history_cache is not None and first.history_cache.pairs == 1
    assert first.history_cache.settlements_downloaded == 1 and first.history_cache.dir == str(tmp_path)
    second, factory = scan_once()
    urls = [c.url for c in factory.built["binance"].replay_calls if "/fapi/v1/fundingRate" in c.url]
    assert [_start_time(u) for u in urls] == [SETTLED]  # only from the newest cached settlement on
    assert (
        second.candidates[0].apr_mean_7d
        == first.candidates[0].apr_mean_7d
        == pytest.approx(0.00063521 * 3 * 365)
    )
    assert second.to_json()["history_cache"] == {
        "dir": str(tmp_path),
        "pairs": 1,
        "settlements_downloaded": 1,
    }


def test_an_unusable_cache_directory_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = run_scan(
        ["binance"],
        ScanSettings(),
        retry_attempts=1,
        history=True,
        exchange_factory=Factory(recorded_routes()),
        now_ms=lambda: SETTLED + HOUR,
        data_dir=not_a_dir,
    )
    (c,) = result.candidates
    assert c.apr_mean_7d is None and c.apr_current is not None
    assert any(
        "history cache cannot be used" in w.message and "--no-cache" in w.message for w in result.warnings
    )


def test_without_a_cache_directory_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_scan(
        ["binance"],
        ScanSettings(),
        retry_attempts=1,
        history=True,
        exchange_factory=Factory(recorded_routes()),
        now_ms=lambda: SETTLED + HOUR,
    )
    assert result.history_cache is None and result.candidates[0].settlements_7d == 1
    assert list(tmp_path.iterdir()) == []
