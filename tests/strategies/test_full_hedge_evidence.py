"""Evidence on the whole bundled BTCUSDT history (2020–2026): the full hedge earns the settled funding.

The issue's evidence: "a full hedge's funding income equals the settled rates × position notional at
each settlement". Computed here independently of the engine's funding code: the perp position at each
settlement is rebuilt from the ledger's perp *trades* (not its funding rows), the rate and the mark
price come straight from the bundled settlements, and the cash flow is Binance's
``−signed position × mark price × rate`` (https://www.binance.com/en/support/faq/360033525031).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perphedge.data.bundled import load_bundled
from perphedge.engine.config import BacktestConfig
from perphedge.engine.loop import run_backtest
from perphedge.strategies.registry import build_strategy

# Binance's fundingTime carries a few ms of jitter (00:00:00.005): a settlement belongs to the bar that
# closed at the whole hour, before the orders that fill at that instant's open.
SETTLEMENT_JITTER = pd.Timedelta(minutes=1)


@pytest.fixture(scope="module")
def btc_8h_full_run():
    market = load_bundled("BTCUSDT", "8h")
    result = run_backtest(market, build_strategy("full"), BacktestConfig())  # defaults: 2x, sell_spot policy
    return market, result


def test_full_hedge_funding_equals_settled_rate_times_notional_at_every_settlement(btc_8h_full_run) -> None:
    # Arrange: the perp position held at each settlement, from the trades alone
    market, result = btc_8h_full_run
    ledger = result.ledger
    perp_trades = ledger[(ledger["kind"] == "trade") & (ledger["leg"] == "perp")]
    trade_ts = pd.DatetimeIndex(perp_trades["ts"])
    position_after = np.cumsum(perp_trades["qty_base"].to_numpy(dtype=float))
    first_open = result.timeseries.index[0] - pd.Timedelta(milliseconds=market.timeframe_ms)
    last_close = result.timeseries.index[-1]
    settlements = market.funding[
        (market.funding.index > first_open + SETTLEMENT_JITTER)
        & (market.funding.index <= last_close + SETTLEMENT_JITTER)
    ]
    filled = trade_ts.searchsorted(settlements.index - SETTLEMENT_JITTER, side="right")
    signed_qty = np.where(filled > 0, position_after[np.maximum(filled - 1, 0)], 0.0)
    # Act: Binance's funding cash flow of each settlement
    expected = (
        -signed_qty
        * settlements["mark_price"].to_numpy(dtype=float)
        * settlements["rate_per_interval"].to_numpy(dtype=float)
    )
    # Assert: settlement by settlement, and in total, to the cent
    funding_rows = ledger[ledger["kind"] == "funding"]
    assert result.liquidations == 0
    assert len(funding_rows) == len(settlements) == 6_740  # every settlement of 2020-01 … 2026-02
    assert result.trades > 2  # the margin policy did resize the hedge, so the notional moved
    np.testing.assert_allclose(funding_rows["amount_usd"].to_numpy(dtype=float), expected, rtol=0, atol=0.005)
    assert result.attribution["funding_usd"] == pytest.approx(float(expected.sum()), abs=0.01)
    assert result.timeseries["cumulative_funding_usd"].iloc[-1] == pytest.approx(
        float(expected.sum()), abs=0.01
    )


def test_full_hedge_stays_neutral_while_funding_is_earned(btc_8h_full_run) -> None:
    # the perp short equals the spot held at every bar close: the funding is earned without price risk
    _, result = btc_8h_full_run
    assert np.abs(result.timeseries["net_exposure_pct"].to_numpy(dtype=float)).max() < 1e-9
    assert result.attribution["funding_usd"] > 0  # BTC funding was mostly positive over 2020–2026
