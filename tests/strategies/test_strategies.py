"""The four strategies: their targets, hysteresis, the fee-aware rule, the ROC gate, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from perphedge.errors import ConfigError
from perphedge.strategies.base import HedgeMode, HedgeState, MarketView, Strategy, StrategyMemory
from perphedge.strategies.dynamic_article import DynamicArticle
from perphedge.strategies.dynamic_neutral import DynamicNeutral
from perphedge.strategies.full import FullHedge
from perphedge.strategies.partial import PartialHedge

CARRY_STATE = HedgeState(spot_fraction=1.0, perp_fraction=-1.0, mode=HedgeMode.CARRY)


def view(rates: list[float], closes: list[float] | None = None, interval_hours: float = 8.0) -> MarketView:
    n = len(rates)
    return MarketView(
        ts_ms=n * 8 * 3_600_000,
        spot_price_usd=100.0,
        perp_price_usd=100.0,
        mark_price_usd=100.0,
        funding_settle_ts_ms=np.arange(1, n + 1, dtype=np.int64) * 8 * 3_600_000,
        funding_rates=np.array(rates, dtype=float),
        funding_interval_hours=np.full(n, interval_hours),
        close_prices=np.array(closes if closes is not None else [100.0] * 30, dtype=float),
    )


def run(strategy: Strategy, views: list[MarketView]) -> list[HedgeMode]:
    memory = strategy.initial_memory()
    modes = []
    for v in views:
        target, memory = strategy.decide(v, CARRY_STATE, memory)
        modes.append(target.mode)
    return modes


def test_full_and_partial_targets() -> None:
    target, _ = FullHedge().decide(view([0.0001]), CARRY_STATE, StrategyMemory())
    assert (target.spot_fraction, target.perp_fraction, target.net_exposure_fraction) == (1.0, -1.0, 0.0)
    target, _ = PartialHedge(ratio=0.3).decide(view([0.0001]), CARRY_STATE, StrategyMemory())
    assert target.perp_fraction == -0.3 and target.net_exposure_fraction == pytest.approx(0.7)


@pytest.mark.parametrize("ratio", [-0.1, 1.5, 50])
def test_partial_ratio_out_of_range_is_refused(ratio: float) -> None:
    with pytest.raises(ConfigError, match="ratio"):
        PartialHedge(ratio=ratio)


def test_article_goes_200_percent_long_on_negative_funding() -> None:
    s = DynamicArticle()
    memory = s.initial_memory()
    pos, memory = s.decide(view([0.0001]), CARRY_STATE, memory)
    neg, memory = s.decide(view([0.0001, -0.0002]), CARRY_STATE, memory)
    zero, memory = s.decide(view([0.0001, -0.0002, 0.0]), CARRY_STATE, memory)
    assert (pos.perp_fraction, pos.mode) == (-1.0, HedgeMode.CARRY)
    assert (neg.spot_fraction, neg.perp_fraction, neg.mode) == (1.0, 1.0, HedgeMode.ARTICLE_LONG)
    assert neg.net_exposure_fraction == 2.0
    assert (zero.perp_fraction, zero.mode) == (0.0, HedgeMode.UNHEDGED)


def test_neutral_hysteresis_enter_and_exit_thresholds() -> None:
    s = DynamicNeutral(signal="latest", window=1, enter_apr=0.10, exit_apr=0.02)
    # APRs: 5 % (below enter) → 12 % (enter) → 5 % (above exit: stay) → 1 % (below exit: leave)
    rates = [0.05 / 1095, 0.12 / 1095, 0.05 / 1095, 0.01 / 1095]
    modes = run(s, [view(rates[: k + 1]) for k in range(4)])
    assert modes == [HedgeMode.UNHEDGED, HedgeMode.CARRY, HedgeMode.CARRY, HedgeMode.UNHEDGED]


def test_neutral_reverse_carry_pays_borrow_in_its_threshold() -> None:
    # signal −10 % APR; borrow 0.01 %/day = 3.65 % APR: reverse yields 6.35 % ≥ enter 5 % → reverse
    s = DynamicNeutral(signal="latest", negative_mode="reverse", enter_apr=0.05, borrow_rate_per_day=0.0001)
    target, _ = s.decide(view([-0.10 / 1095]), CARRY_STATE, s.initial_memory())
    assert (target.spot_fraction, target.perp_fraction, target.mode) == (-1.0, 1.0, HedgeMode.REVERSE_CARRY)
    # a borrow of 0.03 %/day (10.95 % APR) makes it not worth it: unhedge instead
    s = DynamicNeutral(signal="latest", negative_mode="reverse", enter_apr=0.05, borrow_rate_per_day=0.0003)
    target, _ = s.decide(view([-0.10 / 1095]), CARRY_STATE, s.initial_memory())
    assert target.mode == HedgeMode.UNHEDGED


def test_fee_aware_rule_blocks_a_switch_that_cannot_pay_for_itself() -> None:
    # From carry, the signal turns to −1 % APR. Unhedging saves 1 % APR × 10/365 d = 0.027 %, less than
    # the 0.10 % round trip of the perp leg (2 × 0.05 %): stay. Over 60 days it saves 0.16 %: switch.
    rates = [0.2 / 1095, -0.01 / 1095]
    short = DynamicNeutral(signal="latest", enter_apr=0.05, exit_apr=0.0, horizon_days=10)
    long_ = DynamicNeutral(signal="latest", enter_apr=0.05, exit_apr=0.0, horizon_days=60)
    assert run(short, [view(rates[:1]), view(rates)]) == [HedgeMode.CARRY, HedgeMode.CARRY]
    assert run(long_, [view(rates[:1]), view(rates)]) == [HedgeMode.CARRY, HedgeMode.UNHEDGED]


def test_roc_gate_blocks_carry_while_momentum_is_below_it() -> None:
    falling = [100.0] * 10 + [90.0]
    s = DynamicNeutral(signal="latest", enter_apr=0.05, roc_window=5, roc_gate=-0.05)
    target, _ = s.decide(view([0.2 / 1095], closes=falling), CARRY_STATE, s.initial_memory())
    assert target.mode == HedgeMode.UNHEDGED and "ROC" in target.reason
    target, _ = s.decide(view([0.2 / 1095], closes=[100.0] * 11), CARRY_STATE, s.initial_memory())
    assert target.mode == HedgeMode.CARRY


def test_neutral_ema_memory_is_plain_values_and_resumable() -> None:
    s = DynamicNeutral(signal="ema", window=3)
    rates = [0.0001, 0.0002, 0.0003]
    memory = s.initial_memory()
    for k in range(1, 4):
        _, memory = s.decide(view(rates[:k]), CARRY_STATE, memory)
    assert isinstance(memory.get("ema_apr"), float) and isinstance(memory.get("ema_ts_ms"), int)
    # resuming from the journalled memory gives the same decision as running through
    resumed = StrategyMemory(values=memory.values)
    a, _ = s.decide(view(rates + [-0.0005]), CARRY_STATE, memory)
    b, _ = s.decide(view(rates + [-0.0005]), CARRY_STATE, resumed)
    assert a == b
