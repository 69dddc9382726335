"""The whole scan on real ccxt exchange objects answering from recorded responses (offline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perphedge.errors import ConfigError, InputError
from perphedge.scan.rank import ScanSettings
from perphedge.scan.scanner import parse_exchange_list, run_scan
from tests.kit.ccxt_replay import fixture_body, replay_exchange_async

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _bybit(url: str, method: str, body: Any) -> Any:
    # the recorded linear tickers answer (fetchFundingRates); no spot body was recorded for bybit
    if "category=linear" in url:
        return fixture_body("bybit", "static_response", "fetchFundingRates")
    raise ccxt.ExchangeNotAvailable("no recorded spot body")


def _binance_spot(url: str, method: str, body: Any) -> Any:
    if "symbol=BTCUSDT" in url:
        return fixture_body("binance", "static_response", "fetchTicker")  # recorded BTCUSDT spot ticker
    return fixture_body("binance", "source_comment", "fetchTickers")  # bulk sample (SUSDT only)


def recorded_routes() -> dict[str, dict[str, Any]]:
    """Routes per exchange; okx is down (every call raises ccxt.ExchangeNotAvailable)."""
    return {
        "binance": {
            "/fapi/v1/premiumIndex": fixture_body("binance", "source_comment", "fetchFundingRates"),
            "/fapi/v1/fundingInfo": json.loads(
                (FIXTURES / "binance_fundingInfo_source_comment.json").read_text()
            )["httpResponse"],
            "/fapi/v1/fundingRate": fixture_body("binance", "source_comment", "fetchFundingRateHistory"),
            "/api/v3/ticker/24hr": _binance_spot,
            "/fapi/v1/ticker/24hr": ccxt.ExchangeNotAvailable("no recorded BTCUSDT perp ticker"),
        },
        "bybit": {"/v5/market/tickers": _bybit},
        "okx": {"/api/v5/": ccxt.ExchangeNotAvailable("okx maintenance")},
    }


class Factory:
    """Builds replay exchanges and remembers them, to check they were closed."""

    def __init__(self, routes: dict[str, dict[str, Any]]) -> None:
        self.routes = routes
        self.built: dict[str, Any] = {}
        self.closed: list[str] = []

    def __call__(self, exchange_id: str) -> Any:
        ex = replay_exchange_async(exchange_id, self.routes[exchange_id])
        real_close = ex.close

        async def close() -> None:
            self.closed.append(exchange_id)
            await real_close()

        ex.close = close
        self.built[exchange_id] = ex
        return ex


def test_one_exchange_down_does_not_sink_the_others() -> None:
    factory = Factory(recorded_routes())
    result = run_scan(["binance", "bybit", "okx"], ScanSettings(), retry_attempts=1, exchange_factory=factory)
    assert result.answered == ("binance", "bybit")
    (error,) = result.errors
    assert (
        error.exchange == "okx" and error.error_type == "VenueUnavailable" and "maintenance" in error.message
    )
    # bybit: 0.01 %/8 h -> 10.95 % APR, net 7.30 % over 30 days; binance: 0.063521 %/8 h (default 8 h)
    by_exchange = {c.exchange: c for c in result.candidates}
    assert by_exchange["bybit"].apr_current == pytest.approx(0.1095)
    assert by_exchange["binance"].apr_current == pytest.approx(0.00063521 * 3 * 365)
    assert [c.exchange for c in result.candidates] == ["binance", "bybit"]  # higher score first
    # binance: the recorded spot ticker (2024-03-13) and the premiumIndex sample (2021-05-17) are years
    # apart: no basis from them
    assert by_exchange["binance"].basis_bps is None and by_exchange["binance"].spot_volume_24h_usd is not None
    assert result.considered == 2 and result.unpaired_perps == 0
    assert sorted(factory.closed) == ["binance", "bybit", "okx"]  # every exchange closed, failed or not
    doc = result.to_json()
    assert doc["errors"][0]["exchange"] == "okx" and doc["answered"] == ["binance", "bybit"]
    assert {w["exchange"] for w in doc["warnings"]} >= {"binance", "bybit"}


def test_every_exchange_down_answers_nothing_and_lists_every_error() -> None:
    down = {e: {"/": ccxt.ExchangeNotAvailable(f"{e} down")} for e in ("binance", "bybit")}
    result = run_scan(["binance", "bybit"], ScanSettings(), retry_attempts=1, exchange_factory=Factory(down))
    assert result.answered == () and result.candidates == ()
    assert [e.exchange for e in result.errors] == ["binance", "bybit"]


def test_history_adds_window_means_and_penalty() -> None:
    # binance history sample: one settlement 0.00063521 at 1621267200000 (2021-05-17 16:00 UTC)
    as_of = 1621267200000 + 60 * 60 * 1000
    result = run_scan(
        ["binance"],
        ScanSettings(),
        retry_attempts=1,
        history=True,
        exchange_factory=Factory(recorded_routes()),
        now_ms=lambda: as_of,
    )
    (c,) = result.candidates
    assert c.settlements_7d == 1 and c.negative_share_30d == 0.0
    # one 8 h settlement paid (the running hour after it is not counted): its own APR at 8 h
    assert c.apr_mean_7d == pytest.approx(0.00063521 * 3 * 365)
    assert result.history_days == 30 and any("covers" in n for n in c.notes)


def test_filters_apply_to_the_scan() -> None:
    result = run_scan(
        ["binance", "bybit"],
        ScanSettings(min_apr=0.5),
        retry_attempts=1,
        exchange_factory=Factory(recorded_routes()),
    )
    assert [c.exchange for c in result.candidates] == ["binance"]  # 69.6 % APR; bybit's 10.95 % is cut
    assert result.considered == 2


def test_exchange_list_is_validated_before_any_network() -> None:
    assert parse_exchange_list(" Binance, bybit,binance ") == ("binance", "bybit")
    with pytest.raises(ConfigError, match="gate"):
        parse_exchange_list("binance,gate")
    with pytest.raises(InputError, match="no exchange"):
        parse_exchange_list(" , ")


def test_progress_reports_each_stage_to_completion() -> None:
    events: list[tuple[str, str, int, int]] = []
    run_scan(
        ["binance", "bybit"],
        ScanSettings(),
        retry_attempts=1,
        exchange_factory=Factory(recorded_routes()),
        progress=lambda *event: events.append(event),
    )
    finished = {(e, stage) for e, stage, done, total in events if done == total}
    assert {("bybit", "funding"), ("bybit", "spot tickers"), ("bybit", "perp tickers")} <= finished
    assert ("binance", "funding") in finished


def _funding_history_starts(factory: Factory, exchange_id: str) -> list[int]:
    from urllib.parse import parse_qs, urlparse

    calls = factory.built[exchange_id].replay_calls
    return [
        int(parse_qs(urlparse(c.url).query)["startTime"][0]) for c in calls if "/fapi/v1/fundingRate" in c.url
    ]


def test_interval_unknown_is_looked_for_in_recent_settlements_even_without_history() -> None:
    routes = recorded_routes()
    routes["binance"]["/fapi/v1/fundingInfo"] = ccxt.ExchangeNotAvailable("fundingInfo down")
    as_of = 1621267200000 + 60 * 60 * 1000
    factory = Factory(routes)
    result = run_scan(
        ["binance"], ScanSettings(), retry_attempts=1, exchange_factory=factory, now_ms=lambda: as_of
    )
    # three days of settlements asked for; the recorded answer has one settlement: still no interval
    assert _funding_history_starts(factory, "binance") == [as_of - 3 * 86_400_000]
    (c,) = result.candidates
    assert c.interval_hours is None and c.apr_current is None and c.apr_mean_7d is None
    assert result.history_days is None and any("interval unknown" in n for n in c.notes)


def test_with_history_a_pair_without_interval_is_not_crowded_out_by_scored_pairs() -> None:
    routes = recorded_routes()
    routes["binance"]["/fapi/v1/fundingInfo"] = ccxt.ExchangeNotAvailable("fundingInfo down")
    routes["bybit"]["/v5/market/funding/history"] = ccxt.ExchangeNotAvailable("not recorded")
    factory = Factory(routes)
    result = run_scan(
        ["binance", "bybit"],
        ScanSettings(),
        retry_attempts=1,
        history=True,
        history_limit=1,
        exchange_factory=factory,
        now_ms=lambda: 1621267200000 + 60 * 60 * 1000,
    )
    # bybit's pair has the only score and takes the one history slot; binance's still gets its settlements
    assert len(_funding_history_starts(factory, "binance")) == 1
    assert any(w.exchange == "bybit" and "funding history" in w.message for w in result.warnings)
    binance = next(c for c in result.candidates if c.exchange == "binance")
    assert binance.settlements_30d == 1


def test_missing_interval_is_set_from_the_spacing_of_real_settlements() -> None:
    from dataclasses import replace

    from perphedge.scan.scanner import _with_inferred_intervals
    from perphedge.venues.funding_snapshot import ExchangeSnapshot, FundingHistory
    from tests.scan.test_rank import BYBIT_BTC, _sol_2022

    ts, rates = _sol_2022()  # real Binance SOLUSDT settlements; the slice ends on 8 h ones
    quote = replace(BYBIT_BTC, interval_hours=None, interval_source=None)
    snapshot = ExchangeSnapshot(exchange_id="bybit", recorded_ts_ms=int(ts[-1]), quotes=(quote,))
    history = FundingHistory(
        perp_symbol=quote.perp_symbol,
        settle_ts_ms=tuple(int(t) for t in ts[-9:]),
        rates=tuple(float(r) for r in rates[-9:]),
        since_ms=int(ts[-9]),
    )
    (updated,) = _with_inferred_intervals([snapshot], {("bybit", quote.perp_symbol): history})
    assert updated.quotes[0].interval_hours == 8.0
    assert updated.quotes[0].interval_source == "inferred from the spacing of recent settlements"
    (unchanged,) = _with_inferred_intervals([snapshot], {})
    assert unchanged.quotes[0].interval_hours is None
