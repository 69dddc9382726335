"""The same strategy code decides in backtest and keeper: same switches, at the same settlements, for the same reasons."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

import perphedge.engine.orders
import perphedge.keeper.loop
from perphedge.data.bundled import load_bundled
from perphedge.engine.config import BacktestConfig
from perphedge.engine.loop import run_backtest
from perphedge.strategies.dynamic_neutral import DynamicNeutral
from perphedge.strategies.registry import build_strategy
from tests.keeper.kit import close, make_keeper, make_spec

OPTIONS = {"negative_mode": "unhedge", "enter_apr": 0.10, "exit_apr": 0.03}
START, END = "2024-03-01", "2024-06-01"  # BTCUSDT funding fell below 3 % APR in April 2024, then recovered


def test_keeper_uses_the_engine_target_to_orders_helper_and_the_registry_strategy(tmp_path: Path) -> None:
    assert perphedge.keeper.loop.orders_for is perphedge.engine.orders.orders_for
    assert perphedge.keeper.loop.mode_of is perphedge.engine.orders.mode_of
    spec = make_spec(tmp_path, strategy={"name": "dynamic-neutral", "options": OPTIONS})
    keeper, _ = make_keeper(spec)
    assert isinstance(keeper.strategy, DynamicNeutral) and keeper.strategy == build_strategy(
        "dynamic-neutral", **OPTIONS
    )
    close(keeper)


def test_keeper_and_backtest_switch_at_the_same_settlements_on_real_funding(tmp_path: Path) -> None:
    market = load_bundled("BTCUSDT", "8h")
    window = dataclasses.replace(
        market, bars=market.bars.loc[START:END], funding=market.funding.loc[START:END]
    )
    result = run_backtest(
        window, build_strategy("dynamic-neutral", **OPTIONS), BacktestConfig(capital_usd=30_000, leverage=2.0)
    )
    backtest_switches = [
        (e.ts, e.detail.split(": ", 1)[1]) for e in result.events if e.kind == "switch"
    ]  # detail: "carry → unhedged: <the strategy's reason>"

    spec = make_spec(
        tmp_path,
        strategy={"name": "dynamic-neutral", "options": OPTIONS},
        paper={"start": START},
        risk={"max_loss_usd": 1e9},
    )
    keeper, _ = make_keeper(spec)
    keeper.run(len(window.bars) - 1)
    keeper_switches = []
    previous = None
    for decision in keeper.journal.decisions():
        if decision.kind != "strategy":
            continue
        if previous is not None and decision.mode != previous:
            keeper_switches.append((pd.Timestamp(decision.ts_ms, unit="ms", tz="UTC"), decision.reason))
        previous = decision.mode
    trades = [d for d in keeper.journal.decisions() if d.status == "done"]
    close(keeper)

    assert len(backtest_switches) == 2  # carry → unhedged (2024-04-21), unhedged → carry (2024-05-23)
    assert keeper_switches == backtest_switches
    assert len(trades) == 3  # open, close the perp, reopen: the keeper acted on each decision
