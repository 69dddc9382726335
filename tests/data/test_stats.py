"""Funding statistics against an independent pandas computation on the raw bundled Parquet files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.data.bundled import load_bundled, market_dir
from perphedge.data.catalog import window_market
from perphedge.data.stats import funding_stats
from perphedge.errors import DataError


def raw_funding(symbol: str) -> pd.DataFrame:
    """Read the bundled funding file directly (not through the loader) and derive intervals with pandas."""
    frame = pd.read_parquet(market_dir() / "binance" / "8h" / f"{symbol}.funding.parquet")
    frame["when"] = pd.to_datetime(frame["settle_ts_ms"], unit="ms", utc=True)
    spacing_h = (frame["settle_ts_ms"].diff() / 3_600_000).round()
    frame["hours"] = spacing_h.fillna(spacing_h.iloc[1])
    return frame


def test_btc_2021_mean_apr_matches_pandas_on_the_raw_file() -> None:
    raw = raw_funding("BTCUSDT")
    year = raw[raw["when"].dt.year == 2021]
    expected = (year["rate_per_interval"] * 3 * 365).mean()  # every 2021 BTC settlement is 8-hourly
    stats = funding_stats(load_bundled("BTCUSDT")).per_year["2021"]
    assert stats.settlements == len(year) == 1095
    assert stats.mean_apr == pytest.approx(expected, rel=1e-12)
    assert stats.share_negative == pytest.approx((year["rate_per_interval"] < 0).mean(), abs=0)
    assert stats.share_at_baseline == pytest.approx((year["rate_per_interval"] == 0.0001).mean(), abs=0)
    assert stats.min_rate == year["rate_per_interval"].min()
    assert stats.max_rate == year["rate_per_interval"].max()
    assert 0.2 < stats.mean_apr < 0.5  # the 2021 bull market paid well above the 10.95 % baseline


def test_sol_2022_uses_each_settlements_real_interval() -> None:
    raw = raw_funding("SOLUSDT")
    year = raw[raw["when"].dt.year == 2022]
    # funding earned per year of holding: Σ rate × 8760 / Σ hours (each settlement weighted by its period)
    expected = year["rate_per_interval"].sum() * 8760 / year["hours"].sum()
    assert set(year["hours"]) == {2.0, 4.0, 8.0}
    stats = funding_stats(load_bundled("SOLUSDT")).per_year["2022"]
    assert stats.mean_apr == pytest.approx(expected, rel=1e-12)
    wrong_8h_assumption = (year["rate_per_interval"] * 3 * 365).mean()
    assert abs(stats.mean_apr - wrong_8h_assumption) > 0.02  # assuming 8 h misstates it (−35.6 % vs −38.0 %)
    unweighted = (year["rate_per_interval"] * (8760 / year["hours"])).mean()
    assert abs(stats.mean_apr - unweighted) > 0.5  # counting 2-hour settlements like 8-hour ones: −106 %


def test_baseline_share_uses_the_interval_scaled_baseline() -> None:
    # POLUSDT settles every 4 h: its interest-only rate is 0.005 % (Binance: 8-hour rate / (8 / N)).
    raw = raw_funding("POLUSDT")
    stats = funding_stats(load_bundled("POLUSDT")).whole_period
    assert stats.share_at_baseline == pytest.approx((raw["rate_per_interval"] == 0.00005).mean(), abs=0)
    assert stats.share_at_baseline > 0.4


def test_a_baseline_only_period_annualises_to_the_faq_figure() -> None:
    # Binance FAQ: interest 0.03 %/day = 0.01 % per 8 h, i.e. 10.95 % simple APR. Find a real run of it.
    market = load_bundled("BTCUSDT")
    at_base = (market.funding["rate_per_interval"] == 0.0001).to_numpy()
    run_end = next(i for i in range(30, len(at_base)) if at_base[i - 30 : i].all())
    window = market.funding.iloc[run_end - 30 : run_end]
    sliced = window_market(market, window.index[0].floor("h"), window.index[-1].floor("h"))
    stats = funding_stats(sliced).whole_period
    assert stats.share_at_baseline == 1.0
    assert stats.mean_apr == pytest.approx(0.1095, abs=1e-15)


def test_basis_statistics_match_pandas_quantiles() -> None:
    bars = pd.read_parquet(market_dir() / "binance" / "8h" / "ETHUSDT.bars.parquet")
    basis_bps = (bars["perp_close"] / bars["spot_close"] - 1) * 10_000
    stats = funding_stats(load_bundled("ETHUSDT")).basis_bps
    assert stats.bars == len(bars)
    assert stats.mean == pytest.approx(basis_bps.mean(), rel=1e-12)
    assert stats.p01 == pytest.approx(basis_bps.quantile(0.01), rel=1e-12)
    assert stats.p99 == pytest.approx(basis_bps.quantile(0.99), rel=1e-12)
    assert stats.p01 < stats.mean < stats.p99


def test_whole_period_and_interval_changes_of_sol() -> None:
    raw = raw_funding("SOLUSDT")
    stats = funding_stats(load_bundled("SOLUSDT"))
    assert stats.whole_period.settlements == len(raw)
    assert sum(s.settlements for s in stats.per_year.values()) == len(raw)
    assert stats.whole_period.mean_apr == pytest.approx(
        raw["rate_per_interval"].sum() * 8760 / raw["hours"].sum(), rel=1e-12
    )
    assert [
        (c.settle_ts.strftime("%Y-%m-%d %H:%M"), c.from_hours, c.to_hours) for c in stats.interval_changes
    ] == [
        ("2022-11-09 20:00", 8.0, 4.0),
        ("2022-11-10 06:00", 4.0, 2.0),
        ("2022-11-18 16:00", 2.0, 8.0),
    ]


def test_json_has_the_documented_stable_keys() -> None:
    payload = funding_stats(load_bundled("BTCUSDT")).to_json()
    assert set(payload) == {
        "exchange", "symbol", "timeframe", "source", "first_settlement", "last_settlement",
        "per_year", "whole_period", "interval_changes", "basis_bps",
    }  # fmt: skip
    period_keys = {"settlements", "mean_apr", "share_negative", "share_at_baseline", "min_rate", "max_rate"}
    assert list(payload["per_year"]) == [str(y) for y in range(2020, 2027)]
    assert all(set(v) == period_keys for v in payload["per_year"].values())
    assert set(payload["whole_period"]) == period_keys
    assert set(payload["basis_bps"]) == {"bars", "mean", "p01", "p99"}
    assert payload["interval_changes"] == []


def test_no_settlements_is_a_data_error() -> None:
    market = window_market(load_bundled("BTCUSDT"), "2022-01-01T08:00Z", "2022-01-01T09:00Z")
    empty = dataclasses.replace(market, funding=market.funding.iloc[:0])
    with pytest.raises(DataError, match="no funding settlements"):
        funding_stats(empty)


def test_per_year_uses_the_utc_year_of_the_settlement() -> None:
    market = window_market(load_bundled("BTCUSDT"), "2021-12-31T16:00Z", "2022-01-01T08:00Z")
    stats = funding_stats(market)
    # the 2022-01-01 00:00:00.00x settlement ends the 2021-12-31 16:00 bar but is counted in 2022
    assert {year: s.settlements for year, s in stats.per_year.items()} == {"2022": 2}
    assert np.isfinite(stats.basis_bps.mean)


@settings(max_examples=25, deadline=None)
@given(
    symbol=st.sampled_from(["SOLUSDT", "POLUSDT", "BNBUSDT"]),
    start_day=st.integers(min_value=0, max_value=400),
    days=st.integers(min_value=2, max_value=500),
)
def test_period_stats_are_consistent_on_any_real_window(symbol: str, start_day: int, days: int) -> None:
    market = load_bundled(symbol)
    start = market.bars.index[0] + pd.Timedelta(days=start_day)
    window = window_market(market, start, start + pd.Timedelta(days=days))
    stats = funding_stats(window)
    whole = stats.whole_period
    assert whole.settlements == len(window.funding) == sum(p.settlements for p in stats.per_year.values())
    apr = window.funding["rate_per_interval"] * 8760 / window.funding["interval_hours"]
    assert apr.min() - 1e-12 <= whole.mean_apr <= apr.max() + 1e-12
    assert whole.min_rate <= whole.max_rate
    assert 0.0 <= whole.share_negative <= 1.0 and 0.0 <= whole.share_at_baseline <= 1.0
    assert stats.basis_bps.p01 <= stats.basis_bps.mean <= stats.basis_bps.p99 or stats.basis_bps.bars < 100
