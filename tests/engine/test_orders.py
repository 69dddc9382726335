"""orders_for and mode_of: targets to per-leg quantities (shared by the backtest and the keeper)."""

from __future__ import annotations

import pytest

from perphedge.engine.orders import LegOrders, mode_of, orders_for
from perphedge.errors import InputError
from perphedge.strategies.base import HedgeMode, HedgeState, TargetHedge

CARRY = TargetHedge(spot_fraction=1.0, perp_fraction=-1.0, mode=HedgeMode.CARRY, reason="")
REVERSE = TargetHedge(spot_fraction=-1.0, perp_fraction=1.0, mode=HedgeMode.REVERSE_CARRY, reason="")


def state(spot: float, perp: float) -> HedgeState:
    return HedgeState(spot_fraction=spot, perp_fraction=perp, mode=mode_of(spot, perp))


def test_orders_for_opens_both_legs_from_flat() -> None:
    orders = orders_for(CARRY, state(0.0, 0.0), 2.5)
    assert orders == LegOrders(spot_delta_base=2.5, perp_delta_base=-2.5)


def test_orders_for_carry_to_reverse_sells_twice_the_base() -> None:
    orders = orders_for(REVERSE, state(1.0, -1.0), 0.4)
    assert orders.spot_delta_base == pytest.approx(-0.8) and orders.perp_delta_base == pytest.approx(0.8)


def test_orders_for_ignores_float_dust_and_below_minimum() -> None:
    assert orders_for(CARRY, state(1.0 + 1e-13, -1.0), 3.0).is_empty
    orders = orders_for(CARRY, state(1.0, -0.999), 1.0, min_qty_base=0.01)
    assert orders.is_empty
    with pytest.raises(InputError, match="base_qty"):
        orders_for(CARRY, state(0.0, 0.0), 0.0)


@pytest.mark.parametrize(
    ("spot", "perp", "mode"),
    [
        (1, -1, HedgeMode.CARRY),
        (1, -0.5, HedgeMode.PARTIAL),
        (1, 0, HedgeMode.UNHEDGED),
        (1, 1, HedgeMode.ARTICLE_LONG),
        (-1, 1, HedgeMode.REVERSE_CARRY),
        (0, 0, HedgeMode.FLAT),
    ],
)
def test_mode_of_names_holdings(spot: float, perp: float, mode: HedgeMode) -> None:
    assert mode_of(spot, perp) is mode
