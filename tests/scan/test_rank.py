"""Carry maths and ranking (pure): golden values from the sources, real funding data, properties."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perphedge.errors import InputError
from perphedge.mechanics.fees import round_trip_fee_fraction
from perphedge.mechanics.funding import annualize_simple, infer_interval_hours
from perphedge.scan import rank
from perphedge.units import MS_PER_DAY, MS_PER_HOUR
from perphedge.venues.funding_snapshot import FundingHistory, LegTicker, PerpFundingQuote

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _sol_2022() -> tuple[np.ndarray, np.ndarray]:
    doc = json.loads((FIXTURES / "binance_SOLUSDT_funding_2022-10-15_2022-11-25.json").read_text())
    rows = np.asarray(doc["rows"], dtype=float)
    return rows[:, 0].astype(np.int64), rows[:, 1]


# Bybit's recorded BTCUSDT ticker (tests/fixtures/ccxt/bybit/static_response/fetchFundingRates.json)
BYBIT_BTC = PerpFundingQuote(
    exchange_id="bybit",
    perp_symbol="BTC/USDT:USDT",
    spot_symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    rate_per_interval=0.0001,
    rate_kind="predicted_next",
    next_settle_ts_ms=1730736000000,
    interval_hours=8.0,
    interval_source="bybit",
    mark_price_usd=68649.9,
    index_price_usd=68650.75,
    observed_ts_ms=1730729903941,
)
BYBIT_PERP_TICKER = LegTicker(
    symbol="BTC/USDT:USDT", last_price_usd=68641.3, quote_volume_24h_usd=7940401914.5025, ts_ms=1730729903941
)


# --- golden values from the sources ----------------------------------------------------------------


def test_round_trip_cost_at_binance_base_tier_is_thirty_basis_points() -> None:
    # Binance fee schedule, base tier: spot 0.10 % per side, USDⓈ-M taker 0.05 % -> 0.30 % (DOMAIN.md)
    assert round_trip_fee_fraction(0.001, 0.0005) == pytest.approx(0.003, abs=1e-15)


def test_break_even_of_the_baseline_rate_is_thirty_eight_hour_periods() -> None:
    # 0.30 % / (0.01 % per 8 h) = 30 periods = 10 days (DOMAIN.md "thirty 8-hour periods")
    assert rank.break_even_days(0.0001, 8.0, 0.003) == pytest.approx(10.0)
    # the same rate every 4 h pays twice as fast (Binance: never assume 3 settlements a day)
    assert rank.break_even_days(0.0001, 4.0, 0.003) == pytest.approx(5.0)


@pytest.mark.parametrize("rate", [0.0, -0.0001])
def test_break_even_never_happens_when_funding_does_not_pay_the_short(rate: float) -> None:
    assert rank.break_even_days(rate, 8.0, 0.003) is None


def test_net_apr_of_the_baseline_over_thirty_days() -> None:
    # 10.95 % simple APR (Binance FAQ: 0.03 %/day) less 0.30 % × 365/30 = 3.65 %
    assert rank.net_apr_over_horizon(0.1095, 0.003, 30.0) == pytest.approx(0.0730)


def test_candidate_from_bybit_recorded_quote_uses_the_real_interval() -> None:
    c = rank.build_candidate(
        BYBIT_BTC,
        spot_ticker=None,
        perp_ticker=BYBIT_PERP_TICKER,
        history=None,
        as_of_ts_ms=1730729903941,
        settings=rank.ScanSettings(),
    )
    assert c.apr_current == pytest.approx(0.1095)  # 0.01 % per 8 h
    assert c.apy_current == pytest.approx(0.1157, abs=5e-5)  # compounded (Binance FAQ §8: 11.57 %)
    assert c.break_even_days == pytest.approx(10.0) and c.net_apr_horizon == pytest.approx(0.0730)
    assert c.score == c.net_apr_horizon  # no history, no penalty
    assert c.basis_bps is None and c.min_volume_24h_usd is None  # spot leg unknown: never guessed
    assert any("volume" in n for n in c.notes)


def test_four_hour_symbol_has_twice_the_apr_of_the_same_rate_every_eight_hours() -> None:
    fast = replace(BYBIT_BTC, interval_hours=4.0)
    c = rank.build_candidate(
        fast, spot_ticker=None, perp_ticker=None, history=None, as_of_ts_ms=0, settings=rank.ScanSettings()
    )
    assert c.apr_current == pytest.approx(0.219)  # ccxt_client annualize(0.0001, 4) = 0.219


def test_basis_in_basis_points_from_recorded_mark_and_index() -> None:
    # Bybit recorded BTCUSDT: mark 68649.90, index 68650.75 -> (68649.90 − 68650.75)/68650.75 × 1e4
    assert rank.basis_bps(68649.9, 68650.75) == pytest.approx(-0.12381, abs=1e-5)


def test_basis_uses_mark_and_is_refused_when_prices_are_far_apart_in_time() -> None:
    spot_now = LegTicker(
        symbol="BTC/USDT", last_price_usd=68650.75, quote_volume_24h_usd=1e9, ts_ms=1730729903941 + 30_000
    )
    c = rank.build_candidate(
        BYBIT_BTC,
        spot_ticker=spot_now,
        perp_ticker=BYBIT_PERP_TICKER,
        history=None,
        as_of_ts_ms=1730729903941,
        settings=rank.ScanSettings(),
    )
    assert c.basis_price_source == "mark" and c.basis_bps == pytest.approx(-0.12381, abs=1e-5)
    assert c.quote_gap_ms == 30_000 and c.min_volume_24h_usd == 1e9
    stale = replace(spot_now, ts_ms=1730729903941 + 3_600_000)
    c = rank.build_candidate(
        BYBIT_BTC,
        spot_ticker=stale,
        perp_ticker=BYBIT_PERP_TICKER,
        history=None,
        as_of_ts_ms=1730729903941,
        settings=rank.ScanSettings(),
    )
    assert c.basis_bps is None and any("3600 s apart" in n for n in c.notes)


def test_a_perp_without_spot_market_is_not_a_candidate() -> None:
    with pytest.raises(InputError, match="no spot market"):
        rank.build_candidate(
            replace(BYBIT_BTC, spot_symbol=None),
            spot_ticker=None,
            perp_ticker=None,
            history=None,
            as_of_ts_ms=0,
            settings=rank.ScanSettings(),
        )


def test_unknown_interval_leaves_apr_and_score_empty_unless_history_gives_it() -> None:
    unknown = replace(BYBIT_BTC, interval_hours=None, interval_source=None)
    c = rank.build_candidate(
        unknown, spot_ticker=None, perp_ticker=None, history=None, as_of_ts_ms=0, settings=rank.ScanSettings()
    )
    assert c.apr_current is None and c.score is None and c.break_even_days is None
    ts, rates = _sol_2022()
    history = FundingHistory(
        perp_symbol="SOL/USDT:USDT",
        settle_ts_ms=tuple(int(t) for t in ts),
        rates=tuple(float(r) for r in rates),
        since_ms=int(ts[0]),
    )
    c = rank.build_candidate(
        unknown,
        spot_ticker=None,
        perp_ticker=None,
        history=history,
        as_of_ts_ms=int(ts[-1]),
        settings=rank.ScanSettings(),
    )
    # the slice ends on 8 h settlements again (2022-11-25)
    assert c.interval_hours == 8.0 and c.interval_source == "inferred from the spacing of recent settlements"


# --- history windows on real data ------------------------------------------------------------------


def _hourly_funding(ts: np.ndarray, rates: np.ndarray) -> dict[int, float]:
    """Spread each settlement's rate evenly over the hours of the period it paid for (independent check)."""
    hours = infer_interval_hours(ts)
    out: dict[int, float] = {}
    for t, rate, h in zip(ts.tolist(), rates.tolist(), hours.tolist(), strict=True):
        for k in range(int(h)):
            out[int(t) - k * MS_PER_HOUR] = rate / h  # the hour ending at t − k h
    return out


def test_window_stats_on_sol_during_the_ftx_collapse_match_time_weighted_annualisation() -> None:
    ts, rates = _sol_2022()
    ts = np.rint(ts / MS_PER_HOUR).astype(np.int64) * MS_PER_HOUR  # drop the few ms of jitter: exact hours
    as_of = int(ts[ts < 1668816000000][-1])  # last settlement before 2022-11-19 00:00 UTC
    stats = rank.window_stats(ts, rates, as_of_ts_ms=as_of, window_days=30)
    inside = (ts > as_of - 30 * MS_PER_DAY) & (ts <= as_of)
    # independent formulation: every hour of the last 30 days earns its settlement's rate / interval;
    # the mean APR is the mean hourly rate × 8760 (the funding paid over the window, annualised)
    hourly = _hourly_funding(ts, rates)
    window_hours = [v for end, v in hourly.items() if as_of - 30 * MS_PER_DAY < end <= as_of]
    assert len(window_hours) == 30 * 24
    assert stats is not None and stats.settlements == int(inside.sum())
    assert stats.covered_days == pytest.approx(30.0) and not stats.starts_inside
    assert stats.mean_apr == pytest.approx(float(np.mean(window_hours)) * 8760, rel=1e-9)
    assert stats.negative_share == pytest.approx(float(np.mean(rates[inside] < 0)))
    hours = infer_interval_hours(ts)[inside]
    assert set(np.unique(hours)) >= {2.0, 4.0, 8.0}  # the window really mixes intervals
    assert stats.mean_apr < 0 and stats.negative_share > 0.5  # the real market: shorts paid
    # a mean over settlements (not time) would weight the 2 h ones four times as much: a different number
    per_settlement = float(np.mean(annualize_simple(rates[inside], hours)))
    assert abs(per_settlement - stats.mean_apr) > 0.1


def test_window_stats_do_not_count_the_running_period_after_the_last_settlement() -> None:
    ts, rates = _sol_2022()
    ts = np.rint(ts / MS_PER_HOUR).astype(np.int64) * MS_PER_HOUR
    settled = int(ts[ts < 1668816000000][-1])
    at_settlement = rank.window_stats(ts, rates, as_of_ts_ms=settled, window_days=7)
    five_hours_later = rank.window_stats(ts, rates, as_of_ts_ms=settled + 5 * MS_PER_HOUR, window_days=7)
    assert at_settlement is not None and five_hours_later is not None
    # the window moved 5 h: those 5 h of the oldest settlement's period drop out, nothing else changes
    hourly = _hourly_funding(ts, rates)
    expected = [v for end, v in hourly.items() if settled + 5 * MS_PER_HOUR - 7 * MS_PER_DAY < end <= settled]
    assert five_hours_later.covered_days == pytest.approx(7 - 5 / 24)
    assert five_hours_later.mean_apr == pytest.approx(float(np.mean(expected)) * 8760, rel=1e-9)


def test_window_stats_cover_only_the_span_of_a_short_history() -> None:
    ts, rates = _sol_2022()
    as_of = int(ts[0]) + 5 * MS_PER_HOUR  # 5 h after the first settlement (an 8 h one)
    stats = rank.window_stats(ts[:1], rates[:1], as_of_ts_ms=as_of, window_days=7, interval_hours=8.0)
    # one 8 h settlement paid: 8 h covered, its own APR (the running period has not paid yet)
    assert stats is not None and stats.covered_days == pytest.approx(8 / 24) and stats.starts_inside
    assert stats.mean_apr == pytest.approx(float(annualize_simple(rates[0], 8.0)))
    alone = rank.window_stats(ts[:1], rates[:1], as_of_ts_ms=as_of, window_days=7)
    assert alone is not None and alone.mean_apr is None and alone.settlements == 1  # interval unknown


def test_window_stats_none_without_settlements_in_the_window() -> None:
    ts, rates = _sol_2022()
    assert rank.window_stats(ts, rates, as_of_ts_ms=int(ts[0]) - 1, window_days=7) is None


def test_window_with_missing_settlements_is_flagged() -> None:
    ts, rates = _sol_2022()
    keep = np.ones(ts.size, dtype=bool)
    keep[-6:-3] = False  # drop three 8 h settlements near the end: a 32 h gap inside the window
    stats = rank.window_stats(
        ts[keep], rates[keep], as_of_ts_ms=int(ts[-1]), window_days=30, interval_hours=8.0
    )
    assert stats is not None and stats.has_gaps


@given(
    rate=st.floats(min_value=-0.003, max_value=0.003, allow_nan=False),
    interval=st.sampled_from([1, 2, 4, 8]),
    window=st.sampled_from([7, 30]),
    into_period=st.floats(min_value=0.0, max_value=0.999),
)
def test_constant_rate_window_mean_equals_simple_apr(
    rate: float, interval: int, window: int, into_period: float
) -> None:
    settled = 1_700_000_000_000 - 1_700_000_000_000 % (8 * MS_PER_HOUR)
    as_of = settled + int(into_period * interval * MS_PER_HOUR)  # anywhere in the running period
    count = window * 24 // interval + 5  # more than the window
    ts = settled - np.arange(count)[::-1] * interval * MS_PER_HOUR
    stats = rank.window_stats(ts, np.full(count, rate), as_of_ts_ms=as_of, window_days=window)
    assert stats is not None and stats.settlements == window * 24 // interval
    assert stats.covered_days == pytest.approx(window - (as_of - settled) / MS_PER_DAY)
    assert stats.mean_apr == pytest.approx(float(annualize_simple(rate, interval)), rel=1e-9, abs=1e-15)
    assert stats.negative_share == (1.0 if rate < 0 else 0.0)


# --- score and ranking -----------------------------------------------------------------------------


@given(
    net=st.floats(min_value=-5, max_value=5, allow_nan=False),
    s1=st.floats(min_value=0, max_value=1),
    s2=st.floats(min_value=0, max_value=1),
)
def test_score_penalty_never_helps_and_grows_with_the_negative_share(
    net: float, s1: float, s2: float
) -> None:
    low, high = sorted((s1, s2))
    assert rank.penalised_score(net, low) <= net + 1e-12
    assert rank.penalised_score(net, high) <= rank.penalised_score(net, low) + 1e-12
    assert rank.penalised_score(net, None) == net


def _candidate(
    symbol: str, rate: float, volume: float | None, interval: float | None = 8.0
) -> rank.Candidate:
    quote = replace(
        BYBIT_BTC,
        perp_symbol=f"{symbol}/USDT:USDT",
        spot_symbol=f"{symbol}/USDT",
        base=symbol,
        rate_per_interval=rate,
        interval_hours=interval,
    )
    spot = (
        None
        if volume is None
        else LegTicker(
            symbol=f"{symbol}/USDT", last_price_usd=68650.75, quote_volume_24h_usd=volume, ts_ms=1730729903941
        )
    )
    return rank.build_candidate(
        quote,
        spot_ticker=spot,
        perp_ticker=BYBIT_PERP_TICKER,
        history=None,
        as_of_ts_ms=1730729903941,
        settings=rank.ScanSettings(),
    )


def test_ranking_orders_by_score_filters_and_cuts() -> None:
    cands = [
        _candidate("A", 0.0001, 5e6),
        _candidate("B", 0.0003, 2e6),
        _candidate("C", -0.0001, 9e9),
        _candidate("D", 0.0002, None),
        _candidate("E", 0.0009, 1e9, interval=None),
    ]
    ranked = rank.rank_candidates(cands, rank.ScanSettings(top=None))
    assert [c.base for c in ranked] == ["B", "D", "A", "C", "E"]  # unknown score (E) last
    assert [c.base for c in rank.rank_candidates(cands, rank.ScanSettings(top=2))] == ["B", "D"]
    # unknown volume (D) fails a volume filter; unknown APR (E) fails an APR filter
    kept = rank.rank_candidates(cands, rank.ScanSettings(top=None, min_volume_usd=3e6, min_apr=0.05))
    assert [c.base for c in kept] == ["A"]


def test_ranking_ties_are_deterministic() -> None:
    cands = [_candidate("B", 0.0001, 1e6), _candidate("A", 0.0001, 1e6)]
    assert [c.base for c in rank.rank_candidates(cands, rank.ScanSettings())] == ["A", "B"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fee_spot": 0.1}, "fee_spot"),
        ({"fee_perp": -0.0005}, "fee_perp"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"min_apr": 10.95 * 10}, "percent"),
        ({"min_apr": float("nan")}, "min_apr must be a finite number; it was nan"),
        ({"top": 0}, "top"),
        ({"min_volume_usd": -1}, "min_volume_usd"),
    ],
)
def test_settings_reject_bad_values_with_the_value(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        rank.ScanSettings(**kwargs)


def test_candidate_json_keys_are_the_documented_ones() -> None:
    keys = list(_candidate("A", 0.0001, 1e6).to_json())
    documented = (Path(__file__).resolve().parents[2] / "docs" / "scanner.md").read_text()
    missing = [k for k in keys if f"`{k}`" not in documented]
    assert not missing, f"candidate keys not documented in docs/scanner.md: {missing}"


@given(
    rates=st.lists(st.sampled_from(_sol_2022()[1].tolist()), min_size=1, max_size=40),
    volumes=st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=1e10)), min_size=40, max_size=40),
    top=st.one_of(st.none(), st.integers(min_value=1, max_value=50)),
    min_volume=st.sampled_from([0.0, 1e6]),
)
def test_ranking_is_sorted_filtered_and_cut(
    rates: list[float], volumes: list[float | None], top: int | None, min_volume: float
) -> None:
    # rates: real SOLUSDT settlements (tests/scan/fixtures)
    cands = [_candidate(f"X{i}", r, volumes[i]) for i, r in enumerate(rates)]
    settings = rank.ScanSettings(top=top, min_volume_usd=min_volume)
    ranked = rank.rank_candidates(cands, settings)
    scores = [c.score for c in ranked]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert all(rank.passes_filters(c, settings) for c in ranked)
    eligible = sum(rank.passes_filters(c, settings) for c in cands)
    assert len(ranked) == (eligible if top is None else min(top, eligible))


def test_ranking_and_option_checks_do_not_import_ccxt() -> None:
    import subprocess
    import sys

    code = (
        "import sys, perphedge.scan.rank, perphedge.scan.scanner; "
        "perphedge.scan.scanner.parse_exchange_list('binance,bybit'); "
        "sys.exit(1 if 'ccxt' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_settlement_stamped_a_few_ms_after_the_window_start_does_not_move_the_mean() -> None:
    # real SOLUSDT: the 2022-11-11 16:00 settlement is stamped 16:00:00.027 and paid −1.14 % for 14:00–16:00
    ts, rates = _sol_2022()
    as_of = int(ts[ts < 1668816000000][-1])  # 2022-11-18 16:00:00.000
    jittered = int(np.argmax(ts > as_of - 7 * MS_PER_DAY))
    assert 0 < ts[jittered] - (as_of - 7 * MS_PER_DAY) < 1000 and rates[jittered] == -0.01139731
    stats = rank.window_stats(ts, rates, as_of_ts_ms=as_of, window_days=7)
    # the jittered one, 2 h settlements from 11-11 18:00 to 11-18 08:00 (80), then the 8 h one at 16:00;
    # the jittered one weighs 27 ms: its −1.14 % (for 14:00–16:00, before the window) does not enter the mean
    assert stats is not None and stats.settlements == 82 and stats.covered_days == pytest.approx(7.0)
    hourly = _hourly_funding(np.rint(ts / MS_PER_HOUR).astype(np.int64) * MS_PER_HOUR, rates)
    expected = [v for end, v in hourly.items() if as_of - 7 * MS_PER_DAY < end <= as_of]
    assert len(expected) == 7 * 24
    assert stats.mean_apr == pytest.approx(float(np.mean(expected)) * 8760, rel=1e-6)
