"""``perphedge data list|show|import`` through typer's CliRunner and the installed script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from perphedge.cli import data_cmd  # noqa: F401  (registers the data commands)
from perphedge.cli.app import app
from perphedge.data.bundled import load_bundled, market_dir
from perphedge.data.catalog import window_market
from perphedge.data.stats import funding_stats
from perphedge.errors import DataError

runner = CliRunner()
SCRIPT = Path(sys.executable).parent / "perphedge"


def invoke(*args: str) -> dict:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_data_list_json_has_stable_keys_and_every_bundled_set(tmp_path: Path) -> None:
    payload = invoke("data", "list", "--json", "--data-dir", str(tmp_path))
    rows = payload["datasets"]
    assert len(rows) == 18
    assert set(rows[0]) == {
        "exchange", "symbol", "timeframe", "first_bar", "last_bar", "bars", "funding_settlements", "source",
    }  # fmt: skip
    btc = next(r for r in rows if r["symbol"] == "BTCUSDT" and r["timeframe"] == "8h")
    assert btc["first_bar"] == "2020-01-01T00:00:00+00:00"
    assert btc["funding_settlements"] == len(load_bundled("BTCUSDT").funding)


def test_data_list_table_names_the_columns(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "list", "--data-dir", str(tmp_path)], catch_exceptions=False, env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0
    assert "BTCUSDT" in result.stdout and "bundled" in result.stdout and "settlements" in result.stdout


def test_data_list_table_keeps_one_line_per_data_set_at_80_columns(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "list", "--data-dir", str(tmp_path)], catch_exceptions=False, env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line.split() for line in lines if line.strip().startswith("binance")]
    assert len(rows) == 18  # every bundled data set, each whole on its own line
    assert ["binance", "BTCUSDT", "8h", "2020-01-01", "2026-02-24", "6,740", "6,740", "bundled"] in rows
    assert ["binance", "SOLUSDT", "1h", "2020-09-14", "2026-02-24", "47,606", "6,044", "bundled"] in rows


def test_data_show_json_matches_an_independent_pandas_computation(tmp_path: Path) -> None:
    payload = invoke("data", "show", "BTCUSDT", "--json", "--data-dir", str(tmp_path))
    raw = pd.read_parquet(market_dir() / "binance" / "8h" / "BTCUSDT.funding.parquet")
    year = raw[pd.to_datetime(raw["settle_ts_ms"], unit="ms", utc=True).dt.year == 2021]["rate_per_interval"]
    assert payload["per_year"]["2021"]["settlements"] == 1095
    assert payload["per_year"]["2021"]["mean_apr"] == pytest.approx((year * 1095).mean(), rel=1e-12)
    assert payload["per_year"]["2021"]["share_negative"] == pytest.approx((year < 0).mean(), abs=0)
    assert set(payload["whole_period"]) == {
        "settlements",
        "mean_apr",
        "share_negative",
        "share_at_baseline",
        "min_rate",
        "max_rate",
    }
    assert set(payload["basis_bps"]) == {"bars", "mean", "p01", "p99"}


def test_data_show_table_lists_years_interval_changes_and_basis(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["data", "show", "SOLUSDT", "--data-dir", str(tmp_path)],
        catch_exceptions=False,
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0
    out = result.stdout
    assert "2022" in out and "all" in out
    assert "2022-11-10 06:00 UTC: 4 h → 2 h" in out
    assert "Basis (perp close / spot close − 1)" in out


def test_data_show_table_keeps_one_line_per_year_at_80_columns(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["data", "show", "SOLUSDT", "--data-dir", str(tmp_path)],
        catch_exceptions=False,
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    table = lines[: next(i for i, line in enumerate(lines) if line.startswith("Funding interval"))]
    assert max(len(line) for line in table) <= 80
    assert any(line.split() == ["year", "settlements", "mean", "APR", "negative", "at", "baseline", "min", "rate",
                                "max", "rate"] for line in table)  # fmt: skip
    rows = {line.split()[0]: line.split() for line in table if line.strip()[:4] in ("2020", "2022", "all ")}
    sol_2022 = funding_stats(load_bundled("SOLUSDT")).per_year["2022"]
    assert rows["2022"][:3] == ["2022", "1,170", f"{sol_2022.mean_apr:+.2%}".replace("+", "")]
    assert rows["all"][1] == "6,044"
    assert all(len(row) == 9 for row in rows.values())  # whole rows (rates carry a " %"), not wrapped


def test_data_show_window_and_timeframe_options(tmp_path: Path) -> None:
    payload = invoke(
        "data", "show", "ETHUSDT", "--timeframe", "1h", "--start", "2024-01-01", "--end", "2025-01-01",
        "--json", "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert list(payload["per_year"]) == ["2024", "2025"]  # 2025-01-01 00:00 settles the last 2024 bar
    assert payload["per_year"]["2025"]["settlements"] == 1
    assert payload["timeframe"] == "1h"


def test_data_import_then_list_and_show(tmp_path: Path) -> None:
    # Arrange: real BTC data as a user's CSV files
    market = window_market(load_bundled("BTCUSDT"), "2023-01-01", "2023-07-01")
    user = tmp_path / "user"
    user.mkdir()
    pd.DataFrame(
        {
            "time": market.funding.index.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "rate_pct": market.funding["rate_per_interval"] * 100,
        }
    ).to_csv(user / "funding.csv", index=False, float_format="%.17g")
    for leg in ("spot", "perp"):
        pd.DataFrame(
            {"time": market.bars.index.strftime("%Y-%m-%d %H:%M:%S")}
            | {f: market.bars[f"{leg}_{f}"] for f in ("open", "high", "low", "close")}
        ).to_csv(user / f"{leg}.csv", index=False, float_format="%.17g")
    data_dir = tmp_path / "data"
    # Act
    payload = invoke(
        "data", "import", "--exchange", "mydesk", "--symbol", "BTCUSDT", "--funding", str(user / "funding.csv"),
        "--spot", str(user / "spot.csv"), "--perp", str(user / "perp.csv"), "--timestamp-column", "time",
        "--rate-column", "rate_pct", "--rate-unit", "percent", "--assume-utc", "--data-dir", str(data_dir), "--json",
    )  # fmt: skip
    # Assert
    assert payload["dataset"]["bars"] == len(market.bars)
    assert payload["dataset"]["funding_settlements"] == len(market.funding)
    assert payload["warnings"] == []
    listed = invoke("data", "list", "--json", "--data-dir", str(data_dir))["datasets"]
    assert any(r["exchange"] == "mydesk" and r["source"].startswith("import:") for r in listed)
    shown = invoke("data", "show", "BTCUSDT", "--exchange", "mydesk", "--json", "--data-dir", str(data_dir))
    bundled = invoke("data", "show", "BTCUSDT", "--start", "2023-01-01", "--end", "2023-07-01", "--json")
    assert shown["whole_period"]["mean_apr"] == pytest.approx(bundled["whole_period"]["mean_apr"], rel=1e-12)


def test_data_import_refuses_naive_timestamps_with_the_fix(tmp_path: Path) -> None:
    market = window_market(load_bundled("BTCUSDT"), "2023-01-01", "2023-02-01")
    for name, frame in {
        "funding": pd.DataFrame(
            {
                "timestamp": market.funding.index.strftime("%Y-%m-%d %H:%M:%S"),
                "funding_rate": market.funding["rate_per_interval"],
            }
        ),
        "spot": pd.DataFrame(
            {"timestamp": market.bars.index.strftime("%Y-%m-%d %H:%M:%S")}
            | {f: market.bars[f"spot_{f}"] for f in ("open", "high", "low", "close")}
        ),
    }.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    args = ["data", "import", "--symbol", "BTCUSDT", "--funding", str(tmp_path / "funding.csv"), "--spot",
            str(tmp_path / "spot.csv"), "--perp", str(tmp_path / "spot.csv"), "--data-dir", str(tmp_path / "d")]  # fmt: skip
    with pytest.raises(DataError, match="--assume-utc"):
        runner.invoke(app, args, catch_exceptions=False)


def test_installed_script_exits_2_on_unknown_symbol_and_help_lists_options(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "data", "show", "NOPEUSDT", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown symbol" in done.stderr and "BTCUSDT" in done.stderr
    helped = subprocess.run(
        [str(SCRIPT), "data", "import", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert helped.returncode == 0
    for option in (
        "--rate-unit",
        "--assume-utc",
        "--timezone",
        "--epoch-unit",
        "--trim-to-overlap",
        "--timestamp-column",
        "--json",
    ):
        assert option in helped.stdout


def _user_files(folder: Path, start: str, end: str) -> list[str]:
    """Real bundled BTCUSDT history written as a user's CSV files; return the import file options."""
    market = window_market(load_bundled("BTCUSDT"), start, end)
    folder.mkdir()
    pd.DataFrame(
        {
            "timestamp": market.funding.index.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "funding_rate": market.funding["rate_per_interval"],
        }
    ).to_csv(folder / "funding.csv", index=False, float_format="%.17g")
    for leg in ("spot", "perp"):
        pd.DataFrame(
            {"timestamp": market.bars.index.strftime("%Y-%m-%dT%H:%M:%SZ")}
            | {f: market.bars[f"{leg}_{f}"] for f in ("open", "high", "low", "close")}
        ).to_csv(folder / f"{leg}.csv", index=False, float_format="%.17g")
    return [
        "--funding",
        str(folder / "funding.csv"),
        "--spot",
        str(folder / "spot.csv"),
        "--perp",
        str(folder / "perp.csv"),
    ]


def test_import_under_a_bundled_name_warns_that_the_bundled_data_wins(tmp_path: Path) -> None:
    # binance BTCUSDT 8h is bundled and load_market looks there first: the import was silently never used
    files = _user_files(tmp_path / "user", "2023-01-01", "2023-02-01")
    common = ["data", "import", *files, "--symbol", "BTCUSDT", "--data-dir", str(tmp_path / "data"), "--json"]
    shadowed = invoke(*common)
    own_name = invoke(*common, "--exchange", "mydesk")
    assert any("bundled data is loaded first" in w and "--exchange" in w for w in shadowed["warnings"])
    assert not any("bundled" in w for w in own_name["warnings"])


@pytest.mark.parametrize(
    ("content", "message"), [(b"", "the file is empty"), (b"\xff\xfe\x00garbage", "could not be read as CSV")]
)
def test_import_of_an_empty_or_garbled_file_is_one_error_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    files = _user_files(tmp_path / "user", "2023-01-01", "2023-02-01")
    (tmp_path / "user" / "spot.csv").write_bytes(content)
    done = subprocess.run(
        [str(SCRIPT), "data", "import", *files, "--symbol", "BTCUSDT", "--exchange", "mydesk", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "d").exists()
