"""The paper exchange on live public prices, offline: real ccxt objects answering from recorded Binance bodies."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from perphedge.keeper.clock import LivePaperClock
from perphedge.keeper.wiring import build_keeper, build_paper_venue
from perphedge.venues.ccxt_trading import LivePublicFeed
from tests.keeper.kit import make_spec
from tests.kit.ccxt_replay import fixture_body, fixture_entry, replay_exchange

SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


def _public_binance():
    return replay_exchange(
        "binance",
        {
            "/api/v3/ticker/24hr": fixture_body("binance", "static_response", "fetchTicker"),
            "/fapi/v1/premiumIndex": fixture_body("binance", "source_comment", "fetchFundingRate"),
            "/fapi/v1/fundingRate": fixture_body("binance", "source_comment", "fetchFundingRateHistory"),
            "/api/v3/klines": fixture_body("binance", "static_response", "fetchOHLCV", 0),
        },
    )


def test_live_feed_reads_spot_last_and_perp_mark_from_public_endpoints() -> None:
    feed = LivePublicFeed(_public_binance(), spot_symbol=SPOT, perp_symbol=PERP)
    spot, perp, mark = feed.prices(0)
    assert spot == fixture_entry("binance", "static_response", "fetchTicker")["parsed_ccxt_4_5_90"]["last"]
    assert perp == mark == 45802.81129892  # premiumIndex markPrice
    assert feed.next_settlement_ts_ms(0) == 1621267200000  # premiumIndex nextFundingTime
    (event,) = feed.settled_rates(0, 2**62)
    assert (event.settle_ts_ms, event.rate_per_interval) == (1621267200000, 0.00063521)
    assert feed.settled_rates(1621267200001, 2**62) == []
    closes = feed.spot_closes(0, 10)
    assert closes[0] == (1706630400000, 43488.71) and len(closes) == 2  # the forming last bar is dropped


def test_keeper_on_live_paper_prices_opens_the_hedge_with_the_exchanges_real_precision(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path, paper={"prices": "live"})
    venue = build_paper_venue(spec, exchange=_public_binance())
    slept: list[float] = []
    keeper = build_keeper(spec, venue=venue, sleep=slept.append)
    assert isinstance(keeper.clock, LivePaperClock)
    keeper.clock._wall._time_s = lambda: venue.now_ms() / 1000  # wall time = the recorded prices' time
    result = keeper.cycle()
    assert result.action == "trade" and result.report.outcome == "complete"
    q = Decimal(keeper.journal.get_meta("base_qty"))
    assert venue.fetch_balances(SPOT, PERP).spot_base == q
    assert venue.fetch_perp_position(PERP).signed_qty_base == -q
    assert venue.market_rules(SPOT).amount_step_base == Decimal("0.00001")  # recorded Binance BTC/USDT market
    keeper.clock.wait_next_cycle()
    assert slept == [spec.keeper.cycle_seconds] and venue.cursor == 1
    keeper.journal.close()
