"""The ``perphedge`` command line: a thin shell over the library (only this package prints).

Exit codes: 0 success; 1 unexpected error; 2 bad input (InputError: DataError, ConfigError,
UnknownSymbolError); 3 exchange error (VenueError); 4 margin error; 5 keeper halted on purpose.
Heavy modules (pandas, ccxt, plotly) are imported inside commands so ``--help`` and ``plan`` stay fast.
"""

from __future__ import annotations

import sys

import typer

from perphedge.errors import PerphedgeError

app = typer.Typer(
    name="perphedge",
    help=(
        "Plan, backtest, scan and run spot + perpetual funding-rate hedges (hold spot, short the perp, "
        "earn funding). Money is in USD(T); rates are fractions per funding interval (0.0001 = 0.01 %)."
    ),
    epilog=(
        "Exit codes: 0 success; 1 unexpected error; 2 bad input (one line 'error: …'); 3 exchange error; "
        "4 margin refused; 5 keeper halted on purpose. 'perphedge COMMAND --help' for each command."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Plan, backtest, scan and run spot + perpetual funding-rate hedges."""


def _register() -> None:
    # Each command module adds its commands to ``app``; imported here so the modules stay small.
    from perphedge.cli import commands  # noqa: F401


def main() -> None:
    """Entry point of the ``perphedge`` script: map our errors to one line and an exit code."""
    _register()
    try:
        app()
    except PerphedgeError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
