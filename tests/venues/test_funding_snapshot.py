"""Per-exchange normalisation of ccxt funding fields, on real ccxt objects fed recorded responses.

Bodies: tests/fixtures/ccxt (ccxt's recorded static responses and maintainers' source-comment
examples, MIT) and tests/scan/fixtures/binance_fundingInfo_source_comment.json (same origin).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perphedge.errors import ConfigError, DataError, VenueError, VenueUnavailable
from perphedge.venues import funding_snapshot as fs
from tests.kit.ccxt_replay import fixture_body, fixture_entry, replay_exchange, replay_exchange_async

SCAN_FIXTURES = Path(__file__).resolve().parent.parent / "scan" / "fixtures"


def _binance_funding_info_body() -> Any:
    return json.loads((SCAN_FIXTURES / "binance_fundingInfo_source_comment.json").read_text())["httpResponse"]


def _snapshot(
    exchange_id: str, routes: dict[str, Any], **kwargs: Any
) -> tuple[fs.ExchangeSnapshot, list[str]]:
    async def go() -> tuple[fs.ExchangeSnapshot, list[str]]:
        ex = replay_exchange_async(exchange_id, routes)
        try:
            snap = await fs.fetch_exchange_snapshot(ex, retry_attempts=1, **kwargs)
            return snap, [c.url for c in ex.replay_calls]
        finally:
            await ex.close()

    return asyncio.run(go())


# --- the mapping, exchange by exchange ---------------------------------------------------------------


def test_bybit_recorded_tickers_next_settlement_is_next_funding_time_and_interval_from_market() -> None:
    ex = replay_exchange(
        "bybit", {"/v5/market/tickers": fixture_body("bybit", "static_response", "fetchFundingRates")}
    )
    raw = ex.fetch_funding_rates(["BTC/USDT:USDT"])["BTC/USDT:USDT"]
    quote = fs.normalise_funding_rate("bybit", raw, ex.market("BTC/USDT:USDT"), spot_symbols=["BTC/USDT"])
    # recorded body: fundingRate "0.0001", nextFundingTime "1730736000000" (2024-11-04 16:00 UTC)
    assert quote.rate_per_interval == 0.0001
    assert quote.next_settle_ts_ms == 1730736000000
    # instruments-info fundingInterval 480 minutes in the recorded market -> 8 h
    assert ex.market("BTC/USDT:USDT")["info"]["fundingInterval"] in ("480", 480)
    assert quote.interval_hours == 8.0 and "bybit" in (quote.interval_source or "")
    assert quote.mark_price_usd == 68649.9 and quote.index_price_usd == 68650.75
    assert quote.observed_ts_ms == 1730729903941
    assert quote.spot_symbol == "BTC/USDT" and quote.rate_kind == fs.RATE_PREDICTED_NEXT


def test_bybit_recorded_single_funding_rate_normalises_the_same_way() -> None:
    ex = replay_exchange(
        "bybit", {"/v5/market/tickers": fixture_body("bybit", "static_response", "fetchFundingRate")}
    )
    quote = fs.normalise_funding_rate(
        "bybit", ex.fetch_funding_rate("BTC/USDT:USDT"), ex.market("BTC/USDT:USDT")
    )
    assert (quote.next_settle_ts_ms, quote.interval_hours, quote.mark_price_usd) == (
        1730736000000,
        8.0,
        68591.46,
    )
    assert quote.spot_symbol is None  # no spot symbols passed: not a carry pair


def test_binance_premium_index_next_funding_time_and_interval_default_when_absent_from_funding_info() -> None:
    routes = {
        "/fapi/v1/premiumIndex": fixture_body("binance", "source_comment", "fetchFundingRates"),
        "/fapi/v1/fundingInfo": _binance_funding_info_body(),
        "/api/v3/ticker/24hr": ccxt.ExchangeNotAvailable("not recorded"),
        "/fapi/v1/ticker/24hr": ccxt.ExchangeNotAvailable("not recorded"),
    }
    snap, urls = _snapshot("binance", routes)
    (quote,) = snap.quotes
    # premiumIndex sample: lastFundingRate 0.00063521, nextFundingTime 1621267200000 (16:00 UTC), no interval
    assert quote.perp_symbol == "BTC/USDT:USDT" and quote.spot_symbol == "BTC/USDT"
    assert quote.rate_per_interval == 0.00063521
    assert quote.next_settle_ts_ms == 1621267200000
    assert quote.mark_price_usd == 45802.81129892 and quote.observed_ts_ms == 1621252344001
    # fundingInfo lists only BLZUSDT: BTCUSDT keeps Binance's documented default of 8 h
    assert quote.interval_hours == 8.0 and "default" in (quote.interval_source or "")
    assert any("/fapi/v1/fundingInfo" in u for u in urls)


def test_binance_interval_stays_unknown_when_funding_info_fails() -> None:
    routes = {
        "/fapi/v1/premiumIndex": fixture_body("binance", "source_comment", "fetchFundingRates"),
        "/fapi/v1/fundingInfo": ccxt.ExchangeNotAvailable("down"),
        "/api/v3/ticker/24hr": ccxt.ExchangeNotAvailable("not recorded"),
        "/fapi/v1/ticker/24hr": ccxt.ExchangeNotAvailable("not recorded"),
    }
    snap, _ = _snapshot("binance", routes)
    assert snap.quotes[0].interval_hours is None  # never assumed 8 h without the exchange saying so
    assert any("funding intervals unavailable" in w for w in snap.warnings)


def test_okx_next_settlement_is_funding_time_not_next_funding_time() -> None:
    entry = fixture_entry("okx", "source_comment", "fetchFundingRates")
    ex = replay_exchange("okx", {"/api/v5/public/funding-rate": entry["httpResponse"]})
    rates = ex.fetch_funding_rates()
    raw = rates["BTC/USD:BTC"]  # the maintainers' sample is the inverse BTC-USD-SWAP
    quote = fs.normalise_funding_rate("okx", raw, ex.market("BTC/USD:BTC"))
    # body: fundingTime 1634256000000 (the coming settlement), nextFundingTime 1634284800000 (the one after)
    assert quote.next_settle_ts_ms == 1634256000000
    assert raw["nextFundingTimestamp"] == 1634284800000 != quote.next_settle_ts_ms
    assert quote.rate_per_interval == 0.00027815  # not nextFundingRate 0.00017
    assert quote.interval_hours == 8.0  # 1634284800000 − 1634256000000 = 8 h
    assert "instId=ANY" in ex.replay_calls[0].url


def test_okx_snapshot_without_linear_quotes_reports_it() -> None:
    snap, _ = _snapshot(
        "okx", {"/api/v5/public/funding-rate": fixture_body("okx", "source_comment", "fetchFundingRates")}
    )
    assert snap.quotes == ()
    assert any(
        "no funding rate in the exchange's answer" in w and "BTC/USDT:USDT" in w for w in snap.warnings
    )


def test_bitget_current_fund_rate_next_update_and_interval_hours() -> None:
    entry = fixture_entry("bitget", "source_comment", "fetchFundingIntervals")
    ex = replay_exchange(
        "bitget", {"/api/v2/mix/market/current-fund-rate": entry["httpResponse"]}, options={"uta": False}
    )
    raw = ex.fetch_funding_intervals(["BTC/USDT:USDT"])["BTC/USDT:USDT"]
    quote = fs.normalise_funding_rate("bitget", raw, ex.market("BTC/USDT:USDT"), spot_symbols=["BTC/USDT"])
    # body: fundingRate "-0.000024", fundingRateInterval "8", nextUpdate "1761667200000"
    assert (quote.rate_per_interval, quote.interval_hours, quote.next_settle_ts_ms) == (
        -0.000024,
        8.0,
        1761667200000,
    )


def test_mexc_has_no_bulk_call_so_each_symbol_is_fetched() -> None:
    routes = {"/api/v1/contract/funding_rate/": fixture_body("mexc", "source_comment", "fetchFundingRate")}
    snap, urls = _snapshot("mexc", routes)
    (quote,) = snap.quotes
    assert urls == ["https://api.mexc.com/api/v1/contract/funding_rate/BTC_USDT"]
    # body: fundingRate 1.4e-05, nextSettleTime 1643241600000, collectCycle 8
    assert (quote.rate_per_interval, quote.next_settle_ts_ms, quote.interval_hours) == (
        1.4e-05,
        1643241600000,
        8.0,
    )
    # the recorded mexc spot market BTC/USDT is inactive: the perp is not a carry pair, no tickers fetched
    assert quote.spot_symbol is None and snap.spot_tickers == {} and snap.perp_tickers == {}


def test_spot_ticker_without_quote_volume_is_estimated_from_base_volume() -> None:
    ex = replay_exchange(
        "mexc", {"/api/v3/ticker/24hr": fixture_body("mexc", "source_comment", "fetchTickers")}
    )
    ticker = fs.normalise_ticker(ex.fetch_tickers()["BTC/USDT"])
    # mexc sample: lastPrice 46263.71, volume 1732.461487, quoteVolume absent
    assert ticker.last_price_usd == 46263.71 and ticker.volume_estimated
    assert ticker.quote_volume_24h_usd == pytest.approx(1732.461487 * 46263.71)


def test_recorded_spot_ticker_volume_is_the_exchange_quote_volume() -> None:
    ex = replay_exchange(
        "okx", {"/api/v5/market/ticker": fixture_body("okx", "static_response", "fetchTicker")}
    )
    ticker = fs.normalise_ticker(ex.fetch_ticker("BTC/USDT"))
    raw = fixture_body("okx", "static_response", "fetchTicker")["data"][0]
    assert ticker.quote_volume_24h_usd == float(raw["volCcy24h"]) and not ticker.volume_estimated
    assert ticker.last_price_usd == 73384.8 and ticker.ts_ms == int(raw["ts"])


# --- failures ------------------------------------------------------------------------------------------


def test_bulk_funding_failure_fails_the_exchange() -> None:
    with pytest.raises(VenueUnavailable, match="fetch funding rates"):
        _snapshot("bybit", {"/v5/market/tickers": ccxt.ExchangeNotAvailable("maintenance")})


def test_per_symbol_funding_failing_everywhere_fails_the_exchange() -> None:
    with pytest.raises(VenueError, match="every symbol"):
        _snapshot("mexc", {"/api/v1/contract/funding_rate/": ccxt.ExchangeNotAvailable("down")})


def test_ticker_failures_are_warnings_not_failures() -> None:
    def bybit(url: str, method: str, body: Any) -> Any:
        if "category=linear" in url:
            return fixture_body("bybit", "static_response", "fetchFundingRates")
        raise ccxt.ExchangeNotAvailable("spot not recorded")

    snap, urls = _snapshot("bybit", {"/v5/market/tickers": bybit})
    assert [q.perp_symbol for q in snap.quotes] == ["BTC/USDT:USDT"]
    assert snap.perp_tickers["BTC/USDT:USDT"].quote_volume_24h_usd == 7940401914.5025  # turnover24h
    assert "BTC/USDT" not in snap.spot_tickers
    assert any("spot ticker unavailable" in w for w in snap.warnings)
    assert any("symbol=BTCUSDT&category=spot" in u for u in urls)  # the per-symbol fallback was tried


def test_bulk_ticker_request_names_few_symbols_and_asks_for_the_market_type_for_many() -> None:
    assert fs.bulk_ticker_request(["BTC/USDT"], "spot") == (["BTC/USDT"], {})
    many = [f"S{i}/USDT" for i in range(fs.MAX_SYMBOLS_IN_TICKER_REQUEST + 1)]
    assert fs.bulk_ticker_request(many, "spot") == (None, {"type": "spot"})
    assert fs.bulk_ticker_request(many, "perp") == (None, {"type": "swap", "subType": "linear"})


def test_all_tickers_of_a_market_type_are_filtered_to_the_pairs() -> None:
    # the recorded OKX tickers sample (instType SPOT, several pairs), asked for by market type
    ex = replay_exchange(
        "okx", {"/api/v5/market/tickers": fixture_body("okx", "source_comment", "fetchTickers")}
    )
    symbols_arg, params = fs.bulk_ticker_request([f"S{i}/USDT" for i in range(60)], "spot")
    ex.fetch_tickers(symbols_arg, params)
    assert "instType=SPOT" in ex.replay_calls[0].url


def test_unmapped_exchange_is_refused_not_guessed() -> None:
    with pytest.raises(ConfigError, match="no funding-field mapping"):
        fs.mapping_for("gate")


@pytest.mark.parametrize("text", ["8", "h", "0h", "-4h", "eighth"])
def test_malformed_interval_is_a_data_error(text: str) -> None:
    with pytest.raises(DataError, match="interval"):
        fs.parse_interval_hours(text, where="x")


def test_missing_funding_rate_is_a_data_error() -> None:
    ex = replay_exchange(
        "bybit", {"/v5/market/tickers": fixture_body("bybit", "static_response", "fetchFundingRates")}
    )
    raw = dict(ex.fetch_funding_rates(["BTC/USDT:USDT"])["BTC/USDT:USDT"], fundingRate=None)
    with pytest.raises(DataError, match="no fundingRate"):
        fs.normalise_funding_rate("bybit", raw, ex.market("BTC/USDT:USDT"))


# --- history -------------------------------------------------------------------------------------------


def _history(exchange_id: str, routes: dict[str, Any], **kwargs: Any) -> tuple[fs.FundingHistory, list[str]]:
    async def go() -> tuple[fs.FundingHistory, list[str]]:
        ex = replay_exchange_async(exchange_id, routes)
        try:
            history = await fs.fetch_recent_funding_history(
                ex, "BTC/USDT:USDT", retry_sleep=lambda s: None, **kwargs
            )
            return history, [c.url for c in ex.replay_calls]
        finally:
            await ex.close()

    return asyncio.run(go())


def test_recent_history_pages_through_the_shared_downloader_on_the_async_exchange() -> None:
    body = fixture_body("binance", "source_comment", "fetchFundingRateHistory")
    history, urls = _history(
        "binance",
        {"/fapi/v1/fundingRate": body},
        since_ms=1621267200000 - 30 * 86_400_000,
        until_ms=1621267200000 + 3_600_000,
    )
    # sample: BTCUSDT 0.00063521 at 1621267200000; one short page (< 1000 rows) ends Binance's forward paging
    assert history.settle_ts_ms == (1621267200000,) and history.rates == (0.00063521,)
    assert len(urls) == 1 and "startTime=" in urls[0] and "limit=1000" in urls[0]


def test_history_outside_the_window_is_left_out() -> None:
    body = fixture_body("binance", "source_comment", "fetchFundingRateHistory")
    history, _ = _history(
        "binance",
        {"/fapi/v1/fundingRate": body},
        since_ms=1621267200000 - 86_400_000,
        until_ms=1621267200000 - 1,
    )
    assert history.settle_ts_ms == ()


def test_history_failure_is_a_venue_error() -> None:
    with pytest.raises(VenueUnavailable):
        _history("binance", {"/fapi/v1/fundingRate": ccxt.ExchangeNotAvailable("down")}, since_ms=0)
