"""The article's "dynamic hedging", run literally: perp short while funding is positive, LONG while negative.

Spot long + perp long is 200 % long, not neutral (the article's error, see docs/DOMAIN.md). This
strategy exists so that users who ask for the article's rule get it, with its real exposure shown:
its targets carry ``HedgeMode.ARTICLE_LONG`` and ``net_exposure_fraction`` = 2 in the negative regime.

Rule (on the funding signal known at decision time, see ``signals.signal_from_view``):
signal > 0 → spot 1, perp −1; signal < 0 → spot 1, perp +1; signal = 0 or unknown → spot 1, perp 0.
An optional ROC gate (``roc_window``, ``roc_gate``) blocks the short leg while price momentum is
below the gate (spot only then).
"""

from __future__ import annotations

from dataclasses import dataclass

from perphedge.strategies.base import HedgeMode, HedgeState, MarketView, StrategyMemory, TargetHedge
from perphedge.strategies.signals import (
    read_signal,
    roc_allows_carry,
    validate_roc_options,
    validate_signal_options,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicArticle:
    """Follow the sign of the funding signal with the perp; never touch the spot."""

    signal: str = "latest"
    window: int = 3
    roc_window: int | None = None
    roc_gate: float | None = None
    name: str = "dynamic-article"

    def __post_init__(self) -> None:
        validate_signal_options(self.signal, self.window)
        validate_roc_options(self.roc_window, self.roc_gate)

    @property
    def decides_on(self) -> str:
        """Return when new information can change the decision: every bar with the ROC gate, else settlements."""
        return "bar" if self.roc_window is not None else "settlement"

    def initial_memory(self) -> StrategyMemory:
        """Return the memory before any settlement: no EMA yet."""
        return StrategyMemory()

    def decide(
        self, view: MarketView, state: HedgeState, memory: StrategyMemory
    ) -> tuple[TargetHedge, StrategyMemory]:
        """Return short / long / no perp by the sign of the funding signal (spot stays 1)."""
        apr, new_memory = read_signal(self.signal, self.window, view, memory)
        if apr is None or apr == 0.0:
            why = "no settlement known yet" if apr is None else "funding signal is 0"
            return TargetHedge(
                spot_fraction=1.0, perp_fraction=0.0, mode=HedgeMode.UNHEDGED, reason=why
            ), new_memory
        if apr > 0.0:
            if not roc_allows_carry(view.close_prices, self.roc_window, self.roc_gate):
                return (
                    TargetHedge(
                        spot_fraction=1.0,
                        perp_fraction=0.0,
                        mode=HedgeMode.UNHEDGED,
                        reason=f"funding {apr:+.2%} APR but ROC below the gate {self.roc_gate:+.2%}",
                    ),
                    new_memory,
                )
            return (
                TargetHedge(
                    spot_fraction=1.0,
                    perp_fraction=-1.0,
                    mode=HedgeMode.CARRY,
                    reason=f"funding {apr:+.2%} APR > 0",
                ),
                new_memory,
            )
        return (
            TargetHedge(
                spot_fraction=1.0,
                perp_fraction=1.0,
                mode=HedgeMode.ARTICLE_LONG,
                reason=f"funding {apr:+.2%} APR < 0: article goes long the perp (200 % long)",
            ),
            new_memory,
        )
