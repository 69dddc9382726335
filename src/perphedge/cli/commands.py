"""Import every command module so each registers its commands on ``perphedge.cli.app.app``.

Modules are imported in the order ``perphedge --help`` lists the commands: the user's path from
planning a hedge to running it.
"""

from importlib import import_module

import typer

from perphedge.cli.app import app

COMMAND_MODULES: tuple[str, ...] = (
    "plan_cmd",  # perphedge plan
    "data_cmd",  # perphedge data list|show|import
    "data_fetch_cmd",  # perphedge data fetch
    "backtest_cmd",  # perphedge backtest, perphedge compare
    "scan_cmd",  # perphedge scan
    "keep_cmd",  # perphedge keep, perphedge status
)

for _name in COMMAND_MODULES:
    import_module(f"perphedge.cli.{_name}")


@app.command("version")
def version() -> None:
    """Print the perphedge version."""
    from perphedge import __version__

    typer.echo(__version__)
