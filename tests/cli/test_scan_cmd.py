"""``perphedge scan`` through typer's CliRunner, on real ccxt objects answering from recorded responses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import perphedge.cli.scan_cmd  # noqa: F401  (registers the command)
from perphedge.cli.app import app
from perphedge.scan import scanner
from tests.scan.test_scanner import Factory, recorded_routes

PERPHEDGE = Path(sys.executable).parent / "perphedge"
runner = CliRunner()

TOP_LEVEL_KEYS = {
    "schema_version",
    "as_of_ts_ms",
    "quote",
    "exchanges",
    "answered",
    "settings",
    "score",
    "history_days",
    "history_cache",
    "considered",
    "unpaired_perps",
    "candidates",
    "errors",
    "warnings",
}


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> Factory:
    factory = Factory(recorded_routes())
    monkeypatch.setattr(scanner, "_default_factory", factory)
    return factory


def test_help_states_the_score_and_every_option() -> None:
    result = runner.invoke(app, ["scan", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for option in (
        "--exchanges",
        "--quote",
        "--fee-spot",
        "--fee-perp",
        "--horizon-days",
        "--min-apr",
        "--min-volume",
        "--top",
        "--history",
        "--json",
        "--retries",
    ):
        assert option in text
    assert "Score (ranking key" in text and "(1 − s)" in text
    assert "3 when all failed" in text


def test_json_has_stable_keys_and_reports_the_failed_exchange(recorded: Factory) -> None:
    result = runner.invoke(app, ["scan", "--json", "--retries", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc) == TOP_LEVEL_KEYS and doc["schema_version"] == 1
    assert doc["exchanges"] == ["binance", "bybit", "okx"] and doc["answered"] == ["binance", "bybit"]
    assert doc["errors"][0]["exchange"] == "okx"
    bybit = next(c for c in doc["candidates"] if c["exchange"] == "bybit")
    assert bybit["apr_current"] == pytest.approx(0.1095) and bybit["break_even_days"] == pytest.approx(10.0)
    assert bybit["next_settle_ts_ms"] == 1730736000000


def test_fees_and_horizon_reach_the_maths(recorded: Factory) -> None:
    result = runner.invoke(
        app,
        [
            "scan",
            "--json",
            "--retries",
            "1",
            "--exchanges",
            "bybit",
            "--fee-spot",
            "0.0008",
            "--fee-perp",
            "0.0002",
            "--horizon-days",
            "10",
        ],
    )
    (c,) = json.loads(result.output)["candidates"]
    assert c["round_trip_cost"] == pytest.approx(0.002)
    assert c["net_apr_horizon"] == pytest.approx(0.1095 - 0.002 * 365 / 10)


def test_table_lists_pairs_notes_and_errors(recorded: Factory) -> None:
    result = runner.invoke(app, ["scan", "--retries", "1"])
    assert result.exit_code == 0, result.output
    assert "BTC/USDT:USDT" in result.output and "+10.95 %" in result.output
    assert "okx did not answer" in result.output


def test_every_exchange_failing_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    import ccxt

    down = {e: {"/": ccxt.ExchangeNotAvailable("down")} for e in ("bybit", "okx")}
    monkeypatch.setattr(scanner, "_default_factory", Factory(down))
    result = runner.invoke(app, ["scan", "--json", "--retries", "1", "--exchanges", "bybit,okx"])
    assert result.exit_code == 3
    assert [e["exchange"] for e in json.loads(result.output)["errors"]] == ["bybit", "okx"]


def test_history_goes_through_the_data_dir_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FrozenClock(Factory):
        """The exchanges' clock at 2021-05-17 17:00 UTC, an hour after the recorded settlement."""

        def __call__(self, exchange_id: str) -> object:
            ex = super().__call__(exchange_id)
            ex.milliseconds = lambda: 1621267200000 + 3_600_000
            return ex

    monkeypatch.setattr(scanner, "_default_factory", FrozenClock(recorded_routes()))
    args = [
        "scan",
        "--json",
        "--retries",
        "1",
        "--exchanges",
        "binance",
        "--history",
        "--data-dir",
        str(tmp_path),
    ]
    doc = json.loads(runner.invoke(app, args).output)
    assert doc["history_cache"] == {"dir": str(tmp_path), "pairs": 1, "settlements_downloaded": 1}
    assert (tmp_path / "binance" / "BTCUSDT" / "funding.parquet").exists()
    table = runner.invoke(app, [a for a in args if a != "--json"])
    assert table.exit_code == 0 and "read through the cache" in table.output
    off = json.loads(runner.invoke(app, [*args, "--no-cache"]).output)
    assert off["history_cache"] is None and off["candidates"][0]["settlements_30d"] == 1


def test_all_failed_prints_the_errors_without_an_empty_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import ccxt

    monkeypatch.setattr(
        scanner, "_default_factory", Factory({"bybit": {"/": ccxt.ExchangeNotAvailable("down")}})
    )
    result = runner.invoke(app, ["scan", "--retries", "1", "--exchanges", "bybit"])
    assert result.exit_code == 3 and "bybit did not answer" in result.output
    assert "Spot/perp carry" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exchanges", "gate"], "no funding-field mapping"),
        (["--min-apr", "50"], "percent"),
        (["--quote", ""], "--quote must be a currency code"),
        (["--history-limit", "0"], "--history-limit must be at least 1"),
    ],
)
def test_bad_options_exit_2_with_the_value(args: list[str], message: str) -> None:
    proc = subprocess.run([str(PERPHEDGE), "scan", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr


def test_all_failed_is_one_error_line_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    import ccxt

    down = {e: {"/": ccxt.ExchangeNotAvailable("down")} for e in ("bybit", "okx")}
    monkeypatch.setattr(scanner, "_default_factory", Factory(down))
    result = CliRunner(mix_stderr=False).invoke(app, ["scan", "--retries", "1", "--exchanges", "bybit,okx"])
    assert result.exit_code == 3 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no exchange answered")
    assert "bybit did not answer" in lines[0] and "okx did not answer" in lines[0]
