"""``perphedge backtest`` and ``perphedge compare``: run hedging strategies on real history, show and report.

``backtest`` runs one strategy; ``compare`` runs full, partial, both dynamic variants and unhedged spot
on the same data. Both print a table (or ``--json``) and can write a self-contained HTML report.
Heavy modules (pandas, plotly, the engine) are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from perphedge.cli.app import app
from perphedge.errors import InputError

if TYPE_CHECKING:
    from perphedge.data.schema import MarketData
    from perphedge.engine.config import BacktestConfig
    from perphedge.engine.results import BacktestResult

TIMEFRAMES: tuple[str, ...] = ("8h", "1h")
COMPARE_PARTIAL_RATIO = 0.5

# --- options shared by both commands (typer reads them from the annotations) ---------------------------

Symbol = Annotated[
    str,
    typer.Option(
        "--symbol",
        "-s",
        help="Exchange symbol of the bundled or downloaded data, e.g. BTCUSDT (see perphedge data list).",
    ),
]
Exchange = Annotated[str, typer.Option("--exchange", help="Exchange of the data (bundled data is binance).")]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        show_default=False,
        help="Where downloaded/imported data lives (default: $PERPHEDGE_DATA_DIR or the platform cache dir). "
        "Data from there is validated before the run; bundled data is used first when it has the symbol.",
        file_okay=False,
    ),
]
Start = Annotated[
    str | None,
    typer.Option(
        "--start",
        show_default=False,
        help="First bar to use, ISO date/time in UTC (2021-01-01 or 2021-01-01T08:00Z).",
    ),
]
End = Annotated[
    str | None,
    typer.Option(
        "--end", show_default=False, help="Stop before this time, ISO date/time in UTC (exclusive)."
    ),
]
Timeframe = Annotated[
    str, typer.Option("--timeframe", help="Bar length: 8h or 1h (1h is bundled for BTC, ETH, SOL).")
]
Capital = Annotated[
    float,
    typer.Option(
        "--capital",
        help="Starting capital in USD(T): spot gets capital × L/(1+L), the futures collateral the rest.",
    ),
]
Leverage = Annotated[
    float, typer.Option("--leverage", help="Leverage L of the perp leg (initial margin = notional / L).")
]
MarginMode = Annotated[str, typer.Option("--margin-mode", help="Perp margin mode: isolated or cross.")]
Contract = Annotated[
    str,
    typer.Option(
        "--contract", help="Perp type: linear (USDⓈ-M, USDT margin) or inverse (COIN-M, coins as collateral)."
    ),
]
ContractSize = Annotated[
    float | None,
    typer.Option(
        "--contract-size",
        show_default=False,
        help="Inverse contract size in USD (default 100 for BTC, 10 for others).",
    ),
]
SpotQty = Annotated[
    float | None,
    typer.Option(
        "--spot-qty",
        show_default=False,
        help="Start from this many coins instead of --capital (give --collateral too).",
    ),
]
Collateral = Annotated[
    float | None,
    typer.Option(
        "--collateral",
        show_default=False,
        help="Futures collateral with --spot-qty: USD for linear, coins for inverse.",
    ),
]
FeeSpot = Annotated[
    float, typer.Option("--fee-spot", help="Spot fee per side, a fraction (0.001 = 0.10 %, Binance base).")
]
FeePerp = Annotated[
    float,
    typer.Option("--fee-perp", help="Perp fee per side, a fraction (0.0005 = 0.05 %, Binance base taker)."),
]
SlippageBps = Annotated[
    float, typer.Option("--slippage-bps", help="Slippage per fill in basis points (1 bp = 0.01 %).")
]
CollateralPolicy = Annotated[
    str,
    typer.Option(
        "--collateral-policy",
        help="When the margin ratio passes the trigger: none, reserve (top up from --reserve-usd), "
        "sell_spot (sell spot and shrink the short alike, staying neutral) or auto (sell_spot for "
        "linear, none for inverse).",
    ),
]
TriggerMarginRatio = Annotated[
    float,
    typer.Option(
        "--trigger-margin-ratio",
        help="The collateral policy acts when maintenance margin / margin balance passes this fraction "
        "(1 = liquidation; at 0.02 the margin balance is 20 % of the notional with BTCUSDT's 0.4 % MMR).",
    ),
]
TargetMarginRatio = Annotated[
    float,
    typer.Option(
        "--target-margin-ratio",
        help="The margin ratio the collateral policy restores, below the trigger (at 0.008 the margin "
        "balance is 50 % of the notional with BTCUSDT's 0.4 % MMR).",
    ),
]
ReserveUsd = Annotated[
    float, typer.Option("--reserve-usd", help="USD kept aside to top up margin (policy reserve).")
]
BorrowRate = Annotated[
    float,
    typer.Option(
        "--borrow-rate-per-day", help="Margin-borrow interest for reverse carry, a fraction per day."
    ),
]
WithdrawExcess = Annotated[
    bool,
    typer.Option(
        "--withdraw-excess/--no-withdraw-excess",
        help="Move futures margin above the initial margin (notional / L) back to the spot wallet at each "
        "bar close, keeping at least what holds the margin ratio at --target-margin-ratio when a "
        "collateral policy is on (linear only).",
    ),
]
ReinvestFunding = Annotated[
    bool,
    typer.Option(
        "--reinvest-funding/--no-reinvest-funding",
        help="Reinvest funding received: L/(1+L) of it buys spot and the short grows with it (linear only).",
    ),
]
ClearanceFee = Annotated[
    float,
    typer.Option(
        "--clearance-fee",
        help="Liquidation clearance fee, a fraction of the notional at the liquidation price "
        "(0.0125 = 1.25 %, Binance BTCUSDT).",
    ),
]
BracketSnapshot = Annotated[
    str,
    typer.Option(
        "--bracket-snapshot",
        help="Maintenance-margin brackets: in_force (the bundled Binance snapshot in force at each date) "
        "or newest (the newest bundled snapshot throughout).",
    ),
]
Mmr = Annotated[
    float | None,
    typer.Option(
        "--mmr",
        show_default=False,
        help="Maintenance-margin rate, a fraction (0.004 = 0.4 %), as one bracket at any size, replacing the "
        "bundled Binance bracket tables (and --bracket-snapshot). Needed for symbols without a bundled table "
        "(imported or downloaded data of other coins).",
    ),
]
MaintenanceAmount = Annotated[
    float | None,
    typer.Option(
        "--maintenance-amount",
        show_default=False,
        help="Maintenance amount with --mmr (Binance 'cum'): USD(T) for linear, coins for inverse. Default 0.",
    ),
]
BorrowRatesCsv = Annotated[
    Path | None,
    typer.Option(
        "--borrow-rates-csv",
        show_default=False,
        exists=True,
        dir_okay=False,
        readable=True,
        help="Margin-borrow rates over time for reverse carry, replacing --borrow-rate-per-day: a CSV with "
        "columns ts (ISO UTC date/time) and rate_per_day (fraction); each rate applies from its ts until "
        "the next and must cover the whole run.",
    ),
]
JsonOutput = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON (stable keys) instead of tables.")
]
Report = Annotated[
    Path | None,
    typer.Option(
        "--report",
        show_default=False,
        help="Write a self-contained HTML report (works offline) to this file.",
        dir_okay=False,
    ),
]


# --- commands ----------------------------------------------------------------------------------------


@app.command("backtest")
def backtest(
    symbol: Symbol = "BTCUSDT",
    strategy: Annotated[
        str, typer.Option("--strategy", help="full | partial | dynamic-article | dynamic-neutral.")
    ] = "full",
    ratio: Annotated[
        float | None,
        typer.Option(
            "--ratio", show_default=False, help="partial: hedged fraction of the spot (0.5 = half)."
        ),
    ] = None,
    signal: Annotated[
        str | None,
        typer.Option(
            "--signal",
            show_default=False,
            help="dynamic-*: funding signal: latest, mean or ema of the last --window settlements "
            "(default: latest for dynamic-article, mean for dynamic-neutral).",
        ),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            show_default=False,
            help="dynamic-*: settlements in the funding signal (default: 3 article, 9 neutral).",
        ),
    ] = None,
    enter_apr: Annotated[
        float | None,
        typer.Option(
            "--enter-apr",
            show_default=False,
            help="dynamic-neutral: enter carry when the signal's APR is at least this (default 0.05 = 5 %).",
        ),
    ] = None,
    exit_apr: Annotated[
        float | None,
        typer.Option(
            "--exit-apr",
            show_default=False,
            help="dynamic-neutral: leave carry when the signal's APR falls below this (default 0).",
        ),
    ] = None,
    negative_mode: Annotated[
        str | None,
        typer.Option(
            "--negative-mode",
            show_default=False,
            help="dynamic-neutral: when funding is unfavourable, unhedge or reverse (short spot via borrow, "
            "long perp; default unhedge).",
        ),
    ] = None,
    horizon_days: Annotated[
        float | None,
        typer.Option(
            "--horizon-days",
            show_default=False,
            help="dynamic-neutral: switch only if the extra carry over this many days beats the round-trip "
            "cost of the switch (default: off).",
        ),
    ] = None,
    roc_window: Annotated[
        int | None,
        typer.Option(
            "--roc-window",
            show_default=False,
            help="dynamic-*: bars in the price Rate of Change gate (default: no gate; give --roc-gate too).",
        ),
    ] = None,
    roc_gate: Annotated[
        float | None,
        typer.Option(
            "--roc-gate",
            show_default=False,
            help="dynamic-*: carry only while the price Rate of Change is at least this fraction (0.05 = 5 %).",
        ),
    ] = None,
    start: Start = None,
    end: End = None,
    timeframe: Timeframe = "8h",
    exchange: Exchange = "binance",
    data_dir: DataDir = None,
    capital: Capital = 10_000.0,
    leverage: Leverage = 2.0,
    margin_mode: MarginMode = "isolated",
    contract: Contract = "linear",
    contract_size: ContractSize = None,
    spot_qty: SpotQty = None,
    collateral: Collateral = None,
    fee_spot: FeeSpot = 0.001,
    fee_perp: FeePerp = 0.0005,
    slippage_bps: SlippageBps = 0.0,
    collateral_policy: CollateralPolicy = "auto",
    trigger_margin_ratio: TriggerMarginRatio = 0.02,
    target_margin_ratio: TargetMarginRatio = 0.008,
    reserve_usd: ReserveUsd = 0.0,
    borrow_rate_per_day: BorrowRate = 0.0001,
    borrow_rates_csv: BorrowRatesCsv = None,
    withdraw_excess: WithdrawExcess = False,
    reinvest_funding: ReinvestFunding = False,
    clearance_fee: ClearanceFee = 0.0125,
    bracket_snapshot: BracketSnapshot = "in_force",
    mmr: Mmr = None,
    maintenance_amount: MaintenanceAmount = None,
    json_output: JsonOutput = False,
    report: Report = None,
) -> None:
    """Backtest one hedging strategy on real history: returns, risk, and every USD attributed.

    Decisions are taken at each bar's close on data up to then; both legs fill at the next bar's open
    with the fees and slippage given. By default (--collateral-policy auto) a linear hedge sells spot
    and shrinks the short alike when the margin ratio passes 2 %, back to 0.8 %; --collateral-policy
    none lets it be liquidated. Money is in USD(T) (1 USDT = 1 USD); fees, rates and returns are
    fractions. Exit code 2 on bad input.
    """
    _check_report_path(report)
    from perphedge.engine.loop import run_backtest
    from perphedge.report.metrics import calc_summary
    from perphedge.strategies.registry import build_strategy, strategy_options

    config = _config(**{name: value for name, value in locals().items() if name in CONFIG_OPTION_NAMES})
    options: dict[str, Any] = {
        "ratio": ratio,
        "signal": signal,
        "window": window,
        "enter_apr": enter_apr,
        "exit_apr": exit_apr,
        "negative_mode": negative_mode,
        "horizon_days": horizon_days,
        "roc_window": roc_window,
        "roc_gate": roc_gate,
    }
    options.update(_cost_options(strategy_options(strategy), config))
    built = build_strategy(strategy, **options)
    market = _load(symbol, timeframe=timeframe, exchange=exchange, config=config, data_dir=data_dir)
    brackets = _brackets(market, config, mmr=mmr, maintenance_amount=maintenance_amount)
    with _Progress(
        json_output, f"backtesting {strategy} on {market.symbol} {market.timeframe}", total=1
    ) as step:
        result = run_backtest(market, built, config, brackets=brackets)
        step()
    summary = calc_summary(result)
    report_path = _write_report([result], market, report, compare=False) if report else None
    if json_output:
        payload = {
            **summary,
            "report": None if report_path is None else str(report_path),
            "settings": result.settings,
        }
        typer.echo(json.dumps(payload, indent=2, allow_nan=False))
        return
    _print_summary(summary, result)
    if report_path is not None:
        _console().print(f"report written to [bold]{report_path}[/bold]")


@app.command("compare")
def compare(
    symbol: Symbol = "BTCUSDT",
    ratio: Annotated[
        float, typer.Option("--ratio", help="Hedged fraction of the partial hedge.")
    ] = COMPARE_PARTIAL_RATIO,
    start: Start = None,
    end: End = None,
    timeframe: Timeframe = "8h",
    exchange: Exchange = "binance",
    data_dir: DataDir = None,
    capital: Capital = 10_000.0,
    leverage: Leverage = 2.0,
    margin_mode: MarginMode = "isolated",
    contract: Contract = "linear",
    contract_size: ContractSize = None,
    spot_qty: SpotQty = None,
    collateral: Collateral = None,
    fee_spot: FeeSpot = 0.001,
    fee_perp: FeePerp = 0.0005,
    slippage_bps: SlippageBps = 0.0,
    collateral_policy: CollateralPolicy = "auto",
    trigger_margin_ratio: TriggerMarginRatio = 0.02,
    target_margin_ratio: TargetMarginRatio = 0.008,
    reserve_usd: ReserveUsd = 0.0,
    borrow_rate_per_day: BorrowRate = 0.0001,
    borrow_rates_csv: BorrowRatesCsv = None,
    withdraw_excess: WithdrawExcess = False,
    reinvest_funding: ReinvestFunding = False,
    clearance_fee: ClearanceFee = 0.0125,
    bracket_snapshot: BracketSnapshot = "in_force",
    mmr: Mmr = None,
    maintenance_amount: MaintenanceAmount = None,
    json_output: JsonOutput = False,
    report: Report = None,
) -> None:
    """Compare the hedges side by side on the same data: full, partial, dynamic (article and neutral), spot.

    Runs full, partial (--ratio), dynamic-article (its real exposure: up to 200 % long), dynamic-neutral
    in both negative modes (unhedge, reverse carry) and unhedged spot buy-and-hold; one table, one report.
    """
    _check_report_path(report)
    from perphedge.report.metrics import calc_summary

    config = _config(**{name: value for name, value in locals().items() if name in CONFIG_OPTION_NAMES})
    market = _load(symbol, timeframe=timeframe, exchange=exchange, config=config, data_dir=data_dir)
    brackets = _brackets(market, config, mmr=mmr, maintenance_amount=maintenance_amount)
    results = run_comparison(market, config, ratio=ratio, show_progress=not json_output, brackets=brackets)
    summaries = [calc_summary(r) for r in results]
    report_path = _write_report(results, market, report, compare=True) if report else None
    if json_output:
        payload = {
            "symbol": market.symbol,
            "exchange": market.exchange,
            "timeframe": market.timeframe,
            "strategies": summaries,
            "report": None if report_path is None else str(report_path),
            "settings": config.to_settings(),
        }
        typer.echo(json.dumps(payload, indent=2, allow_nan=False))
        return
    _print_compare(summaries, market)
    if report_path is not None:
        _console().print(f"report written to [bold]{report_path}[/bold]")


def run_comparison(
    market: MarketData,
    config: BacktestConfig,
    *,
    ratio: float = COMPARE_PARTIAL_RATIO,
    show_progress: bool = False,
    brackets: Any = None,
) -> list[BacktestResult]:
    """Run the compared strategies and the spot benchmark on ``market``; results named for display.

    ``brackets`` (a ``BracketSchedule``) overrides the bundled bracket tables, as in ``run_backtest``.
    """
    import dataclasses

    from perphedge.engine.loop import run_backtest, run_buy_and_hold
    from perphedge.report.html import BENCHMARK_NAME
    from perphedge.strategies.registry import build_strategy, strategy_options

    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("full", "full", {}),
        (f"partial {ratio:g}", "partial", {"ratio": ratio}),
        ("dynamic-article", "dynamic-article", {}),
        ("dynamic-neutral (unhedge)", "dynamic-neutral", {"negative_mode": "unhedge"}),
        ("dynamic-neutral (reverse)", "dynamic-neutral", {"negative_mode": "reverse"}),
    ]
    strategies = [
        (label, build_strategy(name, **options, **_cost_options(strategy_options(name), config)))
        for label, name, options in runs
    ]
    results: list[BacktestResult] = []
    with _Progress(
        not show_progress, f"comparing on {market.symbol} {market.timeframe}", total=len(runs) + 1
    ) as step:
        for label, strategy in strategies:
            schedule = brackets if brackets is not None else _inverse_brackets(market, config)
            run = run_backtest(market, strategy, config, brackets=schedule)
            results.append(dataclasses.replace(run, strategy=label))
            step()
        results.append(dataclasses.replace(run_buy_and_hold(market, config), strategy=BENCHMARK_NAME))
        step()
    return results


# --- helpers -----------------------------------------------------------------------------------------


CONFIG_OPTION_NAMES: frozenset[str] = frozenset(
    (
        "start", "end", "capital", "leverage", "margin_mode", "contract", "contract_size", "spot_qty",
        "collateral", "fee_spot", "fee_perp", "slippage_bps", "collateral_policy", "trigger_margin_ratio",
        "target_margin_ratio", "reserve_usd", "borrow_rate_per_day", "borrow_rates_csv", "withdraw_excess",
        "reinvest_funding", "clearance_fee", "bracket_snapshot",
    )  # fmt: skip
)
"""The command options (shared by ``backtest`` and ``compare``) that make up the BacktestConfig."""


def _config(*, start: str | None, end: str | None, capital: float, **kwargs: Any) -> BacktestConfig:

    from perphedge.engine.config import BacktestConfig

    start_ts = _window_bound("--start", start)
    end_ts = _window_bound("--end", end)
    if start_ts is not None and end_ts is not None and start_ts >= end_ts:
        raise InputError(f"--start must be before --end; they were {start} and {end}")
    borrow_csv = kwargs["borrow_rates_csv"]
    return BacktestConfig(
        capital_usd=capital,
        leverage=kwargs["leverage"],
        spot_qty_base=kwargs["spot_qty"],
        collateral=kwargs["collateral"],
        margin_mode=kwargs["margin_mode"],
        contract=kwargs["contract"],
        contract_size_usd=kwargs["contract_size"],
        fee_spot=kwargs["fee_spot"],
        fee_perp=kwargs["fee_perp"],
        slippage_bps=kwargs["slippage_bps"],
        collateral_policy=kwargs["collateral_policy"],
        trigger_margin_ratio=kwargs["trigger_margin_ratio"],
        target_margin_ratio=kwargs["target_margin_ratio"],
        reserve_usd=kwargs["reserve_usd"],
        borrow_rate_per_day=kwargs["borrow_rate_per_day"],
        borrow_rate_series=None if borrow_csv is None else read_borrow_rates_csv(borrow_csv),
        withdraw_excess=kwargs["withdraw_excess"],
        reinvest_funding=kwargs["reinvest_funding"],
        clearance_fee=kwargs["clearance_fee"],
        bracket_snapshot=kwargs["bracket_snapshot"],
        start=start_ts,
        end=end_ts,
    )


EARLIEST_DATE = "1970-01-01"
LATEST_DATE = "2100-01-01"


def _window_bound(option: str, text: str | None) -> Any:
    # The engine counts in epoch ns (pandas' range ends in 1677 and 2262): a date far outside any market
    # data would overflow there; market data lies within these bounds.
    import pandas as pd

    from perphedge.units import parse_utc

    if not text:
        return None
    moment = parse_utc(text)
    if not pd.Timestamp(EARLIEST_DATE, tz="UTC") <= moment <= pd.Timestamp(LATEST_DATE, tz="UTC"):
        raise InputError(
            f"{option} was {text!r}; give a date between {EARLIEST_DATE} and {LATEST_DATE}, e.g. 2021-01-01 "
            "(perphedge data list shows what each data set covers)"
        )
    return pd.Timestamp(moment)


def read_borrow_rates_csv(path: Path) -> Any:
    """Return the borrow rates of a CSV (columns ``ts``, ``rate_per_day``) as a Series on a UTC index.

    ``ts`` is an ISO 8601 date or date-time (UTC unless it carries an offset); ``rate_per_day`` a
    fraction per day (0.0001 = 0.01 %/day). Rows must be in time order; nothing is filled or dropped:
    a bad row is an ``InputError`` naming its line. The range of the rates is checked by
    ``BacktestConfig`` (0 to 0.05 per day).
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise InputError(f"--borrow-rates-csv {str(path)!r} could not be read as CSV: {e}") from e
    missing = {"ts", "rate_per_day"} - set(frame.columns)
    if missing:
        raise InputError(
            f"--borrow-rates-csv {str(path)!r} needs the columns ts and rate_per_day; its header was "
            f"{', '.join(map(str, frame.columns)) or 'empty'}"
        )
    if frame.empty:
        raise InputError(f"--borrow-rates-csv {str(path)!r} has no rows; give at least one rate")
    times: list[Any] = []
    rates: list[float] = []
    for line, (ts_text, rate_text) in enumerate(
        zip(frame["ts"], frame["rate_per_day"], strict=True), start=2
    ):
        try:
            moment: pd.Timestamp | None = pd.Timestamp(ts_text.strip())  # NaT for an empty or "NaT" cell
        except ValueError:
            moment = None
        if moment is None or moment is pd.NaT:
            raise InputError(
                f"--borrow-rates-csv line {line}: ts was {ts_text!r}; give an ISO date or date-time such as "
                "2021-03-01 or 2021-03-01T08:00Z"
            )
        try:
            rate = float(rate_text)
        except ValueError:
            rate = float("nan")
        if rate != rate or rate in (float("inf"), float("-inf")):
            raise InputError(
                f"--borrow-rates-csv line {line}: rate_per_day was {rate_text!r}; give a fraction per day "
                "such as 0.0001 (= 0.01 %/day)"
            )
        times.append(moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC"))
        rates.append(rate)
    index = pd.DatetimeIndex(times)
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise InputError(
            f"--borrow-rates-csv {str(path)!r}: the ts column must increase strictly from row to row; sort the "
            "file and remove duplicate times"
        )
    return pd.Series(rates, index=index, name="rate_per_day")


def _brackets(
    market: MarketData, config: BacktestConfig, *, mmr: float | None, maintenance_amount: float | None
) -> Any:
    # --mmr: one bracket at any size (as in perphedge plan); otherwise the bundled tables
    if mmr is None:
        if maintenance_amount is not None:
            raise InputError(
                f"--maintenance-amount was {maintenance_amount!r} but only applies with --mmr; give both, or "
                "neither to use the bundled bracket tables"
            )
        return _inverse_brackets(market, config)
    from perphedge.engine.accounts import BracketSchedule
    from perphedge.mechanics.brackets import BracketTable
    from perphedge.units import require_finite, require_non_negative

    amount = (
        0.0
        if maintenance_amount is None
        else require_non_negative("--maintenance-amount", maintenance_amount)
    )
    table = BracketTable.single(market.symbol, require_finite("--mmr", mmr), amount)
    unit = "coins" if config.contract == "inverse" else "USD"
    return BracketSchedule.single(
        table, note=f"--mmr {mmr:g} and --maintenance-amount {amount:g} {unit}: one bracket at any size"
    )


def _inverse_brackets(market: MarketData, config: BacktestConfig) -> Any:
    # COIN-M margin is in coin notional: the bundled Binance COIN-M table of the coin (BTCUSD), if any.
    if config.contract != "inverse":
        return None
    from perphedge.data.brackets import bundled_coinm_bracket_table
    from perphedge.engine.accounts import BracketSchedule

    table = bundled_coinm_bracket_table(market.symbol)
    return BracketSchedule.single(
        table, note=f"bundled Binance COIN-M {table.symbol} brackets (coin notional)"
    )


def _cost_options(accepted: tuple[str, ...], config: BacktestConfig) -> dict[str, Any]:
    # The fee-aware rule of a strategy prices a switch with the run's own costs.
    return {key: value for key, value in config.cost_options().items() if key in accepted}


def _load(
    symbol: str, *, timeframe: str, exchange: str, config: BacktestConfig, data_dir: Path | None = None
) -> MarketData:
    from perphedge.data.catalog import load_market
    from perphedge.data.validate import validate_market

    if timeframe not in TIMEFRAMES:
        raise InputError(f"--timeframe must be one of {', '.join(TIMEFRAMES)}; it was {timeframe!r}")
    market = load_market(
        symbol, timeframe=timeframe, exchange=exchange, data_dir=data_dir, start=config.start, end=config.end
    )
    if market.source != "bundled":
        # downloaded or imported data is checked before it is simulated (raises DataError → exit 2);
        # the bundled data was validated when it was built (tests/data)
        validate_market(market)
    series = config.borrow_rate_series
    if series is not None and len(market.bars) and series.index[0] > market.bars.index[0]:
        raise InputError(
            f"--borrow-rates-csv starts at {series.index[0].isoformat()} but the run starts at "
            f"{market.bars.index[0].isoformat()}; add a rate at or before the start (none is guessed)"
        )
    if len(market.bars) < 2:
        raise InputError(
            f"{market.symbol} {timeframe} has {len(market.bars)} bar(s) between --start and --end; "
            "widen the window (perphedge data list shows what each data set covers)"
        )
    return market


def _check_report_path(path: Path | None) -> None:
    # Checked before any work, so a typo or an unwritable place does not cost a whole run.
    if path is None:
        return
    if path.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--report must name an .html file; it was {str(path)!r}")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the directories below it are created when the report is written
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"--report {str(path)!r} cannot be written: {str(existing)!r} is not a writable directory; "
            "give a path in a directory you can write to"
        )


def _write_report(results: list[BacktestResult], market: MarketData, path: Path, *, compare: bool) -> Path:
    from perphedge.report.html import render_backtest_report, render_compare_report

    text = (
        render_compare_report(results, market=market)
        if compare
        else render_backtest_report(results[0], market=market)
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InputError(
            f"--report {str(path)!r} could not be written ({e.strerror or e}); give a path in a directory "
            "you can write to"
        ) from e
    return path.resolve()


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


class _Progress:
    """A rich progress bar on stderr (silent when ``quiet``); ``step()`` advances it by one."""

    def __init__(self, quiet: bool, description: str, *, total: int) -> None:
        self._quiet = quiet
        self._description = description
        self._total = total
        self._bar: Any = None

    def __enter__(self) -> Any:
        if self._quiet or not sys.stderr.isatty():
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_console(stderr=True),
            transient=True,
        )
        self._bar.__enter__()
        task = self._bar.add_task(self._description, total=self._total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _print_summary(summary: dict[str, Any], result: BacktestResult) -> None:
    from rich.table import Table

    from perphedge.report.tables import to_summary_rows

    console = _console()
    table = Table(title=f"{result.symbol} {result.timeframe} · {result.strategy}", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in to_summary_rows(summary):
        table.add_row(label, value)
    console.print(table)
    if result.liquidations:
        console.print(
            f"[bold red]{result.liquidations} liquidation(s)[/bold red]: the report lists each event."
        )


def _print_compare(summaries: list[dict[str, Any]], market: MarketData) -> None:
    from rich import box
    from rich.table import Table

    from perphedge.report.tables import COMPARE_KEYS, to_metric_rows

    console = _console()
    headers, rows = to_metric_rows(summaries, COMPARE_KEYS, compact=True)
    title = f"{market.symbol} {market.timeframe}, {summaries[0]['start'][:10]} to {summaries[0]['end'][:10]}"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(headers[0], min_width=12)
    for header in headers[1:]:
        # "dynamic-neutral (unhedge)" -> "dynamic-/neutral/(unhedge)" on three lines: narrow columns
        table.add_column(header.replace("-", "-\n").replace(" ", "\n"), justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        "USD; fractions shown as %; Sharpe with risk-free 0. dynamic-article is up to 200 % long when funding "
        "is negative (not neutral). The sell_spot margin policy sells coins (and shrinks the short alike) as the "
        "price rises: compare the spot coins at start and end. --report writes every figure and chart."
    )
