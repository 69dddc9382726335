"""The hedge planner: the sources' funding/fee examples, exact JSON keys, and the hedge's invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.errors import InputError, MarginError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.instruments import ContractKind
from perphedge.mechanics.liquidation import (
    LiquidationFormula,
    liquidation_price_inverse,
    liquidation_price_linear,
)
from perphedge.mechanics.margin import MarginMode, maintenance_margin
from perphedge.mechanics.plan import JSON_KEYS, STRESS_MOVES, PlanInputs, plan_hedge
from tests.mechanics.tables import BTCUSDT_2024

COIN_TABLE = BracketTable.single("BTCUSD", 0.004)


def linear(**overrides: object) -> PlanInputs:
    values: dict[str, object] = {
        "symbol": "BTCUSDT",
        "spot_qty_base": 1.0,
        "price_usd": 60_000.0,
        "table": BTCUSDT_2024,
    }
    values.update(overrides)
    return PlanInputs(**values)  # type: ignore[arg-type]


def inverse(**overrides: object) -> PlanInputs:
    values: dict[str, object] = {
        "symbol": "BTCUSD",
        "spot_qty_base": 1.0,
        "price_usd": 60_000.0,
        "table": COIN_TABLE,
        "contract": ContractKind.INVERSE,
    }
    values.update(overrides)
    return PlanInputs(**values)  # type: ignore[arg-type]


def test_article_funding_example_3_usd_per_8h_on_30000() -> None:
    # the article: 0.01 % of $30,000 = $3 per 8 h (10 ETH at 3,000)
    plan = plan_hedge(
        linear(
            symbol="ETHUSDT", spot_qty_base=10, price_usd=3_000, table=BracketTable.single("ETHUSDT", 0.005)
        )
    )
    assert plan.funding_per_interval_usd == pytest.approx(3.0)
    assert plan.funding_per_day_usd == pytest.approx(9.0)


def test_baseline_funding_annualises_to_10_95_and_11_57_percent() -> None:
    # Binance FAQ 0.03 %/day: simple 10.95 %, compounded 11.57 % (exchange-mechanics.md §8)
    plan = plan_hedge(linear())
    assert plan.funding_apr_on_notional == pytest.approx(0.1095)
    assert plan.funding_apy_on_notional == pytest.approx(0.1157, abs=5e-5)
    # capital = spot value + collateral (60,000 + 30,000 at the default 2x)
    assert plan.funding_apr_on_capital == pytest.approx(18.0 * 365 / 90_000)


def test_four_hour_interval_doubles_the_apr() -> None:
    assert plan_hedge(linear(interval_hours=4)).funding_apr_on_notional == pytest.approx(0.219)


def test_round_trip_taker_fees_are_0_3_percent_and_take_ten_days_of_baseline_funding() -> None:
    # DOMAIN.md: both legs opened and closed at taker fees = 0.30 % of notional = thirty 8-hour periods
    plan = plan_hedge(linear())
    assert plan.open_fees_usd + plan.close_fees_usd == pytest.approx(0.003 * 60_000)
    assert plan.breakeven_days == pytest.approx(10.0)


def test_negative_funding_has_no_breakeven() -> None:
    plan = plan_hedge(linear(funding_rate_per_interval=-0.0001))
    assert plan.funding_per_interval_usd == pytest.approx(-6.0)
    assert plan.breakeven_days is None


def test_json_has_exactly_the_issue_keys_and_stress_rows() -> None:
    data = plan_hedge(linear()).to_json_dict()
    assert tuple(data) == JSON_KEYS
    assert [row["move"] for row in data["stress"]] == list(STRESS_MOVES)
    assert set(data["stress"][0]) == {
        "move",
        "price",
        "margin_balance_usd",
        "margin_ratio",
        "liquidated",
        "total_value_usd",
    }


def test_linear_plan_uses_the_bracket_and_binance_liquidation_price() -> None:
    plan = plan_hedge(linear())
    assert plan.perp_qty == -1.0
    assert plan.initial_margin_usd == pytest.approx(30_000)
    assert (plan.mmr, plan.maintenance_amount_usd) == (0.005, 50.0)  # 60k is bracket 2 of the 2024 table
    assert plan.maintenance_margin_usd == pytest.approx(60_000 * 0.005 - 50)
    expected = liquidation_price_linear(
        side=-1, qty_base=1, entry_price=60_000, wallet_balance_usd=30_000, table=BTCUSDT_2024
    )
    assert plan.liquidation_price == expected
    assert plan.liquidation_distance_pct == pytest.approx(expected / 60_000 - 1)
    assert plan.margin_ratio == pytest.approx(250 / 30_000)


def test_stress_liquidation_flags_agree_with_the_liquidation_price() -> None:
    plan = plan_hedge(linear())
    assert plan.liquidation_price is not None
    for point in plan.stress:
        assert point.liquidated == (point.price >= plan.liquidation_price)
        if point.liquidated:
            assert point.margin_balance_usd == 0.0 and point.margin_ratio is None


def test_collateral_targets_put_the_liquidation_price_where_asked() -> None:
    plan = plan_hedge(linear())
    for target in plan.collateral_targets:
        again = plan_hedge(linear(collateral=target.collateral))
        assert again.liquidation_price == pytest.approx(target.liquidation_price, rel=1e-12)
    assert [t.buffer for t in plan.collateral_targets] == [0.5, 1.0]


def test_partial_hedge_keeps_the_unhedged_exposure() -> None:
    plan = plan_hedge(linear(hedge_ratio=0.5))
    assert plan.net_exposure_base == pytest.approx(0.5)
    assert plan.net_exposure_pct == pytest.approx(0.5)
    assert plan.funding_per_interval_usd == pytest.approx(3.0)


def test_hedge_ratio_zero_has_no_position() -> None:
    plan = plan_hedge(linear(hedge_ratio=0.0))
    assert plan.liquidation_price is None and plan.margin_ratio is None and plan.mmr is None
    assert plan.breakeven_days is None and plan.funding_apr_on_notional is None
    assert not any(p.liquidated for p in plan.stress)


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(
    spot_qty=st.floats(0.001, 500),
    price=st.floats(100, 200_000),
    leverage=st.floats(1, 10),
    move=st.floats(-0.9, 3.0),
)
def test_full_linear_hedge_total_value_is_unchanged_by_moves_that_do_not_liquidate(
    spot_qty: float, price: float, leverage: float, move: float
) -> None:
    inputs = linear(spot_qty_base=spot_qty, price_usd=price, leverage=leverage)
    plan = plan_hedge(inputs)
    moved = price * (1 + move)
    balance = plan.collateral - spot_qty * (moved - price)  # collateral + the short's unrealised PnL
    lp = plan.liquidation_price
    if lp is not None and moved >= lp:
        return
    total = spot_qty * moved + balance
    assert total == pytest.approx(spot_qty * price + plan.collateral, rel=1e-12)
    for point in plan.stress:
        if not point.liquidated:
            assert point.total_value_usd == pytest.approx(spot_qty * price + plan.collateral, rel=1e-12)


def test_coin_margined_1x_hedge_keeps_its_usd_value_and_cannot_be_liquidated() -> None:
    # DOMAIN.md: post the coins, short their USD value: constant USD value, no liquidation on a rise
    plan = plan_hedge(inverse(collateral=1.0))
    assert plan.perp_qty == -600  # 60,000 USD in 100 USD contracts
    assert plan.liquidation_price is None
    for point in plan.stress:
        assert not point.liquidated
        assert point.total_value_usd == pytest.approx(60_000, rel=1e-12)


def test_inverse_default_collateral_is_notional_over_leverage_and_liquidates_on_a_rise() -> None:
    plan = plan_hedge(inverse())
    assert plan.collateral == pytest.approx(0.5)  # 1 BTC of notional at 2x
    # short 600 × 100 USD with 0.5 BTC: LP = Q·CS·(MMR − 1) / (WB − Q·CS/EP) = 2 × 60,000 × (1 − 0.004)
    assert plan.liquidation_price == pytest.approx(60_000 * 0.996 / 0.5)
    assert plan.net_exposure_base == pytest.approx(0.0)


def test_inverse_rounds_contracts_down_and_reports_the_residual_exposure() -> None:
    plan = plan_hedge(inverse(spot_qty_base=0.01234))  # 740.4 USD → 7 contracts
    assert plan.perp_qty == -7
    assert plan.net_exposure_base == pytest.approx(0.01234 - 700 / 60_000)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"hedge_ratio": 50}, InputError, "if it is a percent, use 0.5 for 50 %"),
        ({"hedge_ratio": 1.5}, InputError, "more would leave you net short"),
        ({"hedge_ratio": -0.1}, InputError, "hedge ratio"),
        ({"spot_qty_base": 0.0}, InputError, "spot quantity .* must be greater than 0"),
        ({"price_usd": math.nan}, InputError, "price .* must be a finite number"),
        ({"funding_rate_per_interval": 0.01 * 100}, InputError, "looks like a percent"),
        ({"fee_spot": 0.1}, InputError, "looks like a percent: use 0.001"),
        ({"collateral": 10_000.0}, MarginError, "below the initial margin"),
        ({"leverage": 110.0}, MarginError, "use --leverage 100 or less"),
    ],
)
def test_bad_inputs_are_refused_with_what_to_do(
    overrides: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        plan_hedge(linear(**overrides))


def test_cross_mode_gives_the_isolated_figures_and_says_why() -> None:

    isolated = plan_hedge(linear())
    cross = plan_hedge(linear(margin_mode=MarginMode.CROSS))
    assert cross.to_json_dict() == isolated.to_json_dict()
    assert any("spot coins are not futures collateral" in note for note in cross.notes)


def test_contract_size_with_a_linear_contract_is_refused() -> None:
    with pytest.raises(InputError, match="applies to inverse contracts only"):
        plan_hedge(linear(contract_size_usd=100.0))


def test_inverse_altcoin_uses_10_usd_contracts() -> None:
    plan = plan_hedge(inverse(symbol="ETHUSD", spot_qty_base=1.0, price_usd=3_000.0))
    assert plan.perp_qty == -300


def test_inverse_bad_inputs() -> None:
    with pytest.raises(InputError, match="only 1.0 are held"):
        plan_hedge(inverse(collateral=2.0))
    with pytest.raises(InputError, match="smaller than one 100 USD contract"):
        plan_hedge(inverse(spot_qty_base=0.001))


# --- cross margin with other positions, the Bybit alternative, refusals ------------------------------


def test_cross_other_positions_enter_the_binance_formula_margin_ratio_and_targets() -> None:

    inputs = linear(
        margin_mode=MarginMode.CROSS,
        collateral=50_000.0,
        other_maintenance_margin=2_000.0,
        other_unrealized_pnl=-5_000.0,
    )
    plan = plan_hedge(inputs)
    # Binance one-way, short: LP = (WB − TMM1 + UPNL1 + cum + Q·EP) / (Q·(1 + MMR)), bracket 2 at LP
    assert plan.liquidation_price == pytest.approx((50_000 - 2_000 - 5_000 + 50 + 60_000) / 1.005, rel=1e-12)
    lp = plan.liquidation_price
    account_at_lp = 50_000 - 5_000 - (lp - 60_000)
    assert account_at_lp == pytest.approx(maintenance_margin(lp, BTCUSDT_2024) + 2_000, rel=1e-9)
    assert plan.margin_ratio == pytest.approx((250 + 2_000) / 45_000)
    for point in plan.stress:
        assert point.liquidated == (point.price >= lp)
        if not point.liquidated:  # spot + whole cross account (other PnL held) is constant
            assert point.total_value_usd == pytest.approx(60_000 + 50_000 - 5_000, rel=1e-12)
    for target in plan.collateral_targets:
        again = plan_hedge(
            linear(
                margin_mode=MarginMode.CROSS,
                collateral=target.collateral,
                other_maintenance_margin=2_000.0,
                other_unrealized_pnl=-5_000.0,
            )
        )
        assert again.liquidation_price == pytest.approx(target.liquidation_price, rel=1e-12)
    isolated = plan_hedge(linear(collateral=50_000.0))
    assert isolated.liquidation_price is not None and isolated.liquidation_price > lp


def test_cross_inverse_other_positions_in_coins() -> None:

    plan = plan_hedge(
        inverse(margin_mode=MarginMode.CROSS, other_maintenance_margin=0.01, other_unrealized_pnl=-0.05)
    )
    expected = liquidation_price_inverse(
        side=-1,
        contracts=600,
        contract_size_usd=100,
        entry_price=60_000,
        wallet_balance_coin=0.5,
        table=COIN_TABLE,
        other_maintenance_margin_coin=0.01,
        other_unrealized_pnl_coin=-0.05,
    )
    assert plan.liquidation_price == pytest.approx(expected, rel=1e-12)
    assert plan.liquidation_price < plan_hedge(inverse()).liquidation_price
    assert plan.margin_ratio == pytest.approx((0.004 + 0.01) / 0.45)


def test_bybit_formula_reproduces_bybits_short_example_8160() -> None:
    # Bybit "Liquidation Price (USDT Contract)": short 1 BTC at 8,000, 40x, MMR 0.5 % → 8,160

    inputs = linear(
        price_usd=8_000.0,
        table=BracketTable.single("BTCUSDT", 0.005),
        leverage=40.0,
        liquidation_formula=LiquidationFormula.BYBIT,
    )
    plan = plan_hedge(inputs)
    assert plan.liquidation_price == pytest.approx(8_160.0, abs=1e-9)
    assert any("Bybit classic" in note for note in plan.notes)
    binance = plan_hedge(
        linear(price_usd=8_000.0, table=BracketTable.single("BTCUSDT", 0.005), leverage=40.0)
    )
    # Binance evaluates MM at LP (a larger notional on a rise): a slightly lower price for a short
    assert binance.liquidation_price == pytest.approx((200 + 8_000) / 1.005, rel=1e-12)
    assert binance.liquidation_price < plan.liquidation_price


def test_bybit_formula_stress_and_targets_follow_the_entry_value_rule() -> None:

    plan = plan_hedge(linear(liquidation_formula=LiquidationFormula.BYBIT))
    # MM at entry 250 (60k at 0.5 % − 50): LP = EP + (collateral − MM) / Q
    assert plan.liquidation_price == pytest.approx(60_000 + 30_000 - 250, rel=1e-12)
    for point in plan.stress:
        assert point.liquidated == (point.price >= plan.liquidation_price)
    for target in plan.collateral_targets:
        again = plan_hedge(linear(collateral=target.collateral, liquidation_formula=LiquidationFormula.BYBIT))
        assert again.liquidation_price == pytest.approx(target.liquidation_price, rel=1e-12)


def test_refusals_for_modes_that_do_not_apply() -> None:

    with pytest.raises(InputError, match="only share the wallet in cross mode"):
        linear(other_unrealized_pnl=-5.0)
    with pytest.raises(InputError, match="must not be negative"):
        linear(margin_mode=MarginMode.CROSS, other_maintenance_margin=-1.0)
    with pytest.raises(InputError, match="linear isolated positions only"):
        inverse(liquidation_formula=LiquidationFormula.BYBIT)
    with pytest.raises(InputError, match="linear isolated positions only"):
        linear(margin_mode=MarginMode.CROSS, liquidation_formula=LiquidationFormula.BYBIT)


def test_a_hedge_liquidated_on_opening_is_refused() -> None:
    # MMR 60 % at 2x: maintenance 36,000 > collateral 30,000 (Binance would never allow it)
    with pytest.raises(MarginError, match="liquidated on opening"):
        plan_hedge(linear(table=BracketTable.single("BTCUSDT", 0.6)))
    with pytest.raises(MarginError, match="liquidated on opening"):
        plan_hedge(linear(margin_mode=MarginMode.CROSS, other_maintenance_margin=40_000.0))


def test_no_position_is_plus_zero_not_minus_zero() -> None:
    assert math.copysign(1.0, plan_hedge(linear(hedge_ratio=0.0)).perp_qty) == 1.0
    assert math.copysign(1.0, plan_hedge(inverse(hedge_ratio=0.0)).perp_qty) == 1.0


@settings(deadline=None)  # no timing in unit tests: shared 2-core machine
@given(
    mode=st.sampled_from(["isolated", "cross", "bybit"]),
    spot_qty=st.floats(0.01, 200),
    price=st.floats(100, 200_000),
    collateral_fraction=st.floats(0.1, 3.0),
    other_mm_fraction=st.floats(0, 0.05),
    other_upnl_fraction=st.floats(-0.05, 0.05),
)
def test_at_the_plans_liquidation_price_margin_balance_equals_maintenance_in_every_mode(
    mode: str,
    spot_qty: float,
    price: float,
    collateral_fraction: float,
    other_mm_fraction: float,
    other_upnl_fraction: float,
) -> None:

    notional = spot_qty * price
    cross = mode == "cross"
    other_mm = other_mm_fraction * notional if cross else 0.0
    other_upnl = other_upnl_fraction * notional if cross else 0.0
    inputs = linear(
        spot_qty_base=spot_qty,
        price_usd=price,
        leverage=1.0,
        collateral=collateral_fraction * notional + other_mm - other_upnl + notional,
        margin_mode=MarginMode.CROSS if cross else MarginMode.ISOLATED,
        other_maintenance_margin=other_mm,
        other_unrealized_pnl=other_upnl,
        liquidation_formula=LiquidationFormula.BYBIT if mode == "bybit" else LiquidationFormula.BINANCE,
    )
    plan = plan_hedge(inputs)
    lp = plan.liquidation_price
    assert lp is not None and lp > price
    balance = plan.collateral + other_upnl - spot_qty * (lp - price)
    own = maintenance_margin(notional if mode == "bybit" else spot_qty * lp, BTCUSDT_2024)
    assert balance == pytest.approx(own + other_mm, rel=1e-9, abs=1e-9 * notional)


@pytest.mark.parametrize("hours", [0.5, 0.1, 1e-300])
def test_interval_below_one_hour_is_refused_before_the_apy_overflows(hours: float) -> None:
    # 0.05 per 0.5 h compounds to exp(850): the APY was inf and the JSON output failed on it
    with pytest.raises(InputError, match="at least 1 h"):
        linear(interval_hours=hours, funding_rate_per_interval=0.05)


def test_shortest_interval_and_largest_rate_still_give_a_finite_apy() -> None:
    plan = plan_hedge(linear(interval_hours=1, funding_rate_per_interval=0.05))
    assert math.isfinite(plan.funding_apy_on_notional)
