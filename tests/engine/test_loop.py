"""The backtest loop on real bundled Binance BTCUSDT data: evidence, timing, no look-ahead, liquidation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from perphedge.data.schema import MarketData
from perphedge.engine.accounts import BracketSchedule, split_capital
from perphedge.engine.config import BacktestConfig
from perphedge.engine.loop import run_backtest, run_buy_and_hold
from perphedge.errors import ConfigError, DataError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.liquidation import liquidation_price_linear
from perphedge.strategies.registry import build_strategy

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def attribution_gap(result) -> float:  # noqa: ANN001
    total = sum(result.attribution.values())
    return total - (result.final_equity_usd - result.initial_equity_usd - result.net_transfers_usd)


# --- evidence -----------------------------------------------------------------------------------------


def test_full_hedge_funding_equals_rate_times_notional_at_each_settlement(btc_8h: MarketData) -> None:
    # 2022–2023: BTC fell from 47k to 16k and recovered to 42k; a 2x short is never liquidated here.
    start, end = ts("2022-01-01"), ts("2024-01-01")
    result = run_backtest(btc_8h, build_strategy("full"), BacktestConfig(start=start, end=end))
    assert result.liquidations == 0
    # independently: every settlement after the first bar's open and up to the last bar's close (Binance's
    # fundingTime carries a few ms of jitter: 00:00:00.005 belongs to the bar that closed at 00:00)
    jitter = pd.Timedelta(minutes=1)
    settlements = btc_8h.funding[
        (btc_8h.funding.index > start + jitter) & (btc_8h.funding.index <= end + jitter)
    ]
    expected = float((settlements["rate_per_interval"] * result.base_qty * settlements["mark_price"]).sum())
    funding_rows = result.ledger[result.ledger["kind"] == "funding"]
    assert len(funding_rows) == len(settlements) == 2190
    assert result.attribution["funding_usd"] == pytest.approx(expected, abs=0.005)
    assert result.timeseries["cumulative_funding_usd"].iloc[-1] == pytest.approx(expected, abs=0.005)
    # Q coins bought with the spot budget net of the entry fee, at the first bar's spot open
    budget = split_capital(10_000, 2.0).spot_budget_usd
    assert result.base_qty == pytest.approx(budget / (btc_8h.bars["spot_open"][start] * 1.001))


def test_attribution_sums_to_the_change_in_equity_whole_history(btc_8h: MarketData) -> None:
    for name in ("full", "partial", "dynamic-article", "dynamic-neutral"):
        result = run_backtest(btc_8h, build_strategy(name), BacktestConfig())
        assert abs(attribution_gap(result)) < 0.005, name


# --- timing -------------------------------------------------------------------------------------------


def test_orders_fill_at_the_next_bars_open_both_legs_together(btc_8h: MarketData) -> None:
    config = BacktestConfig(start=ts("2022-05-01"), end=ts("2023-01-01"))
    result = run_backtest(btc_8h, build_strategy("dynamic-article"), config)
    trades = result.ledger[result.ledger["kind"] == "trade"]
    assert result.switches > 5
    bars = btc_8h.bars
    for row in trades.itertuples():
        column = "spot_open" if row.leg == "spot" else "perp_open"
        assert row.price_usd == bars.at[row.ts, column]  # the open of the bar starting at the fill time
    # every switch decided at a bar close fills at the open that follows, at the same time stamp
    switch_times = {e.ts for e in result.events if e.kind == "switch"}
    assert switch_times <= set(trades["ts"])


def test_decisions_do_not_look_ahead(btc_8h: MarketData) -> None:
    cut = ts("2021-06-01")  # bar opening at the cut is kept; the decision at its close must not change
    bar_ms = pd.Timedelta(hours=8)
    bars = btc_8h.bars.copy()
    later = bars.index > cut
    for column in bars.columns:
        bars.loc[later, column] = bars.loc[later, column].to_numpy()[::-1]  # scramble the future
    funding = btc_8h.funding.copy()
    funding.loc[funding.index > cut + bar_ms + pd.Timedelta(hours=1), "rate_per_interval"] *= -3.0
    changed = dataclasses.replace(btc_8h, bars=bars, funding=funding)
    config = BacktestConfig(start=ts("2020-06-01"), end=ts("2022-01-01"))
    for strategy in (
        build_strategy("dynamic-neutral", signal="ema", window=6, roc_window=9, roc_gate=-0.05),
        build_strategy("dynamic-article", signal="latest"),
    ):
        a = run_backtest(btc_8h, strategy, config)
        b = run_backtest(changed, strategy, config)
        decided_by = cut + bar_ms
        la, lb = a.ledger, b.ledger
        before_a, before_b = la[la["ts"] < decided_by], lb[lb["ts"] < decided_by]
        pd.testing.assert_frame_equal(before_a.reset_index(drop=True), before_b.reset_index(drop=True))
        # the orders decided at the cut's close have the same quantities (their fill prices are later data)
        ta = la[(la["ts"] == decided_by) & (la["kind"] == "trade")]["qty_base"].to_numpy()
        tb = lb[(lb["ts"] == decided_by) & (lb["kind"] == "trade")]["qty_base"].to_numpy()
        np.testing.assert_array_equal(ta, tb)
        assert [e for e in a.events if e.ts <= decided_by] == [e for e in b.events if e.ts <= decided_by]
        pd.testing.assert_frame_equal(a.timeseries[:decided_by], b.timeseries[:decided_by])
        assert not a.timeseries.equals(b.timeseries)  # the scrambled future did change the run


# --- liquidation ----------------------------------------------------------------------------------------


def test_isolated_2x_short_is_liquidated_at_the_binance_price_and_left_unhedged(btc_8h: MarketData) -> None:
    config = BacktestConfig(start=ts("2020-01-01"), end=ts("2021-01-01"), collateral_policy="none")
    result = run_backtest(btc_8h, build_strategy("full"), config)
    assert result.liquidations == 1
    (event,) = [e for e in result.events if e.kind == "liquidation"]
    assert event.ts == ts("2020-08-01 08:00")  # booked at the close of the bar that opened at 00:00
    bar_open = ts("2020-08-01 00:00")
    ledger = result.ledger
    (liq_row,) = ledger[ledger["kind"] == "liquidation"].itertuples()
    # independently: isolated wallet = collateral − perp entry fee + funding received before the bar
    q = result.base_qty
    entry = btc_8h.bars["perp_open"].iloc[0]
    collateral = split_capital(10_000, 2.0).collateral_usd
    funding = btc_8h.funding[
        (btc_8h.funding.index > ts("2020-01-01 00:01"))
        & (btc_8h.funding.index < bar_open + pd.Timedelta(minutes=1))
    ]
    wallet = (
        collateral
        - q * entry * 0.0005
        + float((funding["rate_per_interval"] * q * funding["mark_price"]).sum())
    )
    table = BracketTable.from_rows(
        "BTCUSDT", [[0.0, 50_000.0, 0.004, 0.0, 125.0], [50_000.0, 250_000.0, 0.005, 50.0, 100.0]]
    )
    expected = liquidation_price_linear(
        side=-1, qty_base=q, entry_price=entry, wallet_balance_usd=wallet, table=table
    )
    assert liq_row.price_usd == pytest.approx(expected, rel=1e-9)
    assert (
        btc_8h.bars.at[bar_open, "perp_high"] >= liq_row.price_usd
    )  # judged on the bar's high (no mark OHLC)
    # the clearance fee takes what margin is left (1.25 % of notional is more than the 0.4 % maintenance)
    assert liq_row.amount_usd < 0
    after = result.timeseries[result.timeseries.index >= event.ts]
    assert (after["hedge_ratio"] == 0).all() and np.allclose(after["net_exposure_pct"], 1.0)
    assert result.trades == 2  # the two opening fills; nothing after the liquidation
    assert abs(attribution_gap(result)) < 0.005


def test_sell_spot_policy_keeps_the_hedge_neutral_and_alive(btc_8h: MarketData) -> None:
    config = BacktestConfig(
        collateral_policy="sell_spot", trigger_margin_ratio=0.05, target_margin_ratio=0.02
    )
    result = run_backtest(btc_8h, build_strategy("full"), config)
    assert result.liquidations == 0
    assert sum(e.kind == "reduce" for e in result.events) > 5
    ts_ = result.timeseries
    assert np.abs(ts_["net_exposure_pct"]).max() < 1e-9  # both legs shrink together
    assert ts_["margin_ratio"].max() < 0.2
    assert result.base_qty < result.settings["base_qty"] + 1e-12
    assert abs(attribution_gap(result)) < 0.005


def test_reserve_top_ups_are_internal_transfers(btc_8h: MarketData) -> None:
    config = BacktestConfig(
        collateral_policy="reserve", reserve_usd=2_000, trigger_margin_ratio=0.05, target_margin_ratio=0.02
    )
    result = run_backtest(btc_8h, build_strategy("full"), config)
    top_ups = [e for e in result.events if e.kind == "top_up"]
    assert top_ups
    transfers = result.ledger[result.ledger["kind"] == "transfer"]
    assert transfers["amount_usd"].sum() == pytest.approx(0.0, abs=1e-9)
    moved = -transfers[transfers["leg"] == "reserve"]["amount_usd"].sum()
    assert 0 < moved <= 2_000 + 1e-9
    assert result.initial_equity_usd == 12_000
    assert abs(attribution_gap(result)) < 0.005


# --- strategies on real history ------------------------------------------------------------------------


def test_article_dynamic_is_200_percent_long_when_funding_is_negative(btc_8h: MarketData) -> None:
    config = BacktestConfig(start=ts("2022-05-01"), end=ts("2022-12-31"))
    result = run_backtest(btc_8h, build_strategy("dynamic-article"), config)
    exposure = result.timeseries["net_exposure_pct"]
    assert exposure.max() == pytest.approx(2.0)
    assert (np.isclose(exposure, 2.0)).mean() > 0.05  # long-long for a real share of 2022
    assert any("200 % long" in e.detail for e in result.events)


def test_reverse_carry_borrows_and_stays_neutral(btc_8h: MarketData) -> None:
    config = BacktestConfig(start=ts("2022-05-01"), end=ts("2022-12-31"))
    strategy = build_strategy(
        "dynamic-neutral",
        signal="mean",
        window=3,
        negative_mode="reverse",
        enter_apr=0.0,
        exit_apr=-0.01,
        **config.cost_options(),
    )
    result = run_backtest(btc_8h, strategy, config)
    assert result.attribution["borrow_usd"] < 0
    series = result.timeseries
    reverse = series["spot_value_usd"] < 0  # short spot (borrowed and sold)
    assert reverse.mean() > 0.05
    assert np.abs(series.loc[reverse, "net_exposure_pct"]).max() < 1e-9  # neutral while reversed
    assert set(np.round(series["net_exposure_pct"], 9)) <= {0.0, 1.0}  # carry/reverse 0, unhedged 1: never 2
    assert abs(attribution_gap(result)) < 0.005


def test_buy_and_hold_benchmark_matches_the_timeseries_column(btc_8h: MarketData) -> None:
    config = BacktestConfig(start=ts("2023-01-01"), end=ts("2024-01-01"))
    hold = run_buy_and_hold(btc_8h, config)
    hedge = run_backtest(btc_8h, build_strategy("full"), config)
    assert hold.final_equity_usd == pytest.approx(hedge.timeseries["buy_and_hold_equity_usd"].iloc[-1])
    coins = 10_000 / (btc_8h.bars.at[ts("2023-01-01"), "spot_open"] * 1.001)
    assert hold.final_equity_usd == pytest.approx(coins * btc_8h.bars["spot_close"][ts("2023-12-31 16:00")])
    assert hold.attribution["perp_pnl_usd"] == 0 and hold.attribution["funding_usd"] == 0


def test_settlement_in_a_gap_of_hourly_bars_is_still_paid(btc_1h: MarketData) -> None:
    # the bundled hourly data lacks 2020-02-19 12:00–16:00 (no spot in the source); funding settled at 16:00
    start, end = ts("2020-02-18"), ts("2020-02-21")
    result = run_backtest(btc_1h, build_strategy("full"), BacktestConfig(start=start, end=end))
    jitter = pd.Timedelta(minutes=1)
    settlements = btc_1h.funding[
        (btc_1h.funding.index > start + jitter) & (btc_1h.funding.index <= end + jitter)
    ]
    rows = result.ledger[result.ledger["kind"] == "funding"]
    assert len(rows) == len(settlements)
    assert rows["note"].str.contains("gap").sum() == 1
    assert result.settings["bar_gaps"] == 1


def test_cross_margin_puts_the_reserve_in_the_futures_wallet(btc_8h: MarketData) -> None:
    config = BacktestConfig(
        start=ts("2022-06-01"), end=ts("2022-09-01"), margin_mode="cross", reserve_usd=1_000
    )
    cross = run_backtest(btc_8h, build_strategy("full"), config)
    isolated = run_backtest(
        btc_8h, build_strategy("full"), dataclasses.replace(config, margin_mode="isolated")
    )
    assert cross.timeseries["perp_value_usd"].iloc[0] == pytest.approx(
        isolated.timeseries["perp_value_usd"].iloc[0] + 1_000
    )
    # a bigger margin balance lowers the margin ratio and pushes the liquidation price away
    assert (cross.timeseries["margin_ratio"] < isolated.timeseries["margin_ratio"]).all()
    assert (
        cross.timeseries["liquidation_distance_pct"] > isolated.timeseries["liquidation_distance_pct"]
    ).all()


def test_spot_quantity_and_collateral_instead_of_capital(btc_8h: MarketData) -> None:
    config = BacktestConfig(
        start=ts("2023-01-01"),
        end=ts("2023-02-01"),
        spot_qty_base=0.5,
        collateral=4_000,
        collateral_policy="none",
    )
    result = run_backtest(btc_8h, build_strategy("full"), config)
    assert result.base_qty == 0.5
    assert result.initial_equity_usd == pytest.approx(
        0.5 * btc_8h.bars.at[ts("2023-01-01"), "spot_open"] + 4_000
    )
    spot_trades = result.ledger[(result.ledger["kind"] == "trade") & (result.ledger["leg"] == "spot")]
    assert spot_trades.empty  # the coins were already held


def test_brackets_in_force_and_an_explicit_table(btc_8h: MarketData) -> None:
    config = BacktestConfig(start=ts("2022-06-01"), end=ts("2022-09-01"))
    result = run_backtest(btc_8h, build_strategy("full"), config)
    assert "2022-02-12" in result.settings["brackets"]
    single = BracketSchedule.single(BracketTable.single("BTCUSDT", 0.05), note="user MMR 5 %")
    riskier = run_backtest(btc_8h, build_strategy("full"), config, brackets=single)
    assert riskier.settings["brackets"] == "user MMR 5 %"
    assert (riskier.timeseries["margin_ratio"] > result.timeseries["margin_ratio"]).all()


def test_refusals(btc_8h: MarketData) -> None:
    with pytest.raises(ConfigError, match="COIN-M maintenance brackets"):
        run_backtest(btc_8h, build_strategy("full"), BacktestConfig(contract="inverse"))
    with pytest.raises(ConfigError, match="at most 125x"):
        run_backtest(btc_8h, build_strategy("full"), BacktestConfig(leverage=200))
    with pytest.raises(DataError, match="no bars"):
        run_backtest(btc_8h, build_strategy("full"), BacktestConfig(start=ts("2030-01-01")))
    bad = btc_8h.bars.copy()
    bad.iloc[5, bad.columns.get_loc("perp_open")] = np.nan
    with pytest.raises(DataError, match="perp_open was nan"):
        run_backtest(dataclasses.replace(btc_8h, bars=bad), build_strategy("full"), BacktestConfig())


def test_liquidation_uses_the_mark_extremes_when_the_data_has_them(
    btc_8h: MarketData, btc_1h: MarketData
) -> None:
    # Mark OHLC for the 8-hour bars from the real hourly mark closes inside each bar (a lower bound of
    # the mark's true range, but real): the mark wicks less than the last trade.
    hourly_mark = btc_1h.bars["mark_close"]
    grouped = hourly_mark.groupby(hourly_mark.index.floor("8h"))
    bars = btc_8h.bars.copy()
    bars["mark_open"] = grouped.first().reindex(bars.index)
    bars["mark_high"] = grouped.max().reindex(bars.index)
    bars["mark_low"] = grouped.min().reindex(bars.index)
    with_mark = dataclasses.replace(btc_8h, bars=bars)
    assert with_mark.has_mark_ohlc
    config = BacktestConfig(
        start=ts("2020-01-01"), end=ts("2021-01-01"), leverage=3.0, collateral_policy="none"
    )
    on_mark = run_backtest(with_mark, build_strategy("full"), config)
    on_perp = run_backtest(btc_8h, build_strategy("full"), config)
    assert on_mark.settings["liquidation_judged_on"].startswith("mark_high")
    assert on_perp.settings["liquidation_judged_on"].startswith("perp_high")
    (mark_event,) = [e for e in on_mark.events if e.kind == "liquidation"]
    (perp_event,) = [e for e in on_perp.events if e.kind == "liquidation"]
    assert mark_event.ts >= perp_event.ts
    (row,) = on_mark.ledger[on_mark.ledger["kind"] == "liquidation"].itertuples()
    bar_open = mark_event.ts - pd.Timedelta(hours=8)
    assert bars.at[bar_open, "mark_high"] >= row.price_usd


def test_borrow_rate_series_is_charged_per_bar(btc_8h: MarketData) -> None:
    config = BacktestConfig(start=ts("2022-05-01"), end=ts("2022-12-31"))
    strategy = build_strategy(
        "dynamic-neutral", signal="mean", window=3, negative_mode="reverse", enter_apr=0.0
    )
    constant = run_backtest(btc_8h, strategy, config)
    # the same constant rate given as a series gives the same borrow cost; doubling it from August doubles it there
    flat = pd.Series([0.0001], index=[ts("2022-01-01")])
    same = run_backtest(btc_8h, strategy, dataclasses.replace(config, borrow_rate_series=flat))
    assert same.attribution["borrow_usd"] == pytest.approx(constant.attribution["borrow_usd"])
    stepped = pd.Series([0.0001, 0.0002], index=[ts("2022-01-01"), ts("2022-08-01")])
    higher = run_backtest(btc_8h, strategy, dataclasses.replace(config, borrow_rate_series=stepped))
    rows_c = constant.ledger[constant.ledger["kind"] == "borrow"].set_index("ts")["amount_usd"]
    rows_h = higher.ledger[higher.ledger["kind"] == "borrow"].set_index("ts")["amount_usd"]
    early = rows_c.index < ts("2022-08-01")
    assert rows_h[early].to_numpy() == pytest.approx(rows_c[early].to_numpy())
    assert rows_h[~early].to_numpy() == pytest.approx(2 * rows_c[~early].to_numpy())
    with pytest.raises(DataError, match="borrow_rate_series starts"):
        late = pd.Series([0.0001], index=[ts("2022-06-01")])
        run_backtest(btc_8h, strategy, dataclasses.replace(config, borrow_rate_series=late))
    with pytest.raises(ConfigError, match="fractions per day"):
        BacktestConfig(borrow_rate_series=pd.Series([1.5], index=[ts("2022-06-01")]))


def test_hysteresis_and_the_fee_aware_rule_cut_switches_on_real_funding(btc_8h: MarketData) -> None:
    config = BacktestConfig(
        start=ts("2022-01-01"),
        end=ts("2024-01-01"),
        collateral_policy="sell_spot",
        trigger_margin_ratio=0.05,
        target_margin_ratio=0.02,
    )
    costs = config.cost_options()

    def switches(**options: object) -> int:
        return run_backtest(btc_8h, build_strategy("dynamic-neutral", **options, **costs), config).switches

    flip = switches(signal="latest", enter_apr=0.0, exit_apr=0.0)
    smoothed = switches(signal="mean", window=9, enter_apr=0.05, exit_apr=0.0)
    fee_aware = switches(signal="mean", window=9, enter_apr=0.05, exit_apr=0.0, horizon_days=3.0)
    assert flip > smoothed > fee_aware
    article = run_backtest(btc_8h, build_strategy("dynamic-article"), config)
    assert article.switches >= flip  # the article's rule flips on every sign change of the latest rate


def test_roc_gate_reduces_time_in_carry(btc_8h: MarketData) -> None:
    config = BacktestConfig(start=ts("2022-01-01"), end=ts("2023-01-01"))
    costs = config.cost_options()
    plain = run_backtest(btc_8h, build_strategy("dynamic-neutral", enter_apr=0.0, **costs), config)
    gated = run_backtest(
        btc_8h,
        build_strategy("dynamic-neutral", enter_apr=0.0, roc_window=21, roc_gate=-0.05, **costs),
        config,
    )
    hedged_plain = (plain.timeseries["hedge_ratio"] > 0.5).mean()
    hedged_gated = (gated.timeseries["hedge_ratio"] > 0.5).mean()
    assert hedged_gated < hedged_plain
    assert any("ROC below the gate" in e.detail for e in gated.events)


def test_default_policy_keeps_the_btc_hedge_neutral_and_alive_through_2020_2026(btc_8h: MarketData) -> None:
    # With no policy the 2x short is liquidated in 2020 (test above); the default sells spot and
    # shrinks the short alike when the margin ratio passes 2 %, so the hedge survives and stays neutral.
    config = BacktestConfig()
    assert config.collateral_policy == "sell_spot"
    result = run_backtest(btc_8h, build_strategy("full"), config)
    assert result.liquidations == 0
    assert any(e.kind == "reduce" for e in result.events)
    assert result.timeseries["net_exposure_pct"].abs().max() < 0.01
    assert BacktestConfig(contract="inverse").collateral_policy == "none"


def test_fee_aware_rule_prices_borrow_at_the_series_first_rate_not_a_later_one() -> None:
    series = pd.Series([0.0003, 0.0009], index=[ts("2022-01-01"), ts("2022-06-01")])
    assert BacktestConfig(borrow_rate_series=series).cost_options()["borrow_rate_per_day"] == 0.0003
    assert BacktestConfig(borrow_rate_per_day=0.0002).cost_options()["borrow_rate_per_day"] == 0.0002


def test_in_force_brackets_for_a_symbol_listed_after_the_first_snapshot() -> None:
    # ARBUSDT (listed 2023-03) is in the bundled snapshots from 2024-02-03 only, POLUSDT from 2024-10-24:
    # each bar uses the newest snapshot that lists the symbol, earlier bars the first that does.
    from perphedge.data.bundled import load_bundled

    for symbol, first in (("ARBUSDT", "2024-02-03"), ("POLUSDT", "2024-10-24")):
        market = load_bundled(symbol, "8h")
        result = run_backtest(market, build_strategy("full"), BacktestConfig())
        note = result.settings["brackets"]
        assert f"bars before {first} use the {first} snapshot" in note
        assert "2022-02-12" not in note  # a snapshot without the symbol is not used
        assert abs(attribution_gap(result)) < 0.005


def test_a_position_already_past_its_liquidation_price_at_the_open_is_liquidated_at_the_open(
    btc_8h: MarketData,
) -> None:
    # Coins held and no collateral: the short opened at 27,201.10 has no margin (a margin_call), so its
    # liquidation price (27,079) is below the bar's open. It is closed at the open, where the mark already
    # was; closing it at the liquidation price booked a 122 USD gain on a short in a rising bar.
    config = BacktestConfig(
        spot_qty_base=1.0,
        collateral=0.0,
        collateral_policy="none",
        start=ts("2023-06-01"),
        end=ts("2023-06-03"),
    )
    result = run_backtest(btc_8h, build_strategy("full"), config)
    assert [e.kind for e in result.events][:3] == ["open", "margin_call", "liquidation"]
    bar_open = btc_8h.bars.at[ts("2023-06-01"), "perp_open"]
    (liq_row,) = result.ledger[result.ledger["kind"] == "liquidation"].itertuples()
    assert liq_row.price_usd == bar_open == 27_201.10
    assert result.attribution["perp_pnl_usd"] == 0.0  # opened and closed at the same open
    assert "opened beyond its liquidation price" in result.events[2].detail
    assert abs(attribution_gap(result)) < 0.005


def test_withdraw_excess_leaves_the_margin_the_collateral_policy_restores(btc_8h: MarketData) -> None:
    # At 5x the initial margin of a BTC short is 20 % of its notional: margin ratio 0.4 % / 20 % = 2 %,
    # the default sell_spot trigger. Withdrawing down to it made the policy sell spot at the next close,
    # the sale was moved into the futures wallet and withdrawn again: 535 reductions sold every coin of
    # the hedge in 2023-24 (and an hourly SOL run shrank the base quantity to 0 and divided by it).
    window = {"start": ts("2023-01-01"), "end": ts("2024-06-01"), "leverage": 5.0}
    kept = run_backtest(btc_8h, build_strategy("full"), BacktestConfig(**window))
    withdrawn = run_backtest(btc_8h, build_strategy("full"), BacktestConfig(**window, withdraw_excess=True))
    # margin withdrawn on dips must be made up by selling spot on the next rise (10 reductions against
    # 6), but no longer hundreds
    reductions = sum(e.kind == "reduce" for e in withdrawn.events)
    assert reductions <= 2 * sum(e.kind == "reduce" for e in kept.events)
    assert withdrawn.base_qty > 0.3 * kept.base_qty > 0
    assert any(withdrawn.ledger["note"] == "withdraw excess margin")  # it still withdraws
    # after each withdrawal the margin ratio is at most the policy's target
    closes = withdrawn.timeseries
    withdraw_ts = withdrawn.ledger.loc[withdrawn.ledger["note"] == "withdraw excess margin", "ts"].unique()
    assert (closes.loc[pd.DatetimeIndex(withdraw_ts), "margin_ratio"] <= 0.008 + 1e-12).all()
    assert abs(attribution_gap(withdrawn)) < 0.005


def test_buy_and_hold_puts_the_reserve_in_spot_too(btc_8h: MarketData) -> None:
    # "the whole capital (plus any reserve) in spot": the benchmark run kept a 5,000 USD reserve as cash
    # (30,536 USD at the end of 2023) while every result's buy_and_hold_equity_usd column, its own
    # included, bought spot with it (38,304 USD): two benchmarks for one run. In cross mode the reserve
    # was even deposited in a futures wallet the benchmark has no use for.
    for margin_mode in ("isolated", "cross"):
        config = BacktestConfig(
            start=ts("2023-01-01"), end=ts("2024-01-01"), reserve_usd=5_000.0, margin_mode=margin_mode
        )
        hold = run_buy_and_hold(btc_8h, config)
        hedge = run_backtest(btc_8h, build_strategy("full"), config)
        coins = 15_000 / (btc_8h.bars.at[ts("2023-01-01"), "spot_open"] * 1.001)
        final = coins * btc_8h.bars["spot_close"][ts("2023-12-31 16:00")]
        assert hold.final_equity_usd == pytest.approx(final)
        assert hold.timeseries["buy_and_hold_equity_usd"].iloc[-1] == pytest.approx(final)
        assert hedge.timeseries["buy_and_hold_equity_usd"].iloc[-1] == pytest.approx(final)
        assert (hold.ledger["kind"] != "transfer").all()  # nothing moved to a futures wallet


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _AlwaysReverseCarry:
    """Reverse carry throughout (borrowed spot sold, perp long): the dynamic-neutral reverse mode, held."""

    name: str = "always-reverse-carry"
    decides_on: str = "start"

    def initial_memory(self):  # noqa: ANN201
        from perphedge.strategies.base import StrategyMemory

        return StrategyMemory()

    def decide(self, view, state, memory):  # noqa: ANN001, ANN201
        from perphedge.strategies.base import HedgeMode, TargetHedge

        target = TargetHedge(
            spot_fraction=-1.0, perp_fraction=1.0, mode=HedgeMode.REVERSE_CARRY, reason="test"
        )
        return target, memory


def test_default_policy_keeps_a_reverse_carry_alive_through_the_2021_crash(btc_8h: MarketData) -> None:
    # The perp long of a reverse carry loses as the price falls, while the short spot gains in the spot
    # wallet. sell_spot acted only on a long spot leg: through the May 2021 crash the margin ratio passed
    # its 2 % trigger at closes (2.5 %), nothing was done, and the long was liquidated on 2021-05-19 exactly
    # as with no policy. The spot wallet's free cash (beyond the borrowed coins' value) now moves first.
    window = {"start": ts("2021-04-14"), "end": ts("2022-12-31")}
    unprotected = run_backtest(
        btc_8h, _AlwaysReverseCarry(), BacktestConfig(**window, collateral_policy="none")
    )
    assert unprotected.liquidations == 1
    result = run_backtest(btc_8h, _AlwaysReverseCarry(), BacktestConfig(**window))
    assert result.liquidations == 0
    top_ups = [e for e in result.events if e.kind == "top_up"]
    assert top_ups and "free spot-wallet cash" in top_ups[0].detail
    assert np.abs(result.timeseries["net_exposure_pct"]).max() < 1e-9  # still neutral
    moved = result.ledger[result.ledger["note"].str.startswith("free spot cash")]
    assert (moved.groupby("ts")["amount_usd"].sum().abs() < 1e-9).all()  # internal: pairs summing to 0
    assert abs(attribution_gap(result)) < 0.005
