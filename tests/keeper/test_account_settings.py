"""Leverage and margin mode: the keeper does not set them on the exchange, so it verifies them and halts on a mismatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from perphedge.errors import ConfigError, KeeperHalted
from perphedge.keeper.risk import account_settings_mismatch
from perphedge.keeper.wiring import build_paper_venue
from perphedge.venues.ccxt_trading import CcxtVenue
from tests.keeper.kit import close, make_keeper, make_spec
from tests.kit.ccxt_replay import fixture_body, replay_exchange

PERP = "BTC/USDT:USDT"


def _recorded_binance_position():
    exchange = replay_exchange(
        "binance", {"/fapi/v3/positionRisk": fixture_body("binance", "static_response", "fetchPositions", 1)}
    )
    return CcxtVenue(exchange, spot_symbol="BTC/USDT", perp_symbol=PERP).fetch_perp_position(PERP)


def _recorded_bybit_position():
    exchange = replay_exchange(
        "bybit", {"/v5/position/list": fixture_body("bybit", "static_response", "fetchPositions")}
    )
    venue = CcxtVenue(exchange, spot_symbol="LTC/USDT", perp_symbol="LTC/USDT:USDT")
    return venue.fetch_perp_position("LTC/USDT:USDT")


def test_recorded_binance_cross_position_against_an_isolated_spec_is_a_mismatch() -> None:
    position = _recorded_binance_position()  # positionRisk v3: cross (isolatedMargin 0), no leverage field
    assert position.margin_mode == "cross" and position.leverage is None
    assert account_settings_mismatch(position, leverage=2.0, margin_mode="cross") is None
    reason = account_settings_mismatch(position, leverage=2.0, margin_mode="isolated")
    assert reason is not None and "margin mode cross" in reason and "hedge.margin_mode is isolated" in reason
    assert "\n" not in reason


def test_recorded_bybit_position_at_6x_against_a_2x_spec_is_a_mismatch() -> None:
    position = _recorded_bybit_position()  # /v5/position/list: leverage "6", margin mode not parsed by ccxt
    assert position.leverage == 6.0 and position.margin_mode is None
    assert account_settings_mismatch(position, leverage=6.0, margin_mode="cross") is None
    reason = account_settings_mismatch(position, leverage=2.0, margin_mode="cross")
    assert reason is not None and "leverage 6x" in reason and "hedge.leverage is 2" in reason
    assert (
        account_settings_mismatch(None, leverage=2.0, margin_mode="isolated") is None
    )  # flat: nothing to check


def test_keeper_halts_after_the_first_fill_when_the_exchange_runs_another_leverage(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)  # hedge.leverage = 2
    keeper, venue = make_keeper(spec)
    venue.leverage = 3.0  # the account is set to 3x (the keeper never changes it)
    keeper.cycle()  # flat at start: nothing to verify yet; opens both legs
    orders = len(venue._s.orders)
    with pytest.raises(KeeperHalted, match="leverage 3x"):
        keeper.cycle()
    assert len(venue._s.orders) == orders  # halted before deciding anything
    assert "hedge.leverage is 2" in keeper.journal.get_meta("halted")
    close(keeper)


def test_restart_on_a_position_with_other_settings_halts_before_any_order(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    close(keeper)
    venue2 = build_paper_venue(spec)
    venue2.leverage = 5.0
    keeper2, _ = make_keeper(spec, venue2)
    orders = len(venue2._s.orders)
    with pytest.raises(KeeperHalted, match="leverage 5x"):
        keeper2.cycle()
    assert len(venue2._s.orders) == orders
    close(keeper2)


def test_paper_refuses_isolated_margin_it_cannot_model(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, hedge={"margin_mode": "isolated"})
    with pytest.raises(ConfigError) as info:
        build_paper_venue(spec)
    assert info.value.key_path == "hedge.margin_mode" and "cross margin only" in str(info.value)
