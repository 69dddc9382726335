"""perphedge CLI module (being built)."""

from perphedge.cli.app import app  # noqa: F401
