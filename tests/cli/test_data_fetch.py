"""``perphedge data fetch``: options, JSON output, exit codes; the exchange is a real ccxt object replaying
recorded Binance responses (injected in place of ``create_exchange``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import ccxt
import pytest
from typer.testing import CliRunner

from perphedge.cli.app import _register, app
from perphedge.venues import ccxt_common
from tests.data.test_fetch import binance_routes
from tests.kit.ccxt_replay import replay_exchange
from tests.venues.test_history import T0

_register()
RUNNER = CliRunner(mix_stderr=False)  # click 8.1: keep stderr apart so --json stdout parses
PERPHEDGE = Path(sys.executable).parent / "perphedge"


@pytest.fixture
def replayed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make ``create_exchange`` hand out replaying Binance objects; the list collects them."""
    made: list[Any] = []

    def create(exchange_id: str, **kwargs: Any) -> Any:
        assert exchange_id == "binance"
        ex = replay_exchange("binance", binance_routes())
        ex.apiKey, ex.secret = "", ""
        made.append(ex)
        return ex

    monkeypatch.setattr(ccxt_common, "create_exchange", create)
    monkeypatch.delenv("PERPHEDGE_DATA_DIR", raising=False)
    return made


def fetch(*args: str) -> Any:
    return RUNNER.invoke(app, ["data", "fetch", "--exchange", "binance", "--symbol", "BTC/USDT:USDT", *args])


def test_fetch_json_has_stable_keys_and_counts(replayed: list[Any], tmp_path: Path) -> None:
    result = fetch(
        "--since", "2024-01-30T16:00Z", "--until", "2024-01-30T18:00Z", "--data-dir", str(tmp_path), "--json"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {
        "exchange",
        "symbol",
        "market_id",
        "spot_symbol",
        "timeframe",
        "since_ms",
        "until_ms",
        "market_dir",
        "datasets",
        "leverage_tiers",
        "warnings",
    }
    assert out["since_ms"] == T0 and out["until_ms"] == T0 + 2 * 3_600_000
    perp = next(d for d in out["datasets"] if d["name"] == "perp_1h")
    assert (perp["rows_after"], perp["first"], perp["last"]) == (
        3,
        "2024-01-30T16:00:00Z",
        "2024-01-30T18:00:00Z",
    )
    assert out["leverage_tiers"] is None and any("API key" in w for w in out["warnings"])
    assert (tmp_path / "binance" / "BTCUSDT" / "perp_1h.parquet").exists()


def test_second_fetch_reports_nothing_new(replayed: list[Any], tmp_path: Path) -> None:
    args = (
        "--since",
        "2024-01-30T16:00Z",
        "--until",
        "2024-01-30T18:00Z",
        "--data-dir",
        str(tmp_path),
        "--json",
    )
    assert fetch(*args).exit_code == 0
    second = json.loads(fetch(*args).stdout)
    assert all(d["rows_added"] == 0 for d in second["datasets"])
    assert next(d for d in second["datasets"] if d["name"] == "perp_1h")["ranges"] == []


def test_fetch_table_output_and_data_dir_from_the_environment(
    replayed: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERPHEDGE_DATA_DIR", str(tmp_path))
    result = fetch("--since", "2024-01-30T16:00Z", "--until", "2024-01-30T18:00Z")
    assert result.exit_code == 0, result.output
    assert "perp_1h" in result.stdout and "leverage tiers: not downloaded" in result.stdout
    assert "PERPHEDGE_BINANCE_API_KEY" in result.stdout
    assert (tmp_path / "binance" / "BTCUSDT" / "meta.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2024-02-01", "--until", "2024-01-01"], "is after --until"),
        (["--since", "last tuesday"], "not an ISO date"),
        (["--since", "2024-01-01", "--timeframe", "2m"], "timeframe '2m'"),
    ],
)
def test_bad_input_exits_2(replayed: list[Any], tmp_path: Path, args: list[str], message: str) -> None:
    result = fetch(*args, "--data-dir", str(tmp_path), "--json")
    assert result.exit_code == 2
    assert message in json.loads(result.stdout)["error"]["message"]
    assert all(ex.replay_calls == [] for ex in replayed)


def test_unknown_exchange_exits_2(tmp_path: Path) -> None:
    result = RUNNER.invoke(
        app,
        [
            "data",
            "fetch",
            "--exchange",
            "binanse",
            "--symbol",
            "BTC/USDT:USDT",
            "--since",
            "2024-01-01",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "did you mean binance" in result.stderr


def test_exchange_error_exits_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def create(exchange_id: str, **kwargs: Any) -> Any:
        ex = replay_exchange(
            "binance", binance_routes(**{"/fapi/v1/fundingRate": ccxt.ExchangeError("refused")})
        )
        ex.apiKey, ex.secret = "", ""
        return ex

    monkeypatch.setattr(ccxt_common, "create_exchange", create)
    result = fetch("--since", "2024-01-30", "--until", "2024-01-31", "--data-dir", str(tmp_path), "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"]["type"] == "VenueError"


def test_api_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def create(exchange_id: str, *, credentials: Any = None, **kwargs: Any) -> Any:
        seen["credentials"] = credentials
        raise ccxt_common.ConfigError("stop here")

    monkeypatch.setattr(ccxt_common, "create_exchange", create)
    monkeypatch.setenv("PERPHEDGE_BINANCE_API_KEY", "k-123")
    monkeypatch.setenv("PERPHEDGE_BINANCE_SECRET", "s-456")
    result = fetch("--since", "2024-01-01", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert seen["credentials"].api_key == "k-123" and "s-456" not in result.output


def test_installed_script_help_documents_every_option() -> None:
    if not PERPHEDGE.exists():
        pytest.skip("the perphedge script is not installed next to this interpreter")
    out = subprocess.run(
        [str(PERPHEDGE), "data", "fetch", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0
    for option in (
        "--exchange",
        "--symbol",
        "--since",
        "--until",
        "--timeframe",
        "--data-dir",
        "--json",
        "PERPHEDGE_DATA_DIR",
        "PERPHEDGE_<EXCHANGE>_API_KEY",
    ):
        assert option in out.stdout


def test_bad_data_dir_or_empty_symbol_is_refused_before_any_request(
    replayed: list[Any], tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "cache"
    not_a_dir.write_text("mine")
    result = fetch("--since", "2024-01-30T16:00Z", "--data-dir", str(not_a_dir / "sub"))
    assert result.exit_code == 2 and "is not a writable directory" in result.stderr
    assert result.stderr.count("\n") == 1
    empty = RUNNER.invoke(
        app, ["data", "fetch", "--exchange", "binance", "--symbol", " ", "--since", "2024-01-30"]
    )
    assert empty.exit_code == 2 and "--symbol was ' '" in empty.stderr
    assert replayed == []  # no exchange was even created
    assert not_a_dir.read_text() == "mine"
