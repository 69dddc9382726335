"""Time the scanner's ranking over a few thousand candidates (target: < 100 ms once fetched).

The candidates are a REPLICATION OF REAL RECORDS, not invented data:
- the quotes are the normalised snapshots parsed by real ccxt objects from recorded responses
  (bybit's recorded BTCUSDT tickers, binance's premiumIndex sample, mexc's funding-rate sample;
  tests/fixtures/ccxt, MIT), copied under distinct symbol names;
- each copy's funding rate is one of the 201 real Binance SOLUSDT settlements of 2022-10-15..11-25
  (tests/scan/fixtures, MIT), cycled, so the ranking sorts real, varied values;
- with history, each copy gets that real 30-day SOLUSDT settlement history (8 h, 4 h and 2 h intervals).

Prints the median and min of repeated runs; the machine is the project's 2-core box.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kit.ccxt_replay import fixture_body, replay_exchange_async  # noqa: E402

from perphedge.scan.rank import ScanSettings, build_candidates, rank_candidates  # noqa: E402
from perphedge.scan.scanner import _interval_unknown, _rebuild  # noqa: E402
from perphedge.venues import funding_snapshot as fs  # noqa: E402

REPEATS = 15
SIZES = (1_000, 3_000, 5_000)


async def _recorded_snapshots() -> list[fs.ExchangeSnapshot]:
    import ccxt

    def bybit(url: str, method: str, body: object) -> object:
        if "category=linear" in url:  # the recorded linear tickers answer; no spot body was recorded
            return fixture_body("bybit", "static_response", "fetchFundingRates")
        raise ccxt.ExchangeNotAvailable("no recorded bybit spot body")

    funding_info = json.loads(
        (ROOT / "tests/scan/fixtures/binance_fundingInfo_source_comment.json").read_text()
    )
    routes = {
        "bybit": {"/v5/market/tickers": bybit},
        "binance": {
            "/fapi/v1/premiumIndex": fixture_body("binance", "source_comment", "fetchFundingRates"),
            "/fapi/v1/fundingInfo": funding_info["httpResponse"],
            "/api/v3/ticker/24hr": fixture_body("binance", "static_response", "fetchTicker"),
            "/fapi/v1/ticker/24hr": ccxt.ExchangeNotAvailable("no recorded BTCUSDT perp ticker"),
        },
    }
    out = []
    for exchange_id, exchange_routes in routes.items():
        ex = replay_exchange_async(exchange_id, exchange_routes)
        try:
            out.append(await fs.fetch_exchange_snapshot(ex, retry_attempts=1))
        finally:
            await ex.close()
    return out


def _replicate(
    snapshots: list[fs.ExchangeSnapshot], total: int, rates: list[float]
) -> list[fs.ExchangeSnapshot]:
    """Copy the recorded quotes under distinct names until there are ``total`` pairs."""
    per_exchange = total // len(snapshots)
    out = []
    for snap in snapshots:
        base_quote = snap.quotes[0]
        quotes, spot, perp = [], {}, {}
        for i in range(per_exchange):
            perp_symbol, spot_symbol = f"R{i}/USDT:USDT", f"R{i}/USDT"
            quotes.append(
                replace(
                    base_quote,
                    perp_symbol=perp_symbol,
                    spot_symbol=spot_symbol,
                    base=f"R{i}",
                    rate_per_interval=rates[i % len(rates)],
                )
            )
            if base_quote.spot_symbol in snap.spot_tickers:
                spot[spot_symbol] = replace(snap.spot_tickers[base_quote.spot_symbol], symbol=spot_symbol)
            if base_quote.perp_symbol in snap.perp_tickers:
                perp[perp_symbol] = replace(snap.perp_tickers[base_quote.perp_symbol], symbol=perp_symbol)
        out.append(replace(snap, quotes=tuple(quotes), spot_tickers=spot, perp_tickers=perp))
    return out


def _scan_pipeline(
    snapshots: list[fs.ExchangeSnapshot], settings: ScanSettings, history: fs.FundingHistory
) -> list[object]:
    """The pure steps of ``scan(history=True)`` once everything is fetched (history_limit 30)."""
    first = build_candidates(snapshots, settings)
    chosen = [c for c in rank_candidates(first, replace(settings, top=30)) if c.score is not None]
    chosen += [c for c in _interval_unknown(first, settings, 30) if c not in chosen]
    histories = {(c.exchange, c.perp_symbol): replace(history, perp_symbol=c.perp_symbol) for c in chosen}
    return rank_candidates(_rebuild(first, snapshots, settings, histories, chosen), settings)  # type: ignore[return-value]


def _time(fn, repeats: int = REPEATS) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1e3, min(runs) * 1e3


def main() -> None:
    doc = json.loads(
        (ROOT / "tests/scan/fixtures/binance_SOLUSDT_funding_2022-10-15_2022-11-25.json").read_text()
    )
    rows = doc["rows"]
    rates = [r for _, r in rows]
    recorded = asyncio.run(_recorded_snapshots())
    settings = ScanSettings(top=20, min_volume_usd=0.0)
    print(f"bench_scan: ranking replicated real records; {REPEATS} runs, median / min, ms")
    print(
        f"{'pairs':>6} {'build+rank':>14} {'rank only':>14} {'scan pipeline, --history':>26} "
        f"{'+ history for every pair':>26}"
    )
    for size in SIZES:
        snapshots = _replicate(recorded, size, rates)
        as_of = rows[-1][0]
        history = fs.FundingHistory(
            perp_symbol="",
            settle_ts_ms=tuple(int(t) for t, _ in rows),
            rates=tuple(rates),
            since_ms=as_of - 30 * 86_400_000,
        )
        histories = {
            (s.exchange_id, q.perp_symbol): replace(history, perp_symbol=q.perp_symbol)
            for s in snapshots
            for q in s.quotes
        }
        snapshots_at = [replace(s, recorded_ts_ms=as_of) for s in snapshots]
        built = build_candidates(snapshots, settings)
        assert len(built) == size - size % len(recorded)
        full = _time(lambda s=snapshots: rank_candidates(build_candidates(s, settings), settings))
        with_default = _time(lambda s=snapshots_at, h=history: _scan_pipeline(s, settings, h))
        only = _time(lambda b=built: rank_candidates(b, settings))
        with_history = _time(
            lambda s=snapshots_at, h=histories: rank_candidates(build_candidates(s, settings, h), settings),
            repeats=5,
        )
        print(
            f"{len(built):>6} {full[0]:>7.1f} / {full[1]:<5.1f} {only[0]:>7.2f} / {only[1]:<5.2f} "
            f"{with_default[0]:>12.1f} / {with_default[1]:<11.1f} {with_history[0]:>12.1f} / {with_history[1]:<5.1f}"
        )


if __name__ == "__main__":
    main()
