"""Import every command module so each registers its commands on ``perphedge.cli.app.app``."""

from perphedge.cli import plan_cmd  # noqa: F401  perphedge plan
