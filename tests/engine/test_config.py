"""BacktestConfig validation: every bad value is refused with the field, the value and the fix."""

from __future__ import annotations

import pandas as pd
import pytest

from perphedge.engine.config import BacktestConfig
from perphedge.errors import ConfigError


def test_defaults_are_binance_base_tier() -> None:
    config = BacktestConfig()
    assert (config.fee_spot, config.fee_perp, config.clearance_fee) == (0.001, 0.0005, 0.0125)
    assert config.cost_options() == {
        "fee_spot": 0.001,
        "fee_perp": 0.0005,
        "slippage_bps": 0.0,
        "borrow_rate_per_day": 0.0001,
    }


@pytest.mark.parametrize(
    ("kwargs", "key", "message"),
    [
        ({"leverage": 0}, "leverage", "greater than 0"),
        ({"capital_usd": -5}, "capital_usd", "greater than 0"),
        ({"fee_spot": 0.1}, "fee_spot", "it was 0.1"),
        ({"fee_perp": 5}, "fee_perp", "looks like a percent"),
        ({"margin_mode": "portfolio"}, "margin_mode", "isolated, cross"),
        ({"contract": "quanto"}, "contract", "linear, inverse"),
        ({"collateral_policy": "reserve"}, "reserve_usd", "reserve_usd > 0"),
        ({"target_margin_ratio": 0.9}, "target_margin_ratio", "target_margin_ratio < trigger_margin_ratio"),
        ({"spot_qty_base": 1.0}, "spot_qty_base", "both"),
        ({"start": pd.Timestamp("2021-01-01")}, "start", "tz-aware"),
        (
            {"start": pd.Timestamp("2022-01-01", tz="UTC"), "end": pd.Timestamp("2021-01-01", tz="UTC")},
            "start",
            "before end",
        ),
        ({"slippage_bps": 10_000}, "slippage_bps", "below 10000"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_key(kwargs: dict, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        BacktestConfig(**kwargs)
    assert info.value.key_path == key


def test_inverse_contract_size_defaults_binance_coin_m() -> None:
    config = BacktestConfig()
    assert config.resolved_contract_size_usd("BTCUSD") == 100.0
    assert config.resolved_contract_size_usd("ETHUSD") == 10.0
    assert BacktestConfig(contract_size_usd=5).resolved_contract_size_usd("BTCUSD") == 5


def test_settings_are_json_able() -> None:
    import json

    config = BacktestConfig(start=pd.Timestamp("2021-01-01", tz="UTC"))
    assert json.loads(json.dumps(config.to_settings()))["start"] == "2021-01-01T00:00:00+00:00"
