"""``perphedge plan``: JSON keys and values, the table, and one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perphedge.cli.app import _register, app
from perphedge.mechanics.plan import JSON_KEYS

PERPHEDGE = Path(sys.executable).parent / "perphedge"
_register()
runner = CliRunner()


def plan_json(*args: str) -> dict:
    result = runner.invoke(app, ["plan", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_has_exactly_the_issue_keys_with_fractions() -> None:
    data = plan_json("--spot-qty", "1", "--price", "60000")
    assert tuple(data) == JSON_KEYS
    assert data["funding_apr_on_notional"] == pytest.approx(0.1095)  # a fraction, not 10.95
    assert data["breakeven_days"] == pytest.approx(10.0)
    assert data["perp_qty"] == -1.0
    assert len(data["stress"]) == 9
    assert data["stress"][-1]["move"] == 1.0 and data["stress"][-1]["liquidated"] is True


def test_json_uses_the_bundled_bracket_and_its_snapshot_date() -> None:
    newest = plan_json("--spot-qty", "10", "--price", "70000")  # 700k: bracket 3 of 2024-10 (0.65 %)
    older = plan_json("--spot-qty", "10", "--price", "70000", "--brackets-at", "2023-06-01")  # 1 % then
    assert newest["mmr"] == 0.0065 and newest["maintenance_amount_usd"] == 950
    assert older["mmr"] == 0.01 and older["maintenance_amount_usd"] == 1300


def test_mmr_override_and_ccxt_symbol() -> None:
    data = plan_json(
        "--spot-qty",
        "2",
        "--price",
        "3000",
        "--symbol",
        "ETH/USDT:USDT",
        "--mmr",
        "0.01",
        "--maintenance-amount",
        "5",
    )
    assert data["mmr"] == 0.01
    assert data["maintenance_margin_usd"] == pytest.approx(6000 * 0.01 - 5)


def test_inverse_one_x_coin_margined_hedge_has_no_liquidation_price() -> None:
    data = plan_json(
        "--spot-qty", "1", "--price", "60000", "--contract", "inverse", "--mmr", "0.004", "--collateral", "1"
    )
    assert data["perp_qty"] == -600
    assert data["liquidation_price"] is None and data["liquidation_distance_pct"] is None
    for row in data["stress"]:
        assert row["total_value_usd"] == pytest.approx(60000.0, rel=1e-12)
        assert row["liquidated"] is False


def test_table_shows_plan_stress_and_margin_to_post() -> None:
    result = runner.invoke(app, ["plan", "--spot-qty", "1", "--price", "60000"])
    assert result.exit_code == 0, result.output
    for text in (
        "liquidation price",
        "89,601.99",
        "Stress",
        "How much margin to post",
        "30,400.00",
        "10.0 days",
    ):
        assert text in result.output


def test_help_lists_every_input() -> None:
    result = runner.invoke(app, ["plan", "--help"])
    assert result.exit_code == 0
    for option in (
        "--symbol",
        "--spot-qty",
        "--price",
        "--hedge-ratio",
        "--contract",
        "--contract-size",
        "--margin-mode",
        "--collateral",
        "--leverage",
        "--mmr",
        "--maintenance-amount",
        "--funding-rate",
        "--interval-hours",
        "--fee-spot",
        "--fee-perp",
        "--json",
        "--other-maint-margin",
        "--other-unrealized-pnl",
        "--liquidation-formula",
        "--brackets-at",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--spot-qty", "-1", "--price", "60000"],
            2,
            "spot quantity (--spot-qty) must be greater than 0; it was -1.0",
        ),
        (["--spot-qty", "1", "--price", "0"], 2, "price (--price) must be greater than 0"),
        (["--spot-qty", "1", "--price", "nan"], 2, "must be a finite number; it was nan"),
        (
            ["--spot-qty", "1", "--price", "60000", "--hedge-ratio", "50"],
            2,
            "if it is a percent, use 0.5 for 50 %",
        ),
        (["--spot-qty", "1", "--price", "60000", "--symbol", "BTCUSTD"], 2, "did you mean BTCUSDT"),
        (
            ["--symbol", "ETHUSDT", "--spot-qty", "1", "--price", "3000", "--contract", "inverse"],
            2,
            "unknown symbol 'ETHUSD'",
        ),
        (["--spot-qty", "1", "--price", "60000", "--collateral", "100"], 4, "below the initial margin"),
        (
            ["--spot-qty", "1", "--price", "60000", "--other-unrealized-pnl", "-5"],
            2,
            "only share the wallet in cross mode",
        ),
        (
            [
                "--spot-qty",
                "1",
                "--price",
                "60000",
                "--contract",
                "inverse",
                "--liquidation-formula",
                "bybit",
            ],
            2,
            "linear isolated positions only",
        ),
        (["--spot-qty", "1", "--price", "60000", "--mmr", "0.6"], 4, "liquidated on opening"),
        # a 0.1 h interval compounded the APY to inf: --json died on it with a traceback
        (
            ["--spot-qty", "1", "--price", "60000", "--interval-hours", "0.1", "--json"],
            2,
            "funding interval (--interval-hours) must be at least 1 h",
        ),
        # a negative maintenance amount, or one above notional × MMR, made the maintenance margin negative
        (
            ["--spot-qty", "1", "--price", "60000", "--mmr", "0.004", "--maintenance-amount", "-100"],
            2,
            "--maintenance-amount must not be negative; it was -100.0",
        ),
        (
            ["--spot-qty", "1", "--price", "60000", "--mmr", "0.004", "--maintenance-amount", "1e12"],
            2,
            "makes the maintenance margin negative",
        ),
        (
            ["--spot-qty", "1", "--price", "60000", "--contract", "inverse", "--brackets-at", "2023-01-01"],
            2,
            "dated snapshots exist for USDⓈ-M (linear) tables only",
        ),
    ],
)
def test_bad_input_is_one_line_with_exit_code_and_no_traceback(
    args: list[str], code: int, message: str
) -> None:
    proc = subprocess.run([str(PERPHEDGE), "plan", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == code
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


def test_cli_defaults_match_the_planner_defaults() -> None:
    from perphedge.cli import plan_cmd
    from perphedge.mechanics import plan

    assert plan_cmd.DEFAULT_LEVERAGE == plan.DEFAULT_LEVERAGE
    assert plan_cmd.DEFAULT_FUNDING_RATE == plan.DEFAULT_FUNDING_RATE


def test_registering_the_plan_command_does_not_import_numpy() -> None:
    code = "import sys, perphedge.cli.plan_cmd; print('numpy' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == "False"


def test_inverse_btc_plan_uses_the_bundled_coinm_brackets() -> None:
    # 1 BTC posted as collateral, short its USD value at 1x: no liquidation price on a rise
    result = runner.invoke(
        app,
        [
            "plan",
            "--spot-qty",
            "1",
            "--price",
            "60000",
            "--contract",
            "inverse",
            "--leverage",
            "1",
            "--collateral",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["mmr"] == 0.004 and plan["perp_qty"] == -600
    assert plan["liquidation_price"] is None  # the coins are the collateral: no liquidation on a rise


def test_cross_with_other_positions_moves_the_liquidation_price() -> None:
    base = ["--spot-qty", "1", "--price", "60000", "--margin-mode", "cross", "--collateral", "50000"]
    alone = plan_json(*base)
    shared = plan_json(*base, "--other-maint-margin", "2000", "--other-unrealized-pnl", "-5000")
    # Binance cross, short, bracket 2 (0.5 %, cum 50): (WB − TMM1 + UPNL1 + cum + Q·EP) / (Q·(1 + MMR))
    assert alone["liquidation_price"] == pytest.approx((50_000 + 50 + 60_000) / 1.005, rel=1e-12)
    assert shared["liquidation_price"] == pytest.approx(
        (50_000 - 2_000 - 5_000 + 50 + 60_000) / 1.005, rel=1e-12
    )
    assert shared["margin_ratio"] == pytest.approx(2_250 / 45_000)


def test_bybit_formula_option_gives_bybits_published_short_example() -> None:
    # Bybit "Liquidation Price (USDT Contract)": short 1 BTC at 8,000, 40x, MMR 0.5 % → 8,160
    data = plan_json(
        "--spot-qty",
        "1",
        "--price",
        "8000",
        "--mmr",
        "0.005",
        "--leverage",
        "40",
        "--liquidation-formula",
        "bybit",
    )
    assert data["liquidation_price"] == pytest.approx(8_160.0, abs=1e-9)


def test_root_help_states_the_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "plan" in result.output and "Exit codes" in result.output and "4 margin refused" in result.output
