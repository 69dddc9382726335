"""Property: over random real-data windows and options, the ledger's components sum to the change in
equity to the cent — at the end and at every bar close."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perphedge.data.schema import MarketData
from perphedge.engine.config import BacktestConfig
from perphedge.engine.loop import run_backtest
from perphedge.engine.results import ATTRIBUTION_KEYS
from perphedge.strategies.registry import build_strategy

STRATEGIES = st.sampled_from(
    [
        ("full", {}),
        ("partial", {"ratio": 0.5}),
        ("dynamic-article", {"signal": "mean", "window": 3}),
        ("dynamic-neutral", {}),
        ("dynamic-neutral", {"signal": "ema", "window": 6, "negative_mode": "reverse", "horizon_days": 14.0}),
        (
            "dynamic-neutral",
            {"signal": "latest", "negative_mode": "reverse", "roc_window": 6, "roc_gate": -0.03},
        ),
    ]
)
POLICIES = st.sampled_from(
    [
        {},
        {"collateral_policy": "sell_spot", "trigger_margin_ratio": 0.05, "target_margin_ratio": 0.02},
        {
            "collateral_policy": "reserve",
            "reserve_usd": 3_000.0,
            "trigger_margin_ratio": 0.05,
            "target_margin_ratio": 0.02,
        },
        {"margin_mode": "cross", "reserve_usd": 1_000.0},
        {"withdraw_excess": True, "reinvest_funding": True},
    ]
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    strategy=STRATEGIES,
    policy=POLICIES,
    start_day=st.integers(0, 2_150),
    length_days=st.integers(5, 700),
    leverage=st.sampled_from([1.0, 2.0, 3.0, 5.0]),
    slippage_bps=st.sampled_from([0.0, 2.5, 10.0]),
)
def test_components_sum_to_equity_change_to_the_cent(
    btc_8h: MarketData,
    strategy: tuple[str, dict],
    policy: dict,
    start_day: int,
    length_days: int,
    leverage: float,
    slippage_bps: float,
) -> None:
    start = pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(days=start_day)
    end = start + pd.Timedelta(days=length_days)
    config = BacktestConfig(start=start, end=end, leverage=leverage, slippage_bps=slippage_bps, **policy)
    name, options = strategy
    if name == "dynamic-neutral":
        options = {**options, **config.cost_options()}
    result = run_backtest(btc_8h, build_strategy(name, **options), config)

    total = sum(result.attribution[k] for k in ATTRIBUTION_KEYS)
    change = result.final_equity_usd - result.initial_equity_usd - result.net_transfers_usd
    assert abs(total - change) < 0.005

    # at every bar close: the flows booked up to then equal equity − initial. A fill at the open of the
    # next bar carries the same time stamp as this close, so it counts after it; a settlement carries a
    # few ms of jitter after the close it belongs to, so it counts before it.
    ledger = result.ledger[result.ledger["kind"] != "transfer"]
    effective_ms = ledger["ts"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    kind = ledger["kind"].astype(str).to_numpy()
    effective_ms = effective_ms + np.where(np.isin(kind, ["trade", "fee", "slippage"]), 1, 0)
    effective_ms = effective_ms - np.where(kind == "funding", 60_000, 0)
    order = np.argsort(effective_ms, kind="stable")
    close_ms = result.timeseries.index.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    cumulative = np.concatenate([[0.0], np.cumsum(ledger["amount_usd"].to_numpy()[order])])
    upto = np.searchsorted(effective_ms[order], close_ms, side="right")
    booked = cumulative[upto]
    equity_change = result.timeseries["equity_usd"].to_numpy() - result.initial_equity_usd
    np.testing.assert_allclose(booked, equity_change, rtol=0, atol=0.005)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["full", "partial", "dynamic-article", "dynamic-neutral"]),
    start_day=st.integers(0, 2_150),
    length_days=st.integers(5, 700),
    slippage_bps=st.sampled_from([0.0, 5.0]),
    extra_coins=st.sampled_from([None, 0.0, 0.2]),
)
def test_inverse_components_sum_to_equity_change(
    btc_8h: MarketData,
    name: str,
    start_day: int,
    length_days: int,
    slippage_bps: float,
    extra_coins: float | None,
) -> None:
    from perphedge.engine.accounts import BracketSchedule
    from perphedge.mechanics.brackets import BracketTable

    start = pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(days=start_day)
    holdings = {} if extra_coins is None else {"spot_qty_base": 0.5, "collateral": extra_coins}
    config = BacktestConfig(
        contract="inverse",
        start=start,
        end=start + pd.Timedelta(days=length_days),
        slippage_bps=slippage_bps,
        **holdings,
    )
    brackets = BracketSchedule.single(BracketTable.single("BTCUSD", 0.004))
    result = run_backtest(btc_8h, build_strategy(name), config, brackets=brackets)
    total = sum(result.attribution[k] for k in ATTRIBUTION_KEYS)
    assert abs(total - (result.final_equity_usd - result.initial_equity_usd)) < 0.005
