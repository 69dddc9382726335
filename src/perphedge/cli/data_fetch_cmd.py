"""``perphedge data fetch``: download funding, perp, spot and mark-price history into the local cache.

A thin shell over :func:`perphedge.data.fetch.fetch_to_cache`. ccxt and pandas are imported inside
the command so ``perphedge --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from perphedge.cli.data_cmd import data_app
from perphedge.errors import InputError, PerphedgeError

if TYPE_CHECKING:
    from perphedge.data.fetch import FetchSummary
    from perphedge.venues.ccxt_common import Credentials

KEY_ENV_TEMPLATE = "PERPHEDGE_{EXCHANGE}_API_KEY"
SECRET_ENV_TEMPLATE = "PERPHEDGE_{EXCHANGE}_SECRET"
PASSWORD_ENV_TEMPLATE = "PERPHEDGE_{EXCHANGE}_PASSWORD"

JSON_HELP = (
    "Print one JSON object: {exchange, symbol, market_id, spot_symbol, timeframe, since_ms, until_ms, "
    "market_dir, datasets: [{name, path, ranges: [{since_ms, until_ms}], rows_before, rows_downloaded, "
    "rows_added, rows_after, first_ts_ms, last_ts_ms, first, last}], leverage_tiers (count or null), "
    "warnings: [text]}. On failure: {error: {type, message, exit_code}}. Times are UTC."
)


def _credentials_from_env(exchange_id: str) -> Credentials | None:
    from perphedge.venues.ccxt_common import Credentials

    upper = exchange_id.upper()
    key = os.environ.get(KEY_ENV_TEMPLATE.format(EXCHANGE=upper))
    secret = os.environ.get(SECRET_ENV_TEMPLATE.format(EXCHANGE=upper))
    if not key or not secret:
        return None
    password = os.environ.get(PASSWORD_ENV_TEMPLATE.format(EXCHANGE=upper)) or None
    return Credentials(api_key=key, secret=secret, password=password)


def _to_ms(text: str, option: str) -> int:
    from perphedge.units import datetime_to_ts_ms, parse_utc

    try:
        return datetime_to_ts_ms(parse_utc(text))
    except InputError as e:
        raise InputError(f"{option}: {e}") from e


def _print_summary(summary: FetchSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{summary.exchange} {summary.ccxt_symbol} → {summary.market_dir}")
    for column in ("data set", "rows before", "downloaded", "added", "rows now", "first (UTC)", "last (UTC)"):
        table.add_column(column, justify="right" if column[0] in "rda" else "left")
    for d in summary.datasets:
        table.add_row(
            d.name,
            str(d.rows_before),
            str(d.rows_downloaded),
            str(d.rows_added),
            str(d.rows_after),
            d.to_dict()["first"] or "-",
            d.to_dict()["last"] or "-",
        )
    console.print(table)
    tiers = "not downloaded" if summary.leverage_tiers is None else f"{summary.leverage_tiers} tiers saved"
    console.print(f"leverage tiers: {tiers}")
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if summary.leverage_tiers is None and any("API key" in w for w in summary.warnings):
        upper = summary.exchange.upper()
        console.print(
            f"hint: export {KEY_ENV_TEMPLATE.format(EXCHANGE=upper)} and "
            f"{SECRET_ENV_TEMPLATE.format(EXCHANGE=upper)} (a read-only key) and run again for the tiers",
            highlight=False,
        )


@data_app.command("fetch")
def fetch_command(
    exchange_id: str = typer.Option(
        ...,
        "--exchange",
        help="ccxt exchange id: binance, bybit, okx, … (any exchange whose ccxt class has "
        "fetchFundingRateHistory and fetchOHLCV).",
        show_default=False,
    ),
    symbol: str = typer.Option(
        ...,
        "--symbol",
        help="The perpetual, in ccxt's unified form (BTC/USDT:USDT) or the exchange's id "
        "(BTCUSDT). The matching spot market (BTC/USDT) is downloaded too.",
        show_default=False,
    ),
    since: str = typer.Option(
        ...,
        "--since",
        help="Start, an ISO date or datetime read as UTC (2024-01-01 or 2024-01-01T08:00Z).",
        show_default=False,
    ),
    until: str | None = typer.Option(
        None, "--until", help="End (inclusive), same format as --since. Default: now.", show_default=False
    ),
    timeframe: str = typer.Option("1h", "--timeframe", help="Bar length: 1m, 5m, 15m, 1h, 4h, 8h or 1d."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        envvar="PERPHEDGE_DATA_DIR",
        help="Cache directory (default: the platform cache dir, or $PERPHEDGE_DATA_DIR).",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    show_progress: bool = typer.Option(
        True, "--progress/--no-progress", help="Show a progress bar on stderr."
    ),
) -> None:
    """Download funding, perp, spot and mark-price history (and leverage tiers) into the local cache.

    Incremental: a second run downloads only what the cache lacks (from the newest cached row on, and
    before the oldest one when --since is earlier). Pages follow each exchange's limits; network errors
    are retried with backoff. Files are written atomically: an interrupted run leaves the cache intact.
    Leverage tiers on exchanges that serve them only to signed requests (Binance) need API keys in
    PERPHEDGE_<EXCHANGE>_API_KEY and PERPHEDGE_<EXCHANGE>_SECRET (read-only keys are enough); without
    them they are skipped with a warning. The downloaded data is then checked like an import (gaps with
    their size, NaN prices, missing settlements, spot/perp misalignment) and what is found is printed as
    "check:" warnings; it is kept as the exchange served it, never repaired. Exit codes: 0 done, 2 bad
    input (unknown exchange or symbol, bad dates, --since after --until), 3 exchange error.
    """
    try:
        try:
            summary = _run(
                exchange_id, symbol, since, until, timeframe, data_dir, show_progress and not as_json
            )
        except OSError as e:  # the cache could not be written (disk full, permissions): what was there stays
            raise InputError(
                f"the cache could not be written ({e.strerror or e}: {e.filename or data_dir}); free space or "
                "give a writable --data-dir; files already in the cache are unchanged"
            ) from e
    except PerphedgeError as e:
        if as_json:
            typer.echo(
                json.dumps({"error": {"type": type(e).__name__, "message": str(e), "exit_code": e.exit_code}})
            )
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=e.exit_code) from e
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary)


def _writable_data_dir(root: Path) -> Path:
    """Return ``root`` if it is (or can become) a directory we can write to, else raise InputError."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the cache creates the directories below it
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"--data-dir {str(root)!r} cannot hold the cache: {str(existing)!r} is not a writable directory; "
            "give another --data-dir or set $PERPHEDGE_DATA_DIR"
        )
    return root


def _run(
    exchange_id: str,
    symbol: str,
    since: str,
    until: str | None,
    timeframe: str,
    data_dir: Path | None,
    show_progress: bool,
) -> FetchSummary:
    since_ms = _to_ms(since, "--since")
    until_ms = _to_ms(until, "--until") if until is not None else int(datetime.now(UTC).timestamp() * 1000)
    if until_ms < since_ms:
        raise InputError(
            f"--since ({since}) is after --until ({until or 'now'}); give a start before the end"
        )

    if not symbol.strip():
        raise InputError(f"--symbol was {symbol!r}; give the perpetual, e.g. BTC/USDT:USDT or BTCUSDT")
    from perphedge.data.cache import resolve_data_dir
    from perphedge.data.fetch import fetch_to_cache
    from perphedge.venues import ccxt_common

    # checked before the first request, so a bad directory does not cost a download
    data_dir = _writable_data_dir(resolve_data_dir(data_dir))
    exchange = ccxt_common.create_exchange(exchange_id, credentials=_credentials_from_env(exchange_id))
    if not show_progress:
        return fetch_to_cache(
            exchange, symbol, since_ms=since_ms, until_ms=until_ms, timeframe=timeframe, data_dir=data_dir
        )

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:

        def on_page(page: Any) -> None:
            if page.dataset not in tasks:
                tasks[page.dataset] = bar.add_task(page.dataset, total=100, rows=0)
            fraction = page.fraction_done
            bar.update(
                tasks[page.dataset],
                completed=100 * fraction if fraction is not None else None,
                rows=page.rows,
            )

        summary = fetch_to_cache(
            exchange,
            symbol,
            since_ms=since_ms,
            until_ms=until_ms,
            timeframe=timeframe,
            data_dir=data_dir,
            progress=on_page,
        )
        for task in tasks.values():
            bar.update(task, completed=100)
    return summary
