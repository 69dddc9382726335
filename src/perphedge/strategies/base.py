"""The contract between strategies and whatever runs them (backtest engine, paper or live keeper).

A strategy only decides. It sees a ``MarketView`` (what is known at the decision time, nothing
later) and the ``HedgeState`` (what is held now), and returns a ``TargetHedge`` plus its new memory.
Memory is a frozen value passed in and returned, so the keeper can journal it and resume after a
restart, and the backtest stays deterministic. Strategies never read a clock, a file or the network.

Targets are expressed relative to the hedge's **base quantity** ``Q`` (the coins the user holds or
the capital converted to coins at the start), so the same decision applies at any size:

    target spot holding  = spot_fraction × Q      (1 = keep the coins; −1 = short them via margin borrow)
    target perp position = perp_fraction × Q      (−1 = short the full amount; +1 = long it)

    full hedge             spot  1, perp −1      net exposure 0
    partial hedge r        spot  1, perp −r      net exposure 1 − r
    unhedged               spot  1, perp  0      net exposure 1 (100 % long)
    article "dynamic" neg. spot  1, perp +1      net exposure 2 (200 % long: NOT neutral)
    reverse carry          spot −1, perp +1      net exposure 0 (borrow the coin and sell it; pays borrow)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np


class HedgeMode(StrEnum):
    """What the target position is, in words users know."""

    CARRY = "carry"  # long spot, short perp: receives positive funding
    PARTIAL = "partial"  # long spot, short a fraction of it
    UNHEDGED = "unhedged"  # spot only
    ARTICLE_LONG = "article-long"  # long spot AND long perp (the article's "dynamic" leg; 200 % long)
    REVERSE_CARRY = "reverse-carry"  # short spot (borrowed), long perp: receives negative funding
    FLAT = "flat"  # nothing held


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketView:
    """What is known at decision time ``ts_ms`` (UTC ms). Arrays are oldest-first and end at now.

    Funding arrays hold only settlements at or before ``ts_ms``. ``close_prices`` are spot closes of
    completed bars (for ROC and similar price signals), also ending at or before ``ts_ms``.
    """

    ts_ms: int
    spot_price_usd: float
    perp_price_usd: float
    mark_price_usd: float
    funding_settle_ts_ms: np.ndarray  # int64
    funding_rates: np.ndarray  # float64, rate per interval (fraction)
    funding_interval_hours: np.ndarray  # float64
    close_prices: np.ndarray  # float64, spot closes of completed bars
    predicted_funding_rate: float | None = None  # the exchange's current (not yet settled) rate, if known


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeState:
    """What is held now, relative to the base quantity (see module docstring)."""

    spot_fraction: float
    perp_fraction: float
    mode: HedgeMode
    margin_ratio: float | None = None  # maintenance margin / margin balance (1.0 = liquidation)
    liquidation_distance: float | None = None  # (liq price − mark) / mark, signed; None if no liq price


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetHedge:
    """The position a strategy wants, and why (one line, shown in logs, reports and the journal)."""

    spot_fraction: float
    perp_fraction: float
    mode: HedgeMode
    reason: str

    @property
    def net_exposure_fraction(self) -> float:
        """Return spot + perp as a fraction of the base quantity (0 = neutral, 2 = 200 % long)."""
        return self.spot_fraction + self.perp_fraction


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyMemory:
    """A strategy's state between decisions (frozen; replaced, never mutated)."""

    values: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the stored value for ``key``."""
        for k, v in self.values:
            if k == key:
                return v
        return default

    def with_values(self, **updates: Any) -> StrategyMemory:
        """Return a new memory with ``updates`` applied."""
        merged = dict(self.values)
        merged.update(updates)
        return StrategyMemory(values=tuple(sorted(merged.items())))


# Optional attribute of a strategy, read with ``getattr(strategy, "decides_on", "bar")`` by runners that
# want to skip needless calls: "start" (the target never changes), "settlement" (only a newly known
# funding settlement can change it), "bar" (ask at every bar close; the default).
DECIDES_ON_VALUES: tuple[str, ...] = ("start", "settlement", "bar")


@runtime_checkable
class Strategy(Protocol):
    """Anything that turns (view, state, memory) into a target hedge, deterministically."""

    @property
    def name(self) -> str:
        """Return the strategy's name (read-only, so frozen dataclasses conform)."""
        ...

    def initial_memory(self) -> StrategyMemory:
        """Return the memory before the first decision."""
        ...

    def decide(
        self, view: MarketView, state: HedgeState, memory: StrategyMemory
    ) -> tuple[TargetHedge, StrategyMemory]:
        """Return the target hedge and the new memory. Must use only ``view`` (nothing later)."""
        ...
