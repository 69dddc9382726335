"""`perphedge keep` / `perphedge status`: help, paper run, JSON output, live confirmation, secrets, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from perphedge.cli.app import _register, app
from perphedge.keeper.status import STATUS_KEYS
from tests.keeper.test_restart_subprocess import write_spec

PERPHEDGE = Path(sys.executable).parent / "perphedge"
runner = CliRunner()
_register()


def test_keep_help_documents_every_option() -> None:
    result = runner.invoke(app, ["keep", "--help"])
    assert result.exit_code == 0
    for option in ("--config", "--paper", "--live", "--yes", "--cycles", "--speed", "--clear-halt", "--json"):
        assert option in result.output


def test_keep_paper_json_then_status_json_with_stable_keys(tmp_path: Path) -> None:
    config = write_spec(tmp_path)
    result = runner.invoke(app, ["keep", "--config", str(config), "--cycles", "6", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[-1] == {"cycles": 6, "actions": {"trade": 1, "hold": 5}, "halted": None}
    assert all({"ts", "ts_ms", "level", "event"} <= set(line) for line in lines[:-1])
    status = runner.invoke(app, ["status", "--config", str(config), "--json"])
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert tuple(data) == STATUS_KEYS
    assert Decimal(data["net_exposure_base"]) == 0 and data["hedge_ratio"] > 0.99
    assert set(data["pnl"]) == {
        "spot_pnl_usd",
        "perp_pnl_usd",
        "funding_usd",
        "funding_model_usd",
        "fees_usd",
        "other_usd",
        "total_usd",
    }
    # money is a plain decimal string everywhere (never a float, never "0E-10")
    money = [
        data["expected_funding_usd"],
        data["equity_usd"],
        *data["pnl"].values(),
        *data["balances"].values(),
    ]
    assert all(isinstance(v, str) and re.fullmatch(r"-?\d+(\.\d+)?", v) for v in money), money
    # the expected payment: −perp × mark × the last settled rate (paper publishes no predicted rate)
    from perphedge.keeper.spec import load_spec
    from perphedge.keeper.wiring import build_paper_venue

    venue = build_paper_venue(load_spec(config))
    last = venue.fetch_funding_rates(venue.perp_symbol, 0)[-1]
    assert data["expected_funding_basis"] == "last_settled_rate"
    expected = (
        -Decimal(data["perp_qty_base"])
        * Decimal(data["mark_price_usd"])
        * Decimal(repr(last.rate_per_interval))
    )
    assert abs(Decimal(data["expected_funding_usd"]) - expected) < Decimal("0.00000002")


def test_status_table_is_readable(tmp_path: Path) -> None:
    config = write_spec(tmp_path)
    runner.invoke(app, ["keep", "--config", str(config), "--cycles", "2"])
    result = runner.invoke(app, ["status", "--config", str(config)])
    assert (
        result.exit_code == 0
        and "liquidation_distance" in result.output
        and "pnl funding_usd" in result.output
    )


def test_live_without_yes_and_without_a_terminal_refuses_with_exit_2(tmp_path: Path) -> None:
    config = write_spec(tmp_path)
    proc = subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config), "--live"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.returncode == 2 and "--yes" in proc.stderr
    assert not (tmp_path / "j.sqlite").exists()  # nothing started


def test_live_keys_only_from_the_environment(tmp_path: Path) -> None:
    config = write_spec(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERPHEDGE_")}
    proc = subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config), "--live", "--yes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2 and "PERPHEDGE_BINANCE_API_KEY" in proc.stderr


def test_secrets_in_the_environment_never_reach_the_journal_or_log(tmp_path: Path) -> None:
    config = write_spec(tmp_path)
    secret = "sk-live-9f8e7d6c5b4a"
    env = {**os.environ, "PERPHEDGE_BINANCE_API_KEY": "key-" + secret, "PERPHEDGE_BINANCE_SECRET": secret}
    proc = subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config), "--cycles", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path


def test_bad_spec_exits_2_with_the_key_path(tmp_path: Path) -> None:
    config = write_spec(tmp_path)
    config.write_text(
        config.read_text().replace("min_liquidation_distance = 0.15", "min_liquidation_distance = 15")
    )
    proc = subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert (
        proc.returncode == 2 and "risk.min_liquidation_distance" in proc.stderr and "percent" in proc.stderr
    )


def test_kill_switch_exits_5_refuses_to_restart_until_clear_halt(tmp_path: Path) -> None:
    config = write_spec(tmp_path)
    config.write_text(config.read_text().replace("max_loss_usd = 5000", "max_loss_usd = 1"))
    first = subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config), "--cycles", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 5 and "max_loss_usd" in first.stderr
    status = json.loads(
        subprocess.run(
            [str(PERPHEDGE), "status", "--config", str(config), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )
    assert "max_loss_usd" in status["halted"] and status["perp_qty_base"] == "0"
    again = subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config), "--cycles", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 5 and "--clear-halt" in again.stderr
    # --clear-halt with the same limit: the loss still counts from the first start, so it fires again and
    # says which key to raise
    cleared = subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config), "--cycles", "1", "--clear-halt"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cleared.returncode == 5 and "raise risk.max_loss_usd" in " ".join(cleared.stderr.split())


def test_live_keys_from_the_environment_are_redacted_from_every_output(tmp_path: Path, monkeypatch) -> None:
    from perphedge.errors import VenueUnavailable
    from perphedge.keeper.spec import load_spec
    from perphedge.keeper.wiring import build_paper_venue
    from perphedge.venues.ccxt_trading import CcxtVenue

    config = write_spec(tmp_path)
    secret = "sk-live-0a1b2c3d4e5f"
    monkeypatch.setenv("PERPHEDGE_BINANCE_API_KEY", "key-0a1b2c3d")
    monkeypatch.setenv("PERPHEDGE_BINANCE_SECRET", secret)
    seen = {}

    def connect(exchange_id, *, credentials, spot_symbol, perp_symbol):
        # stands in for the exchange (no network): an error message that echoes the credentials
        seen["credentials"] = credentials
        venue = build_paper_venue(load_spec(config))

        def fail(*args):
            raise VenueUnavailable(f"auth rejected for {credentials.api_key}/{credentials.secret}")

        venue.fetch_quote = fail
        return venue

    monkeypatch.setattr(CcxtVenue, "connect", staticmethod(connect))
    result = runner.invoke(
        app, ["keep", "--config", str(config), "--live", "--yes", "--cycles", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert seen["credentials"].secret == secret  # the keys came from the environment
    refused = [json.loads(line) for line in result.output.splitlines() if '"cycle.refused"' in line]
    assert refused and "auth rejected for ***/***" in refused[0]["reason"]
    assert secret not in result.output and "key-0a1b2c3d" not in result.output
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes() and b"key-0a1b2c3d" not in path.read_bytes(), path


def test_a_start_after_the_bundled_history_names_its_last_bar_as_a_date(tmp_path: Path) -> None:
    config = write_spec(tmp_path)
    text = config.read_text()
    assert 'start = "2024-01-01"' in text
    config.write_text(text.replace('start = "2024-01-01"', 'start = "2030-01-01"'))
    proc = subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    # the last bundled BTCUSDT 8h bar opens 2026-02-24 08:00 UTC (it said "1771920000000 ms")
    assert "paper.start" in message and "2026-02-24T08:00" in message and " ms" not in message


def test_a_speed_that_is_not_a_finite_number_is_refused(tmp_path: Path) -> None:
    # float('nan') parsed: the replay clock then slept nan seconds
    config = write_spec(tmp_path)
    for speed in ("nan", "inf"):
        result = runner.invoke(app, ["keep", "--config", str(config), "--cycles", "2", "--speed", speed])
        assert result.exit_code != 0 and "--speed must be a finite number" in str(result.exception)
