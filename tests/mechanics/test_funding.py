"""Funding formulas against the sources' published worked examples (docs/sources.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perphedge.errors import DataError
from perphedge.mechanics import funding as f

HOUR = 3_600_000


def test_binance_faq_2020_08_28_example_average_premium_gives_baseline_rate() -> None:
    # Binance FAQ 360033525031: 2020-08-28 08:00 UTC, P̄ = 0.0429 % → F = 0.0429 % − 0.0329 % = 0.0100 %
    assert f.funding_rate_from_premium(0.000429) == pytest.approx(0.0001, abs=1e-15)


@pytest.mark.parametrize(
    ("premium", "expected"),
    [
        (-0.0004, 0.0001),  # dead zone lower edge: [−0.04 %, +0.06 %] → F = I
        (0.0006, 0.0001),  # dead zone upper edge
        (0.0010, 0.0010 - 0.0005),  # clamp binds at −0.05 %
        (-0.0010, -0.0010 + 0.0005),  # clamp binds at +0.05 %
    ],
)
def test_funding_rate_dead_zone_and_clamp(premium: float, expected: float) -> None:
    assert f.funding_rate_from_premium(premium) == pytest.approx(expected, abs=1e-15)


def test_funding_rate_cap_and_floor_bind_btcusdt_cap_is_three_tenths_percent() -> None:
    cap = f.funding_cap_from_mmr(0.004)  # BTCUSDT max-leverage tier MMR 0.4 % → ±0.3 % (fundingInfo 0.003)
    assert cap == pytest.approx(0.003)
    assert f.funding_rate_from_premium(0.01, cap=cap, floor=-cap) == pytest.approx(0.003)
    assert f.funding_rate_from_premium(-0.01, cap=cap, floor=-cap) == pytest.approx(-0.003)


def test_funding_rate_n_hour_interval_scales_by_interval_over_eight() -> None:
    # current Binance FAQ: F = [P̄ + clamp(I − P̄)] / (8 / N)
    assert f.funding_rate_from_premium(0.000429, interval_hours=4) == pytest.approx(0.00005)
    assert f.funding_rate_from_premium(0.000429, interval_hours=1) == pytest.approx(0.0001 / 8)


def test_time_weighted_average_premium_weights_later_samples_more() -> None:
    # (1·P1 + 2·P2 + 3·P3) / 6
    assert f.time_weighted_average_premium([0.0, 0.0, 0.0006]) == pytest.approx(0.0003)


def test_premium_index_sample() -> None:
    assert f.premium_index(impact_bid=101.0, impact_ask=102.0, price_index=100.0) == pytest.approx(0.01)
    assert f.premium_index(impact_bid=98.0, impact_ask=99.0, price_index=100.0) == pytest.approx(-0.01)
    assert f.premium_index(impact_bid=99.0, impact_ask=101.0, price_index=100.0) == 0.0


def test_article_funding_example_three_dollars_per_8h_on_30000() -> None:
    # the article: 0.01 % of $30,000 = $3 per 8 h; a short receives it
    assert f.funding_cashflow_linear_usd(-10.0, 3_000.0, 0.0001) == pytest.approx(3.0)
    assert f.funding_cashflow_linear_usd(10.0, 3_000.0, 0.0001) == pytest.approx(-3.0)


def test_bitmex_guide_funding_example_long_pays_point_zero_five() -> None:
    # BitMEX guide: long 15,000 XBTUSD contracts at 750 (entry value 20 XBT), F = 0.25 % → pays 0.05 XBT
    assert f.funding_cashflow_inverse_coin(15_000, 1.0, 750.0, 0.0025) == pytest.approx(-0.05)


def test_annualisation_baseline_is_10_95_percent_simple_11_57_compounded() -> None:
    assert f.annualize_simple(0.0001, 8) == pytest.approx(0.1095)
    assert f.annualize_simple(0.0001, 4) == pytest.approx(0.219)  # ccxt_client annualize(0.0001, 4)
    assert f.annualize_compound(0.0001, 8) == pytest.approx(0.1157, abs=5e-5)  # "11.57 %"
    # Nansen: hourly 0.0000125 × 24 × 365 = 10.95 %
    assert f.annualize_simple(0.0000125, 1) == pytest.approx(0.1095)


def test_infer_interval_tolerates_millisecond_jitter_and_changes() -> None:
    t0 = 1_600_000_000_000 - (1_600_000_000_000 % (8 * HOUR))
    ts = np.array([t0, t0 + 8 * HOUR + 1, t0 + 16 * HOUR + 4, t0 + 20 * HOUR, t0 + 21 * HOUR - 47])
    assert f.infer_interval_hours(ts).tolist() == [8, 8, 8, 4, 1]
    assert f.interval_changes(ts, f.infer_interval_hours(ts)) == [(int(ts[3]), 8.0, 4.0), (int(ts[4]), 4.0, 1.0)]


def test_infer_interval_rejects_gaps_duplicates_and_unsorted() -> None:
    with pytest.raises(DataError, match="gap"):
        f.infer_interval_hours([0, 8 * HOUR, 24 * HOUR])
    with pytest.raises(DataError, match="strictly increasing"):
        f.infer_interval_hours([0, 8 * HOUR, 8 * HOUR])
    with pytest.raises(DataError, match="not a funding interval"):
        f.infer_interval_hours([0, 3 * HOUR])


@settings(deadline=None)  # shared 2-core machine: no per-example time limit
@given(
    qty=st.floats(min_value=1e-6, max_value=1e6),
    price=st.floats(min_value=1e-3, max_value=1e7),
    rate=st.floats(min_value=-0.03, max_value=0.03),
)
def test_funding_is_zero_sum_between_long_and_short(qty: float, price: float, rate: float) -> None:
    long_flow = f.funding_cashflow_linear_usd(qty, price, rate)
    short_flow = f.funding_cashflow_linear_usd(-qty, price, rate)
    assert math.isclose(long_flow + short_flow, 0.0, abs_tol=1e-9 * max(1.0, abs(long_flow)))
    assert (short_flow >= 0) == (rate >= 0) or short_flow == 0


def test_mean_apr_is_weighted_by_the_period_each_settlement_paid_for() -> None:
    # the baseline at any interval is 10.95 % (0.01 %/8 h = 0.005 %/4 h = 0.00125 %/1 h)
    assert f.mean_apr_time_weighted(np.array([0.0001, 0.00005, 0.0000125]), np.array([8.0, 4.0, 1.0])) == (
        pytest.approx(0.1095)
    )
    # one 8-hour settlement at 0.08 % then eight 1-hour ones at 0: the hour-by-hour truth is 0.04 % per 8 h
    rates = np.array([0.0008] + [0.0] * 8)
    hours = np.array([8.0] + [1.0] * 8)
    assert f.mean_apr_time_weighted(rates, hours) == pytest.approx(0.0004 * 1095)
    assert np.mean(f.annualize_simple(rates, hours)) == pytest.approx(0.0008 * 1095 / 9)  # unweighted: wrong
