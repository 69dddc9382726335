"""Full hedge: hold the spot and short the same quantity of the perpetual (net exposure 0).

The article's first strategy: it receives funding while the rate is positive and pays it while negative.
"""

from __future__ import annotations

from dataclasses import dataclass

from perphedge.strategies.base import HedgeMode, HedgeState, MarketView, StrategyMemory, TargetHedge

_TARGET = TargetHedge(
    spot_fraction=1.0, perp_fraction=-1.0, mode=HedgeMode.CARRY, reason="full hedge: spot 1, perp -1"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FullHedge:
    """Always spot 1, perp −1 (relative to the base quantity)."""

    name: str = "full"

    @property
    def decides_on(self) -> str:
        """Return ``"start"``: the target never changes, so runners may ask only once."""
        return "start"

    def initial_memory(self) -> StrategyMemory:
        """Return the empty memory: a full hedge remembers nothing."""
        return StrategyMemory()

    def decide(
        self, view: MarketView, state: HedgeState, memory: StrategyMemory
    ) -> tuple[TargetHedge, StrategyMemory]:
        """Return the full hedge whatever the market does."""
        return _TARGET, memory
