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
        # outside pandas' ns range the engine overflowed (OverflowError traceback)
        (
            ["backtest", "--symbol", "BTCUSDT", "--start", "0001-01-01", "--end", "2020-02-01"],
            "between 1970-01-01",
        ),
        (
            ["compare", "--symbol", "BTCUSDT", "--start", "2025-12-01", "--end", "9999-12-31"],
            "--end was '9999-12-31'",
        ),
        (["backtest", "--symbol", "BTCUSDT", "--report", "out.txt"], "--report must name an .html file"),
        # a report under a file used to run the whole backtest, then die in mkdir with a traceback
        (
            ["backtest", "--symbol", "BTCUSDT", "--report", str(Path(__file__)) + "/r.html"],
            "is not a writable directory",
        ),
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
        "--trigger-margin-ratio", "--target-margin-ratio", "--borrow-rates-csv", "--withdraw-excess",
        "--reinvest-funding", "--clearance-fee", "--bracket-snapshot",
    ):  # fmt: skip
        assert flag in done.stdout, flag
    # the defaults the help states are the engine's own
    help_text = " ".join(done.stdout.split())
    defaults = BacktestConfig()
    assert "auto (sell_spot for linear, none for inverse)" in help_text and "[default: auto]" in help_text
    assert defaults.collateral_policy == "sell_spot"  # auto resolved for the default linear contract
    assert "[default: 0.02]" in help_text and defaults.trigger_margin_ratio == 0.02
    assert "[default: 0.008]" in help_text and defaults.target_margin_ratio == 0.008
    assert "[default: 0.0125]" in help_text and defaults.clearance_fee == 0.0125
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


# --- engine options beyond capital and fees ---------------------------------------------------------------


def test_engine_options_reach_the_run_and_change_it(monkeypatch, capsys) -> None:
    base = [
        "backtest",
        "--symbol",
        "BTCUSDT",
        "--strategy",
        "full",
        "--start",
        "2021-01-01",
        "--end",
        "2022-01-01",
    ]
    code, out, err = run_cli([*base, "--json"], monkeypatch, capsys)
    assert code == 0, err
    plain = json.loads(out)
    code, out, err = run_cli(
        [*base, "--json", "--reinvest-funding", "--withdraw-excess", "--clearance-fee", "0.01",
         "--bracket-snapshot", "newest"],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert code == 0, err
    tuned = json.loads(out)
    settings = tuned["settings"]
    assert settings["reinvest_funding"] is True and settings["withdraw_excess"] is True
    assert settings["clearance_fee"] == 0.01 and settings["bracket_snapshot"] == "newest"
    assert "newest bundled Binance bracket snapshot" in settings["brackets"]
    assert (
        plain["settings"]["reinvest_funding"] is False and plain["settings"]["bracket_snapshot"] == "in_force"
    )
    # reinvesting 2021's funding buys more spot: more trades and a different end
    assert tuned["trades"] > plain["trades"]
    assert tuned["final_equity_usd"] != pytest.approx(plain["final_equity_usd"], rel=1e-6)


def test_borrow_rates_csv_is_used_by_reverse_carry(tmp_path: Path, monkeypatch, capsys) -> None:
    # Arrange: a constant 0.01 %/day as a series must equal --borrow-rate-per-day 0.0001; doubling it doubles
    # the interest (the borrowed coins are the same: the strategy does not see the rate)
    args = ["backtest", "--symbol", "BTCUSDT", "--strategy", "dynamic-neutral", "--negative-mode", "reverse",
            "--start", "2022-01-01", "--end", "2023-01-01", "--json"]  # fmt: skip
    same = tmp_path / "same.csv"
    same.write_text("ts,rate_per_day\n2021-12-01,0.0001\n", encoding="utf-8")
    double = tmp_path / "double.csv"
    double.write_text("ts,rate_per_day\n2021-12-01,0.0001\n2022-01-01T00:00Z,0.0002\n", encoding="utf-8")
    # Act
    runs = {}
    for name, extra in (("constant", []), ("same", ["--borrow-rates-csv", str(same)]),
                        ("double", ["--borrow-rates-csv", str(double)])):  # fmt: skip
        code, out, err = run_cli([*args, *extra], monkeypatch, capsys)
        assert code == 0, err
        runs[name] = json.loads(out)
    # Assert
    assert runs["constant"]["borrow_usd"] < 0
    assert runs["same"]["borrow_usd"] == pytest.approx(runs["constant"]["borrow_usd"], rel=1e-12)
    assert runs["double"]["borrow_usd"] == pytest.approx(2 * runs["constant"]["borrow_usd"], rel=1e-9)
    assert "2 rates per day from 2021-12-01" in runs["double"]["settings"]["borrow_rate_series"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,rate\n2021-01-01,0.0001\n", "needs the columns ts and rate_per_day"),
        ("ts,rate_per_day\n", "has no rows"),
        ("ts,rate_per_day\nlast monday,0.0001\n", "line 2: ts was 'last monday'"),
        ("ts,rate_per_day\n2019-01-01,0.01%\n", "line 2: rate_per_day was '0.01%'"),
        ("ts,rate_per_day\n2019-01-02,0.0001\n2019-01-01,0.0001\n", "must increase strictly"),
        ("ts,rate_per_day\n2019-01-01,-0.0001\n", "borrow_rate_series at 2019-01-01"),
        ("ts,rate_per_day\n2023-06-01,0.0001\n", "add a rate at or before the start"),
    ],
)
def test_bad_borrow_rates_csv_is_one_line_and_exit_2(
    text, message, tmp_path: Path, monkeypatch, capsys
) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(text, encoding="utf-8")
    code, out, err = run_cli(
        ["backtest", "--symbol", "BTCUSDT", *WINDOW, "--borrow-rates-csv", str(path)], monkeypatch, capsys
    )
    assert code == 2, (out, err)
    assert message in err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_downloaded_data_is_validated_before_the_backtest(tmp_path: Path, monkeypatch, capsys) -> None:
    # Arrange: real BTCUSDT bars stored as if downloaded from another exchange, then one bad price
    import dataclasses

    from perphedge.data.bundled import load_bundled
    from perphedge.data.catalog import window_market
    from tests.kit.cache_writer import write_cache

    market = window_market(load_bundled("BTCUSDT"), "2024-01-01", "2024-03-01")
    write_cache(market, tmp_path / "good", exchange="bybit")
    bars = market.bars.copy()
    bars.iloc[40, bars.columns.get_loc("spot_low")] = -1.0
    write_cache(dataclasses.replace(market, bars=bars), tmp_path / "bad", exchange="bybit")
    args = ["backtest", "--exchange", "bybit", "--symbol", "BTCUSDT", "--json", "--data-dir"]
    # Act
    good_code, good_out, _ = run_cli([*args, str(tmp_path / "good")], monkeypatch, capsys)
    bad_code, _, bad_err = run_cli([*args, str(tmp_path / "bad")], monkeypatch, capsys)
    # Assert: the clean download runs; the corrupt one is refused in one line saying where
    assert good_code == 0
    assert json.loads(good_out)["start"].startswith("2024-01-01")
    assert bad_code == 2
    assert "spot_low" in bad_err and len(bad_err.strip().splitlines()) <= 3


def test_a_report_that_cannot_be_written_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    # the directory passes the early check but writing fails (a full disk): no traceback
    report = tmp_path / "full.html"
    real_write_text = Path.write_text

    def disk_full(self: Path, *args: object, **kwargs: object) -> int:
        if self == report:
            raise OSError(28, "No space left on device", str(self))
        return real_write_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", disk_full)
    code, out, err = run_cli(
        [
            "backtest",
            "--symbol",
            "BTCUSDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-10",
            "--report",
            str(report),
        ],
        monkeypatch,
        capsys,
    )
    assert code == 2 and out == ""
    assert err.startswith("error: --report") and "No space left on device" in err and err.count("\n") == 1


def test_a_symbol_without_a_bundled_bracket_table_runs_with_mmr(tmp_path: Path, monkeypatch, capsys) -> None:
    # Real BTCUSDT history imported under a name Binance's bracket snapshots lack. The error used to
    # advise "--mmr, --maintenance-amount", options only plan had: the data could not be backtested at all.
    import dataclasses

    from perphedge.data.bundled import load_bundled
    from perphedge.data.catalog import window_market
    from perphedge.data.importers import store_imported

    market = window_market(load_bundled("BTCUSDT"), "2024-01-01", "2024-03-01")
    store_imported(dataclasses.replace(market, symbol="XBTUSDT", source="import"), tmp_path, provenance={})
    args = ["--symbol", "XBTUSDT", "--data-dir", str(tmp_path)]
    # Act
    refused = run_cli(["backtest", *args], monkeypatch, capsys)
    ran = run_cli(["backtest", *args, "--mmr", "0.004", "--json"], monkeypatch, capsys)
    compared = run_cli(
        ["compare", *args, "--mmr", "0.004", "--maintenance-amount", "0", "--json"], monkeypatch, capsys
    )
    lone_amount = run_cli(["backtest", *args, "--maintenance-amount", "5"], monkeypatch, capsys)
    # Assert
    assert refused[0] == 2 and "unknown symbol 'XBTUSDT'" in refused[2] and "--mmr" in refused[2]
    assert ran[0] == 0, ran[2]
    assert "--mmr 0.004" in json.loads(ran[1])["settings"]["brackets"]
    assert compared[0] == 0 and len(json.loads(compared[1])["strategies"]) == 6
    assert lone_amount[0] == 2 and "only applies with --mmr" in lone_amount[2]
