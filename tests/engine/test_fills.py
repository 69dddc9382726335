"""The fill model: slippage in basis points against the reference price, taker fee on the fill."""

from __future__ import annotations

import pytest

from perphedge.engine.fills import execute, fill_price


def test_fill_model_slippage_and_fee() -> None:
    # buy 2 coins at 100 with 10 bps slippage and 0.1 % fee: fill 100.1, slippage 0.2, fee 0.2002
    fill = execute(2.0, 100.0, fee_rate=0.001, slippage_bps=10)
    assert fill.fill_price_usd == pytest.approx(100.1)
    assert fill.slippage_usd == pytest.approx(0.2)
    assert fill.fee_usd == pytest.approx(0.2002)
    assert fill_price(100.0, -1.0, 10) == pytest.approx(99.9)
