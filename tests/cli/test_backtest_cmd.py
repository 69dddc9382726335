"""``perphedge backtest`` and ``perphedge compare`` on the bundled BTCUSDT history: output, JSON, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from perphedge.cli.app import main
from perphedge.data.catalog import load_market
from perphedge.engine.config import BacktestConfig
from perphedge.engine.loop import run_backtest
from perphedge.report.metrics import calc_summary
from perphedge.strategies.registry import build_strategy

PERPHEDGE = Path(sys.executable).parent / "perphedge"
WINDOW = ["--start", "2023-01-01", "--end", "2023-07-01"]
REQUIRED_JSON_KEYS = {
    "start",
    "end",
    "final_equity_usd",
    "total_return",
    "cagr",
    "sharpe",
    "max_drawdown",
    "funding_usd",
    "fees_usd",
    "spot_pnl_usd",
    "perp_pnl_usd",
    "borrow_usd",
    "liquidations",
    "time_hedged_pct",
}
COMPARED = [
    "full",
    "partial 0.5",
    "dynamic-article",
    "dynamic-neutral (unhedge)",
    "dynamic-neutral (reverse)",
    "spot buy-and-hold",
]


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run the real entry point in-process (error mapping included); return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["perphedge", *args])
    monkeypatch.setenv("COLUMNS", "160")
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_backtest_json_matches_the_library_and_has_the_issue_keys(monkeypatch, capsys) -> None:
    # Arrange: the same run through the library
    market = load_market("BTCUSDT", start="2023-01-01", end="2023-07-01")
    config = BacktestConfig(
        start=pd.Timestamp("2023-01-01", tz="UTC"), end=pd.Timestamp("2023-07-01", tz="UTC")
    )
    expected = calc_summary(run_backtest(market, build_strategy("partial", ratio=0.3), config))
    # Act
    code, out, err = run_cli(
        ["backtest", "--symbol", "BTCUSDT", "--strategy", "partial", "--ratio", "0.3", *WINDOW, "--json"],
        monkeypatch,
        capsys,
    )
    # Assert
    assert code == 0, err
    payload = json.loads(out)
    assert REQUIRED_JSON_KEYS <= set(payload)
    assert payload["strategy"] == "partial"
    assert payload["start"] == "2023-01-01T00:00:00+00:00"
    assert payload["end"] == "2023-07-01T00:00:00+00:00"  # the close of the last bar before --end
    for key in ("final_equity_usd", "funding_usd", "fees_usd", "spot_pnl_usd", "perp_pnl_usd", "sharpe"):
        assert payload[key] == pytest.approx(expected[key], rel=1e-12), key
    assert payload["settings"]["capital_usd"] == 10_000.0
    assert payload["report"] is None


def test_backtest_table_and_report(tmp_path: Path, monkeypatch, capsys) -> None:
    report = tmp_path / "out" / "full.html"
    code, out, err = run_cli(
        ["backtest", "--symbol", "BTCUSDT", "--strategy", "full", *WINDOW, "--report", str(report)],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert "Final equity" in out and "Funding" in out and "Time hedged" in out
    assert f"report written to {report.resolve()}" in " ".join(out.split())
    page = report.read_text(encoding="utf-8")
    assert "BTCUSDT · full hedge backtest" in page
    assert "<h2>Where the money came from</h2>" in page


def test_backtest_dynamic_options_reach_the_strategy(monkeypatch, capsys) -> None:
    args = ["backtest", "--symbol", "BTCUSDT", "--strategy", "dynamic-neutral", *WINDOW, "--json"]
    code, out, err = run_cli(
        [*args, "--negative-mode", "reverse", "--signal", "ema", "--window", "6", "--enter-apr", "0.08"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    options = json.loads(out)["settings"]["strategy_options"]
    assert options["negative_mode"] == "reverse"
    assert options["signal"] == "ema" and options["window"] == 6 and options["enter_apr"] == 0.08
    # the fee-aware rule is priced with the run's own fees
    assert options["fee_spot"] == 0.001 and options["fee_perp"] == 0.0005


def test_compare_json_runs_every_strategy_and_the_spot_benchmark(tmp_path: Path, monkeypatch, capsys) -> None:
    report = tmp_path / "compare.html"
    code, out, err = run_cli(
        ["compare", "--symbol", "BTCUSDT", *WINDOW, "--leverage", "1", "--json", "--report", str(report)],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    payload = json.loads(out)
    by_name = {s["strategy"]: s for s in payload["strategies"]}
    assert list(by_name) == COMPARED
    assert payload["report"] == str(report.resolve()) and report.stat().st_size > 1_000_000
    # at 1x the short survives BTC's +80 % of 2023 H1 (at 2x it is liquidated)
    assert by_name["full"]["liquidations"] == 0
    # the benchmark holds spot only; the full hedge is hedged and earns (or pays) funding
    assert by_name["spot buy-and-hold"]["time_hedged_pct"] == 0.0
    assert by_name["spot buy-and-hold"]["funding_usd"] == 0.0
    assert by_name["full"]["time_hedged_pct"] > 0.95
    assert by_name["full"]["funding_usd"] != 0.0
    # the article's dynamic strategy flips, so it trades far more than the full hedge
    assert by_name["dynamic-article"]["trades"] > by_name["full"]["trades"]


def test_compare_table_names_each_strategy(monkeypatch, capsys) -> None:
    code, out, err = run_cli(["compare", "--symbol", "BTCUSDT", *WINDOW], monkeypatch, capsys)
    assert code == 0, err
    for word in ("full", "partial", "dynamic-", "(unhedge)", "(reverse)", "Final equity", "Max drawdown"):
        assert word in out, word


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backtest", "--symbol", "BTCUSDT", "--start", "2024-01-01", "--end", "2023-01-01"], "before --end"),
        (["backtest", "--symbol", "NOPEUSDT"], "NOPEUSDT'; known symbols are"),
        (["backtest", "--symbol", "BTCUSDT", "--capital", "-5"], "capital_usd must be greater than 0"),
        (["backtest", "--symbol", "BTCUSDT", "--strategy", "yolo"], "unknown strategy 'yolo'"),
        (["backtest", "--symbol", "BTCUSDT", "--ratio", "0.5"], "does not take option(s) ratio"),
        (["backtest", "--symbol", "BTCUSDT", "--timeframe", "4h"], "--timeframe must be one of 8h, 1h"),
        (["backtest", "--symbol", "BTCUSDT", "--fee-spot", "0.1"], "fee_spot"),
        (["backtest", "--symbol", "BTCUSDT", "--start", "yesterday"], "not an ISO date"),
        (["backtest", "--symbol", "BTCUSDT", "--report", "out.txt"], "--report must name an .html file"),
        (["compare", "--symbol", "BTCUSDT", "--start", "2030-01-01"], "bar"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, monkeypatch, capsys) -> None:
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 2, (out, err)
    assert message in err
    assert err.startswith("error: ") and err.count("\n") == 1  # one line, no traceback
    assert out == ""


def test_help_is_complete_and_fast_to_start() -> None:
    # a real subprocess on the installed script: what a user runs
    done = subprocess.run(
        [str(PERPHEDGE), "backtest", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    for flag in (
        "--symbol", "--strategy", "--ratio", "--signal", "--window", "--enter-apr", "--exit-apr", "--negative-mode",
        "--horizon-days", "--roc-window", "--roc-gate", "--start", "--end", "--timeframe", "--capital", "--leverage",
        "--margin-mode", "--contract", "--contract-size", "--spot-qty", "--collateral", "--fee-spot", "--fee-perp",
        "--slippage-bps", "--collateral-policy", "--reserve-usd", "--json", "--report",
    ):  # fmt: skip
        assert flag in done.stdout, flag
    # heavy modules stay out of --help
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from perphedge.cli.app import _register; _register(); "
            "print(sorted(m for m in ('pandas', 'plotly', 'ccxt') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_help_states_the_strategies_real_defaults() -> None:
    # the --help text names defaults of options the CLI passes as None; they must be the strategies' own
    from perphedge.strategies.dynamic_article import DynamicArticle
    from perphedge.strategies.dynamic_neutral import DynamicNeutral

    article, neutral = DynamicArticle(), DynamicNeutral()
    assert (article.signal, article.window) == ("latest", 3)
    assert (neutral.signal, neutral.window) == ("mean", 9)
    assert (neutral.enter_apr, neutral.exit_apr, neutral.negative_mode) == (0.05, 0.0, "unhedge")
    assert neutral.horizon_days is None and neutral.roc_window is None and article.roc_gate is None
