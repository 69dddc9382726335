"""Validation on real bundled data, corrupted in one specific way per test."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.data.bundled import load_bundled
from perphedge.data.catalog import window_market
from perphedge.data.schema import MarketData
from perphedge.data.validate import validate_market
from perphedge.errors import DataError


@pytest.fixture(scope="module")
def btc_2021() -> MarketData:
    """Real BTCUSDT 8-hour bars and settlements of January–March 2021."""
    return window_market(load_bundled("BTCUSDT", "8h"), "2021-01-01", "2021-04-01")


def _with(
    market: MarketData, *, bars: pd.DataFrame | None = None, funding: pd.DataFrame | None = None
) -> MarketData:
    return dataclasses.replace(
        market,
        bars=market.bars if bars is None else bars,
        funding=market.funding if funding is None else funding,
    )


def test_real_data_validates_without_warnings(btc_2021: MarketData) -> None:
    assert validate_market(btc_2021) == []


def test_duplicate_bar_timestamp_is_an_error_naming_the_time(btc_2021: MarketData) -> None:
    bars = pd.concat([btc_2021.bars.iloc[:10], btc_2021.bars.iloc[9:]])
    with pytest.raises(DataError, match=r"duplicate timestamps at 2021-01-04T00:00:00\+00:00"):
        validate_market(_with(btc_2021, bars=bars))


def test_unsorted_bars_are_an_error_naming_the_time(btc_2021: MarketData) -> None:
    order = list(range(len(btc_2021.bars)))
    order[20], order[21] = order[21], order[20]
    with pytest.raises(DataError, match=r"not increasing: 2021-01-07T16:00:00\+00:00"):
        validate_market(_with(btc_2021, bars=btc_2021.bars.iloc[order]))


def test_nan_price_is_an_error_naming_column_and_time(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.copy()
    bars.loc[pd.Timestamp("2021-02-01 08:00", tz="UTC"), "spot_close"] = np.nan
    with pytest.raises(DataError, match=r"spot_close is NaN at 2021-02-01T08:00:00\+00:00"):
        validate_market(_with(btc_2021, bars=bars))


def test_non_positive_price_is_an_error(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.copy()
    bars.iloc[5, bars.columns.get_loc("perp_low")] = 0.0
    with pytest.raises(DataError, match="perp_low is zero or negative"):
        validate_market(_with(btc_2021, bars=bars))


def test_swapped_high_and_low_is_an_error(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.copy()
    bars[["spot_high", "spot_low"]] = bars[["spot_low", "spot_high"]].to_numpy()
    with pytest.raises(DataError, match="spot_high is below spot_low"):
        validate_market(_with(btc_2021, bars=bars))


def test_percent_looking_funding_rate_is_an_error_with_the_fix(btc_2021: MarketData) -> None:
    funding = btc_2021.funding.copy()
    funding["rate_per_interval"] = funding["rate_per_interval"] * 100  # a percent column read as fractions
    with pytest.raises(DataError, match=r"looks like a percent.*--rate-unit percent"):
        validate_market(_with(btc_2021, funding=funding))


def test_naive_timestamps_are_an_error(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.tz_localize(None)
    with pytest.raises(DataError, match=r"naive.*--assume-utc"):
        validate_market(_with(btc_2021, bars=bars))


def test_non_utc_timezone_is_an_error(btc_2021: MarketData) -> None:
    funding = btc_2021.funding.tz_convert("Europe/Berlin")
    with pytest.raises(DataError, match="Europe/Berlin; convert them to UTC"):
        validate_market(_with(btc_2021, funding=funding))


def test_missing_bars_are_a_warning_with_the_gap_size(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.drop(btc_2021.bars.index[30:33])  # three 8-hour bars
    warnings = validate_market(_with(btc_2021, bars=bars))
    assert warnings == [
        f"bars: gap of 24 h (3 missing 8h bar(s)) after {btc_2021.bars.index[29].isoformat()}"
    ]


def test_bars_off_the_timeframe_grid_are_an_error(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.copy()
    bars.index = bars.index + pd.Timedelta(hours=1)
    with pytest.raises(DataError, match="do not open on the 8h grid"):
        validate_market(_with(btc_2021, bars=bars))


def test_missing_settlement_is_an_error_reporting_the_gap(btc_2021: MarketData) -> None:
    funding = btc_2021.funding.drop(btc_2021.funding.index[40])
    with pytest.raises(
        DataError,
        match=r"2021-01-14T08:00:00.012Z and 2021-01-15T00:00:00.002Z are 16 h apart, which is a gap",
    ):
        validate_market(_with(btc_2021, funding=funding))


def test_interval_column_disagreeing_with_spacing_is_an_error(btc_2021: MarketData) -> None:
    funding = btc_2021.funding.copy()
    funding.iloc[10, funding.columns.get_loc("interval_hours")] = 4.0
    with pytest.raises(DataError, match="interval_hours disagrees with the spacing"):
        validate_market(_with(btc_2021, funding=funding))


def test_single_bar_basis_beyond_ten_percent_is_flagged_with_where(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.copy()
    when = pd.Timestamp("2021-03-01 16:00", tz="UTC")
    bars.loc[when, "perp_close"] = bars.loc[when, "spot_close"] * 1.15
    bars.loc[when, "perp_high"] = max(bars.loc[when, "perp_high"], bars.loc[when, "perp_close"])
    warnings = validate_market(_with(btc_2021, bars=bars))
    assert len(warnings) == 1
    assert "basis beyond ±10% on 1 bar(s), at 2021-03-01T16:00:00+00:00" in warnings[0]


def test_perp_in_another_unit_everywhere_is_an_error(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.copy()
    for col in ("perp_open", "perp_high", "perp_low", "perp_close"):
        bars[col] = bars[col] / 1000  # e.g. a perp quoted per 1,000 units
    with pytest.raises(DataError, match="not the same market or not in the same unit"):
        validate_market(_with(btc_2021, bars=bars))


def test_all_problems_are_reported_together(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.copy()
    bars.iloc[3, bars.columns.get_loc("spot_open")] = np.nan
    funding = btc_2021.funding.copy()
    funding.iloc[7, funding.columns.get_loc("rate_per_interval")] = np.nan
    with pytest.raises(DataError) as info:
        validate_market(_with(btc_2021, bars=bars, funding=funding))
    message = str(info.value)
    assert message.startswith("binance:BTCUSDT: 2 problem(s)")
    assert "spot_open is NaN" in message and "rate_per_interval is NaN" in message


def test_settlements_outside_the_bars_are_a_warning(btc_2021: MarketData) -> None:
    bars = btc_2021.bars.iloc[:-30]
    warnings = validate_market(_with(btc_2021, bars=bars))
    assert any("30 settlement(s) fall outside the bars" in w for w in warnings)


@settings(max_examples=30, deadline=None)
@given(
    row=st.integers(min_value=0, max_value=269),
    column=st.sampled_from(["spot_open", "perp_high", "spot_close", "perp_low"]),
)
def test_any_nan_price_anywhere_is_caught_and_located(btc_2021: MarketData, row: int, column: str) -> None:
    bars = btc_2021.bars.copy()
    bars.iloc[row, bars.columns.get_loc(column)] = np.nan
    with pytest.raises(DataError) as info:
        validate_market(_with(btc_2021, bars=bars))
    assert f"{column} is NaN at {bars.index[row].isoformat()}" in str(info.value)


@settings(max_examples=30, deadline=None)
@given(start=st.integers(min_value=0, max_value=250), length=st.integers(min_value=3, max_value=20))
def test_any_real_window_validates_and_a_percent_scaled_one_does_not(
    btc_2021: MarketData, start: int, length: int
) -> None:
    window = window_market(
        btc_2021, btc_2021.bars.index[start], btc_2021.bars.index[min(start + length, 269)]
    )
    validate_market(window)
    funding = window.funding.copy()
    funding["rate_per_interval"] = np.where(funding["rate_per_interval"] >= 0, 0.0006, -0.0006) * 100
    with pytest.raises(DataError, match="looks like a percent"):
        validate_market(_with(window, funding=funding))


@pytest.mark.parametrize("column", ["spot_close", "perp_high", "mark_close"])
def test_infinite_price_is_an_error_not_a_valid_price(btc_2021: MarketData, column: str) -> None:
    # inf > 0 passed the positivity check: an 'inf' cell in a CSV was imported and stored
    bars = btc_2021.bars.copy()
    bars.iloc[12, bars.columns.get_loc(column)] = np.inf
    with pytest.raises(DataError, match=rf"{column} is .*infinite at 2021-01-05T00:00:00\+00:00"):
        validate_market(_with(btc_2021, bars=bars))


def test_infinite_rate_is_an_error_not_a_percent(btc_2021: MarketData) -> None:
    funding = btc_2021.funding.copy()
    funding.iloc[7, funding.columns.get_loc("rate_per_interval")] = -np.inf
    with pytest.raises(DataError, match="rate_per_interval is infinite at") as info:
        validate_market(_with(btc_2021, funding=funding))
    assert "looks like a percent" not in str(info.value)


def test_every_problem_is_reported_on_one_line(btc_2021: MarketData) -> None:
    # the CLI prints the message as its one 'error: …' line
    bars = btc_2021.bars.copy()
    bars.iloc[3, bars.columns.get_loc("spot_open")] = np.nan
    bars.iloc[5, bars.columns.get_loc("perp_low")] = -1.0
    with pytest.raises(DataError) as info:
        validate_market(_with(btc_2021, bars=bars))
    message = str(info.value)
    assert "\n" not in message
    assert "(1) bars: spot_open is NaN" in message and "(2) bars: perp_low is zero or negative" in message
