"""``perphedge plan``: margin, liquidation, funding, fees and a stress table before opening a hedge.

A thin shell over ``perphedge.mechanics.plan.plan_hedge``; the bracket table comes from the bundled
Binance USDⓈ-M snapshots (``perphedge.data.brackets``) unless ``--mmr`` overrides it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from perphedge.cli.app import app
from perphedge.errors import InputError
from perphedge.mechanics.instruments import ContractKind
from perphedge.mechanics.liquidation import LiquidationFormula
from perphedge.mechanics.margin import MarginMode

# Literal copies of perphedge.mechanics.plan.DEFAULT_LEVERAGE / DEFAULT_FUNDING_RATE (a test keeps them equal):
# importing mechanics.plan here would load numpy for every `perphedge --help`.
DEFAULT_LEVERAGE = 2.0
DEFAULT_FUNDING_RATE = 0.0001

if TYPE_CHECKING:
    from perphedge.mechanics.brackets import BracketTable
    from perphedge.mechanics.plan import HedgePlan

JSON_HELP = (
    "Print one JSON object with exactly these keys (null where not applicable): perp_qty, notional_usd, "
    "initial_margin_usd, maintenance_margin_usd, mmr, maintenance_amount_usd, liquidation_price, "
    "liquidation_distance_pct, margin_ratio, net_exposure_base, net_exposure_pct, funding_per_interval_usd, "
    "funding_per_day_usd, funding_apr_on_notional, funding_apr_on_capital, funding_apy_on_notional, "
    "open_fees_usd, close_fees_usd, breakeven_days, stress (a list of {move, price, margin_balance_usd, "
    "margin_ratio, liquidated, total_value_usd}). All rates and *_pct values are fractions (0.1095 = 10.95 %)."
)


@app.command("plan")
def plan_command(
    spot_qty: float = typer.Option(
        ..., "--spot-qty", help="Coins held (base units, e.g. 1.5 for 1.5 BTC).", show_default=False
    ),
    price: float = typer.Option(
        ...,
        "--price",
        help="Current price in USD(T) per coin, used as entry and mark price. Required: plan never guesses a price.",
        show_default=False,
    ),
    symbol: str = typer.Option(
        "BTCUSDT",
        "--symbol",
        help="Binance id (BTCUSDT) or ccxt symbol (BTC/USDT:USDT). Selects the bundled Binance bracket table "
        "(USDⓈ-M for linear; the coin's COIN-M table for inverse, e.g. BTCUSDT → BTCUSD) and the default "
        "inverse contract size.",
    ),
    hedge_ratio: float = typer.Option(
        1.0, "--hedge-ratio", help="Fraction of the coins to short, 0…1 (0.5 = half hedged; not percent)."
    ),
    contract: ContractKind = typer.Option(
        ContractKind.LINEAR,
        "--contract",
        help="linear: USDⓈ-M, qty in coins, USD(T) collateral. inverse: COIN-M, whole contracts of "
        "--contract-size USD (rounded down), collateral in coins taken from the holding; bundled brackets "
        "for BTC only, other coins need --mmr.",
        case_sensitive=False,
    ),
    contract_size: float | None = typer.Option(
        None,
        "--contract-size",
        help="Inverse only: USD per contract. Default: 100 for BTC, 10 for other coins (Binance COIN-M).",
        show_default=False,
    ),
    margin_mode: MarginMode = typer.Option(
        MarginMode.ISOLATED,
        "--margin-mode",
        help="isolated or cross. The spot coins are never futures collateral. In cross mode --collateral is "
        "the cross wallet balance and --other-maint-margin / --other-unrealized-pnl describe the other "
        "positions in it; without them both modes give the same figures.",
        case_sensitive=False,
    ),
    collateral: float | None = typer.Option(
        None,
        "--collateral",
        help="Margin posted for the short (cross: the cross wallet balance): USD(T) for linear, coins for "
        "inverse. Default: notional / --leverage.",
        show_default=False,
    ),
    leverage: float = typer.Option(
        DEFAULT_LEVERAGE,
        "--leverage",
        help="Leverage of the short leg; sets the initial margin (notional / leverage) and the default collateral. "
        "Checked against the bracket's maximum.",
    ),
    mmr: float | None = typer.Option(
        None,
        "--mmr",
        help="Maintenance-margin rate as a fraction (0.004 = 0.4 %), overriding the bundled bracket table "
        "(one bracket at any size). Needed for symbols without a bundled table (USDⓈ-M: 4 Binance snapshots; COIN-M: BTCUSD).",
        show_default=False,
    ),
    maintenance_amount: float | None = typer.Option(
        None,
        "--maintenance-amount",
        help="Maintenance amount (Binance 'cum') with --mmr: USD(T) for linear, coins for inverse. Default 0.",
        show_default=False,
    ),
    funding_rate: float = typer.Option(
        DEFAULT_FUNDING_RATE,
        "--funding-rate",
        help="Funding rate per interval as a fraction, assumed constant. Default 0.0001 = Binance's 0.01 % "
        "baseline (10.95 % APR at 8 h). Positive: the short receives.",
    ),
    interval_hours: float = typer.Option(
        8.0, "--interval-hours", help="Funding interval in hours (8, 4 or 1 on Binance)."
    ),
    fee_spot: float = typer.Option(
        0.001,
        "--fee-spot",
        help="Spot fee per side, fraction (Binance base tier 0.001). 0 if you keep coins you hold.",
    ),
    fee_perp: float = typer.Option(
        0.0005, "--fee-perp", help="Perp fee per side, fraction (Binance base-tier taker 0.0005)."
    ),
    other_maintenance_margin: float = typer.Option(
        0.0,
        "--other-maint-margin",
        help="Cross only: maintenance margin of your other positions in the same cross wallet (Binance TMM1), "
        "USD(T) for linear, coins for inverse. Held constant in the stress table.",
    ),
    other_unrealized_pnl: float = typer.Option(
        0.0,
        "--other-unrealized-pnl",
        help="Cross only: unrealised PnL of those other positions (Binance UPNL1; negative = a loss), same "
        "unit. Held constant in the stress table.",
    ),
    liquidation_formula: LiquidationFormula = typer.Option(
        LiquidationFormula.BINANCE,
        "--liquidation-formula",
        help="binance: maintenance margin at the liquidation price, bracket of the notional there. bybit: "
        "Bybit's classic USDT formula, maintenance margin fixed at the entry value (linear isolated only; "
        "the brackets still come from the Binance table or --mmr). The stress table follows the same rule.",
        case_sensitive=False,
    ),
    brackets_at: str | None = typer.Option(
        None,
        "--brackets-at",
        help="Use the bundled bracket snapshot in force at this date (YYYY-MM-DD). Default: the newest.",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Plan a hedge before opening it: margin to post, liquidation price and distance, exposure, funding
    income, fees, breakeven, a stress table over price moves of −50 % … +100 %, and the collateral that keeps
    the liquidation price at least +50 % / +100 % above the price.

    Liquidation uses Binance's formula (maintenance margin at the liquidation price, with the bracket of the
    notional there) unless --liquidation-formula bybit. Money is USD(T); inverse coin amounts are
    converted at --price.

    Capital (for the APR on capital) = spot value + collateral for linear; the spot value for inverse (the
    collateral coins come from the holding). After a liquidation the stress table counts the futures
    wallet as 0 and the spot as unhedged.

    Exit codes: 0 ok; 2 bad input (one line "error: …"); 4 margin refused (collateral below the initial
    margin, leverage above the bracket's maximum, a position liquidated on opening).

    Example: perphedge plan --spot-qty 1 --price 60000 --leverage 1
    """
    from perphedge.mechanics.plan import PlanInputs, plan_hedge

    table = _bracket_table(symbol, contract, mmr, maintenance_amount, brackets_at)
    inputs = PlanInputs(
        symbol=table.symbol,
        spot_qty_base=spot_qty,
        price_usd=price,
        table=table,
        hedge_ratio=hedge_ratio,
        contract=contract,
        contract_size_usd=contract_size,
        margin_mode=margin_mode,
        collateral=collateral,
        leverage=leverage,
        funding_rate_per_interval=funding_rate,
        interval_hours=interval_hours,
        fee_spot=fee_spot,
        fee_perp=fee_perp,
        other_maintenance_margin=other_maintenance_margin,
        other_unrealized_pnl=other_unrealized_pnl,
        liquidation_formula=liquidation_formula,
    )
    plan = plan_hedge(inputs)
    if plan.maintenance_margin_usd is not None and plan.maintenance_margin_usd < 0:
        # Binance: maintenance margin = notional × MMR − maintenance amount; the amount never exceeds the first term
        notional_text = (
            f"{plan.notional_usd / price:,.6g} coins"
            if contract is ContractKind.INVERSE
            else f"{plan.notional_usd:,.2f} USD"
        )
        raise InputError(
            f"--maintenance-amount {maintenance_amount!r} is larger than notional × --mmr "
            f"({notional_text} × {mmr!r}), which makes the maintenance margin negative; "
            "give the amount of your bracket (0 for the first one)"
        )
    if as_json:
        typer.echo(json.dumps(plan.to_json_dict(), indent=1, allow_nan=False))
        return
    _print_plan(plan)


def _bracket_table(
    symbol: str,
    contract: ContractKind,
    mmr: float | None,
    maintenance_amount: float | None,
    brackets_at: str | None,
) -> BracketTable:
    from perphedge.mechanics.brackets import BracketTable
    from perphedge.mechanics.instruments import binance_id_from_ccxt
    from perphedge.units import require_finite, require_non_negative

    binance_id = binance_id_from_ccxt(symbol)
    if mmr is not None:
        if brackets_at is not None:
            raise InputError("--brackets-at picks a bundled table but --mmr replaces it; give one of them")
        amount = (
            0.0
            if maintenance_amount is None
            else require_non_negative("--maintenance-amount", maintenance_amount)
        )
        return BracketTable.single(binance_id, require_finite("--mmr", mmr), amount)
    if maintenance_amount is not None:
        raise InputError(
            f"--maintenance-amount was {maintenance_amount!r} but only applies with --mmr; give both, or neither "
            "to use the bundled bracket table"
        )
    if contract is ContractKind.INVERSE:
        from perphedge.data.brackets import bundled_coinm_bracket_table

        if brackets_at is not None:
            raise InputError(
                f"--brackets-at was {brackets_at!r} but dated snapshots exist for USDⓈ-M (linear) tables only; "
                "the COIN-M table is a single bundled one: drop --brackets-at, or give --mmr"
            )

        return bundled_coinm_bracket_table(binance_id)
    from perphedge.data.brackets import bundled_bracket_table
    from perphedge.units import parse_utc

    at = None if brackets_at is None else parse_utc(brackets_at).date()
    return bundled_bracket_table(binance_id, at)


def _money(value: float | None, unit: str = "USD") -> str:
    return "—" if value is None else f"{value:,.2f} {unit}"


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:,.{digits}f} %"


def _num(value: float | None, fmt: str = ",.6g") -> str:
    return "—" if value is None else format(value, fmt)


def _print_plan(plan: HedgePlan) -> None:
    from rich.console import Console
    from rich.table import Table

    inputs = plan.inputs
    inverse = inputs.contract is ContractKind.INVERSE
    console = Console()
    qty_unit = "contracts" if inverse else "coins"
    collateral_text = (
        f"{plan.collateral:,.6g} coins ({plan.collateral_usd:,.2f} USD)"
        if inverse
        else _money(plan.collateral_usd)
    )

    summary = Table(
        title=f"Hedge plan: {inputs.spot_qty_base:g} coins held, {inputs.symbol} at {inputs.price_usd:,.2f}"
    )
    summary.add_column("item")
    summary.add_column("value", justify="right")
    rows = [
        (
            "perp position (short < 0)",
            f"{plan.perp_qty:,.6g} {qty_unit} ({inputs.contract.value}, {inputs.margin_mode.value})",
        ),
        ("notional", _money(plan.notional_usd)),
        ("collateral posted", collateral_text),
        ("initial margin", f"{_money(plan.initial_margin_usd)} at {inputs.leverage:g}x"),
        ("maintenance margin", _money(plan.maintenance_margin_usd)),
        ("MMR / maintenance amount", f"{_pct(plan.mmr, 3)} / {_money(plan.maintenance_amount_usd)}"),
        ("liquidation price", _num(plan.liquidation_price, ",.2f") if plan.liquidation_price else "none"),
        ("distance to liquidation", _pct(plan.liquidation_distance_pct)),
        ("margin ratio (100 % = liquidation)", _pct(plan.margin_ratio, 3)),
        ("net exposure", f"{plan.net_exposure_base:,.6g} coins ({_pct(plan.net_exposure_pct)})"),
        ("funding per interval", f"{_money(plan.funding_per_interval_usd)} per {inputs.interval_hours:g} h"),
        ("funding per day", _money(plan.funding_per_day_usd)),
        ("funding APR on notional", _pct(plan.funding_apr_on_notional)),
        ("funding APR on capital", _pct(plan.funding_apr_on_capital)),
        ("funding APY on notional (compounded)", _pct(plan.funding_apy_on_notional)),
        ("fees to open / to close", f"{_money(plan.open_fees_usd)} / {_money(plan.close_fees_usd)}"),
        (
            "breakeven (fees paid back by funding)",
            "never" if plan.breakeven_days is None else f"{plan.breakeven_days:,.1f} days",
        ),
    ]
    for label, value in rows:
        summary.add_row(label, value)
    console.print(summary)

    stress = Table(title="Stress: spot and mark move together")
    for name in ("move", "price", "margin balance USD", "margin ratio", "liquidated", "spot + futures USD"):
        stress.add_column(name, justify="right")
    for point in plan.stress:
        stress.add_row(
            f"{point.move * 100:+.0f} %",
            f"{point.price:,.2f}",
            f"{point.margin_balance_usd:,.2f}",
            _pct(point.margin_ratio, 3),
            "[bold red]yes[/]" if point.liquidated else "no",
            f"{point.total_value_usd:,.2f}",
        )
    console.print(stress)

    if plan.collateral_targets:
        targets = Table(title="How much margin to post")
        for name in ("keep liquidation at least", "liquidation price", "collateral"):
            targets.add_column(name, justify="right")
        for target in plan.collateral_targets:
            amount = (
                f"{target.collateral:,.6g} coins ({target.collateral_usd:,.2f} USD)"
                if inverse
                else _money(target.collateral_usd)
            )
            targets.add_row(
                f"+{target.buffer * 100:.0f} % above the price", f"{target.liquidation_price:,.2f}", amount
            )
        console.print(targets)
    for note in plan.notes:
        console.print(f"note: {note}", style="dim", highlight=False)
