"""The settings of one backtest run: capital, leverage, margin mode, fees, execution and policies.

Every field is validated when the config is built (``ConfigError`` naming the field, the value and
the fix); nothing is clipped or guessed. Rates and fees are fractions (0.001 = 0.1 %), never percent.
USDT is treated as USD (1 USDT = 1 USD).

Defaults and their sources:
- ``fee_spot`` 0.10 %: Binance spot base tier (VIP 0) taker, https://www.binance.com/en/fee/trading.
- ``fee_perp`` 0.05 %: Binance USDⓈ-M base tier taker, https://www.binance.com/en/fee/futureFee.
- ``clearance_fee`` 1.25 %: Binance BTCUSDT ``liquidationFee`` (exchange-mechanics.md §2), charged
  on the notional at the liquidation price, https://www.binance.com/en/support/faq/360033525271.
- ``borrow_rate_per_day`` 0.01 %/day: a constant stand-in for Binance margin BTC borrow interest
  (hourly rates published at https://www.binance.com/en/margin/interest-history); pass your own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd

from perphedge.errors import ConfigError, InputError
from perphedge.units import require_fraction, require_non_negative, require_positive

MARGIN_MODES: tuple[str, ...] = ("isolated", "cross")
CONTRACTS: tuple[str, ...] = ("linear", "inverse")
EXECUTIONS: tuple[str, ...] = ("next_open",)
COLLATERAL_POLICIES: tuple[str, ...] = ("none", "reserve", "sell_spot")
BRACKET_SNAPSHOTS: tuple[str, ...] = ("in_force", "newest")

INVERSE_CONTRACT_SIZE_USD_BTC = 100.0
"""Binance COIN-M contract size: 100 USD for BTCUSD perpetuals, 10 USD for the others
(https://www.binance.com/en/support/faq/a4470430e3164c13932be8967961aede)."""
INVERSE_CONTRACT_SIZE_USD_OTHER = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestConfig:
    """Settings of one backtest run (see the module docstring for units and sources).

    Capital: with ``capital_usd`` and ``leverage`` L, the spot budget is ``capital × L / (1 + L)`` and the
    rest ``capital / (1 + L)`` is the futures collateral, so the perp's initial margin equals
    ``notional / L``. The spot budget pays for the coins *and* the entry fee and slippage. Give
    ``spot_qty_base`` and ``collateral`` instead to start from coins you already hold.

    Margin ratio thresholds use Binance's margin ratio (maintenance margin / margin balance; 1 =
    liquidation). It stays small until the margin is nearly gone (a 2x BTC short: ~11 % when the price
    is 3 % below the liquidation price), so thresholds such as 0.8 / 0.5 act only in the last fraction
    of a percent and a bar's move usually jumps past them. The defaults (act above 0.02, restore
    0.008, policy ``auto`` = ``sell_spot`` for linear) keep the bundled BTC and ETH hedges alive
    through 2020–2026 (docs/engine.md).
    """

    capital_usd: float = 10_000.0
    leverage: float = 2.0
    spot_qty_base: float | None = None
    collateral: float | None = None
    margin_mode: str = "isolated"
    contract: str = "linear"
    contract_size_usd: float | None = None
    fee_spot: float = 0.001
    fee_perp: float = 0.0005
    slippage_bps: float = 0.0
    execution: str = "next_open"
    # Default: keep the hedge alive the neutral way (sell spot, shrink the short alike) when the margin
    # ratio (maintenance margin / margin balance, Binance's definition) passes 2 %: with BTCUSDT's first
    # bracket (MMR 0.4 %) the margin balance is then 20 % of the notional, ~20 % from the liquidation
    # price; restore 0.8 % (margin balance 50 % of notional). With no policy every linear short hedge of
    # 2020–21 is liquidated as BTC rose eightfold; with 5 %/2 % the 8-hour bars of early 2021 still
    # jump through the liquidation price of a partial hedge (measured on the bundled BTC and ETH data).
    # "auto" = sell_spot for linear, none for inverse (coins posted as collateral need no top-up at 1x).
    collateral_policy: str = "auto"
    reserve_usd: float = 0.0
    target_margin_ratio: float = 0.008
    trigger_margin_ratio: float = 0.02
    withdraw_excess: bool = False
    reinvest_funding: bool = False
    borrow_rate_per_day: float = 0.0001
    borrow_rate_series: pd.Series | None = None  # fraction/day by UTC time; overrides the constant when given
    clearance_fee: float = 0.0125
    bracket_snapshot: str = "in_force"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        _check(lambda: require_positive("capital_usd", self.capital_usd), "capital_usd")
        _check(lambda: require_positive("leverage", self.leverage), "leverage")
        if (self.spot_qty_base is None) != (self.collateral is None):
            raise ConfigError(
                f"give both spot_qty_base and collateral, or neither; they were {self.spot_qty_base!r} and "
                f"{self.collateral!r}",
                key_path="spot_qty_base",
            )
        if self.spot_qty_base is not None and self.collateral is not None:  # both or neither (checked above)
            _check(lambda: require_positive("spot_qty_base", self.spot_qty_base), "spot_qty_base")
            _check(lambda: require_non_negative("collateral", self.collateral), "collateral")
        _choice("margin_mode", self.margin_mode, MARGIN_MODES)
        _choice("contract", self.contract, CONTRACTS)
        _choice("execution", self.execution, EXECUTIONS)
        if self.collateral_policy == "auto":
            resolved = "none" if self.contract == "inverse" else "sell_spot"
            object.__setattr__(self, "collateral_policy", resolved)
        _choice("collateral_policy", self.collateral_policy, (*COLLATERAL_POLICIES, "auto"))
        _choice("bracket_snapshot", self.bracket_snapshot, BRACKET_SNAPSHOTS)
        if self.contract_size_usd is not None:
            _check(lambda: require_positive("contract_size_usd", self.contract_size_usd), "contract_size_usd")
        _check(lambda: require_fraction("fee_spot", self.fee_spot, high=0.05), "fee_spot")
        _check(lambda: require_fraction("fee_perp", self.fee_perp, high=0.05), "fee_perp")
        _check(lambda: require_non_negative("slippage_bps", self.slippage_bps), "slippage_bps")
        if self.slippage_bps >= 10_000:
            raise ConfigError(
                f"slippage_bps must be below 10000 (100 %); it was {self.slippage_bps!r}",
                key_path="slippage_bps",
            )
        _check(lambda: require_non_negative("reserve_usd", self.reserve_usd), "reserve_usd")
        _check(
            lambda: require_fraction("target_margin_ratio", self.target_margin_ratio), "target_margin_ratio"
        )
        _check(
            lambda: require_fraction("trigger_margin_ratio", self.trigger_margin_ratio),
            "trigger_margin_ratio",
        )
        if not 0 < self.target_margin_ratio < self.trigger_margin_ratio < 1:
            raise ConfigError(
                "need 0 < target_margin_ratio < trigger_margin_ratio < 1 (the policy acts above the trigger and "
                f"restores the target); they were {self.target_margin_ratio!r} and {self.trigger_margin_ratio!r}",
                key_path="target_margin_ratio",
            )
        if self.collateral_policy == "reserve" and self.reserve_usd <= 0:
            raise ConfigError(
                f"collateral_policy 'reserve' needs reserve_usd > 0; it was {self.reserve_usd!r}",
                key_path="reserve_usd",
            )
        _check(
            lambda: require_fraction("borrow_rate_per_day", self.borrow_rate_per_day, high=0.05),
            "borrow_rate_per_day",
        )
        if self.borrow_rate_series is not None:
            _check_borrow_series(self.borrow_rate_series)
        _check(lambda: require_fraction("clearance_fee", self.clearance_fee, high=0.1), "clearance_fee")
        for key in ("start", "end"):
            moment = getattr(self, key)
            if moment is not None and (not isinstance(moment, pd.Timestamp) or moment.tzinfo is None):
                raise ConfigError(
                    f"{key} must be a tz-aware UTC pandas.Timestamp; it was {moment!r}", key_path=key
                )
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ConfigError(
                f"start must be before end; they were {self.start} and {self.end}", key_path="start"
            )

    def resolved_contract_size_usd(self, symbol: str) -> float:
        """Return the inverse contract size in USD: the given one, else 100 for BTC and 10 otherwise."""
        if self.contract_size_usd is not None:
            return self.contract_size_usd
        return (
            INVERSE_CONTRACT_SIZE_USD_BTC
            if symbol.upper().startswith("BTC")
            else INVERSE_CONTRACT_SIZE_USD_OTHER
        )

    def cost_options(self) -> dict[str, float]:
        """Return the costs the fee-aware strategy rule needs, as strategy options (same names).

        With a ``borrow_rate_series`` the rule prices borrowing at the series' first rate (known at the
        start; using later rates would be look-ahead); the ledger charges the series itself.
        """
        borrow = self.borrow_rate_per_day
        if self.borrow_rate_series is not None and len(self.borrow_rate_series):
            borrow = float(self.borrow_rate_series.sort_index().iloc[0])
        return {
            "fee_spot": self.fee_spot,
            "fee_perp": self.fee_perp,
            "slippage_bps": self.slippage_bps,
            "borrow_rate_per_day": borrow,
        }

    def to_settings(self) -> dict[str, Any]:
        """Return the config as a JSON-able dict (timestamps as ISO strings, a borrow series summarised)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, pd.Timestamp):
                value = value.isoformat()
            elif isinstance(value, pd.Series):
                value = (
                    f"{len(value)} rates per day from {value.index[0].isoformat()} to {value.index[-1].isoformat()}, "
                    f"mean {float(value.mean()):.6f}"
                )
            out[f.name] = value
        return out


def _check_borrow_series(series: Any) -> None:
    key = "borrow_rate_series"
    if (
        not isinstance(series, pd.Series)
        or not isinstance(series.index, pd.DatetimeIndex)
        or series.index.tz is None
    ):
        raise ConfigError(
            f"{key} must be a pandas Series of daily rates on a tz-aware UTC DatetimeIndex; it was {type(series).__name__}",
            key_path=key,
        )
    if series.empty or not series.index.is_monotonic_increasing or series.index.has_duplicates:
        raise ConfigError(f"{key} must be non-empty, sorted by time, without duplicate times", key_path=key)
    values = series.to_numpy(dtype=float)
    bad = ~((values >= 0) & (values <= 0.05))
    if bad.any():
        i = int(bad.argmax())
        raise ConfigError(
            f"{key} at {series.index[i]} was {values[i]!r}; rates are fractions per day between 0 and 0.05 "
            "(0.0001 = 0.01 %/day)",
            key_path=key,
        )


def _check(validate: Any, key: str) -> None:
    try:
        validate()
    except ConfigError:
        raise
    except InputError as e:
        raise ConfigError(str(e), key_path=key) from e


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}; it was {value!r}", key_path=key)
