"""Import every command module so each registers its commands on ``perphedge.cli.app.app``."""

from perphedge.cli import (  # noqa: F401
    backtest_cmd,  # perphedge backtest, perphedge compare
    data_cmd,  # perphedge data list|show|import
    data_fetch_cmd,  # perphedge data fetch
    keep_cmd,  # perphedge keep, perphedge status
    plan_cmd,  # perphedge plan
    scan_cmd,  # perphedge scan
)
