"""Paginated history downloads on real ccxt exchange objects answering from recorded responses.

The routes below serve ONLY recorded rows (tests/fixtures/ccxt, MIT, see its README): a callable route
reads the request's own paging parameters (startTime/endTime/limit for Binance, start/limit for Bybit,
before/after/limit for OKX) and returns the recorded rows inside that window, the way the exchange
would. No exchange payload is invented; an empty page is the recorded rows filtered to nothing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import ccxt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.errors import InputError, UnknownSymbolError, VenueError, VenueUnavailable
from perphedge.venues import history as h
from tests.kit.ccxt_replay import InOrder, fixture_body, fixture_entry, replay_exchange

NO_SLEEP = lambda seconds: None  # noqa: E731


def query(url: str) -> dict[str, str]:
    """Return the query parameters of a request URL (last value wins)."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def param(exchange: Any, index: int, name: str) -> int | None:
    value = query(exchange.replay_calls[index].url).get(name)
    return None if value is None else int(value)


# --- routes that page over recorded rows like the exchange does -----------------------------------


def binance_window(rows: list[Any], ts_of: Any) -> Any:
    """Binance: the oldest ``limit`` rows with startTime <= ts <= endTime, ascending."""

    def route(url: str, method: str, body: Any) -> Any:
        q = query(url)
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        limit = int(q.get("limit", 500))
        return [r for r in rows if start <= int(ts_of(r)) <= end][:limit]

    return route


def bybit_kline_window(body: dict[str, Any]) -> Any:
    """Bybit kline: the ``limit`` bars from ``start`` on, newest first (as recorded)."""

    def route(url: str, method: str, request_body: Any) -> Any:
        q = query(url)
        start, limit = int(q.get("start", 0)), int(q.get("limit", 200))
        ascending = sorted(body["result"]["list"], key=lambda r: int(r[0]))
        picked = [r for r in ascending if int(r[0]) >= start][:limit]
        out = dict(body)
        out["result"] = {**body["result"], "list": list(reversed(picked))}
        return out

    return route


def okx_window(body: dict[str, Any], ts_of: Any) -> Any:
    """OKX: the newest ``limit`` rows with before < ts < after, newest first."""

    def route(url: str, method: str, request_body: Any) -> Any:
        q = query(url)
        before, after = int(q.get("before", -1)), int(q.get("after", 2**62))
        limit = int(q.get("limit", 100))
        newest_first = sorted(body["data"], key=lambda r: -int(ts_of(r)))
        return {**body, "data": [r for r in newest_first if before < int(ts_of(r)) < after][:limit]}

    return route


BINANCE_SPOT_1H = fixture_entry("binance", "static_response", "fetchOHLCV", 0)  # BTC/USDT 1h, 2024-01-30
BINANCE_FUNDING = fixture_entry("binance", "source_comment", "fetchFundingRateHistory")
BYBIT_PERP_1H = fixture_entry("bybit", "static_response", "fetchOHLCV")  # BTC/USDT:USDT 1h, 2024-01-30
OKX_CANDLES = fixture_entry("okx", "source_comment", "fetchOHLCV")  # BTC-USDT-SWAP 1m, 2023-03-16
OKX_FUNDING = fixture_entry("okx", "source_comment", "fetchFundingRateHistory")

T0 = 1706630400000  # 2024-01-30T16:00Z, the first recorded 1h bar of Binance spot and Bybit linear
HOUR = 3_600_000


def binance_spot_exchange() -> Any:
    rows = BINANCE_SPOT_1H["httpResponse"]
    return replay_exchange("binance", {"/api/v3/klines": binance_window(rows, lambda r: r[0])})


# --- Binance: forward paging -------------------------------------------------------------------------


def test_binance_ohlcv_pages_forward_with_start_time_advancing_past_the_newest_bar() -> None:
    ex = binance_spot_exchange()
    plan = h.PagingPlan(direction="forward", page_limit=2)
    pauses: list[float] = []

    bars = h.fetch_ohlcv_history(
        ex, "BTC/USDT", "1h", T0 - 1000, T0 + 5 * HOUR, plan=plan, sleep=pauses.append
    )

    assert bars == BINANCE_SPOT_1H["parsed_ccxt_4_5_90"]
    assert [urlsplit(c.url).path for c in ex.replay_calls] == ["/api/v3/klines"] * 2
    assert [param(ex, i, "startTime") for i in range(2)] == [T0 - 1000, T0 + HOUR + 1]
    assert all(param(ex, i, "endTime") == T0 + 5 * HOUR for i in range(2))
    # the replaying exchange has ccxt's rate limiter off, so we pause rateLimit (50 ms) between pages
    assert pauses == [ex.rateLimit / 1000] == [0.05]


def test_binance_ohlcv_default_plan_asks_1000_rows_and_stops_on_the_short_page() -> None:
    ex = binance_spot_exchange()
    bars = h.fetch_ohlcv_history(ex, "BTC/USDT", "1h", T0, None, sleep=NO_SLEEP)
    assert len(bars) == 3 and len(ex.replay_calls) == 1
    assert param(ex, 0, "limit") == 1000 and param(ex, 0, "endTime") is None


def test_binance_ohlcv_keeps_only_bars_inside_since_until() -> None:
    ex = binance_spot_exchange()
    bars = h.fetch_ohlcv_history(ex, "BTC/USDT", "1h", T0 + 1, T0 + HOUR, sleep=NO_SLEEP)
    assert [b[0] for b in bars] == [T0 + HOUR]


def test_binance_funding_pages_forward_and_stops_on_an_empty_page() -> None:
    rows = BINANCE_FUNDING["httpResponse"]
    ex = replay_exchange(
        "binance", {"/fapi/v1/fundingRate": binance_window(rows, lambda r: r["fundingTime"])}
    )
    settle_ms = 1621267200000  # 2021-05-17T16:00Z
    seen: list[h.PageProgress] = []

    out = h.fetch_funding_rate_history(
        ex,
        "BTC/USDT:USDT",
        settle_ms - 8 * HOUR,
        settle_ms + 8 * HOUR,
        plan=h.PagingPlan(direction="forward", page_limit=1),
        progress=seen.append,
        sleep=NO_SLEEP,
    )

    assert [(r["timestamp"], r["fundingRate"]) for r in out] == [(settle_ms, 0.00063521)]
    assert [param(ex, i, "startTime") for i in range(2)] == [settle_ms - 8 * HOUR, settle_ms + 1]
    assert len(seen) == 1 and seen[0].pages == 1 and seen[0].rows == 1
    assert seen[0].fraction_done == pytest.approx(0.5, abs=1e-6)


# --- Bybit: forward kline paging (no recorded funding-history body exists for bybit) -------------------


def test_bybit_kline_pages_forward_from_start_without_end_and_sorts_ascending() -> None:
    ex = replay_exchange("bybit", {"/v5/market/kline": bybit_kline_window(BYBIT_PERP_1H["httpResponse"])})
    bars = h.fetch_ohlcv_history(
        ex,
        "BTC/USDT:USDT",
        "1h",
        T0 - 1000,
        T0 + 2 * HOUR,
        plan=h.PagingPlan(direction="forward", page_limit=2, upper_param=None),
        sleep=NO_SLEEP,
    )
    assert bars == BYBIT_PERP_1H["parsed_ccxt_4_5_90"]
    # ccxt rounds ``start`` up to the bar grid; the second page starts right after the newest bar
    assert [param(ex, i, "start") for i in range(2)] == [T0, T0 + 2 * HOUR]
    assert all("end" not in query(c.url) for c in ex.replay_calls)


def test_bybit_default_kline_plan_asks_1000_bars_and_stops_at_until() -> None:
    ex = replay_exchange("bybit", {"/v5/market/kline": bybit_kline_window(BYBIT_PERP_1H["httpResponse"])})
    bars = h.fetch_ohlcv_history(ex, "BTC/USDT:USDT", "1h", T0, T0 + HOUR, sleep=NO_SLEEP)
    assert [b[0] for b in bars] == [T0, T0 + HOUR]
    assert param(ex, 0, "limit") == 1000 and len(ex.replay_calls) == 1


def test_bybit_mark_price_bars_use_the_mark_price_kline_endpoint() -> None:
    body = fixture_body(
        "bybit", "source_comment", "fetchMarkOHLCV"
    )  # maintainers' sample (BTCUSD, 2022-12-09)
    ex = replay_exchange("bybit", {"/v5/market/mark-price-kline": bybit_kline_window(body)})
    bars = h.fetch_ohlcv_history(
        ex, "BTC/USDT:USDT", "1h", 1670601600000, 1670608800000, price="mark", sleep=NO_SLEEP
    )
    assert bars == fixture_entry("bybit", "source_comment", "fetchMarkOHLCV")["parsed_ccxt_4_5_90"]
    assert urlsplit(ex.replay_calls[0].url).path == "/v5/market/mark-price-kline"


# --- OKX: backward paging with ``after`` -------------------------------------------------------------


def test_okx_candles_page_backward_with_after_moving_below_the_oldest_bar() -> None:
    first, newest = 1678928640000, 1678928760000
    ex = replay_exchange("okx", {"/api/v5/market/": okx_window(OKX_CANDLES["httpResponse"], lambda r: r[0])})
    plan = h.PagingPlan(direction="backward", page_limit=2, upper_param="until", upper_is_exclusive=True)

    bars = h.fetch_ohlcv_history(ex, "BTC/USDT:USDT", "1m", first, newest, plan=plan, sleep=NO_SLEEP)

    assert bars == OKX_CANDLES["parsed_ccxt_4_5_90"]
    # page 1: rows before newest + 1 ms; page 2: rows before the oldest bar of page 1
    assert [param(ex, i, "after") for i in range(2)] == [newest + 1, newest - 60_000]
    assert all(param(ex, i, "before") == first - 1 for i in range(2))


def test_okx_default_candle_plan_asks_100_and_uses_history_candles_for_old_bars() -> None:
    ex = replay_exchange("okx", {"/api/v5/market/": okx_window(OKX_CANDLES["httpResponse"], lambda r: r[0])})
    bars = h.fetch_ohlcv_history(ex, "BTC/USDT:USDT", "1m", 1678928640000, 1678928760000, sleep=NO_SLEEP)
    assert len(bars) == 3
    assert urlsplit(ex.replay_calls[0].url).path == "/api/v5/market/history-candles"
    assert param(ex, 0, "limit") == 100


def test_okx_funding_pages_backward_and_de_duplicates_on_timestamp() -> None:
    # the maintainers' sample holds the same settlement twice
    ex = replay_exchange("okx", {"/api/v5/public/funding-rate-history": OKX_FUNDING["httpResponse"]})
    ts = 1597026383085
    out = h.fetch_funding_rate_history(ex, "BTC/USDT:USDT", ts - HOUR, ts + HOUR, sleep=NO_SLEEP)
    assert [(r["timestamp"], r["fundingRate"]) for r in out] == [(ts, 0.017)]
    assert param(ex, 0, "after") == ts + HOUR + 1 and param(ex, 0, "before") == ts - HOUR - 1
    assert param(ex, 0, "limit") == 100 and len(ex.replay_calls) == 1


# --- stop conditions, retries and errors ---------------------------------------------------------------


def test_an_exchange_that_ignores_the_start_time_cannot_loop_forever() -> None:
    # the same recorded page on every call: ccxt drops rows before ``since``, so page 2 is empty: stop
    ex = replay_exchange("binance", {"/api/v3/klines": BINANCE_SPOT_1H["httpResponse"]})
    bars = h.fetch_ohlcv_history(
        ex,
        "BTC/USDT",
        "1h",
        T0,
        T0 + 10 * HOUR,
        plan=h.PagingPlan(direction="forward", page_limit=3),
        sleep=NO_SLEEP,
    )
    assert bars == BINANCE_SPOT_1H["parsed_ccxt_4_5_90"]
    assert len(ex.replay_calls) == 2


def test_an_exchange_that_ignores_the_end_time_stops_with_no_progress_error() -> None:
    ex = replay_exchange("okx", {"/api/v5/market/": OKX_CANDLES["httpResponse"]})  # same page every time
    plan = h.PagingPlan(direction="backward", page_limit=3, upper_param="until", upper_is_exclusive=True)
    with pytest.raises(VenueError, match="no progress"):
        h.fetch_ohlcv_history(
            ex, "BTC/USDT:USDT", "1m", 1678928000000, 1678928760000, plan=plan, sleep=NO_SLEEP
        )
    assert len(ex.replay_calls) == 2


def test_network_errors_are_retried_with_backoff_then_the_page_is_served() -> None:
    rows = BINANCE_SPOT_1H["httpResponse"]
    ex = replay_exchange("binance", {"/api/v3/klines": InOrder([ccxt.RequestTimeout("timed out"), rows])})
    delays: list[float] = []
    bars = h.fetch_ohlcv_history(ex, "BTC/USDT", "1h", T0, T0 + 2 * HOUR, sleep=delays.append)
    assert len(bars) == 3 and delays == [1.0] and len(ex.replay_calls) == 2


def test_network_errors_that_persist_end_as_venue_unavailable() -> None:
    ex = replay_exchange("binance", {"/api/v3/klines": ccxt.ExchangeNotAvailable("maintenance")})
    delays: list[float] = []
    with pytest.raises(VenueUnavailable, match="page 1"):
        h.fetch_ohlcv_history(ex, "BTC/USDT", "1h", T0, T0 + HOUR, sleep=delays.append)
    assert delays == [1.0, 2.0, 4.0] and len(ex.replay_calls) == 4


def test_a_bad_symbol_from_the_exchange_fails_at_once() -> None:
    ex = replay_exchange("binance", {"/api/v3/klines": ccxt.BadSymbol("Invalid symbol.")})
    with pytest.raises(UnknownSymbolError):
        h.fetch_ohlcv_history(ex, "BTC/USDT", "1h", T0, T0 + HOUR, sleep=lambda s: pytest.fail("no retry"))
    assert len(ex.replay_calls) == 1


def test_inputs_are_checked_before_any_request() -> None:
    ex = binance_spot_exchange()
    with pytest.raises(InputError, match="before since"):
        h.fetch_ohlcv_history(ex, "BTC/USDT", "1h", T0, T0 - 1)
    with pytest.raises(InputError, match="timeframe '7h'"):
        h.fetch_ohlcv_history(ex, "BTC/USDT", "7h", T0, T0 + HOUR)
    with pytest.raises(InputError, match="'index'"):
        h.fetch_ohlcv_history(ex, "BTC/USDT", "1h", T0, T0 + HOUR, price="index")  # type: ignore[arg-type]
    assert ex.replay_calls == []


def test_missing_capability_is_refused_by_name() -> None:
    ex = binance_spot_exchange()
    ex.has = {**ex.has, "fetchMarkOHLCV": False}
    with pytest.raises(VenueError, match="fetchMarkOHLCV"):
        h.fetch_ohlcv_history(ex, "BTC/USDT:USDT", "1h", T0, T0 + HOUR, price="mark")


def test_known_paging_plans_use_each_exchanges_page_maximum() -> None:
    assert h.funding_paging_plan("binance").page_limit == 1000
    assert h.funding_paging_plan("bybit") == h.PagingPlan(direction="backward", page_limit=200)
    assert h.funding_paging_plan("okx").upper_param == "after"
    assert h.ohlcv_paging_plan("okx").page_limit == 100
    assert h.ohlcv_paging_plan("kraken").short_page_is_last is False


@settings(max_examples=40, deadline=None)
@given(
    page_limit=st.integers(min_value=1, max_value=4),
    since_offset_h=st.integers(min_value=-3, max_value=3),
    span_h=st.integers(min_value=0, max_value=6),
)
def test_any_page_size_and_window_returns_exactly_the_recorded_bars_inside(
    page_limit: int, since_offset_h: int, span_h: int
) -> None:
    ex = binance_spot_exchange()
    since = T0 + since_offset_h * HOUR
    until = since + span_h * HOUR
    bars = h.fetch_ohlcv_history(
        ex,
        "BTC/USDT",
        "1h",
        since,
        until,
        plan=h.PagingPlan(direction="forward", page_limit=page_limit),
        sleep=NO_SLEEP,
    )
    expected = [b for b in BINANCE_SPOT_1H["parsed_ccxt_4_5_90"] if since <= b[0] <= until]
    assert bars == expected
    starts = [param(ex, i, "startTime") for i in range(len(ex.replay_calls))]
    assert starts == sorted(set(starts))  # strictly advancing: the loop cannot repeat itself


# --- leverage tiers -------------------------------------------------------------------------------------


def test_binance_leverage_tiers_without_keys_are_skipped_with_a_reason() -> None:
    ex = replay_exchange("binance", {})
    ex.apiKey, ex.secret = "", ""
    result = h.fetch_leverage_tiers_for(ex, "BTC/USDT:USDT", sleep=NO_SLEEP)
    assert not result.available and result.tiers == ()
    assert "signed requests" in result.skipped_reason and "no API keys" in result.skipped_reason
    assert ex.replay_calls == []  # ccxt refuses before sending anything


def test_binance_leverage_tiers_with_refused_keys_are_skipped_with_a_reason() -> None:
    ex = replay_exchange("binance", {"/fapi/v1/leverageBracket": ccxt.AuthenticationError("Invalid API-key")})
    result = h.fetch_leverage_tiers_for(ex, "BTC/USDT:USDT", sleep=NO_SLEEP)
    assert not result.available and "refused" in result.skipped_reason


@pytest.mark.parametrize(
    ("exchange_id", "route", "method"),
    [
        ("bybit", "/v5/market/risk-limit", "fetchMarketLeverageTiers"),
        ("okx", "/api/v5/public/position-tiers", "fetchMarketLeverageTiers"),
    ],
)
def test_public_leverage_tiers_are_downloaded(exchange_id: str, route: str, method: str) -> None:
    entry = fixture_entry(exchange_id, "source_comment", method)
    ex = replay_exchange(exchange_id, {route: entry["httpResponse"]})
    result = h.fetch_leverage_tiers_for(ex, "BTC/USDT:USDT", sleep=NO_SLEEP)
    assert result.available
    expected = entry["parsed_ccxt_4_5_90"]
    assert [{k: t[k] for k in expected[0]} for t in result.tiers] == expected


@settings(max_examples=40, deadline=None)
@given(
    page_limit=st.integers(min_value=1, max_value=4),
    since_offset_min=st.integers(min_value=-2, max_value=2),
    span_min=st.integers(min_value=0, max_value=4),
)
def test_okx_backward_paging_returns_exactly_the_recorded_bars_inside(
    page_limit: int, since_offset_min: int, span_min: int
) -> None:
    first = 1678928640000
    ex = replay_exchange("okx", {"/api/v5/market/": okx_window(OKX_CANDLES["httpResponse"], lambda r: r[0])})
    since = first + since_offset_min * 60_000
    until = since + span_min * 60_000
    plan = h.PagingPlan(
        direction="backward", page_limit=page_limit, upper_param="until", upper_is_exclusive=True
    )
    bars = h.fetch_ohlcv_history(ex, "BTC/USDT:USDT", "1m", since, until, plan=plan, sleep=NO_SLEEP)
    assert bars == [b for b in OKX_CANDLES["parsed_ccxt_4_5_90"] if since <= b[0] <= until]
    afters = [param(ex, i, "after") for i in range(len(ex.replay_calls))]
    assert afters == sorted(set(afters), reverse=True)  # strictly moving back: the loop cannot repeat itself


def test_backward_progress_counts_from_the_end() -> None:
    ex = replay_exchange("okx", {"/api/v5/market/": okx_window(OKX_CANDLES["httpResponse"], lambda r: r[0])})
    seen: list[h.PageProgress] = []
    since, until = 1678928640000, 1678928760000
    plan = h.PagingPlan(direction="backward", page_limit=1, upper_param="until", upper_is_exclusive=True)
    h.fetch_ohlcv_history(
        ex, "BTC/USDT:USDT", "1m", since, until, plan=plan, progress=seen.append, sleep=NO_SLEEP
    )
    assert [p.pages for p in seen] == [1, 2, 3]
    assert [p.rows for p in seen] == [1, 2, 3]
    fractions = [p.fraction_done for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert seen[0].fraction_done == pytest.approx(1 / 120_000)  # cursor one ms below the newest bar
