"""The registry: every strategy by name, options validated, unknown names and options refused."""

from __future__ import annotations

import pytest

from perphedge.errors import ConfigError
from perphedge.strategies.base import Strategy
from perphedge.strategies.registry import STRATEGY_NAMES, build_strategy, strategy_options


def test_registry_builds_every_name_and_rejects_unknowns() -> None:
    for name in STRATEGY_NAMES:
        strategy = build_strategy(name)
        assert strategy.name == name and isinstance(strategy, Strategy)
    assert build_strategy("partial", ratio=0.25).ratio == 0.25  # type: ignore[attr-defined]
    assert "negative_mode" in strategy_options("dynamic-neutral")
    with pytest.raises(ConfigError, match="unknown strategy 'ful'"):
        build_strategy("ful")
    with pytest.raises(ConfigError, match="does not take option"):
        build_strategy("full", ratio=0.5)
    with pytest.raises(ConfigError, match="negative_mode"):
        build_strategy("dynamic-neutral", negative_mode="short")
    with pytest.raises(ConfigError, match="exit_apr"):
        build_strategy("dynamic-neutral", enter_apr=0.01, exit_apr=0.05)
