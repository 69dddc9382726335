"""Strategies by name, built from keyword options (what the CLI and the keeper's spec give).

``build_strategy("partial", ratio=0.5)``; unknown names or options raise ``ConfigError`` listing what
is accepted. Option values are passed through to the strategy, which validates them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from perphedge.errors import ConfigError
from perphedge.strategies.base import Strategy
from perphedge.strategies.dynamic_article import DynamicArticle
from perphedge.strategies.dynamic_neutral import DynamicNeutral
from perphedge.strategies.full import FullHedge
from perphedge.strategies.partial import PartialHedge

STRATEGY_NAMES: tuple[str, ...] = ("full", "partial", "dynamic-article", "dynamic-neutral")

_CLASSES: dict[str, type] = {
    "full": FullHedge,
    "partial": PartialHedge,
    "dynamic-article": DynamicArticle,
    "dynamic-neutral": DynamicNeutral,
}


def strategy_options(name: str) -> tuple[str, ...]:
    """Return the option names a strategy accepts (its dataclass fields except ``name``)."""
    cls = _strategy_class(name)
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "name")


def build_strategy(name: str, **options: Any) -> Strategy:
    """Return the strategy called ``name`` built with ``options``.

    Options given as ``None`` are treated as not given (the CLI passes unset flags as None).

    Raises:
        ConfigError: unknown strategy name, an option the strategy does not take, or a bad value.
    """
    cls = _strategy_class(name)
    allowed = strategy_options(name)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise ConfigError(
            f"strategy {name!r} does not take option(s) {', '.join(unknown)}; it accepts: {accepted}",
            key_path=unknown[0],
        )
    try:
        strategy = cls(**given)
    except TypeError as e:
        raise ConfigError(f"strategy {name!r}: bad options {given!r} ({e})") from e
    return strategy


def _strategy_class(name: str) -> type:
    try:
        return _CLASSES[name]
    except KeyError:
        raise ConfigError(
            f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}", key_path="strategy"
        ) from None
