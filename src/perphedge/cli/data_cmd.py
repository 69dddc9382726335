"""``perphedge data …``: list, show and import market data (``fetch`` lives in data_fetch_cmd)."""

import typer

from perphedge.cli.app import app

data_app = typer.Typer(help="Market data: list what is available, show funding statistics, import, fetch.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")
