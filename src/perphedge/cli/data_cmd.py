"""``perphedge data …``: list, show and import market data (``fetch`` lives in data_fetch_cmd)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from perphedge.cli.app import app

if TYPE_CHECKING:
    from perphedge.data.schema import DatasetInfo
    from perphedge.data.stats import FundingPeriodStats, FundingStats

data_app = typer.Typer(
    help="Market data: list what is available, show funding statistics, import, fetch.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

DATA_DIR_HELP = (
    "Directory of downloaded and imported data (default: the platform cache dir, or $PERPHEDGE_DATA_DIR)."
)


def _iso(stamp: Any) -> str | None:
    return None if stamp is None else stamp.isoformat()


def _dataset_json(info: DatasetInfo) -> dict[str, Any]:
    return {
        "exchange": info.exchange,
        "symbol": info.symbol,
        "timeframe": info.timeframe,
        "first_bar": _iso(info.first_bar),
        "last_bar": _iso(info.last_bar),
        "bars": info.bars,
        "funding_settlements": info.funding_settlements,
        "source": info.source,
    }


@data_app.command("list")
def list_command(
    data_dir: Path | None = typer.Option(None, "--data-dir", envvar="PERPHEDGE_DATA_DIR", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print JSON: {"datasets": [{exchange, symbol, timeframe, '
        "first_bar, last_bar, bars, funding_settlements, source}]}.",
    ),
) -> None:
    """List the market data available offline: bundled, imported and downloaded (cached).

    Each line: exchange, symbol, timeframe, dates of the first and last bar (open times, UTC), number of
    bars and of funding settlements, and where it comes from (bundled, cache or import). --json gives
    the exact first/last bar times and the directory of each cached or imported data set.
    """
    from perphedge.data.catalog import default_data_dir, list_datasets

    datasets = list_datasets(data_dir)
    if as_json:
        typer.echo(json.dumps({"datasets": [_dataset_json(d) for d in datasets]}, indent=1))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    resolved_dir = data_dir if data_dir is not None else default_data_dir()
    table = Table(
        title="Market data available offline",
        caption=f"first/last bar: open dates (UTC); tf: timeframe; funding: settlements; "
        f"cache and import live under {resolved_dir}; --json gives exact times and paths",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for name in ("exchange", "symbol", "tf", "first bar", "last bar", "bars", "funding", "source"):
        # no_wrap: one line per data set; columns shrink with an ellipsis only on very narrow terminals
        table.add_column(name, justify="right" if name in ("bars", "funding") else "left", no_wrap=True)
    for d in datasets:
        table.add_row(
            d.exchange,
            d.symbol,
            d.timeframe,
            f"{d.first_bar:%Y-%m-%d}" if d.first_bar is not None else "-",
            f"{d.last_bar:%Y-%m-%d}" if d.last_bar is not None else "-",
            f"{d.bars:,}",
            f"{d.funding_settlements:,}",
            d.source.split(":", 1)[0],  # bundled | cache | import (the path is in --json)
        )
    Console().print(table)


def _period_row(label: str, stats: FundingPeriodStats) -> list[str]:
    return [
        label,
        f"{stats.settlements:,}",
        f"{stats.mean_apr:+.2%}",
        f"{stats.share_negative:.1%}",
        f"{stats.share_at_baseline:.1%}",
        f"{stats.min_rate * 100:+.4f} %",
        f"{stats.max_rate * 100:+.4f} %",
    ]


def _print_stats(stats: FundingStats, notes: tuple[str, ...]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"{stats.exchange} {stats.symbol} funding ({stats.timeframe} data, {stats.source.split(':', 1)[0]})",
        box=box.SIMPLE_HEAD,  # no vertical rules: the seven columns fit 80 columns without wrapping
        pad_edge=False,
        collapse_padding=True,
        caption="mean APR: mean of each settlement's rate annualised with its own interval (simple); "
        "baseline: 0.01 % per 8 h scaled to the interval",
    )
    for name in ("year", "settlements", "mean APR", "negative", "at baseline", "min rate", "max rate"):
        table.add_column(name, justify="left" if name == "year" else "right")
    for year, period in stats.per_year.items():
        table.add_row(*_period_row(year, period))
    table.add_row(*_period_row("all", stats.whole_period), style="bold")
    console.print(table)
    if stats.interval_changes:
        console.print("Funding interval changes:")
        for change in stats.interval_changes:
            console.print(
                f"  {change.settle_ts:%Y-%m-%d %H:%M} UTC: {change.from_hours:g} h → {change.to_hours:g} h"
            )
    else:
        console.print("Funding interval: unchanged over the period.")
    basis = stats.basis_bps
    console.print(
        f"Basis (perp close / spot close − 1) over {basis.bars:,} bars: mean {basis.mean:+.2f} bp, "
        f"1st percentile {basis.p01:+.2f} bp, 99th percentile {basis.p99:+.2f} bp"
    )
    for note in notes:
        console.print(f"[dim]note: {note}[/dim]")


@data_app.command("show")
def show_command(
    symbol: str = typer.Argument(..., help="Symbol, e.g. BTCUSDT or BTC/USDT:USDT."),
    timeframe: str = typer.Option(
        "8h", "--timeframe", help="Bar timeframe of the data set (bundled: 8h, 1h)."
    ),
    exchange: str = typer.Option(
        "binance", "--exchange", help="Exchange id (ccxt), e.g. binance, bybit, okx."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", envvar="PERPHEDGE_DATA_DIR", help=DATA_DIR_HELP),
    start: str | None = typer.Option(None, "--start", help="First day (UTC, ISO date), e.g. 2021-01-01."),
    end: str | None = typer.Option(
        None, "--end", help="End (exclusive for bars, inclusive for settlements), UTC."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print JSON with stable keys: per_year (keyed by year) and whole_period, each with settlements, "
        "mean_apr, share_negative, share_at_baseline, min_rate, max_rate (fractions); interval_changes "
        "[{settle_ts, from_hours, to_hours}]; basis_bps {bars, mean, p01, p99}; plus exchange, symbol, "
        "timeframe, source, first_settlement, last_settlement.",
    ),
) -> None:
    """Show funding statistics of SYMBOL per calendar year and for the whole period, and its basis.

    Per year: settlements, mean annualised funding (each settlement annualised with its real interval),
    share negative, share exactly at the 0.01 %-per-8-h baseline, min and max rate; then the funding
    interval changes with dates, and the perp/spot basis (mean, 1st and 99th percentile, in basis points).
    """
    from perphedge.data.catalog import load_market
    from perphedge.data.stats import funding_stats

    market = load_market(
        symbol, timeframe=timeframe, exchange=exchange, data_dir=data_dir, start=start, end=end
    )
    stats = funding_stats(market)
    if as_json:
        typer.echo(json.dumps(stats.to_json(), indent=1))
        return
    _print_stats(stats, market.notes)


@data_app.command("import")
def import_command(
    symbol: str = typer.Option(..., "--symbol", help="Symbol to store it under, e.g. BTCUSDT."),
    funding: Path = typer.Option(
        ..., "--funding", help="Funding file (CSV or Parquet): timestamp, funding_rate."
    ),
    spot: Path = typer.Option(
        ..., "--spot", help="Spot price file: timestamp (bar open), open, high, low, close[, volume]."
    ),
    perp: Path = typer.Option(..., "--perp", help="Perp price file, same columns as --spot."),
    exchange: str = typer.Option(
        "binance", "--exchange", help="Exchange the data comes from (a name to store it under)."
    ),
    timeframe: str = typer.Option(
        "8h", "--timeframe", help="Bar timeframe of the price files: 1m 5m 15m 1h 4h 8h 1d."
    ),
    rate_unit: str = typer.Option(
        "fraction",
        "--rate-unit",
        help="Unit of the funding rates: fraction (0.0001 = 0.01 %) or percent (0.01).",
    ),
    assume_utc: bool = typer.Option(
        False, "--assume-utc", help="Read timestamps without a timezone as UTC (otherwise they are refused)."
    ),
    timezone: str | None = typer.Option(
        None,
        "--timezone",
        help="Time zone of timestamps written without one (IANA name, e.g. Europe/Berlin); they are "
        "converted to UTC, and local times a daylight-saving change makes ambiguous are refused. "
        "Timestamps with an offset keep it; epoch numbers are UTC.",
    ),
    epoch_unit: str = typer.Option("ms", "--epoch-unit", help="Unit of numeric timestamps: ms or s."),
    trim_to_overlap: bool = typer.Option(
        False,
        "--trim-to-overlap",
        help="Drop leading/trailing bars where only one of spot/perp exists (reported).",
    ),
    timestamp_column: str = typer.Option(
        "timestamp", "--timestamp-column", help="Name of the time column in every file."
    ),
    rate_column: str = typer.Option(
        "funding_rate", "--rate-column", help="Name of the rate column in the funding file."
    ),
    mark_column: str | None = typer.Option(
        None, "--mark-column", help="Name of a mark-price column in the funding file (optional)."
    ),
    open_column: str = typer.Option(
        "open", "--open-column", help="Name of the open column in the price files."
    ),
    high_column: str = typer.Option("high", "--high-column", help="Name of the high column."),
    low_column: str = typer.Option("low", "--low-column", help="Name of the low column."),
    close_column: str = typer.Option("close", "--close-column", help="Name of the close column."),
    volume_column: str = typer.Option(
        "volume", "--volume-column", help="Name of the volume column (optional; NaN if absent)."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", envvar="PERPHEDGE_DATA_DIR", help=DATA_DIR_HELP),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON: {stored_dir, dataset: {…as in data list…}, warnings: [...]}."
    ),
) -> None:
    """Import your own funding and spot/perp price files, validate them and store them for offline use.

    Validation is strict and never repairs: unsorted or duplicate timestamps, NaN or non-positive prices,
    rates that look like percent (|rate| > 0.05 per interval), gaps in the funding, spot and perp that do
    not line up (bar times one file has and the other lacks), and naive timestamps (unless --assume-utc
    or --timezone) are errors (exit code 2). Gaps in the bars and bars with a basis beyond 10 % are
    reported as warnings. The data set then appears in `perphedge data list` and loads with
    --exchange/--symbol/--timeframe like any other.
    """
    from perphedge.data.catalog import default_data_dir
    from perphedge.data.importers import ColumnNames, ImportRequest, import_market

    request = ImportRequest(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        funding_path=funding,
        spot_path=spot,
        perp_path=perp,
        columns=ColumnNames(
            timestamp=timestamp_column,
            funding_rate=rate_column,
            mark_price=mark_column,
            open=open_column,
            high=high_column,
            low=low_column,
            close=close_column,
            volume=volume_column,
        ),
        rate_unit=rate_unit,
        assume_utc=assume_utc,
        timezone=timezone,
        epoch_unit=epoch_unit,
        trim_to_overlap=trim_to_overlap,
    )
    target_dir = data_dir if data_dir is not None else default_data_dir()
    result = import_market(request, target_dir)
    market = result.market
    warnings = list(result.warnings)
    from perphedge.data import bundled

    if market.exchange == bundled.BUNDLED_EXCHANGE and market.symbol in bundled.bundled_symbols(
        market.timeframe
    ):
        # load_market looks at the bundled history first: this import would never be used by that name
        warnings.append(
            f"{market.exchange} {market.symbol} {market.timeframe} is also bundled, and bundled data is loaded "
            f"first: backtest --symbol {market.symbol} will not use this import; import it under another "
            "--exchange name (e.g. --exchange mydesk) and pass that name to backtest"
        )
    from perphedge.data.schema import DatasetInfo

    info = DatasetInfo(
        exchange=market.exchange,
        symbol=market.symbol,
        timeframe=market.timeframe,
        first_bar=market.bars.index[0],
        last_bar=market.bars.index[-1],
        bars=len(market.bars),
        funding_settlements=len(market.funding),
        source=f"import:{result.stored_dir}",
    )
    if as_json:
        payload = {
            "stored_dir": str(result.stored_dir),
            "dataset": _dataset_json(info),
            "notes": list(market.notes),
            "warnings": warnings,
        }
        typer.echo(json.dumps(payload, indent=1))
        return
    typer.echo(
        f"imported {info.exchange} {info.symbol} {info.timeframe}: {info.bars:,} bars "
        f"{info.first_bar:%Y-%m-%d %H:%M} … {info.last_bar:%Y-%m-%d %H:%M} UTC, "
        f"{info.funding_settlements:,} funding settlements → {result.stored_dir}"
    )
    for note in market.notes:
        typer.echo(f"note: {note}")
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
