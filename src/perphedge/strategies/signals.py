"""Small pure signals for the dynamic strategies: smoothed funding APR, Rate of Change, switch costs.

Everything here sees only the arrays it is given (oldest first, ending at the decision time), so a
strategy built from these cannot look ahead. Rates are fractions; APRs are simple annual fractions.

Sources:
- Annualisation with each settlement's real interval: ``perphedge.mechanics.funding.annualize_simple``
  (Binance funding FAQ: 0.01 % per 8 h = 0.03 %/day = 10.95 % a year).
- Rate of Change, the article's momentum indicator: ``ROC = (close_t − close_{t−n}) / close_{t−n}``
  (StockCharts ChartSchool "Rate of Change (ROC)",
  https://chartschool.stockcharts.com/table-of-contents/technical-indicators-and-overlays/technical-indicators/rate-of-change-roc-and-momentum;
  there it is ×100 as a percent, here a fraction).
- EMA smoothing ``alpha = 2 / (N + 1)`` (the usual N-period EMA, same ChartSchool).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perphedge.errors import ConfigError
from perphedge.mechanics.funding import annualize_simple
from perphedge.strategies.base import MarketView, StrategyMemory
from perphedge.units import HOURS_PER_YEAR

SIGNAL_KINDS: tuple[str, ...] = ("latest", "mean", "ema")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmaState:
    """An EMA of settlement APRs and the time of the last settlement folded into it (UTC ms)."""

    value_apr: float
    last_settle_ts_ms: int


def settlement_aprs(rates: np.ndarray, interval_hours: np.ndarray) -> np.ndarray:
    """Return each settlement's simple APR, annualised with its own interval (never a fixed 8 h)."""
    return np.asarray(annualize_simple(rates, interval_hours), dtype=float)


def ema_alpha(window: int) -> float:
    """Return the smoothing factor ``2 / (window + 1)`` of an N-settlement EMA."""
    return 2.0 / (window + 1.0)


def update_ema(
    state: EmaState | None,
    settle_ts_ms: np.ndarray,
    rates: np.ndarray,
    interval_hours: np.ndarray,
    window: int,
) -> EmaState | None:
    """Fold the settlements newer than ``state`` into the EMA of settlement APRs; None if none known.

    The first settlement seeds the EMA; each later one moves it by ``alpha × (apr − ema)``.
    """
    n = settle_ts_ms.size
    if n == 0:
        return state
    if state is None:
        value = float(annualize_simple(float(rates[0]), float(interval_hours[0])))
        start = 1
    else:
        if int(settle_ts_ms[-1]) <= state.last_settle_ts_ms:
            return state
        start = int(np.searchsorted(settle_ts_ms, state.last_settle_ts_ms, side="right"))
        value = state.value_apr
    alpha = ema_alpha(window)
    for i in range(start, n):
        apr = float(rates[i]) * HOURS_PER_YEAR / float(interval_hours[i])
        value += alpha * (apr - value)
    return EmaState(value_apr=value, last_settle_ts_ms=int(settle_ts_ms[-1]))


def funding_signal_apr(
    kind: str,
    window: int,
    rates: np.ndarray,
    interval_hours: np.ndarray,
    ema: EmaState | None = None,
) -> float | None:
    """Return the smoothed funding APR known now, or None before the first settlement.

    ``latest``: the last settlement's APR; ``mean``: the mean APR of the last ``window`` settlements
    (fewer while fewer are known); ``ema``: the value of ``ema`` (fold new settlements with
    :func:`update_ema` first).
    """
    if rates.size == 0:
        return None
    if kind == "latest":
        return float(rates[-1]) * HOURS_PER_YEAR / float(interval_hours[-1])
    if kind == "mean":
        return float(np.mean(settlement_aprs(rates[-window:], interval_hours[-window:])))
    if kind == "ema":
        return None if ema is None else ema.value_apr
    raise ConfigError(f"signal must be one of {', '.join(SIGNAL_KINDS)}; it was {kind!r}", key_path="signal")


def rate_of_change(close_prices: np.ndarray, window: int) -> float | None:
    """Return ``close[-1] / close[-1 - window] − 1`` (the article's ROC, a fraction), None if too short."""
    if close_prices.size <= window:
        return None
    past = float(close_prices[-1 - window])
    return float(close_prices[-1]) / past - 1.0


def round_trip_cost_fraction(
    from_spot: float,
    from_perp: float,
    to_spot: float,
    to_perp: float,
    *,
    fee_spot: float,
    fee_perp: float,
    slippage_bps: float,
) -> float:
    """Return the cost of switching there and back again, as a fraction of the base notional.

    Each leg trades ``|Δfraction|`` of the base quantity twice (out and back), paying its taker fee
    plus the slippage on each trade: ``2 × Σ_leg |Δ| × (fee_leg + slippage)``.
    """
    slip = slippage_bps / 10_000.0
    one_way = abs(to_spot - from_spot) * (fee_spot + slip) + abs(to_perp - from_perp) * (fee_perp + slip)
    return 2.0 * one_way


def validate_signal_options(signal: str, window: int) -> None:
    """Raise ConfigError unless ``signal`` is a known kind and ``window`` a positive whole number."""
    if signal not in SIGNAL_KINDS:
        raise ConfigError(
            f"signal must be one of {', '.join(SIGNAL_KINDS)}; it was {signal!r}", key_path="signal"
        )
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ConfigError(
            f"window must be a whole number of settlements >= 1; it was {window!r}", key_path="window"
        )


def validate_roc_options(roc_window: int | None, roc_gate: float | None) -> None:
    """Raise ConfigError unless the ROC gate is off (both None) or fully given with a sane window."""
    if (roc_window is None) != (roc_gate is None):
        raise ConfigError(
            f"give roc_window and roc_gate together, or neither; they were {roc_window!r} and {roc_gate!r}",
            key_path="roc_window",
        )
    if roc_window is not None and (
        isinstance(roc_window, bool) or not isinstance(roc_window, int) or roc_window < 1
    ):
        raise ConfigError(
            f"roc_window must be a whole number of bars >= 1; it was {roc_window!r}", key_path="roc_window"
        )
    if roc_gate is not None and not (isinstance(roc_gate, int | float) and -1.0 < float(roc_gate) < 10.0):
        raise ConfigError(
            f"roc_gate must be a fraction of price change (e.g. -0.05 for -5 %); it was {roc_gate!r}",
            key_path="roc_gate",
        )


def signal_from_view(
    kind: str,
    window: int,
    settle_ts_ms: np.ndarray,
    rates: np.ndarray,
    interval_hours: np.ndarray,
    ema: EmaState | None,
) -> tuple[float | None, EmaState | None]:
    """Return ``(signal APR or None, new EMA state)`` from the settlements known at decision time."""
    if kind == "ema":
        ema = update_ema(ema, settle_ts_ms, rates, interval_hours, window)
    return funding_signal_apr(kind, window, rates, interval_hours, ema), ema


def roc_allows_carry(close_prices: np.ndarray, roc_window: int | None, roc_gate: float | None) -> bool:
    """Return False when the ROC gate is on and price momentum is below it (funding likely to fall).

    The article suggests ROC to anticipate funding shifts: falling prices tend to come with falling
    or negative funding. With the gate on, carry is held only while ``ROC(roc_window) >= roc_gate``;
    before ``roc_window`` bars are known the gate does not block.
    """
    if roc_window is None or roc_gate is None:
        return True
    roc = rate_of_change(close_prices, roc_window)
    return roc is None or roc >= roc_gate


def read_signal(
    kind: str, window: int, view: MarketView, memory: StrategyMemory
) -> tuple[float | None, StrategyMemory]:
    """Return the funding signal APR known at ``view.ts_ms`` and the memory with the EMA folded in.

    The EMA is kept in memory as two plain values (``ema_apr``, ``ema_ts_ms``) so a keeper can journal it.
    """
    apr_before = memory.get("ema_apr")
    ts_before = memory.get("ema_ts_ms")
    ema = None if apr_before is None else EmaState(value_apr=apr_before, last_settle_ts_ms=ts_before)
    apr, ema = signal_from_view(
        kind, window, view.funding_settle_ts_ms, view.funding_rates, view.funding_interval_hours, ema
    )
    if ema is not None and (ema.value_apr != apr_before or ema.last_settle_ts_ms != ts_before):
        memory = memory.with_values(ema_apr=ema.value_apr, ema_ts_ms=ema.last_settle_ts_ms)
    return apr, memory
