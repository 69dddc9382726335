"""Signals: settlement APRs with the real interval, mean/EMA smoothing, ROC, the round-trip cost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perphedge.errors import ConfigError
from perphedge.strategies.signals import (
    ema_alpha,
    funding_signal_apr,
    rate_of_change,
    roc_allows_carry,
    round_trip_cost_fraction,
    settlement_aprs,
    update_ema,
    validate_roc_options,
    validate_signal_options,
)


def test_settlement_aprs_use_each_interval_binance_baseline() -> None:
    # Binance FAQ: 0.01 % per 8 h = 10.95 % APR; the same rate every 4 h is 21.9 % (exchange-mechanics §8).
    aprs = settlement_aprs(np.array([0.0001, 0.0001]), np.array([8.0, 4.0]))
    assert aprs == pytest.approx([0.1095, 0.219])


def test_signal_latest_mean_and_short_history() -> None:
    rates = np.array([0.0001, 0.0003, -0.0001])
    hours = np.array([8.0, 8.0, 8.0])
    assert funding_signal_apr("latest", 3, rates, hours) == pytest.approx(-0.1095)
    assert funding_signal_apr("mean", 2, rates, hours) == pytest.approx((0.3285 - 0.1095) / 2)
    assert funding_signal_apr("mean", 10, rates, hours) == pytest.approx((0.1095 + 0.3285 - 0.1095) / 3)
    assert funding_signal_apr("latest", 3, rates[:0], hours[:0]) is None


def test_ema_folds_only_new_settlements_and_matches_batch() -> None:
    ts = np.array([0, 8, 16, 24], dtype=np.int64) * 3_600_000
    rates = np.array([0.0001, 0.0002, -0.0001, 0.0004])
    hours = np.full(4, 8.0)
    batch = update_ema(None, ts, rates, hours, window=3)
    stepwise = None
    for k in range(1, 5):
        stepwise = update_ema(stepwise, ts[:k], rates[:k], hours[:k], window=3)
    assert stepwise == batch
    alpha = ema_alpha(3)
    expected = 0.1095
    for r in rates[1:]:
        expected += alpha * (r * 1095 - expected)
    assert batch is not None and batch.value_apr == pytest.approx(expected)
    assert update_ema(batch, ts, rates, hours, window=3) is batch  # nothing new: unchanged


def test_rate_of_change_is_the_articles_momentum() -> None:
    closes = np.array([100.0, 110.0, 121.0])
    assert rate_of_change(closes, 2) == pytest.approx(0.21)
    assert rate_of_change(closes, 3) is None
    assert roc_allows_carry(closes, 2, 0.25) is False
    assert roc_allows_carry(closes, 2, 0.2) is True
    assert roc_allows_carry(closes, None, None) is True


def test_round_trip_cost_carry_to_unhedged_is_two_perp_fees() -> None:
    # Binance base tier: perp taker 0.05 % each way → 0.10 % of notional for out-and-back.
    cost = round_trip_cost_fraction(1, -1, 1, 0, fee_spot=0.001, fee_perp=0.0005, slippage_bps=0)
    assert cost == pytest.approx(0.001)
    # carry → reverse carry: both legs move by 2 each way: 2 × (2 × 0.1 % + 2 × 0.05 %) = 0.6 %
    assert round_trip_cost_fraction(
        1, -1, -1, 1, fee_spot=0.001, fee_perp=0.0005, slippage_bps=0
    ) == pytest.approx(0.006)


@given(
    st.lists(st.floats(-0.003, 0.003), min_size=1, max_size=40),
    st.integers(1, 30),
)
def test_mean_signal_lies_between_min_and_max_apr(rates: list[float], window: int) -> None:
    r = np.array(rates)
    hours = np.full(r.size, 8.0)
    apr = funding_signal_apr("mean", window, r, hours)
    tail = settlement_aprs(r[-window:], hours[-window:])
    assert apr is not None and tail.min() - 1e-12 <= apr <= tail.max() + 1e-12


@pytest.mark.parametrize(("signal", "window"), [("median", 3), ("mean", 0), ("ema", 2.5), ("ema", True)])
def test_bad_signal_options_raise_config_error(signal: str, window: object) -> None:
    with pytest.raises(ConfigError):
        validate_signal_options(signal, window)  # type: ignore[arg-type]


def test_roc_options_must_come_together() -> None:
    with pytest.raises(ConfigError, match="together"):
        validate_roc_options(10, None)
    with pytest.raises(ConfigError, match="roc_window"):
        validate_roc_options(0, -0.05)
