"""``perphedge scan``: where the best spot/perp funding carry is now, net of costs, across exchanges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from perphedge.cli.app import app

if TYPE_CHECKING:
    from perphedge.scan.scanner import ScanResult

SCORE_HELP = (
    "Score (ranking key, highest first): net APR over the horizon = current APR − round-trip cost × 365 / "
    "horizon days, multiplied by (1 − s) when positive or (1 + s) when negative, s = share of negative "
    "settlements in the last 30 days (7 if 30 are not covered; s = 0 without --history)."
)

EXIT_ALL_FAILED = 3
TABLE_WIDTH_OFF_TERMINAL = 200


@app.command(
    "scan",
    help=(
        "Rank spot + perpetual carry candidates (hold spot, short the perp) across exchanges, from live "
        "data through ccxt.\n\n"
        "Fetches the current funding of every linear perpetual quoted in --quote, keeps those with a spot "
        "market on the same exchange, and shows per pair: the current rate and its APR with the symbol's "
        "real funding interval, the basis (mark, else last perp price, vs spot; bp), 24 h quote volume of "
        "both legs, round-trip cost of both legs (open and close: 2 × (fee-spot + fee-perp)), break-even "
        "days and net APR over --horizon-days; with --history also the mean APR (time-weighted: the funding paid, "
        "annualised) and share of negative settlements over the last 7 and 30 days, read through the data cache. "
        "A pair whose exchange gave no funding interval gets it from the spacing of recent settlements.\n\n"
        + SCORE_HELP
        + "\n\nRates and fees are fractions (0.0005 = 0.05 %); APRs are fractions in --json and percent in "
        "the table. USDT is taken as USD. One exchange failing does not stop the others: its error is "
        "listed. Exit code 0 when at least one exchange answered, 3 when all failed, 2 for bad options."
    ),
)
def scan_command(
    exchanges: str = typer.Option(
        "binance,bybit,okx",
        "--exchanges",
        help="Comma-separated ccxt ids; mapped: binance, bybit, okx, bitget, mexc.",
    ),
    quote: str = typer.Option("USDT", "--quote", help="Quote (and settlement) currency of the pairs."),
    fee_spot: float = typer.Option(0.001, "--fee-spot", help="Spot fee per side, fraction (0.001 = 0.10 %)."),
    fee_perp: float = typer.Option(
        0.0005, "--fee-perp", help="Perp fee per side, fraction (0.0005 = 0.05 %)."
    ),
    horizon_days: float = typer.Option(
        30.0, "--horizon-days", help="Holding horizon that pays the round trip."
    ),
    min_apr: float | None = typer.Option(
        None, "--min-apr", help="Keep pairs whose current APR is at least this fraction (0.1 = 10 %)."
    ),
    min_volume: float = typer.Option(
        0.0,
        "--min-volume",
        help="Keep pairs whose smaller 24 h quote volume of the two legs is at least this (USD).",
    ),
    top: int = typer.Option(20, "--top", help="Show the best N pairs (0 = all)."),
    history: bool = typer.Option(
        False,
        "--history/--no-history",
        help="Fetch 30 days of settlements for the best --history-limit pairs: 7/30-day mean APR, share negative. "
        "Kept in the data cache (the one perphedge data fetch uses): later scans download only new settlements.",
    ),
    history_limit: int = typer.Option(
        30, "--history-limit", help="How many pairs get their history fetched."
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        envvar="PERPHEDGE_DATA_DIR",
        help="Cache directory for funding history (default: the platform cache dir, or $PERPHEDGE_DATA_DIR).",
        show_default=False,
    ),
    cache: bool = typer.Option(
        True,
        "--cache/--no-cache",
        help="Read and keep --history in the data cache (--no-cache: download it all).",
    ),
    max_concurrency: int = typer.Option(8, "--max-concurrency", help="Requests in flight per exchange."),
    retries: int = typer.Option(
        3, "--retries", help="Attempts per read on network errors (backoff 1 s, 2 s, …)."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print JSON: {schema_version, as_of_ts_ms, quote, exchanges, answered, settings, score, history_days, "
        "history_cache: {dir, pairs, settlements_downloaded} or null, considered, unpaired_perps, candidates: [...], "
        "errors: [{exchange, error_type, message}], "
        "warnings: [{exchange, message}]}; candidate keys are listed in docs/scanner.md.",
    ),
) -> None:
    from perphedge.errors import InputError
    from perphedge.scan.rank import ScanSettings
    from perphedge.scan.scanner import parse_exchange_list, run_scan

    exchange_ids = parse_exchange_list(exchanges)
    if not quote.strip().isalnum():
        raise InputError(f"--quote must be a currency code such as USDT or USDC; it was {quote!r}")
    if history_limit < 1:
        raise InputError(f"--history-limit must be at least 1; it was {history_limit}")
    if top < 0:
        raise InputError(f"--top must be 0 (all) or more; it was {top}")
    if retries < 1:
        raise InputError(f"--retries must be at least 1; it was {retries}")
    if max_concurrency < 1:
        raise InputError(f"--max-concurrency must be at least 1; it was {max_concurrency}")
    settings = ScanSettings(
        fee_spot=fee_spot,
        fee_perp=fee_perp,
        horizon_days=horizon_days,
        min_apr=min_apr,
        min_volume_usd=min_volume,
        top=top or None,
    )
    cache_dir = None
    if cache:
        from perphedge.data.cache import resolve_data_dir

        cache_dir = resolve_data_dir(data_dir)
    with _ScanProgress(quiet=as_json) as progress:
        result = run_scan(
            exchange_ids,
            settings,
            quote=quote.strip().upper(),
            history=history,
            history_limit=history_limit,
            max_concurrency=max_concurrency,
            retry_attempts=retries,
            progress=progress.update,
            data_dir=cache_dir,
        )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=1))
    else:
        _print_result(result)
    if not result.answered:
        raise typer.Exit(code=EXIT_ALL_FAILED)


class _ScanProgress:
    """One rich progress bar per (exchange, stage) on stderr; silent with --json or off a terminal."""

    def __init__(self, *, quiet: bool) -> None:
        self._quiet = quiet
        self._bar: Any = None
        self._tasks: dict[tuple[str, str], Any] = {}

    def __enter__(self) -> _ScanProgress:
        if not self._quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=not console.is_terminal,
            )
            self._bar.__enter__()
        return self

    def update(self, exchange_id: str, stage: str, done: int, total: int) -> None:
        if self._bar is None:
            return
        key = (exchange_id, stage)
        if key not in self._tasks:
            self._tasks[key] = self._bar.add_task(f"{exchange_id}: {stage}", total=total)
        self._bar.update(self._tasks[key], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:+.{digits}f} %"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _musd(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:,.1f}"


def _utc(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    from perphedge.units import ts_ms_to_datetime

    return f"{ts_ms_to_datetime(ts_ms):%m-%d %H:%M}"


def _print_result(result: ScanResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze 16 columns into 80 characters
        console = Console(width=TABLE_WIDTH_OFF_TERMINAL)
    if not result.answered:  # nothing to rank: the errors are the answer, on one line on stderr
        failures = "; ".join(
            f"{e.exchange} did not answer: {e.error_type}: {e.message}" for e in result.errors
        )
        typer.echo(
            f"error: no exchange answered ({failures}); check the network connection and try again, "
            "or raise --retries",
            err=True,
        )
        return
    s = result.settings
    table = Table(
        title=f"Spot/perp carry, {result.quote} pairs on {', '.join(result.answered) or 'no exchange'} "
        f"(as of {_utc(result.as_of_ts_ms)} UTC)",
        caption=f"round trip {s.fee_spot * 2 + s.fee_perp * 2:.2%} of notional (2 × ({s.fee_spot:g} spot + "
        f"{s.fee_perp:g} perp)); net APR over {s.horizon_days:g} days. {SCORE_HELP}",
    )
    columns = [
        ("#", "right"),
        ("exchange", "left"),
        ("perp", "left"),
        ("rate", "right"),
        ("every", "right"),
        ("next (UTC)", "right"),
        ("APR now", "right"),
        ("APR 7d", "right"),
        ("APR 30d", "right"),
        ("neg 30d", "right"),
        ("basis bp", "right"),
        ("spot vol M$", "right"),
        ("perp vol M$", "right"),
        ("break-even d", "right"),
        ("net APR", "right"),
        ("score", "right"),
    ]
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, c in enumerate(result.candidates, start=1):
        table.add_row(
            str(i),
            c.exchange,
            c.perp_symbol,
            _pct(c.funding_rate, 4),
            "-" if c.interval_hours is None else f"{c.interval_hours:g} h",
            _utc(c.next_settle_ts_ms),
            _pct(c.apr_current),
            _pct(c.apr_mean_7d),
            _pct(c.apr_mean_30d),
            "-" if c.negative_share_30d is None else f"{c.negative_share_30d:.0%}",
            _num(c.basis_bps, "+.1f"),
            _musd(c.spot_volume_24h_usd),
            _musd(c.perp_volume_24h_usd),
            _num(c.break_even_days, ".1f") if c.break_even_days is not None else "never",
            _pct(c.net_apr_horizon),
            _pct(c.score),
        )
    console.print(table)
    console.print(
        f"{result.considered} spot/perp pairs considered, {len(result.candidates)} shown; "
        f"{result.unpaired_perps} perpetuals without a spot market on their exchange left out."
    )
    if result.history_cache is not None:
        h = result.history_cache
        console.print(
            f"history: {h.pairs} pair(s) read through the cache {h.dir}; "
            f"{h.settlements_downloaded} settlement(s) downloaded this time."
        )
    for c in result.candidates:
        for note in c.notes:
            console.print(f"[dim]note: {c.exchange} {c.perp_symbol}: {note}[/dim]")
    for w in result.warnings:
        console.print(f"[yellow]warning: {w.exchange}: {w.message}[/yellow]")
    for e in result.errors:
        console.print(f"[red]error: {e.exchange} did not answer: {e.error_type}: {e.message}[/red]")
