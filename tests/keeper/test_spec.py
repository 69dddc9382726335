"""The TOML hedge spec: the example loads; mistakes are ConfigErrors naming the key path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from perphedge.errors import ConfigError
from perphedge.keeper.spec import credential_env_names, load_spec, parse_spec
from tests.keeper.kit import EXAMPLE, example_raw


def test_example_spec_loads_with_paths_relative_to_the_file() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.hedge_id == "btcdemo" and spec.strategy == "full"
    assert spec.capital_usd == 30000 and spec.spot_qty_base is None
    assert spec.keeper.journal_path == (EXAMPLE.parent / "../.perphedge/btcdemo.journal.sqlite")
    assert spec.risk.min_liquidation_distance == 0.15


def _bad(tmp_path: Path, section: str, key: str, value: object) -> ConfigError:
    raw = copy.deepcopy(example_raw())
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as info:
        parse_spec(raw, base_dir=tmp_path)
    return info.value


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    assert _bad(tmp_path, "risk", "max_loss", 10).key_path == "risk.max_loss"


def test_percent_instead_of_fraction_is_caught_with_a_hint(tmp_path: Path) -> None:
    error = _bad(tmp_path, "risk", "min_liquidation_distance", 15)
    assert error.key_path == "risk.min_liquidation_distance"
    assert "looks like a percent" in str(error) and "0.15" in str(error)


def test_out_of_range_leverage_and_bad_policy(tmp_path: Path) -> None:
    assert _bad(tmp_path, "hedge", "leverage", 500).key_path == "hedge.leverage"
    assert _bad(tmp_path, "collateral", "policy", "pray").key_path == "collateral.policy"
    assert (
        _bad(tmp_path, "collateral", "target_margin_ratio", 0.9).key_path == "collateral.target_margin_ratio"
    )


def test_api_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    error = _bad(tmp_path, "hedge", "api_key", "AKIA123")
    assert error.key_path == "hedge.api_key" and "PERPHEDGE_" in str(error)
    assert "AKIA123" not in str(error)


def test_exactly_one_of_capital_and_spot_qty(tmp_path: Path) -> None:
    assert _bad(tmp_path, "hedge", "spot_qty_base", 0.5).key_path == "hedge"


def test_unknown_strategy_option_is_a_config_error(tmp_path: Path) -> None:
    raw = copy.deepcopy(example_raw())
    raw["strategy"] = {"name": "partial", "options": {"ratio": 0.5, "bogus": 1}}
    with pytest.raises(ConfigError, match="bogus"):
        parse_spec(raw, base_dir=tmp_path)


def test_hedge_id_must_fit_client_order_ids(tmp_path: Path) -> None:
    assert _bad(tmp_path, "hedge", "id", "my-hedge!").key_path == "hedge.id"


def test_credential_env_names() -> None:
    assert credential_env_names("binance") == (
        "PERPHEDGE_BINANCE_API_KEY",
        "PERPHEDGE_BINANCE_SECRET",
        "PERPHEDGE_BINANCE_PASSWORD",
    )


def test_a_spec_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "hedge.toml"
    path.write_bytes(EXAMPLE.read_bytes().replace(b"btcdemo", b"btc\xe9demo"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_spec(path)


def test_empty_journal_or_log_path_is_refused(tmp_path: Path) -> None:
    assert "keeper.journal_path" in str(_bad(tmp_path, "keeper", "journal_path", ""))
    assert "keeper.log_path" in str(_bad(tmp_path, "keeper", "log_path", "  "))


def test_astronomical_amounts_are_refused_before_they_reach_the_decimal_journal(tmp_path: Path) -> None:
    error = _bad(tmp_path, "hedge", "capital_usd", 1e300)
    assert "hedge.capital_usd" in str(error) and "at most" in str(error)


def test_a_corrupt_or_unopenable_journal_is_a_config_error(tmp_path: Path) -> None:
    from perphedge.keeper.journal import Journal

    garbage = tmp_path / "x.journal.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="not a SQLite journal"):
        Journal.open(garbage)
    with pytest.raises(ConfigError, match="cannot open the journal"):
        Journal.open(tmp_path)  # a directory


def test_a_live_binance_keeper_sizes_fixes_with_the_bundled_brackets_others_without(tmp_path: Path) -> None:
    from perphedge.keeper.wiring import live_bracket_table

    raw = copy.deepcopy(example_raw())
    binance = live_bracket_table(parse_spec(raw, base_dir=tmp_path))
    assert binance is not None and binance.for_notional(10_000).mmr == pytest.approx(0.004)
    raw["hedge"]["exchange"] = "bybit"
    assert live_bracket_table(parse_spec(raw, base_dir=tmp_path)) is None
