"""Dynamic, neutral: carry while the smoothed funding is favourable; otherwise unhedge or reverse carry.

The honest version of the article's dynamic hedging (docs/DOMAIN.md): the position stays neutral.

Modes (fractions of the base quantity):
    carry          spot  1, perp −1   yields  +signal APR
    unhedged       spot  1, perp  0   yields  0 (keeps the spot's price exposure)
    reverse carry  spot −1, perp +1   yields  −signal APR − borrow APR (borrow the coin and sell it)

Hysteresis (APRs are simple annual fractions, each settlement annualised with its real interval):
- enter carry when signal ≥ ``enter_apr``; leave it when signal < ``exit_apr``;
- with ``negative_mode="reverse"``: enter reverse carry when its yield (−signal − borrow APR) ≥
  ``enter_apr``; leave it when that yield < ``exit_apr``;
- otherwise unhedged.

Fee-aware rule (``horizon_days`` set): a switch happens only if the extra yield of the new mode over
the horizon, ``(yield_new − yield_now) × horizon_days / 365``, beats the round-trip cost of the switch
(``signals.round_trip_cost_fraction`` with the fees passed as options: ``fee_spot``, ``fee_perp``,
``slippage_bps``, ``borrow_rate_per_day`` — the engine's ``BacktestConfig.cost_options()``).

ROC gate (``roc_window``, ``roc_gate``): carry is entered and held only while the Rate of Change of the
spot price is at or above the gate.

Before the first settlement is known the strategy holds the plain carry.
"""

from __future__ import annotations

from dataclasses import dataclass

from perphedge.errors import ConfigError
from perphedge.strategies.base import HedgeMode, HedgeState, MarketView, StrategyMemory, TargetHedge
from perphedge.strategies.signals import (
    read_signal,
    roc_allows_carry,
    round_trip_cost_fraction,
    validate_roc_options,
    validate_signal_options,
)
from perphedge.units import DAYS_PER_YEAR

NEGATIVE_MODES: tuple[str, ...] = ("unhedge", "reverse")

_FRACTIONS: dict[HedgeMode, tuple[float, float]] = {
    HedgeMode.CARRY: (1.0, -1.0),
    HedgeMode.UNHEDGED: (1.0, 0.0),
    HedgeMode.REVERSE_CARRY: (-1.0, 1.0),
}


def _require_fraction(key: str, value: object, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= high:
        raise ConfigError(f"{key} must be a fraction between 0 and {high:g}; it was {value!r}", key_path=key)
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicNeutral:
    """Carry / unhedged / reverse carry by a smoothed funding signal with hysteresis and a fee-aware rule."""

    signal: str = "mean"
    window: int = 9
    enter_apr: float = 0.05
    exit_apr: float = 0.0
    negative_mode: str = "unhedge"
    horizon_days: float | None = None
    fee_spot: float = 0.001
    fee_perp: float = 0.0005
    slippage_bps: float = 0.0
    borrow_rate_per_day: float = 0.0001
    roc_window: int | None = None
    roc_gate: float | None = None
    name: str = "dynamic-neutral"

    def __post_init__(self) -> None:
        validate_signal_options(self.signal, self.window)
        validate_roc_options(self.roc_window, self.roc_gate)
        for key in ("enter_apr", "exit_apr"):
            value = getattr(self, key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not -1.0 <= float(value) <= 5.0
            ):
                raise ConfigError(
                    f"{key} must be an annual rate as a fraction (0.05 = 5 % APR); it was {value!r}",
                    key_path=key,
                )
        if self.exit_apr > self.enter_apr:
            raise ConfigError(
                f"exit_apr must not exceed enter_apr (hysteresis); they were {self.exit_apr!r} and {self.enter_apr!r}",
                key_path="exit_apr",
            )
        if self.negative_mode not in NEGATIVE_MODES:
            raise ConfigError(
                f"negative_mode must be one of {', '.join(NEGATIVE_MODES)}; it was {self.negative_mode!r}",
                key_path="negative_mode",
            )
        if self.horizon_days is not None and (
            isinstance(self.horizon_days, bool)
            or not isinstance(self.horizon_days, int | float)
            or not self.horizon_days > 0
        ):
            raise ConfigError(
                f"horizon_days must be > 0 or None; it was {self.horizon_days!r}", key_path="horizon_days"
            )
        _require_fraction("fee_spot", self.fee_spot, 0.05)
        _require_fraction("fee_perp", self.fee_perp, 0.05)
        _require_fraction("borrow_rate_per_day", self.borrow_rate_per_day, 0.05)
        if (
            isinstance(self.slippage_bps, bool)
            or not isinstance(self.slippage_bps, int | float)
            or self.slippage_bps < 0
        ):
            raise ConfigError(
                f"slippage_bps must be >= 0; it was {self.slippage_bps!r}", key_path="slippage_bps"
            )

    @property
    def borrow_apr(self) -> float:
        """Return the borrow cost of reverse carry as a simple APR (``rate_per_day × 365``)."""
        return self.borrow_rate_per_day * DAYS_PER_YEAR

    @property
    def decides_on(self) -> str:
        """Return when new information can change the decision: every bar with the ROC gate, else settlements."""
        return "bar" if self.roc_window is not None else "settlement"

    def initial_memory(self) -> StrategyMemory:
        """Return the memory before the first decision: no mode, no EMA."""
        return StrategyMemory()

    def yield_apr(self, mode: HedgeMode, signal_apr: float) -> float:
        """Return a mode's expected funding yield as a simple APR on the base notional."""
        if mode is HedgeMode.CARRY:
            return signal_apr
        if mode is HedgeMode.REVERSE_CARRY:
            return -signal_apr - self.borrow_apr
        return 0.0

    def decide(
        self, view: MarketView, state: HedgeState, memory: StrategyMemory
    ) -> tuple[TargetHedge, StrategyMemory]:
        """Return the target mode by hysteresis on the signal, held back by the fee-aware rule."""
        apr, memory = read_signal(self.signal, self.window, view, memory)
        current_name = memory.get("mode")
        current = HedgeMode(current_name) if current_name is not None else None
        if apr is None:
            mode = current or HedgeMode.CARRY
            return self._target(mode, "no settlement known yet: hold the carry"), memory.with_values(
                mode=mode.value
            )
        carry_ok = roc_allows_carry(view.close_prices, self.roc_window, self.roc_gate)
        reverse_yield = -apr - self.borrow_apr
        reverse_on = self.negative_mode == "reverse"
        if current is HedgeMode.CARRY and apr >= self.exit_apr and carry_ok:
            wanted = HedgeMode.CARRY
        elif current is HedgeMode.REVERSE_CARRY and reverse_on and reverse_yield >= self.exit_apr:
            wanted = HedgeMode.REVERSE_CARRY
        elif apr >= self.enter_apr and carry_ok:
            wanted = HedgeMode.CARRY
        elif reverse_on and reverse_yield >= self.enter_apr:
            wanted = HedgeMode.REVERSE_CARRY
        else:
            wanted = HedgeMode.UNHEDGED
        reason = f"signal {apr:+.2%} APR ({self.signal}, {self.window}): {wanted.value}"
        if not carry_ok and wanted is not HedgeMode.CARRY and apr >= self.exit_apr:
            reason += f" (ROC below the gate {self.roc_gate:+.2%})"
        if current is not None and wanted is not current and self.horizon_days is not None:
            gain = (
                (self.yield_apr(wanted, apr) - self.yield_apr(current, apr))
                * self.horizon_days
                / DAYS_PER_YEAR
            )
            cost = round_trip_cost_fraction(
                *_FRACTIONS[current],
                *_FRACTIONS[wanted],
                fee_spot=self.fee_spot,
                fee_perp=self.fee_perp,
                slippage_bps=self.slippage_bps,
            )
            if gain <= cost:
                reason = (
                    f"signal {apr:+.2%} APR: stay {current.value}; switching to {wanted.value} would gain "
                    f"{gain:.4%} over {self.horizon_days:g} d, not more than its round-trip cost {cost:.4%}"
                )
                wanted = current
        if wanted is not current:
            memory = memory.with_values(mode=wanted.value)
        return self._target(wanted, reason), memory

    @staticmethod
    def _target(mode: HedgeMode, reason: str) -> TargetHedge:
        spot, perp = _FRACTIONS[mode]
        return TargetHedge(spot_fraction=spot, perp_fraction=perp, mode=mode, reason=reason)
