"""The ccxt edge: error translation, retries and symbol resolution on real ccxt objects (recorded responses)."""

from __future__ import annotations

import ccxt
import pytest

from perphedge.errors import (
    ConfigError,
    InsufficientFunds,
    OrderRejected,
    UnknownSymbolError,
    VenueUnavailable,
)
from perphedge.venues import ccxt_common as cc
from tests.kit.ccxt_replay import InOrder, fixture_body, replay_exchange


def test_create_exchange_rejects_unknown_id_with_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean binance"):
        cc.create_exchange("binanse")


def test_credentials_repr_never_shows_secrets() -> None:
    creds = cc.Credentials(api_key="AKIAXYZ", secret="s3cr3t")
    assert "AKIAXYZ" not in repr(creds) and "s3cr3t" not in repr(creds)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ccxt.RequestTimeout("timed out"), VenueUnavailable),
        (ccxt.ExchangeNotAvailable("maintenance"), VenueUnavailable),
        (ccxt.RateLimitExceeded("429"), VenueUnavailable),
        (ccxt.InsufficientFunds("margin is insufficient"), InsufficientFunds),
        (ccxt.InvalidOrder("Filter failure: LOT_SIZE"), OrderRejected),
    ],
)
def test_ccxt_errors_from_the_http_layer_are_translated(raised: Exception, expected: type) -> None:
    ex = replay_exchange("bybit", {"/v5/market/tickers": raised})
    with pytest.raises(expected), cc.translate_ccxt_errors("bybit", "fetch funding rates"):
        ex.fetch_funding_rates(["BTC/USDT:USDT"])


def test_reads_are_retried_after_a_network_error_then_succeed() -> None:
    body = fixture_body("bybit", "static_response", "fetchFundingRates")
    ex = replay_exchange("bybit", {"/v5/market/tickers": InOrder([ccxt.RequestTimeout("t1"), body])})
    delays: list[float] = []
    rates = cc.call_with_retries(
        lambda: ex.fetch_funding_rates(["BTC/USDT:USDT"]),
        exchange_id="bybit", action="fetch funding rates", sleep=delays.append,
    )
    assert rates["BTC/USDT:USDT"]["fundingRate"] == pytest.approx(0.0001)
    assert delays == [1.0] and len(ex.replay_calls) == 2


def test_retries_give_up_after_the_last_attempt() -> None:
    ex = replay_exchange("bybit", {"/v5/market/tickers": ccxt.ExchangeNotAvailable("down")})
    delays: list[float] = []
    with pytest.raises(VenueUnavailable, match="unreachable"):
        cc.call_with_retries(lambda: ex.fetch_funding_rates(["BTC/USDT:USDT"]), exchange_id="bybit",
                             action="fetch funding rates", attempts=3, sleep=delays.append)
    assert delays == [1.0, 2.0]


def test_permanent_errors_are_not_retried() -> None:
    ex = replay_exchange("bybit", {"/v5/market/tickers": ccxt.InvalidOrder("bad")})
    with pytest.raises(OrderRejected):
        cc.call_with_retries(lambda: ex.fetch_funding_rates(["BTC/USDT:USDT"]), exchange_id="bybit",
                             action="x", sleep=lambda s: pytest.fail("must not sleep"))
    assert len(ex.replay_calls) == 1


def test_resolve_market_by_unified_symbol_or_id_and_unknown_symbol() -> None:
    ex = replay_exchange("binance", {})
    assert cc.resolve_market(ex, "BTC/USDT:USDT")["id"] == "BTCUSDT"
    assert cc.resolve_market(ex, "BTCUSDT")["swap"] is True
    assert cc.spot_symbol_for(cc.resolve_market(ex, "BTC/USDT:USDT")) == "BTC/USDT"
    with pytest.raises(UnknownSymbolError, match="BTC/USDT:USDT"):
        cc.resolve_market(ex, "BTC/USDT:USDC")


def test_require_capabilities_names_missing_methods() -> None:
    ex = replay_exchange("binance", {})
    cc.require_capabilities(ex, ["fetchFundingRateHistory", "fetchOHLCV"])
    with pytest.raises(Exception, match="fetchNothingAtAll"):
        cc.require_capabilities(ex, ["fetchNothingAtAll"])
