"""Metrics against independent computations on the real bundled BTCUSDT prices and known series."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.errors import InputError
from perphedge.report.metrics import (
    SUMMARY_KEYS,
    calc_cagr,
    calc_calmar,
    calc_max_drawdown,
    calc_per_year,
    calc_periods_per_year,
    calc_sharpe,
    calc_sortino,
    calc_summary,
    calc_time_hedged,
    calc_total_return,
    calc_volatility,
    to_drawdown_series,
    to_equity_curve,
    to_returns,
    to_wealth_index,
)
from tests.report.builders import btc_8h, spot_closes, spot_only_result

REQUIRED_SUMMARY_KEYS = {
    "start",
    "end",
    "final_equity_usd",
    "total_return",
    "cagr",
    "sharpe",
    "max_drawdown",
    "funding_usd",
    "fees_usd",
    "spot_pnl_usd",
    "perp_pnl_usd",
    "borrow_usd",
    "liquidations",
    "time_hedged_pct",
    "volatility",
    "sortino",
    "calmar",
    "max_drawdown_start",
    "max_drawdown_end",
    "slippage_usd",
    "liquidation_usd",
    "trades",
    "switches",
    "worst_margin_ratio",
    "realised_funding_apr_on_hedged_notional",
}


@pytest.fixture(scope="module")
def btc_close() -> pd.Series:
    return spot_closes(btc_8h())


# --- drawdown ----------------------------------------------------------------------------------------


def test_to_drawdown_series_real_btc_matches_a_running_peak_loop(btc_close: pd.Series) -> None:
    # Arrange: the drawdown computed by hand with a plain loop (a different method from cummax)
    expected = []
    peak = -math.inf
    for price in btc_close.to_list():
        peak = max(peak, price)
        expected.append(price / peak - 1.0)
    # Act
    drawdown = to_drawdown_series(btc_close)
    # Assert
    np.testing.assert_allclose(drawdown.to_numpy(), expected, rtol=0, atol=1e-15)
    assert (drawdown <= 0).all()


def test_calc_max_drawdown_real_btc_is_the_2021_to_2022_bear_market(btc_close: pd.Series) -> None:
    # Brute force over every (peak, later trough) pair on daily-sampled closes, then the exact 8 h answer.
    values = btc_close.to_numpy()
    worst_loop = 0.0
    peak = values[0]
    for price in values:
        peak = max(peak, price)
        worst_loop = min(worst_loop, price / peak - 1.0)

    result = calc_max_drawdown(btc_close)

    assert result.max_drawdown == pytest.approx(worst_loop, abs=1e-15)
    # BTC's all-time high of November 2021 and the FTX-collapse low of November 2022 (≈ −77 %).
    assert result.peak_ts.strftime("%Y-%m") == "2021-11"
    assert result.trough_ts.strftime("%Y-%m") == "2022-11"
    assert -0.80 < result.max_drawdown < -0.74
    assert btc_close.loc[result.peak_ts] == btc_close.loc[: result.trough_ts].max()
    assert btc_close.loc[result.trough_ts] == pytest.approx(
        btc_close.loc[result.peak_ts] * (1 + result.max_drawdown)
    )
    # Recovery: the first close back at the 2021 peak (March 2024, before the halving).
    assert result.recovery_ts is not None and result.recovery_ts.strftime("%Y-%m") == "2024-03"
    assert (
        btc_close.loc[result.peak_ts : result.recovery_ts].iloc[1:-1] < btc_close.loc[result.peak_ts]
    ).all()


def test_calc_max_drawdown_rising_series_has_no_drawdown_and_no_dates(btc_close: pd.Series) -> None:
    rising = btc_close.cummax()
    result = calc_max_drawdown(rising)
    assert result.max_drawdown == 0.0
    assert result.peak_ts is None and result.trough_ts is None and result.recovery_ts is None
    assert math.isnan(calc_calmar(rising))


def test_calc_max_drawdown_unrecovered_has_no_recovery_date(btc_close: pd.Series) -> None:
    to_trough = btc_close.loc[:"2022-12-31"]
    assert calc_max_drawdown(to_trough).recovery_ts is None


# --- returns, total return, CAGR ---------------------------------------------------------------------


def test_to_returns_real_btc_is_close_over_previous_close(btc_close: pd.Series) -> None:
    returns = to_returns(btc_close)
    values = btc_close.to_list()
    expected = [values[i] / values[i - 1] - 1 for i in range(1, len(values))]
    assert len(returns) == len(btc_close) - 1
    assert returns.index[0] == btc_close.index[1]
    np.testing.assert_allclose(returns.to_numpy(), expected, rtol=1e-12)


def test_to_returns_a_deposit_is_a_flow_not_a_return(btc_close: pd.Series) -> None:
    # Arrange: 1 BTC held; 5,000 USD cash deposited at the 100th bar and kept as cash from then on.
    deposit_at = btc_close.index[100]
    cash = pd.Series(np.where(btc_close.index >= deposit_at, 5_000.0, 0.0), index=btc_close.index)
    equity = btc_close + cash
    flows = pd.Series([5_000.0], index=pd.DatetimeIndex([deposit_at]))
    # Act
    returns = to_returns(equity, flows)
    # Assert: the deposit bar's return is the coin's move on the pre-deposit equity only
    i = 100
    coin_move = btc_close.iloc[i] - btc_close.iloc[i - 1]
    assert returns.loc[deposit_at] == pytest.approx(coin_move / btc_close.iloc[i - 1], rel=1e-12)
    # ... and without the flow the deposit would have shown as a > +5 % "return"
    assert to_returns(equity).loc[deposit_at] > returns.loc[deposit_at] + 0.05


def test_to_returns_flow_off_the_equity_index_is_refused(btc_close: pd.Series) -> None:
    flows = pd.Series([1.0], index=pd.DatetimeIndex([btc_close.index[3] + pd.Timedelta(minutes=1)]))
    with pytest.raises(InputError, match="not on the equity index"):
        to_returns(btc_close, flows)


def test_calc_total_return_and_cagr_real_btc(btc_close: pd.Series) -> None:
    first, last = float(btc_close.iloc[0]), float(btc_close.iloc[-1])
    days = (btc_close.index[-1] - btc_close.index[0]).total_seconds() / 86_400
    assert calc_total_return(btc_close) == pytest.approx(last / first - 1, rel=1e-12)
    assert calc_cagr(btc_close) == pytest.approx((last / first) ** (365 / days) - 1, rel=1e-12)
    # Compounding the bar returns gives the same total return.
    wealth = to_wealth_index(to_returns(btc_close), start=btc_close.index[0])
    assert wealth.iloc[0] == 1.0
    assert wealth.iloc[-1] - 1 == pytest.approx(last / first - 1, rel=1e-9)


def test_calc_cagr_exactly_one_year_is_the_total_return(btc_close: pd.Series) -> None:
    start = pd.Timestamp("2023-01-01 00:00", tz="UTC")
    year = btc_close.loc[start : start + pd.Timedelta(days=365)]
    assert calc_cagr(year) == pytest.approx(calc_total_return(year), rel=1e-12)


# --- frequency, volatility, Sharpe, Sortino, Calmar --------------------------------------------------


def test_calc_periods_per_year_from_bar_spacing(btc_close: pd.Series) -> None:
    assert calc_periods_per_year(btc_close.index) == pytest.approx(1095.0)
    hourly = pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")
    assert calc_periods_per_year(hourly) == pytest.approx(8760.0)


def test_calc_volatility_sharpe_sortino_match_textbook_formulas(btc_close: pd.Series) -> None:
    # Arrange: statistics-module computations, independent of numpy
    returns = to_returns(btc_close.loc["2021-01-01":"2021-12-31"])
    values = returns.to_list()
    periods = 1095.0
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in values) / len(values))
    # Act / Assert
    assert calc_volatility(returns, periods) == pytest.approx(stdev * math.sqrt(periods), rel=1e-10)
    assert calc_sharpe(returns, periods) == pytest.approx(mean / stdev * math.sqrt(periods), rel=1e-10)
    assert calc_sortino(returns, periods) == pytest.approx(mean / downside * math.sqrt(periods), rel=1e-10)
    # A 4 % risk-free rate lowers Sharpe by 0.04 / annualised volatility (the std is unchanged).
    lowered = calc_sharpe(returns, periods, risk_free_rate_per_year=0.04)
    assert lowered == pytest.approx(
        calc_sharpe(returns, periods) - 0.04 / (stdev * math.sqrt(periods)), rel=1e-10
    )


def test_calc_sharpe_of_constant_returns_is_undefined() -> None:
    # A full hedge earning exactly the baseline 0.01 % per 8 h every period has zero volatility.
    index = pd.date_range("2024-01-01", periods=30, freq="8h", tz="UTC")
    returns = pd.Series(0.0001, index=index)
    assert math.isnan(calc_sharpe(returns, 1095.0))
    assert math.isnan(calc_sortino(returns, 1095.0))
    assert calc_volatility(returns, 1095.0) == pytest.approx(0.0, abs=1e-15)


def test_calc_calmar_is_cagr_over_max_drawdown(btc_close: pd.Series) -> None:
    expected = calc_cagr(btc_close) / abs(calc_max_drawdown(btc_close).max_drawdown)
    assert calc_calmar(btc_close) == pytest.approx(expected, rel=1e-12)


# --- per year ----------------------------------------------------------------------------------------


def test_calc_per_year_real_btc_chains_year_end_closes(btc_close: pd.Series) -> None:
    table = calc_per_year(btc_close)
    year_end = btc_close.groupby(btc_close.index.year).last()
    assert list(table.index) == sorted(set(btc_close.index.year))
    assert table.loc[2022, "return"] == pytest.approx(year_end[2022] / year_end[2021] - 1, rel=1e-12)
    assert table.loc[2022, "start_equity_usd"] == year_end[2021]
    # 2022 was a falling year for BTC (about −64 %)
    assert -0.70 < table.loc[2022, "return"] < -0.60
    # Chaining the yearly returns gives the whole-period return.
    assert float(np.prod(1 + table["return"])) - 1 == pytest.approx(calc_total_return(btc_close), rel=1e-9)
    assert (table["max_drawdown"] <= 0).all()


def test_calc_per_year_sums_the_ledger_by_component() -> None:
    result = spot_only_result(btc_8h())
    table = calc_per_year(to_equity_curve(result), result.ledger)
    assert table["spot_pnl_usd"].sum() == pytest.approx(result.attribution["spot_pnl_usd"])
    assert table["spot_pnl_usd"].iloc[:-1].eq(0).all()


# --- bad input ---------------------------------------------------------------------------------------


def test_metrics_refuse_naive_nan_and_non_positive_equity(btc_close: pd.Series) -> None:
    naive = btc_close.copy()
    naive.index = naive.index.tz_localize(None)
    with pytest.raises(InputError, match="tz-aware"):
        to_drawdown_series(naive)
    with_nan = btc_close.copy()
    with_nan.iloc[5] = np.nan
    with pytest.raises(InputError, match=r"was nan"):
        calc_total_return(with_nan)
    wiped = btc_close.copy()
    wiped.iloc[7] = 0.0
    with pytest.raises(InputError, match="positive equity"):
        to_returns(wiped)
    with pytest.raises(InputError, match="at least 2 points"):
        calc_cagr(btc_close.iloc[:1])


# --- properties --------------------------------------------------------------------------------------

_positive_paths = st.lists(
    st.floats(min_value=-0.5, max_value=1.0, allow_nan=False), min_size=2, max_size=200
)


def _equity_from_returns(returns: list[float], scale: float = 1_000.0) -> pd.Series:
    index = pd.date_range("2021-01-01", periods=len(returns) + 1, freq="8h", tz="UTC")
    return pd.Series(scale * np.cumprod(np.concatenate([[1.0], 1.0 + np.asarray(returns)])), index=index)


@settings(max_examples=60, deadline=None)
@given(returns=_positive_paths, scale=st.floats(min_value=1e-3, max_value=1e6))
def test_metrics_are_scale_invariant_and_bounded(returns: list[float], scale: float) -> None:
    base = _equity_from_returns(returns)
    scaled = base * scale
    drawdown = to_drawdown_series(scaled)
    assert ((drawdown <= 1e-12) & (drawdown >= -1.0)).all()
    assert calc_max_drawdown(scaled).max_drawdown == pytest.approx(
        calc_max_drawdown(base).max_drawdown, abs=1e-12
    )
    assert calc_total_return(scaled) == pytest.approx(calc_total_return(base), rel=1e-9, abs=1e-12)
    recovered = to_returns(scaled).to_numpy()
    np.testing.assert_allclose(recovered, returns, rtol=1e-9, atol=1e-12)
    assert float(np.prod(1 + recovered)) - 1 == pytest.approx(calc_total_return(base), rel=1e-9, abs=1e-12)


# --- the summary -------------------------------------------------------------------------------------


def test_calc_summary_spot_only_real_btc_has_every_key_and_valid_json() -> None:
    # Arrange
    result = spot_only_result(btc_8h())
    # Act
    summary = calc_summary(result)
    # Assert
    assert REQUIRED_SUMMARY_KEYS <= set(summary)
    assert tuple(summary) == SUMMARY_KEYS
    json.dumps(summary, allow_nan=False)  # undefined figures are null, never NaN
    assert summary["total_return"] == pytest.approx(result.final_equity_usd / 10_000 - 1, rel=1e-12)
    assert summary["start"] == "2020-01-01T00:00:00+00:00"  # the open of the first bar
    assert summary["time_hedged_pct"] == 0.0
    assert summary["worst_margin_ratio"] is None  # no perp, no margin
    assert summary["realised_funding_apr_on_hedged_notional"] is None  # no perp notional
    assert summary["spot_pnl_usd"] == pytest.approx(result.final_equity_usd - 10_000)
    assert summary["max_drawdown"] == pytest.approx(calc_max_drawdown(spot_closes(btc_8h())).max_drawdown)


def test_calc_time_hedged_counts_only_bars_that_reduce_exposure() -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="8h", tz="UTC")
    frame = pd.DataFrame(
        {
            # full hedge, partial 0.5, unhedged, article's 200 % long, reverse carry
            "hedge_ratio": [1.0, 0.5, 0.0, 1.0, 1.0],
            "net_exposure_pct": [0.0, 0.5, 1.0, 2.0, 0.0],
        },
        index=index,
    )
    assert calc_time_hedged(frame) == pytest.approx(3 / 5)


# --- the summary of a real engine run ----------------------------------------------------------------


@pytest.fixture(scope="module")
def full_hedge_2023():
    from perphedge.data.catalog import load_market
    from perphedge.engine.config import BacktestConfig
    from perphedge.engine.loop import run_backtest
    from perphedge.strategies.registry import build_strategy

    start, end = pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC")
    market = load_market("BTCUSDT", start=start, end=end)
    result = run_backtest(market, build_strategy("full"), BacktestConfig(leverage=1.0, start=start, end=end))
    return market, result


def test_calc_summary_full_hedge_funding_is_rate_times_notional_at_each_settlement(full_hedge_2023) -> None:
    # Arrange: the settled rates come from the market data, the position from the ledger
    market, result = full_hedge_2023
    funding_rows = result.ledger[result.ledger["kind"] == "funding"]
    settled = market.funding.loc[pd.DatetimeIndex(funding_rows["ts"])]
    notional = funding_rows["qty_base"].abs().to_numpy() * funding_rows["price_usd"].to_numpy()
    by_hand = float(
        np.sum(settled["rate_per_interval"].to_numpy() * notional)
    )  # a short receives rate × notional
    # Act
    summary = calc_summary(result)
    # Assert
    assert len(funding_rows) > 100
    assert summary["funding_usd"] == pytest.approx(by_hand, rel=1e-9)
    # realised APR: the same funding over notional-years, with each settlement's own interval
    notional_years = float(np.sum(notional * settled["interval_hours"].to_numpy() / 8760))
    assert summary["realised_funding_apr_on_hedged_notional"] == pytest.approx(
        by_hand / notional_years, rel=5e-3
    )


def test_calc_summary_attribution_sums_to_the_change_in_equity(full_hedge_2023) -> None:
    _, result = full_hedge_2023
    summary = calc_summary(result)
    components = sum(summary[key] for key in ("spot_pnl_usd", "perp_pnl_usd", "funding_usd", "fees_usd",
                                               "slippage_usd", "borrow_usd", "liquidation_usd"))  # fmt: skip
    change = summary["final_equity_usd"] - summary["initial_equity_usd"] - summary["net_transfers_usd"]
    assert components == pytest.approx(change, abs=0.01)
    assert summary["total_return"] == pytest.approx(change / summary["initial_equity_usd"], rel=1e-9)
    # hedged exactly while the perp was held (BTC's +150 % in 2023 liquidates even a 1x short)
    held = float(np.mean(result.timeseries["hedge_ratio"].to_numpy() > 0))
    assert summary["time_hedged_pct"] == pytest.approx(held)
    assert summary["liquidations"] == result.liquidations


@settings(max_examples=40, deadline=None)
@given(
    deposits=st.lists(
        st.tuples(st.integers(min_value=1, max_value=400), st.floats(min_value=-2_000, max_value=50_000)),
        max_size=5,
    )
)
def test_to_returns_flows_are_not_returns_at_any_bar(deposits) -> None:
    # Arrange: 1 BTC held through 2021 (real closes); cash flows booked at random bars and kept as cash
    closes = spot_closes(btc_8h()).iloc[1000:1401]
    cash = pd.Series(5_000.0, index=closes.index)
    flows = pd.Series(0.0, index=closes.index)
    for bar, amount in deposits:
        cash.iloc[bar:] += amount
        flows.iloc[bar] += amount
    equity = closes + cash
    # Act
    returns = to_returns(equity, flows)
    # Assert: each bar's return is what the holdings at the bar's start earned over the bar
    # ((coin_t + cash_{t-1}) / (coin_{t-1} + cash_{t-1}) - 1); a flow at t only changes later weights.
    held_over_bar = (closes.to_numpy()[1:] + cash.to_numpy()[:-1]) / equity.to_numpy()[:-1] - 1
    np.testing.assert_allclose(returns.to_numpy(), held_over_bar, rtol=1e-9, atol=1e-15)
    wealth = to_wealth_index(returns)
    assert np.isfinite(wealth).all() and (wealth > 0).all()


def test_calc_summary_of_a_liquidated_run_reports_margin_ratio_100_percent() -> None:
    # The 2x short of a full hedge without collateral policy is liquidated intrabar on 2020-08-01; the
    # last bar close before it showed a margin ratio far below 100 %: the summary must not report that.
    from perphedge.engine.config import BacktestConfig
    from perphedge.engine.loop import run_backtest
    from perphedge.strategies.registry import build_strategy

    config = BacktestConfig(
        start=pd.Timestamp("2020-01-01", tz="UTC"),
        end=pd.Timestamp("2021-01-01", tz="UTC"),
        collateral_policy="none",
    )
    result = run_backtest(btc_8h(), build_strategy("full"), config)
    closes = result.timeseries["margin_ratio"].to_numpy(dtype=float)
    assert result.liquidations == 1 and np.nanmax(closes) < 0.5
    summary = calc_summary(result)
    assert summary["liquidations"] == 1
    assert summary["worst_margin_ratio"] == 1.0
    assert summary["min_liquidation_distance"] == 0.0


def test_calc_summary_counts_the_coins_the_sell_spot_policy_sold() -> None:
    # The default linear policy sells spot (and shrinks the short alike) as BTC rallies in 2020–21; the
    # summary's coins must match the ledger's spot trades, and show the holding shrinking.
    from perphedge.engine.config import BacktestConfig
    from perphedge.engine.loop import run_backtest
    from perphedge.strategies.registry import build_strategy

    config = BacktestConfig(
        start=pd.Timestamp("2020-01-01", tz="UTC"), end=pd.Timestamp("2021-07-01", tz="UTC")
    )
    result = run_backtest(btc_8h(), build_strategy("full"), config)
    spot_trades = result.ledger[(result.ledger["kind"] == "trade") & (result.ledger["leg"] == "spot")]
    bought = float(spot_trades["qty_base"].iloc[0])
    summary = calc_summary(result)
    assert summary["spot_qty_start_base"] == pytest.approx(bought, rel=1e-12)
    assert summary["spot_qty_end_base"] == pytest.approx(float(spot_trades["qty_base"].sum()), rel=1e-9)
    assert summary["spot_qty_end_base"] < 0.5 * summary["spot_qty_start_base"]
    # the spot benchmark keeps every coin it bought
    spot = calc_summary(spot_only_result(btc_8h()))
    assert spot["spot_qty_start_base"] == pytest.approx(spot["spot_qty_end_base"], rel=1e-12)
    assert spot["spot_qty_start_base"] == pytest.approx(10_000 / float(btc_8h().bars["spot_open"].iloc[0]))


def test_calc_summary_of_a_run_whose_equity_went_negative_still_reports() -> None:
    # DOTUSDT, flipping between carry and reverse carry on the latest settlement with 30 bps slippage:
    # 193 switches cost more than the capital and the equity goes below 0 on 2023-01-31 (the engine lets
    # the spot wallet go negative). `perphedge backtest` failed with exit 2 ("returns need a positive
    # equity") instead of showing the run; returns and their ratios are undefined, the rest is not.
    from perphedge.data.bundled import load_bundled
    from perphedge.engine.config import BacktestConfig
    from perphedge.engine.loop import run_backtest
    from perphedge.strategies.registry import build_strategy

    config = BacktestConfig(
        leverage=1.0,
        margin_mode="cross",
        collateral_policy="none",
        slippage_bps=30.0,
        start=pd.Timestamp("2022-08-27 08:00", tz="UTC"),
        end=pd.Timestamp("2024-01-09 08:00", tz="UTC"),
    )
    strategy = build_strategy(
        "dynamic-neutral",
        negative_mode="reverse",
        signal="latest",
        enter_apr=0.0,
        exit_apr=0.0,
        **config.cost_options(),
    )
    result = run_backtest(load_bundled("DOTUSDT", "8h"), strategy, config)
    equity = to_equity_curve(result)
    assert equity.min() < 0 < result.initial_equity_usd and result.final_equity_usd < 0
    summary = calc_summary(result)
    json.dumps(summary, allow_nan=False)
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["total_return"] == pytest.approx(result.final_equity_usd / result.initial_equity_usd - 1)
    assert summary["total_return"] < -1  # more than the whole capital was lost
    for undefined in ("cagr", "volatility", "sharpe", "sortino", "calmar"):
        assert summary[undefined] is None
    # the deepest fall from the running peak, below -100 % once the equity is negative
    peak = equity.cummax()
    assert summary["max_drawdown"] == pytest.approx(float((equity / peak - 1).min()))
    assert summary["max_drawdown"] < -1
    assert summary["max_drawdown_trough"] == equity.idxmin().isoformat()
    assert summary["switches"] == result.switches > 100
    # the per-year table and the drawdown series (the HTML report) work too: a year that starts at or
    # below 0 has no return
    per_year = calc_per_year(equity, result.ledger)
    assert per_year.loc[2022, "return"] == pytest.approx(per_year.loc[2022, "end_equity_usd"] / 10_000 - 1)
    assert per_year.loc[2022, "end_equity_usd"] > 0 and per_year.loc[2023, "start_equity_usd"] > 0
    assert per_year.loc[2023, "return"] < -1
    assert math.isnan(per_year.loc[2024, "return"])  # started the year below 0
    assert np.isfinite(to_drawdown_series(equity)).all()


def test_calc_summary_funding_apr_of_the_inverse_hedge_is_on_its_contracts_notional() -> None:
    # The coin-margined full hedge shorts a fixed USD value (whole contracts) for six years; its coins in
    # the spot leg are worth 7x more by 2026 but the perp notional is not. The APR used spot coins ×
    # price as the notional and reported 4.5 % where the settlements averaged 12.6 %.
    from perphedge.data.brackets import bundled_coinm_bracket_table
    from perphedge.engine.accounts import BracketSchedule
    from perphedge.engine.config import BacktestConfig
    from perphedge.engine.loop import run_backtest
    from perphedge.strategies.registry import build_strategy

    market = btc_8h()
    result = run_backtest(
        market,
        build_strategy("full"),
        BacktestConfig(contract="inverse"),
        brackets=BracketSchedule.single(bundled_coinm_bracket_table("BTCUSD")),
    )
    funding = result.ledger[result.ledger["kind"] == "funding"]
    notional_usd = (funding["qty_base"] * funding["price_usd"]).abs()  # contracts × size at each settlement
    assert notional_usd.max() == pytest.approx(notional_usd.min())  # one position held throughout
    summary = calc_summary(result)
    expected = summary["funding_usd"] / (float(notional_usd.iloc[0]) * summary["years"])
    assert summary["realised_funding_apr_on_hedged_notional"] == pytest.approx(expected, rel=0.01)
    assert 0.10 < expected < 0.15  # near the settlements' mean of 12.6 % (funding valued at spot)
