"""The coin-margined (inverse) hedge: coins posted as collateral, short their USD value in contracts.

The bundled history is Binance's USDⓈ-M BTCUSDT (no COIN-M history is bundled): it stands in for the
BTCUSD coin-margined perpetual here (same underlying), which the result says in its settings. These
tests check the inverse accounting, not COIN-M market figures.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from perphedge.data.schema import MarketData
from perphedge.engine.accounts import BracketSchedule, apply_inverse_fill
from perphedge.engine.config import BacktestConfig
from perphedge.engine.loop import run_backtest
from perphedge.errors import ConfigError
from perphedge.mechanics.brackets import BracketTable
from perphedge.strategies.registry import build_strategy

# Binance COIN-M BTCUSD first bracket: MMR 0.4 % (exchange-mechanics.md §3: 100 contracts at 25,000 →
# notional 0.4 BTC → MM 0.0016 BTC); one bracket suffices for a 10,000 USD hedge.
COIN_M = BracketSchedule.single(BracketTable.single("BTCUSD", 0.004), note="Binance COIN-M BTCUSD bracket 1")
INVERSE = BacktestConfig(contract="inverse")


def test_inverse_fill_matches_bybit_examples() -> None:
    # Bybit inverse: 1,000 @ 5,000 + 2,000 @ 6,000 → average entry 5,625 (harmonic)
    first = apply_inverse_fill(0.0, 0.0, 1_000.0, 5_000.0, 1.0)
    second = apply_inverse_fill(first.contracts, first.entry_price_usd, 2_000.0, 6_000.0, 1.0)
    assert second.entry_price_usd == pytest.approx(5_625.0)
    # realised: 10,000 long from 8,000 closed at 12,500 → 0.45 BTC
    closed = apply_inverse_fill(10_000.0, 8_000.0, -10_000.0, 12_500.0, 1.0)
    assert closed.contracts == 0.0 and closed.realized_pnl_coin == pytest.approx(0.45)


def test_one_x_coin_margined_short_survives_the_2020_2021_rally(btc_8h: MarketData) -> None:
    result = run_backtest(btc_8h, build_strategy("full"), INVERSE, brackets=COIN_M)
    assert result.liquidations == 0  # the price rose 13x: a linear 2x short was liquidated in 2020
    size = result.settings["contract_size_usd"]
    assert size == 100.0
    trades = result.ledger[(result.ledger["kind"] == "trade") & (result.ledger["leg"] == "perp")]
    (opening,) = trades.itertuples()
    contracts = round(result.base_qty * opening.price_usd / size)
    assert opening.qty_base == pytest.approx(-contracts * size / opening.price_usd)  # whole contracts
    assert result.attribution["funding_usd"] > 0
    assert "stand-in" in result.settings["inverse_data"]
    assert (
        abs(sum(result.attribution.values()) - (result.final_equity_usd - result.initial_equity_usd)) < 0.005
    )


def test_without_funding_and_fees_the_hedge_keeps_its_usd_value(btc_8h: MarketData) -> None:
    funding = btc_8h.funding.copy()
    funding["rate_per_interval"] = 0.0  # isolate the price mechanics
    market = dataclasses.replace(btc_8h, funding=funding)
    config = dataclasses.replace(INVERSE, fee_spot=0.0, fee_perp=0.0)
    result = run_backtest(market, build_strategy("full"), config, brackets=COIN_M)
    equity = result.timeseries["equity_usd"]
    # constant but for whole-contract rounding and the perp/spot basis (coins valued at spot, PnL at mark)
    assert np.abs(equity / result.initial_equity_usd - 1.0).max() < 0.03
    spot_pnl, perp_pnl = result.attribution["spot_pnl_usd"], result.attribution["perp_pnl_usd"]
    assert spot_pnl > 50_000 and perp_pnl == pytest.approx(-spot_pnl, rel=0.01)


def test_inverse_refusals(btc_8h: MarketData) -> None:
    with pytest.raises(ConfigError, match="reverse carry"):
        run_backtest(
            btc_8h, build_strategy("dynamic-neutral", negative_mode="reverse"), INVERSE, brackets=COIN_M
        )
    with pytest.raises(ConfigError, match="collateral_policy='sell_spot'"):
        config = dataclasses.replace(
            INVERSE, collateral_policy="sell_spot", trigger_margin_ratio=0.05, target_margin_ratio=0.02
        )
        run_backtest(btc_8h, build_strategy("full"), config, brackets=COIN_M)


def test_article_long_long_on_inverse_is_judged_on_the_low(btc_8h: MarketData) -> None:
    config = dataclasses.replace(
        INVERSE, start=pd.Timestamp("2022-05-01", tz="UTC"), end=pd.Timestamp("2023-01-01", tz="UTC")
    )
    result = run_backtest(btc_8h, build_strategy("dynamic-article"), config, brackets=COIN_M)
    assert result.timeseries["net_exposure_pct"].max() > 1.9  # coins + a long of their value: 200 % long
    long_bars = result.timeseries["net_exposure_pct"] > 1.5
    assert (result.timeseries.loc[long_bars, "liquidation_distance_pct"] < 0).all()  # the LP is below
    assert (
        abs(sum(result.attribution.values()) - (result.final_equity_usd - result.initial_equity_usd)) < 0.005
    )


def test_a_short_reopened_after_a_rally_covers_the_coins_held_not_the_starting_coins(
    btc_8h: MarketData,
) -> None:
    # Closing a coin-margined short after BTC rose from 9k to 29k realises its loss in coins: fewer coins
    # are left than the hedge started with. A carry re-entered later must short the USD value of the coins
    # held then; sized to the starting coins it was ~56 % net short and was liquidated on 2021-01-03,
    # wiping out a 1x hedge that cannot be liquidated by a rise.
    config = dataclasses.replace(
        INVERSE, start=pd.Timestamp("2020-07-04", tz="UTC"), end=pd.Timestamp("2021-01-20", tz="UTC")
    )
    strategy = build_strategy("dynamic-neutral", signal="latest", enter_apr=0.0, exit_apr=0.0)
    result = run_backtest(btc_8h, strategy, config, brackets=COIN_M)
    assert result.switches > 10  # the carry was left and re-entered many times during the rally
    assert result.liquidations == 0
    hedged = result.timeseries[result.timeseries["hedge_ratio"] > 0]
    # neutral but for whole contracts and the funding coins received since the last entry
    assert np.abs(hedged["net_exposure_pct"]).max() < 0.05
    assert (
        abs(sum(result.attribution.values()) - (result.final_equity_usd - result.initial_equity_usd)) < 0.005
    )


def test_missing_coin_m_brackets_point_to_the_bundled_table(btc_8h: MarketData) -> None:
    # the message used to say that no COIN-M table is bundled; Binance's BTCUSD table is
    with pytest.raises(ConfigError, match=r"bundled_coinm_bracket_table\(symbol\)\) \(bundled: BTCUSD\)"):
        run_backtest(btc_8h, build_strategy("full"), INVERSE)
