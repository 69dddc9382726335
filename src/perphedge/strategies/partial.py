"""Partial hedge: hold the spot and short a fraction ``ratio`` of it (net exposure ``1 − ratio``).

The article's second strategy: it keeps part of the directional exposure and earns funding on the
hedged part only.
"""

from __future__ import annotations

from dataclasses import dataclass

from perphedge.errors import ConfigError
from perphedge.strategies.base import HedgeMode, HedgeState, MarketView, StrategyMemory, TargetHedge


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialHedge:
    """Always spot 1, perp −ratio. ``ratio`` is a fraction in [0, 1] (0.5 = hedge half)."""

    ratio: float = 0.5
    name: str = "partial"

    def __post_init__(self) -> None:
        ratio = self.ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= float(ratio) <= 1.0:
            hint = ""
            if isinstance(ratio, int | float) and 1.0 < ratio <= 100.0:
                hint = f" (it looks like a percent: use {ratio / 100:g} for {ratio:g} %)"
            raise ConfigError(
                f"ratio must be a fraction between 0 and 1; it was {ratio!r}{hint}", key_path="ratio"
            )

    @property
    def decides_on(self) -> str:
        """Return ``"start"``: the target never changes, so runners may ask only once."""
        return "start"

    def initial_memory(self) -> StrategyMemory:
        """Return the empty memory: a partial hedge remembers nothing."""
        return StrategyMemory()

    def decide(
        self, view: MarketView, state: HedgeState, memory: StrategyMemory
    ) -> tuple[TargetHedge, StrategyMemory]:
        """Return spot 1, perp −ratio whatever the market does."""
        r = float(self.ratio)
        target = TargetHedge(
            spot_fraction=1.0,
            perp_fraction=-r,
            mode=HedgeMode.PARTIAL,
            reason=f"partial hedge: spot 1, perp -{r:g}",
        )
        return target, memory
