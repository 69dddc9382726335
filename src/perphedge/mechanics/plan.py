"""The hedge planner: margin, liquidation, exposure, funding, fees and a price-stress table. Pure.

"Always calculate the required initial margin before opening the hedge", done properly: one spot
holding, one short perpetual against it, one margin picture.

Model (DOMAIN.md, exchange-mechanics.md):
- **Linear (USDⓈ-M).** Short ``hedge_ratio × spot_qty`` coins. The futures wallet holds ``collateral``
  USD(T), separate from the spot coins: the spot coins are **not** futures collateral, in isolated or
  cross mode. In cross mode ``collateral`` is the cross wallet balance and the account's *other*
  positions enter through their maintenance margin and unrealised PnL (Binance's TMM1 and UPNL1,
  ``other_maintenance_margin`` / ``other_unrealized_pnl``, held constant under the stress moves);
  with no other positions cross and isolated give the same numbers (the note says so).
- **Inverse (COIN-M).** Short ``hedge_ratio × spot value`` in whole contracts of ``contract_size_usd``
  (rounded down: never over-hedged). ``collateral`` is in coins, taken *from* the spot holding and
  posted to the COIN-M wallet. Posting all coins at 1x makes the account's USD value constant and the
  short impossible to liquidate by a rise.
- Liquidation: Binance formulas by default, maintenance margin evaluated at the liquidation price with
  the bracket of the notional there (``mechanics.liquidation``). ``LiquidationFormula.BYBIT`` uses
  Bybit's classic USDT isolated formula instead (maintenance margin fixed at the entry value; linear
  isolated only); the stress table and the collateral targets then follow the same rule.
- Fees: the spot leg is bought to open and sold to close (``fee_spot`` per side; pass 0 if you
  already hold the coins and will keep them); the perp leg pays ``fee_perp`` per side; all at ``price``.
- Stress: each price move is applied to spot and mark alike (no basis). A move at or beyond the
  liquidation price is "liquidated": the futures wallet is then taken as 0 (Binance keeps the
  remaining margin as the clearance fee), its margin ratio is ``None``, and the spot stays unhedged.
- Money in USD(T) (1 USDT = 1 USD). Inverse amounts in coins are converted at the plan price (the
  stress table at each stressed price).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from perphedge.errors import InputError, MarginError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.fees import breakeven_days, trade_fee_usd
from perphedge.mechanics.funding import (
    annualize_compound,
    annualize_simple,
    funding_cashflow_inverse_coin,
    funding_cashflow_linear_usd,
)
from perphedge.mechanics.instruments import ContractKind, default_contract_size_usd, split_exchange_id
from perphedge.mechanics.liquidation import (
    LiquidationFormula,
    liquidation_distance,
    liquidation_price_bybit_linear_isolated,
    liquidation_price_inverse,
    liquidation_price_linear,
    wallet_balance_for_liquidation_price_inverse,
    wallet_balance_for_liquidation_price_linear,
)
from perphedge.mechanics.margin import (
    MarginMode,
    initial_margin_usd,
    maintenance_margin,
    max_leverage_for_notional,
    require_leverage_allowed,
)
from perphedge.units import require_finite, require_fraction, require_non_negative, require_positive

STRESS_MOVES: tuple[float, ...] = (-0.5, -0.3, -0.2, -0.1, 0.1, 0.2, 0.3, 0.5, 1.0)
"""Price moves of the stress table, as fractions (−50 % … +100 %)."""

LIQUIDATION_BUFFERS: tuple[float, ...] = (0.5, 1.0)
"""Targets for "how much collateral keeps the liquidation price at least this far above the price"."""

DEFAULT_LEVERAGE = 2.0
"""Default leverage of the short leg: collateral = notional / 2, liquidation about +49 % above entry."""

DEFAULT_FUNDING_RATE = 0.0001
"""Default funding rate per interval: Binance's interest baseline, 0.01 % per 8 h (10.95 % APR)."""

MAX_FUNDING_RATE = 0.05
"""Largest |funding rate per interval| accepted; exchanges cap far below (Binance ≤ ±3 %)."""

MAX_FEE_RATE = 0.01
"""Largest fee per side accepted (1 %); base tiers are 0.02 %–0.10 %."""

MIN_INTERVAL_HOURS = 1.0
"""Shortest funding interval accepted: 1 h, the shortest on Binance, Bybit and OKX (mechanics.funding)."""

JSON_KEYS: tuple[str, ...] = (
    "perp_qty",
    "notional_usd",
    "initial_margin_usd",
    "maintenance_margin_usd",
    "mmr",
    "maintenance_amount_usd",
    "liquidation_price",
    "liquidation_distance_pct",
    "margin_ratio",
    "net_exposure_base",
    "net_exposure_pct",
    "funding_per_interval_usd",
    "funding_per_day_usd",
    "funding_apr_on_notional",
    "funding_apr_on_capital",
    "funding_apy_on_notional",
    "open_fees_usd",
    "close_fees_usd",
    "breakeven_days",
    "stress",
)
"""The keys of ``perphedge plan --json``, exactly (issue 2)."""

STRESS_KEYS: tuple[str, ...] = (
    "move",
    "price",
    "margin_balance_usd",
    "margin_ratio",
    "liquidated",
    "total_value_usd",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanInputs:
    """What the user holds and how they want to hedge it.

    ``collateral`` is USD for linear, coins for inverse; ``None`` = notional / leverage.
    ``table`` is the bracket table to use (the bundled Binance one, or ``BracketTable.single`` from
    the user's own MMR); for inverse contracts it is in coin notional.
    ``other_maintenance_margin`` / ``other_unrealized_pnl`` (cross only; USD for linear, coins for
    inverse) are the other positions sharing the cross wallet (Binance's TMM1 and UPNL1).
    """

    symbol: str
    spot_qty_base: float
    price_usd: float
    table: BracketTable
    hedge_ratio: float = 1.0
    contract: ContractKind = ContractKind.LINEAR
    contract_size_usd: float | None = None
    margin_mode: MarginMode = MarginMode.ISOLATED
    collateral: float | None = None
    leverage: float = DEFAULT_LEVERAGE
    funding_rate_per_interval: float = DEFAULT_FUNDING_RATE
    interval_hours: float = 8.0
    fee_spot: float = 0.001
    fee_perp: float = 0.0005
    other_maintenance_margin: float = 0.0
    other_unrealized_pnl: float = 0.0
    liquidation_formula: LiquidationFormula = LiquidationFormula.BINANCE

    def __post_init__(self) -> None:
        require_positive("spot quantity (--spot-qty)", self.spot_qty_base)
        require_positive("price (--price)", self.price_usd)
        ratio = require_finite("hedge ratio (--hedge-ratio)", self.hedge_ratio)
        if ratio > 1.0:
            raise InputError(
                f"hedge ratio (--hedge-ratio) must be a fraction between 0 and 1 (1 = fully hedged; more would "
                f"leave you net short, which plan does not model); it was {ratio!r}; if it is a percent, "
                f"use {ratio / 100:g} for {ratio:g} %"
            )
        require_fraction("hedge ratio (--hedge-ratio)", ratio)
        require_positive("leverage (--leverage)", self.leverage)
        if self.collateral is not None:
            require_non_negative("collateral (--collateral)", self.collateral)
        if self.contract_size_usd is not None:
            require_positive("contract size (--contract-size)", self.contract_size_usd)
            if self.contract is not ContractKind.INVERSE:
                raise InputError(
                    f"contract size (--contract-size) applies to inverse contracts only; it was "
                    f"{self.contract_size_usd!r} with a linear contract; drop it or add --contract inverse"
                )
        rate = require_finite("funding rate (--funding-rate)", self.funding_rate_per_interval)
        if abs(rate) > MAX_FUNDING_RATE:
            raise InputError(
                f"funding rate (--funding-rate) must be a fraction per interval within ±{MAX_FUNDING_RATE:g}; "
                f"it was {rate!r} (it looks like a percent: use {rate / 100:g} for {rate:g} %)"
            )
        hours = require_positive("funding interval (--interval-hours)", self.interval_hours)
        if hours > 24:
            raise InputError(f"funding interval (--interval-hours) must be at most 24 h; it was {hours!r}")
        if hours < MIN_INTERVAL_HOURS:
            # shorter intervals compound the rate so often that the APY overflows to inf
            raise InputError(
                f"funding interval (--interval-hours) must be at least {MIN_INTERVAL_HOURS:g} h (the shortest "
                f"interval of Binance, Bybit and OKX); it was {hours!r}: give it in hours (8, 4 or 1)"
            )
        require_fraction("spot fee (--fee-spot)", self.fee_spot, high=MAX_FEE_RATE)
        require_fraction("perp fee (--fee-perp)", self.fee_perp, high=MAX_FEE_RATE)
        require_non_negative(
            "other positions' maintenance margin (--other-maint-margin)", self.other_maintenance_margin
        )
        require_finite("other positions' unrealised PnL (--other-unrealized-pnl)", self.other_unrealized_pnl)
        if self.margin_mode is MarginMode.ISOLATED and (
            self.other_maintenance_margin != 0.0 or self.other_unrealized_pnl != 0.0
        ):
            raise InputError(
                "other positions (--other-maint-margin, --other-unrealized-pnl) only share the wallet in "
                f"cross mode; they were {self.other_maintenance_margin!r} and {self.other_unrealized_pnl!r} "
                "with isolated margin; add --margin-mode cross or drop them"
            )
        if self.liquidation_formula is LiquidationFormula.BYBIT and (
            self.contract is not ContractKind.LINEAR or self.margin_mode is not MarginMode.ISOLATED
        ):
            raise InputError(
                "the Bybit classic liquidation formula (--liquidation-formula bybit) is published for linear "
                f"isolated positions only; it was asked for with {self.contract.value} {self.margin_mode.value} "
                "margin; use --contract linear --margin-mode isolated, or the Binance formula"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class StressPoint:
    """The hedge after the price moves by ``move`` (a fraction): margin picture and total USD value."""

    move: float
    price: float
    margin_balance_usd: float
    margin_ratio: float | None
    liquidated: bool
    total_value_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralTarget:
    """Collateral that puts the liquidation price ``buffer`` (0.5 = +50 %) above the price."""

    buffer: float
    liquidation_price: float
    collateral: float
    collateral_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgePlan:
    """Everything ``perphedge plan`` reports. Fractions are fractions (0.1095, not 10.95).

    ``perp_qty`` is signed (negative = short): coins for linear, whole contracts for inverse.
    ``*_usd`` amounts of an inverse hedge are its coin amounts at the plan price.
    """

    inputs: PlanInputs
    perp_qty: float
    notional_usd: float
    collateral: float
    collateral_usd: float
    initial_margin_usd: float
    maintenance_margin_usd: float
    mmr: float | None
    maintenance_amount_usd: float | None
    liquidation_price: float | None
    liquidation_distance_pct: float | None
    margin_ratio: float | None
    net_exposure_base: float
    net_exposure_pct: float
    funding_per_interval_usd: float
    funding_per_day_usd: float
    funding_apr_on_notional: float | None
    funding_apr_on_capital: float | None
    funding_apy_on_notional: float | None
    open_fees_usd: float
    close_fees_usd: float
    breakeven_days: float | None
    stress: tuple[StressPoint, ...]
    collateral_targets: tuple[CollateralTarget, ...]
    notes: tuple[str, ...]

    def to_json_dict(self) -> dict[str, Any]:
        """Return the ``--json`` object: exactly ``JSON_KEYS``, ``None`` where not applicable."""
        out: dict[str, Any] = {key: getattr(self, key) for key in JSON_KEYS if key != "stress"}
        out["stress"] = [{key: getattr(point, key) for key in STRESS_KEYS} for point in self.stress]
        return out


def _margin_ratio_or_none(maintenance: float, balance: float) -> float | None:
    return maintenance / balance if balance > 0.0 else None


def plan_hedge(inputs: PlanInputs) -> HedgePlan:
    """Return the hedge plan for ``inputs``: pure, no I/O.

    Raises:
        InputError: inputs that cannot describe a hedge (e.g. too small for one inverse contract,
            inverse collateral larger than the coins held).
        MarginError: leverage above what the bracket allows, notional above the top cap, or
            collateral below the initial margin.
    """
    if inputs.contract is ContractKind.INVERSE:
        return _plan_inverse(inputs)
    return _plan_linear(inputs)


def _common_notes(inputs: PlanInputs, unit: str) -> list[str]:
    if inputs.liquidation_formula is LiquidationFormula.BYBIT:
        liquidation = (
            "liquidation: Bybit classic USDT isolated formula, maintenance margin fixed at the entry value "
            "(bracket of the entry notional); Binance's formula would evaluate it at the liquidation price"
        )
    else:
        liquidation = (
            "liquidation: Binance formula, maintenance margin at the liquidation price (bracket of the "
            "notional there)"
        )
    notes = [
        liquidation,
        f"funding: {inputs.funding_rate_per_interval:g} per {inputs.interval_hours:g} h interval, "
        "assumed constant; positive = the short receives",
    ]
    if inputs.margin_mode is MarginMode.CROSS:
        if inputs.other_maintenance_margin == 0.0 and inputs.other_unrealized_pnl == 0.0:
            notes.append(
                "cross: the spot coins are not futures collateral; with no other futures positions the cross "
                "wallet is the collateral, so the figures equal isolated mode (describe other positions with "
                "--other-maint-margin and --other-unrealized-pnl)"
            )
        else:
            notes.append(
                f"cross: the spot coins are not futures collateral; the cross wallet ({unit}) also carries other "
                f"positions with maintenance margin {inputs.other_maintenance_margin:,.6g} and unrealised PnL "
                f"{inputs.other_unrealized_pnl:,.6g} {unit}, held constant in the stress table"
            )
    return notes


def _require_not_liquidated_on_opening(maintenance: float, margin_balance: float, unit: str) -> None:
    """Refuse a hedge whose maintenance margin already uses up its margin balance (liquidated at once)."""
    if maintenance >= margin_balance:
        raise MarginError(
            f"the short would be liquidated on opening: the maintenance margin {maintenance:,.6g} {unit} (with "
            f"any other cross positions') is not below the margin balance {margin_balance:,.6g} {unit} "
            "(collateral plus other positions' unrealised PnL); post more collateral, lower --leverage or "
            "check --mmr (it must be below 1 / leverage)"
        )


def _check_margin(inputs: PlanInputs, notional: float, collateral: float, initial: float, unit: str) -> None:
    """Refuse a leverage the bracket does not allow, or collateral below the initial margin (same unit)."""
    if notional <= 0.0:
        return
    require_leverage_allowed(inputs.table, notional, inputs.leverage)
    if collateral < initial * (1.0 - 1e-12):
        most = max_leverage_for_notional(inputs.table, notional)
        needed = notional / collateral if collateral > 0 else math.inf
        fix = (
            f"or raise --leverage to {needed:.4g}"
            if needed <= most
            else f"or raise --leverage (at most {most:g}x is allowed here, which needs {notional / most:,.6g} {unit})"
        )
        raise MarginError(
            f"collateral {collateral:,.6g} {unit} is below the initial margin {initial:,.6g} {unit} of a "
            f"{notional:,.6g} {unit} short at {inputs.leverage:g}x; post at least that, {fix}"
        )


def _funding_figures(
    inputs: PlanInputs, per_interval_usd: float, notional: float, capital_usd: float
) -> tuple[float, float | None, float | None, float | None]:
    per_day = per_interval_usd * 24.0 / inputs.interval_hours
    if notional <= 0.0:
        return per_day, None, None, None
    received_rate = per_interval_usd / notional  # the rate seen from the short: +rate when shorts receive
    apr_notional = float(annualize_simple(received_rate, inputs.interval_hours))
    apy_notional = float(annualize_compound(received_rate, inputs.interval_hours))
    apr_capital = per_day * 365.0 / capital_usd
    return per_day, apr_notional, apr_capital, apy_notional


def _plan_linear(inputs: PlanInputs) -> HedgePlan:
    price, spot_qty, table = inputs.price_usd, inputs.spot_qty_base, inputs.table
    other_mm, other_upnl = inputs.other_maintenance_margin, inputs.other_unrealized_pnl
    bybit = inputs.liquidation_formula is LiquidationFormula.BYBIT
    qty = inputs.hedge_ratio * spot_qty
    notional = qty * price
    initial = initial_margin_usd(notional, inputs.leverage)
    collateral = initial if inputs.collateral is None else inputs.collateral
    _check_margin(inputs, notional, collateral, initial, "USD")
    notes = _common_notes(inputs, "USD")
    account_balance = (
        collateral + other_upnl
    )  # the (cross) wallet's margin balance before this position's PnL

    def own_maintenance(notional_now: float) -> float:
        """This position's maintenance margin: Binance at the current notional; Bybit classic at entry."""
        return maintenance_margin(notional if bybit else notional_now, table)

    if qty > 0.0:
        bracket = table.for_notional(notional)
        maintenance = maintenance_margin(notional, table)
        _require_not_liquidated_on_opening(maintenance + other_mm, account_balance, "USD")
        if bybit:
            lp = liquidation_price_bybit_linear_isolated(
                side=-1,
                qty_base=qty,
                entry_price=price,
                leverage=inputs.leverage,
                mmr=bracket.mmr,
                maintenance_deduction_usd=bracket.maintenance_amount_usd,
                extra_margin_usd=collateral - initial,
            )
        else:
            lp = liquidation_price_linear(
                side=-1,
                qty_base=qty,
                entry_price=price,
                wallet_balance_usd=collateral,
                table=table,
                other_maintenance_margin_usd=other_mm,
                other_unrealized_pnl_usd=other_upnl,
            )
        mmr, amount = bracket.mmr, bracket.maintenance_amount_usd
        ratio = _margin_ratio_or_none(maintenance + other_mm, account_balance)
    else:
        maintenance, lp, mmr, amount, ratio = 0.0, None, None, None, None
        notes.append("hedge ratio 0: no perpetual position, nothing can be liquidated")

    per_interval = funding_cashflow_linear_usd(-qty, price, inputs.funding_rate_per_interval)
    capital = spot_qty * price + collateral
    per_day, apr_notional, apr_capital, apy_notional = _funding_figures(
        inputs, per_interval, notional, capital
    )
    open_fees = trade_fee_usd(spot_qty * price, inputs.fee_spot) + trade_fee_usd(notional, inputs.fee_perp)

    stress = []
    for move in STRESS_MOVES:
        moved = price * (1.0 + move)
        balance = account_balance - qty * (moved - price)
        moved_maintenance = own_maintenance(qty * moved) + other_mm if qty > 0 else 0.0
        liquidated = qty > 0 and balance <= moved_maintenance
        futures_value = 0.0 if liquidated else balance
        stress.append(
            StressPoint(
                move=move,
                price=moved,
                margin_balance_usd=futures_value,
                margin_ratio=None
                if liquidated or qty == 0
                else _margin_ratio_or_none(moved_maintenance, balance),
                liquidated=liquidated,
                total_value_usd=spot_qty * moved + futures_value,
            )
        )

    targets = []
    if qty > 0.0:
        floor_collateral = notional / max_leverage_for_notional(table, notional)
        for buffer in LIQUIDATION_BUFFERS:
            target_price = price * (1.0 + buffer)
            if bybit:  # Bybit: LP_short = EP + (collateral − MM_entry) / size, solved for the collateral
                needed = qty * (target_price - price) + maintenance
            else:
                needed = wallet_balance_for_liquidation_price_linear(
                    side=-1, qty_base=qty, entry_price=price, liquidation_price=target_price, table=table
                )
            needed = max(needed + other_mm - other_upnl, floor_collateral)
            targets.append(
                CollateralTarget(
                    buffer=buffer, liquidation_price=target_price, collateral=needed, collateral_usd=needed
                )
            )

    return HedgePlan(
        inputs=inputs,
        perp_qty=-qty if qty else 0.0,
        notional_usd=notional,
        collateral=collateral,
        collateral_usd=collateral,
        initial_margin_usd=initial,
        maintenance_margin_usd=maintenance,
        mmr=mmr,
        maintenance_amount_usd=amount,
        liquidation_price=lp,
        liquidation_distance_pct=liquidation_distance(lp, price),
        margin_ratio=ratio,
        net_exposure_base=spot_qty - qty,
        net_exposure_pct=(spot_qty - qty) / spot_qty,
        funding_per_interval_usd=per_interval,
        funding_per_day_usd=per_day,
        funding_apr_on_notional=apr_notional,
        funding_apr_on_capital=apr_capital,
        funding_apy_on_notional=apy_notional,
        open_fees_usd=open_fees,
        close_fees_usd=open_fees,
        breakeven_days=breakeven_days(2 * open_fees, per_day) if qty > 0 else None,
        stress=tuple(stress),
        collateral_targets=tuple(targets),
        notes=tuple(notes),
    )


def _plan_inverse(inputs: PlanInputs) -> HedgePlan:
    price, spot_qty, table = inputs.price_usd, inputs.spot_qty_base, inputs.table
    other_mm, other_upnl = inputs.other_maintenance_margin, inputs.other_unrealized_pnl  # coins
    contract_size = inputs.contract_size_usd
    if contract_size is None:
        contract_size = default_contract_size_usd(split_exchange_id(inputs.symbol)[0])
    target_usd = inputs.hedge_ratio * spot_qty * price
    contracts = float(math.floor(target_usd / contract_size + 1e-9))
    if contracts == 0.0 and inputs.hedge_ratio > 0.0:
        raise InputError(
            f"the hedge of {target_usd:,.2f} USD is smaller than one {contract_size:g} USD contract; "
            "hold more coins, raise --hedge-ratio or use --contract linear"
        )
    notional = contracts * contract_size  # USD
    notional_coin = notional / price
    initial_coin = initial_margin_usd(notional_coin, inputs.leverage)
    collateral = initial_coin if inputs.collateral is None else inputs.collateral
    if collateral > spot_qty * (1.0 + 1e-12):
        raise InputError(
            f"inverse collateral (--collateral) is posted from the coins held; it was {collateral!r} coins but "
            f"only {spot_qty!r} are held; lower --collateral or raise --spot-qty"
        )
    _check_margin(inputs, notional_coin, collateral, initial_coin, "coins")
    notes = _common_notes(inputs, "coins")
    account_balance = collateral + other_upnl  # coins: the COIN-M wallet's margin balance before this PnL
    notes.append(
        f"inverse: {contracts:g} contracts of {contract_size:g} USD (rounded down); collateral "
        f"{collateral:g} coins posted from the spot holding; coin amounts converted at {price:g}"
    )

    if contracts > 0.0:
        bracket = table.for_notional(notional_coin)
        maintenance_coin = maintenance_margin(notional_coin, table)
        _require_not_liquidated_on_opening(maintenance_coin + other_mm, account_balance, "coins")
        lp = liquidation_price_inverse(
            side=-1,
            contracts=contracts,
            contract_size_usd=contract_size,
            entry_price=price,
            wallet_balance_coin=collateral,
            table=table,
            other_maintenance_margin_coin=other_mm,
            other_unrealized_pnl_coin=other_upnl,
        )
        mmr, amount_usd = bracket.mmr, bracket.maintenance_amount_usd * price
        ratio = _margin_ratio_or_none(maintenance_coin + other_mm, account_balance)
    else:
        maintenance_coin, lp, mmr, amount_usd, ratio = 0.0, None, None, None, None
        notes.append("hedge ratio 0: no perpetual position, nothing can be liquidated")

    per_interval = (
        funding_cashflow_inverse_coin(-contracts, contract_size, price, inputs.funding_rate_per_interval)
        * price
    )
    capital = spot_qty * price  # the collateral coins are part of the holding
    per_day, apr_notional, apr_capital, apy_notional = _funding_figures(
        inputs, per_interval, notional, capital
    )
    open_fees = trade_fee_usd(spot_qty * price, inputs.fee_spot) + trade_fee_usd(notional, inputs.fee_perp)

    stress = []
    for move in STRESS_MOVES:
        moved = price * (1.0 + move)
        balance_coin = account_balance - contracts * contract_size * (1.0 / price - 1.0 / moved)
        moved_maintenance = maintenance_margin(notional / moved, table) + other_mm if contracts > 0 else 0.0
        liquidated = contracts > 0 and balance_coin <= moved_maintenance
        futures_coin = 0.0 if liquidated else balance_coin
        stress.append(
            StressPoint(
                move=move,
                price=moved,
                margin_balance_usd=futures_coin * moved,
                margin_ratio=None
                if liquidated or contracts == 0
                else _margin_ratio_or_none(moved_maintenance, balance_coin),
                liquidated=liquidated,
                total_value_usd=(spot_qty - collateral) * moved + futures_coin * moved,
            )
        )

    targets = []
    if contracts > 0.0:
        floor_collateral = notional_coin / max_leverage_for_notional(table, notional_coin)
        for buffer in LIQUIDATION_BUFFERS:
            target_price = price * (1.0 + buffer)
            needed = wallet_balance_for_liquidation_price_inverse(
                side=-1,
                contracts=contracts,
                contract_size_usd=contract_size,
                entry_price=price,
                liquidation_price=target_price,
                table=table,
            )
            needed = max(needed + other_mm - other_upnl, floor_collateral)
            targets.append(
                CollateralTarget(
                    buffer=buffer,
                    liquidation_price=target_price,
                    collateral=needed,
                    collateral_usd=needed * price,
                )
            )

    net_base = spot_qty - notional_coin
    return HedgePlan(
        inputs=inputs,
        perp_qty=-contracts if contracts else 0.0,
        notional_usd=notional,
        collateral=collateral,
        collateral_usd=collateral * price,
        initial_margin_usd=initial_coin * price,
        maintenance_margin_usd=maintenance_coin * price,
        mmr=mmr,
        maintenance_amount_usd=amount_usd,
        liquidation_price=lp,
        liquidation_distance_pct=liquidation_distance(lp, price),
        margin_ratio=ratio,
        net_exposure_base=net_base,
        net_exposure_pct=net_base / spot_qty,
        funding_per_interval_usd=per_interval,
        funding_per_day_usd=per_day,
        funding_apr_on_notional=apr_notional,
        funding_apr_on_capital=apr_capital,
        funding_apy_on_notional=apy_notional,
        open_fees_usd=open_fees,
        close_fees_usd=open_fees,
        breakeven_days=breakeven_days(2 * open_fees, per_day) if contracts > 0 else None,
        stress=tuple(stress),
        collateral_targets=tuple(targets),
        notes=tuple(notes),
    )
