"""``perphedge plan`` (being built)."""

from perphedge.cli.app import app


@app.command("version")
def version() -> None:
    """Print the perphedge version."""
    from perphedge import __version__

    print(__version__)
