"""The hedge spec: a TOML file parsed into a frozen, validated ``HedgeSpec``.

Unknown keys, missing keys, out-of-range values and percent-vs-fraction mistakes raise
``ConfigError`` naming the key path (``risk.min_liquidation_distance``). Relative paths in the file
are relative to the file. API keys are NEVER read from the file: they come from the environment
(``PERPHEDGE_<EXCHANGE>_API_KEY`` / ``_SECRET`` / ``_PASSWORD``, read by the CLI); a key that looks like
a credential in the file is refused. See examples/hedge.toml for every key, documented.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from perphedge.errors import ConfigError, InputError
from perphedge.units import parse_utc, require_fraction

HEDGE_ID_PATTERN = re.compile(r"^[A-Za-z0-9]{1,12}$")
COLLATERAL_POLICIES = ("none", "reserve", "sell_spot")
MARGIN_MODES = ("cross", "isolated")
_SECRET_WORDS = ("api_key", "apikey", "secret", "password", "passphrase", "token")


def credential_env_names(exchange: str) -> tuple[str, str, str]:
    """Return the environment variable names holding the API key, secret and password of ``exchange``."""
    prefix = f"PERPHEDGE_{exchange.upper()}"
    return f"{prefix}_API_KEY", f"{prefix}_SECRET", f"{prefix}_PASSWORD"


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralSpec:
    """How margin is kept: act when MM / margin balance exceeds ``trigger_margin_ratio``.

    ``none``: only alarm; ``reserve``: transfer USD from the spot wallet (at most ``reserve_usd`` in
    total) to bring the ratio back to ``target_margin_ratio``; ``sell_spot``: sell spot and buy back
    the same quantity of the short (stays neutral) to restore the target.
    """

    policy: str = "reserve"
    trigger_margin_ratio: float = 0.5
    target_margin_ratio: float = 0.25
    reserve_usd: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSpec:
    """Risk limits; fractions, never percent."""

    min_liquidation_distance: float = 0.15  # alarm and act when (LP − mark)/mark is closer than this
    max_loss_usd: float = math.inf  # kill switch: equity − start equity below −max_loss_usd
    max_price_age_s: float = 120.0  # prices older than this are stale: no action
    kill_after_stale_cycles: int = 3  # kill switch after this many consecutive stale cycles
    max_imbalance_fraction: float = (
        0.02  # allowed |fill fraction spot − fill fraction perp| of a two-leg trade
    )
    leg_timeout_s: float = (
        30.0  # bound on waiting for a leg to fill before cancelling / completing / unwinding
    )
    min_rebalance_fraction: float = (
        0.01  # ignore per-leg deltas smaller than this fraction of the base quantity
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperSpec:
    """The simulated exchange: bundled history to replay, starting balances, costs."""

    prices: str = "replay"  # replay bundled history | live public prices of hedge.exchange
    data_symbol: str = "BTCUSDT"
    timeframe: str = "8h"
    start: str | None = None  # ISO date; replay from the first bar at or after it
    spot_base: float = 0.0
    spot_usd: float = 0.0
    futures_usd: float = 0.0
    fee_spot: float = 0.001
    fee_perp: float = 0.0005
    slippage_bps: float = 0.0
    # exchange precision and minimums; defaults are Binance BTCUSDT's (recorded ccxt markets, 2024):
    spot_amount_step: float = 0.00001
    perp_amount_step: float = 0.001
    min_notional_usd: float = 5.0
    state_path: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeeperSpec:
    journal_path: Path
    log_path: Path
    cycle_seconds: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeSpec:
    """One hedge: where, what, how much, which strategy, and the safety limits."""

    hedge_id: str
    exchange: str
    spot_symbol: str
    perp_symbol: str
    spot_qty_base: float | None
    capital_usd: float | None
    leverage: float
    margin_mode: str
    strategy: str
    strategy_options: tuple[tuple[str, Any], ...]
    collateral: CollateralSpec
    risk: RiskSpec
    paper: PaperSpec
    keeper: KeeperSpec
    source_path: Path | None = field(default=None, compare=False)

    @property
    def strategy_options_dict(self) -> dict[str, Any]:
        return dict(self.strategy_options)


_SECTIONS: dict[str, set[str]] = {
    "hedge": {
        "id",
        "exchange",
        "spot_symbol",
        "perp_symbol",
        "spot_qty_base",
        "capital_usd",
        "leverage",
        "margin_mode",
    },
    "strategy": {"name", "options"},
    "collateral": {"policy", "trigger_margin_ratio", "target_margin_ratio", "reserve_usd"},
    "risk": {
        "min_liquidation_distance",
        "max_loss_usd",
        "max_price_age_s",
        "kill_after_stale_cycles",
        "max_imbalance_fraction",
        "leg_timeout_s",
        "min_rebalance_fraction",
    },
    "paper": {
        "prices",
        "data_symbol",
        "timeframe",
        "start",
        "spot_base",
        "spot_usd",
        "futures_usd",
        "fee_spot",
        "fee_perp",
        "slippage_bps",
        "spot_amount_step",
        "perp_amount_step",
        "min_notional_usd",
        "state_path",
    },
    "keeper": {"journal_path", "log_path", "cycle_seconds"},
}


def load_spec(path: Path) -> HedgeSpec:
    """Read and validate a hedge spec TOML file.

    Raises:
        ConfigError: unreadable file, TOML syntax, unknown/missing keys, bad values (with the key path).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(
            f"cannot read the hedge spec {path} ({e.strerror}); pass an existing file with --config"
        ) from e
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {e.start}); save the hedge spec as UTF-8 TOML"
        ) from e
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e
    return parse_spec(raw, base_dir=path.resolve().parent, source_path=path)


def parse_spec(raw: Mapping[str, Any], *, base_dir: Path, source_path: Path | None = None) -> HedgeSpec:
    """Validate a parsed TOML mapping into a HedgeSpec (see :func:`load_spec`)."""
    _refuse_secrets(raw, "")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"unknown section {unknown[0]!r}; sections are {', '.join(sorted(_SECTIONS))}",
            key_path=unknown[0],
        )
    sec = {name: _section(raw, name) for name in _SECTIONS}
    hedge = sec["hedge"]

    hedge_id = _get(hedge, "hedge.id", str)
    if not HEDGE_ID_PATTERN.match(hedge_id):
        raise ConfigError(
            f"must be 1 to 12 letters or digits (it goes into client order ids); it was {hedge_id!r}",
            key_path="hedge.id",
        )
    spot_qty = _opt_positive(hedge, "hedge.spot_qty_base")
    capital = _opt_positive(hedge, "hedge.capital_usd")
    if (spot_qty is None) == (capital is None):
        raise ConfigError(
            "give exactly one of spot_qty_base (coins held) or capital_usd (cash to deploy); "
            f"spot_qty_base was {spot_qty!r} and capital_usd was {capital!r}",
            key_path="hedge",
        )
    leverage = _number(hedge, "hedge.leverage", default=2.0)
    if not 1.0 <= leverage <= 125.0:
        raise ConfigError(f"must be between 1 and 125; it was {leverage!r}", key_path="hedge.leverage")
    margin_mode = _choice(hedge, "hedge.margin_mode", MARGIN_MODES, default="cross")

    strategy = sec["strategy"]
    strategy_name = _get(strategy, "strategy.name", str)
    options = strategy.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"must be a table of options; it was {options!r}", key_path="strategy.options")
    _validate_strategy(strategy_name, dict(options))

    col = sec["collateral"]
    collateral = CollateralSpec(
        policy=_choice(col, "collateral.policy", COLLATERAL_POLICIES, default="reserve"),
        trigger_margin_ratio=_fraction(col, "collateral.trigger_margin_ratio", 0.5, high=1.0),
        target_margin_ratio=_fraction(col, "collateral.target_margin_ratio", 0.25, high=1.0),
        reserve_usd=_number(col, "collateral.reserve_usd", default=0.0, low=0.0),
    )
    if collateral.target_margin_ratio >= collateral.trigger_margin_ratio:
        raise ConfigError(
            f"must be below trigger_margin_ratio {collateral.trigger_margin_ratio}; it was "
            f"{collateral.target_margin_ratio}",
            key_path="collateral.target_margin_ratio",
        )

    rk = sec["risk"]
    risk = RiskSpec(
        min_liquidation_distance=_fraction(rk, "risk.min_liquidation_distance", 0.15, high=1.0),
        max_loss_usd=_number(rk, "risk.max_loss_usd", default=math.inf, low=0.0, strict=True),
        max_price_age_s=_number(rk, "risk.max_price_age_s", default=120.0, low=0.0, strict=True),
        kill_after_stale_cycles=int(
            _number(rk, "risk.kill_after_stale_cycles", default=3, low=1, integer=True)
        ),
        max_imbalance_fraction=_fraction(rk, "risk.max_imbalance_fraction", 0.02, high=0.5),
        leg_timeout_s=_number(rk, "risk.leg_timeout_s", default=30.0, low=0.0),
        min_rebalance_fraction=_fraction(rk, "risk.min_rebalance_fraction", 0.01, high=0.5),
    )

    pp = sec["paper"]
    start = pp.get("start")
    if start is not None:
        try:
            parse_utc(str(start))
        except InputError as e:
            raise ConfigError(str(e), key_path="paper.start") from e
    paper = PaperSpec(
        prices=_choice(pp, "paper.prices", ("replay", "live"), default="replay"),
        data_symbol=_get(pp, "paper.data_symbol", str, default="BTCUSDT"),
        timeframe=_choice(pp, "paper.timeframe", ("8h", "1h"), default="8h"),
        start=None if start is None else str(start),
        spot_base=_number(pp, "paper.spot_base", default=0.0, low=0.0),
        spot_usd=_number(pp, "paper.spot_usd", default=0.0, low=0.0),
        futures_usd=_number(pp, "paper.futures_usd", default=0.0, low=0.0),
        fee_spot=_fraction(pp, "paper.fee_spot", 0.001, high=0.01),
        fee_perp=_fraction(pp, "paper.fee_perp", 0.0005, high=0.01),
        slippage_bps=_number(pp, "paper.slippage_bps", default=0.0, low=0.0),
        spot_amount_step=_number(pp, "paper.spot_amount_step", default=0.00001, low=0.0, strict=True),
        perp_amount_step=_number(pp, "paper.perp_amount_step", default=0.001, low=0.0, strict=True),
        min_notional_usd=_number(pp, "paper.min_notional_usd", default=5.0, low=0.0),
        state_path=_path(pp, "paper.state_path", base_dir, default=None),
    )

    kp = sec["keeper"]
    journal_path = _path(kp, "keeper.journal_path", base_dir, default=base_dir / f"{hedge_id}.journal.sqlite")
    keeper = KeeperSpec(
        journal_path=journal_path,
        log_path=_path(kp, "keeper.log_path", base_dir, default=base_dir / f"{hedge_id}.log.jsonl"),
        cycle_seconds=_number(kp, "keeper.cycle_seconds", default=60.0, low=0.0, strict=True),
    )

    return HedgeSpec(
        hedge_id=hedge_id,
        exchange=_get(hedge, "hedge.exchange", str),
        spot_symbol=_get(hedge, "hedge.spot_symbol", str),
        perp_symbol=_get(hedge, "hedge.perp_symbol", str),
        spot_qty_base=spot_qty,
        capital_usd=capital,
        leverage=leverage,
        margin_mode=margin_mode,
        strategy=strategy_name,
        strategy_options=tuple(sorted(options.items())),
        collateral=collateral,
        risk=risk,
        paper=paper,
        keeper=keeper,
        source_path=source_path,
    )


# --- helpers ---------------------------------------------------------------------------------------

_MISSING = object()


def _refuse_secrets(node: Mapping[str, Any], prefix: str) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ConfigError(
                "API credentials are never read from the spec file; remove this key and set the environment "
                "variables PERPHEDGE_<EXCHANGE>_API_KEY and PERPHEDGE_<EXCHANGE>_SECRET instead",
                key_path=path,
            )
        if isinstance(value, Mapping):
            _refuse_secrets(value, path + ".")


def _section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a table ([{name}]); it was {value!r}", key_path=name)
    unknown = sorted(set(value) - _SECTIONS[name])
    if unknown:
        raise ConfigError(
            f"unknown key; [{name}] accepts {', '.join(sorted(_SECTIONS[name]))}",
            key_path=f"{name}.{unknown[0]}",
        )
    return dict(value)


def _get(section: Mapping[str, Any], key_path: str, kind: type, default: Any = _MISSING) -> Any:
    key = key_path.rsplit(".", 1)[1]
    if key not in section:
        if default is _MISSING:
            raise ConfigError("is required", key_path=key_path)
        return default
    value = section[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"must be a {kind.__name__}; it was {value!r}", key_path=key_path)
    return value


MAX_SPEC_MAGNITUDE = 1e12
"""Largest number a spec may hold (USD amounts, quantities, seconds): beyond any real hedge."""


def _number(
    section: Mapping[str, Any],
    key_path: str,
    *,
    default: Any = _MISSING,
    low: float | None = None,
    strict: bool = False,
    integer: bool = False,
) -> float:
    key = key_path.rsplit(".", 1)[1]
    if key not in section:
        if default is _MISSING:
            raise ConfigError("is required", key_path=key_path)
        return default
    value = section[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        raise ConfigError(
            f"must be {'an integer' if integer else 'a number'}; it was {value!r}", key_path=key_path
        )
    if not math.isfinite(value) and not (value == math.inf and key == "max_loss_usd"):
        raise ConfigError(f"must be finite; it was {value!r}", key_path=key_path)
    if low is not None and (value < low or (strict and value == low)):
        raise ConfigError(f"must be {'>' if strict else '>='} {low:g}; it was {value!r}", key_path=key_path)
    if math.isfinite(value) and abs(value) > MAX_SPEC_MAGNITUDE:
        # money is journalled as fixed-point decimal text: astronomically large values cannot be
        raise ConfigError(f"must be at most {MAX_SPEC_MAGNITUDE:.0e} in size; it was {value:.3g}", key_path=key_path)
    return float(value)


def _opt_positive(section: Mapping[str, Any], key_path: str) -> float | None:
    key = key_path.rsplit(".", 1)[1]
    if key not in section:
        return None
    return _number(section, key_path, low=0.0, strict=True)


def _fraction(section: Mapping[str, Any], key_path: str, default: float, *, high: float) -> float:
    value = _number(section, key_path, default=default)
    try:
        return require_fraction(key_path.rsplit(".", 1)[1], value, low=0.0, high=high)
    except InputError as e:
        raise ConfigError(str(e), key_path=key_path) from e


def _choice(section: Mapping[str, Any], key_path: str, choices: tuple[str, ...], *, default: str) -> str:
    value = _get(section, key_path, str, default=default)
    if value not in choices:
        raise ConfigError(f"must be one of {', '.join(choices)}; it was {value!r}", key_path=key_path)
    return value


@overload
def _path(section: Mapping[str, Any], key_path: str, base_dir: Path, *, default: Path) -> Path: ...
@overload
def _path(section: Mapping[str, Any], key_path: str, base_dir: Path, *, default: None) -> Path | None: ...
def _path(section: Mapping[str, Any], key_path: str, base_dir: Path, *, default: Path | None) -> Path | None:
    value = _get(section, key_path, str, default=None)
    if value is None:
        return default
    if not value.strip():
        raise ConfigError("must name a file; it was empty (leave the key out for the default)", key_path=key_path)
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _validate_strategy(name: str, options: dict[str, Any]) -> None:
    from perphedge.strategies.registry import build_strategy

    try:
        build_strategy(name, **options)
    except ConfigError as e:
        raise ConfigError(str(e), key_path="strategy.options" if options else "strategy.name") from e
    except InputError as e:
        raise ConfigError(str(e), key_path="strategy.options") from e
