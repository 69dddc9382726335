"""``perphedge keep`` (run a hedge, paper by default) and ``perphedge status`` (what it holds and earned).

Thin shell over ``perphedge.keeper``: reads the spec file, the API keys from the environment (live
only: PERPHEDGE_<EXCHANGE>_API_KEY / _SECRET / _PASSWORD), asks for confirmation before live
trading, and prints the keeper's JSON log lines or a summary. Exit codes: 0 done, 2 bad spec,
3 exchange error, 5 the keeper halted on purpose (kill switch, repeated failures).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import typer

from perphedge.cli.app import app
from perphedge.errors import ConfigError, InputError

CRASH_EXIT_CODE = 86  # exit code of the paper venue's "crash after submit" fault (used by the restart test)

CONFIG_HELP = "Hedge spec TOML file (see examples/hedge.toml). API keys never go in it."


KEYRING_SERVICE = "perphedge"
"""OS-keyring service name; the entries are ``<exchange>:api_key``, ``<exchange>:secret``, ``<exchange>:password``."""


def _credentials(exchange: str) -> tuple[Any, tuple[str, ...]]:
    """Return the exchange's API credentials from the environment, else from the OS keyring.

    Never from the spec or the command line. The keyring is used only when the optional ``keyring``
    package is installed (``pip install 'perphedge[keyring]'``) and has a usable backend.
    """
    from perphedge.keeper.spec import credential_env_names
    from perphedge.venues.ccxt_common import Credentials

    key_name, secret_name, password_name = credential_env_names(exchange)
    key, secret = os.environ.get(key_name), os.environ.get(secret_name)
    password = os.environ.get(password_name)
    if not key or not secret:
        key, secret, password = _keyring_credentials(exchange)
    if not key or not secret:
        raise ConfigError(
            f"live trading needs the API key and secret: set the environment variables {key_name} and "
            f"{secret_name}, or store '{exchange}:api_key' and '{exchange}:secret' under the service "
            f"'{KEYRING_SERVICE}' in the OS keyring (never put keys in the spec)"
        )
    creds = Credentials(api_key=key, secret=secret, password=password)
    return creds, tuple(s for s in (key, secret, password) if s)


def _keyring_credentials(exchange: str) -> tuple[str | None, str | None, str | None]:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None, None, None
    try:
        return tuple(  # type: ignore[return-value]
            keyring.get_password(KEYRING_SERVICE, f"{exchange}:{part}") for part in ("api_key", "secret", "password")
        )
    except KeyringError:  # no usable backend (headless machine): same as nothing stored
        return None, None, None


def _parse_speed(speed: str) -> float | None:
    if speed == "max":
        return None
    try:
        value = float(speed)
    except ValueError:
        raise InputError(
            f"--speed must be 'max' or a number (replayed seconds per wall second); it was {speed!r}"
        ) from None
    if not math.isfinite(value):  # float() reads 'nan' and 'inf'; a sleep of nan seconds fails mid-run
        raise InputError(
            f"--speed must be a finite number of replayed seconds per wall second, or 'max' for as fast as "
            f"possible; it was {speed!r}"
        )
    if value <= 0:
        raise InputError(f"--speed must be > 0; it was {speed!r}")
    return value


@app.command("keep")
def keep_command(
    config: Path = typer.Option(..., "--config", "-c", help=CONFIG_HELP, show_default=False),
    paper: bool = typer.Option(
        True,
        "--paper/--live",
        help="--paper (default): trade on the simulated exchange (bundled history replay, or live public prices "
        'with paper.prices = "live"); its state persists next to the journal. --live: place real orders through ccxt with keys from PERPHEDGE_<EXCHANGE>_API_KEY '
        "and PERPHEDGE_<EXCHANGE>_SECRET.",
    ),
    yes: bool = typer.Option(False, "--yes", help="Confirm live trading without the interactive question."),
    cycles: int | None = typer.Option(
        None,
        "--cycles",
        min=1,
        show_default=False,
        help="Stop after this many cycles (default: run until the replay ends, or forever live).",
    ),
    speed: str = typer.Option(
        "max",
        "--speed",
        help="Paper replay speed: 'max' (as fast as possible) or replayed seconds per wall second (3600 = an hour "
        "of history per second).",
    ),
    clear_halt: bool = typer.Option(
        False,
        "--clear-halt",
        help="Resume a halted hedge (kill switch, liquidation, repeated failed executions, leverage or margin mode "
        "not as in the spec) after you inspected it with status and fixed the cause.",
    ),
    json_output: bool = typer.Option(
        False,
        "--json",
        help="Print every keeper log line as JSON (keys: ts, ts_ms, level, event, plus the event's fields) and a "
        'final {"cycles", "actions", "halted"} summary object.',
    ),
) -> None:
    """Run the hedge: each cycle reconciles with the exchange, checks risk, decides with the strategy and acts.

    Exit codes: 0 done, 2 bad spec or input, 3 exchange error, 5 the keeper halted on purpose (see status).
    """
    from perphedge.errors import KeeperHalted
    from perphedge.keeper.journal import Journal
    from perphedge.keeper.log import KeeperLog
    from perphedge.keeper.spec import load_spec
    from perphedge.keeper.wiring import build_keeper, build_paper_venue, live_bracket_table

    spec = load_spec(config)
    replay_speed = _parse_speed(speed)
    secrets: tuple[str, ...] = ()
    clock = None
    if paper:
        venue: Any = build_paper_venue(spec, crash_hook=lambda: os._exit(CRASH_EXIT_CODE))
    else:
        if not yes:
            if not sys.stdin.isatty():
                raise InputError(
                    "--live places real orders and needs confirmation, but there is no terminal to ask; "
                    "pass --yes to confirm"
                )
            if not typer.confirm(
                f"Place REAL orders on {spec.exchange} for {spec.perp_symbol} / {spec.spot_symbol}?"
            ):
                raise InputError("live trading not confirmed; nothing was done")
        credentials, secrets = _credentials(spec.exchange)
        from perphedge.keeper.clock import WallClock
        from perphedge.venues.ccxt_trading import CcxtVenue

        venue = CcxtVenue.connect(
            spec.exchange, credentials=credentials, spot_symbol=spec.spot_symbol, perp_symbol=spec.perp_symbol
        )
        clock = WallClock(spec.keeper.cycle_seconds)

    def sink(line: dict[str, Any]) -> None:
        if json_output:
            typer.echo(json.dumps(line))
        elif line["level"] != "info" or line["event"].startswith(("decision.trade", "execution", "margin")):
            reason = line.get("reason") or line.get("strategy_reason") or line.get("outcome") or ""
            typer.echo(
                f"{line['ts']} {line['level']:<7} {line['event']} {reason}", err=line["level"] != "info"
            )

    journal = Journal.open(spec.keeper.journal_path)
    if clear_halt:
        journal.set_meta("halted", "")
    log = KeeperLog(spec.keeper.log_path, sink=sink, secrets=secrets)
    keeper = build_keeper(
        spec,
        venue=venue,
        clock=clock,
        log=log,
        journal=journal,
        speed=replay_speed,
        secrets=secrets,
        bracket_table=None if paper else live_bracket_table(spec),
    )
    total = cycles
    if paper and venue.feed.last_position() is not None:
        remaining = venue.feed.last_position() - venue.cursor + 1
        total = remaining if cycles is None else min(cycles, remaining)
    try:
        if json_output or total is None or not sys.stderr.isatty():
            results = keeper.run(cycles)
        else:
            from rich.console import Console
            from rich.progress import Progress

            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task("keeping the hedge (paper replay)", total=total)
                results = keeper.run(cycles, on_cycle=lambda _: progress.advance(task))
    except KeeperHalted as e:
        if json_output:
            typer.echo(json.dumps({"cycles": keeper.cycle_no, "actions": {}, "halted": e.reason}))
        raise
    finally:
        log.close()
        journal.close()
    actions: dict[str, int] = {}
    for r in results:
        actions[r.action] = actions.get(r.action, 0) + 1
    if json_output:
        typer.echo(json.dumps({"cycles": len(results), "actions": actions, "halted": None}))
    else:
        typer.echo(f"{len(results)} cycles: " + ", ".join(f"{k} {v}" for k, v in sorted(actions.items())))


@app.command("status")
def status_command(
    config: Path = typer.Option(..., "--config", "-c", help=CONFIG_HELP, show_default=False),
    paper: bool = typer.Option(
        True, "--paper/--live", help="Read the paper exchange (default) or the live one."
    ),
    json_output: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object with keys: hedge_id, venue, ts_ms, halted, base_qty, spot_base, perp_qty_base, "
        "spot_price_usd, mark_price_usd, balances, hedge_ratio, net_exposure_base, net_exposure_fraction, "
        "margin_ratio, liquidation_price_usd, liquidation_distance, next_funding_ts_ms, expected_funding_usd, "
        "expected_funding_basis (predicted_rate | last_settled_rate), equity_usd, start_equity_usd, pnl {spot_pnl_usd, perp_pnl_usd, funding_usd, funding_model_usd, "
        "fees_usd, other_usd, total_usd}, decisions, orders. Money is a decimal string in USD(T); ratios are "
        "fractions.",
    ),
) -> None:
    """Show positions, balances, hedge ratio, net exposure, margin ratio, distance to liquidation, next funding
    and the PnL attribution since the keeper started."""
    from perphedge.keeper.journal import Journal
    from perphedge.keeper.spec import load_spec
    from perphedge.keeper.status import hedge_status
    from perphedge.keeper.wiring import build_paper_venue, paper_state_path

    spec = load_spec(config)
    if not spec.keeper.journal_path.exists():
        raise InputError(
            f"no journal at {spec.keeper.journal_path}: this hedge has not run yet; start it with "
            f"perphedge keep --config {config}"
        )
    if paper:
        if not paper_state_path(spec).exists():
            raise InputError(f"no paper exchange state at {paper_state_path(spec)}; run perphedge keep first")
        venue: Any = build_paper_venue(spec)
        now_ms = venue.now_ms()
    else:
        import time

        from perphedge.venues.ccxt_trading import CcxtVenue

        credentials, _ = _credentials(spec.exchange)
        venue = CcxtVenue.connect(
            spec.exchange, credentials=credentials, spot_symbol=spec.spot_symbol, perp_symbol=spec.perp_symbol
        )
        now_ms = int(time.time() * 1000)
    journal = Journal.open(spec.keeper.journal_path)
    try:
        status = hedge_status(spec, venue, journal, now_ms)
    finally:
        journal.close()
    if json_output:
        typer.echo(json.dumps(status))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"hedge {status['hedge_id']} on {status['venue']}" + (" — HALTED" if status["halted"] else "")
    )
    table.add_column("item")
    table.add_column("value", justify="right")
    pnl = status.pop("pnl") or {}
    balances = status.pop("balances")
    for key, value in [
        *status.items(),
        *(("balance " + k, v) for k, v in balances.items()),
        *(("pnl " + k, v) for k, v in pnl.items()),
    ]:
        table.add_row(key, "—" if value is None or value == "" else str(value))
    Console().print(table)
