"""The backtest loop: bars and funding settlements in time order, one strategy, every cash flow booked.

Semantics (docs/engine.md has the full text; tests pin each point down):

Each bar ``i`` (labelled by its open time, covering [open, close)):
1. **Open**: orders decided at the previous close fill at this bar's open, both legs at the same step
   (spot at ``spot_open``, perp at ``perp_open``), each with its taker fee and slippage (``fills``).
2. **Liquidation**: if the perp position's liquidation price (Binance formula,
   ``mechanics.liquidation.liquidation_price_linear``, bracket table in force that day) lies within the
   bar's adverse extreme of the mark price (``mark_high`` / ``mark_low`` when the data has mark OHLC,
   else ``perp_high`` / ``perp_low``), the perp is closed at the liquidation price (at the bar's open
   when it opened beyond it: ``common.liquidation_fill_price``), the clearance fee
   is charged (never more than the margin left), the spot stays unhedged and trading stops.
3. **Funding**: each settlement that belongs to this bar (settled in (open, close], with the data's
   few-ms jitter tolerated) pays ``−qty × mark × rate`` into the futures wallet, on the position open
   at that time, at the settlement's ``mark_price`` when the data has it, else this bar's perp close.
4. **Close**: borrow interest on borrowed coins; both legs marked to market (spot at ``spot_close``,
   perp at ``mark_close`` when known, else ``perp_close``); collateral policy; funding reinvestment;
   then the strategy decides, seeing only bars closed so far and settlements up to now.

The first decision is taken at the first bar's open (prices = opens, settlements up to then) and
fills at that open. Strategy inputs include history before ``config.start`` (warm-up); cash flows
only start at ``config.start``.

Modules: this one is the entry point (``run_backtest``, ``run_buy_and_hold``, ``resolve_brackets``);
``engine.common`` holds what both contracts share (market arrays, bracket cursor, the strategy's
decisions, result assembly), ``engine.linear`` the USDⓈ-M simulation and ``engine.inverse`` the COIN-M one.
"""

from __future__ import annotations

import datetime

from perphedge.data.schema import MarketData
from perphedge.engine.accounts import BracketSchedule, date_to_ts_ms
from perphedge.engine.common import TIMESERIES_COLUMNS, SpotOnly, prepare_arrays
from perphedge.engine.config import BacktestConfig
from perphedge.engine.inverse import check_inverse_config, simulate_inverse
from perphedge.engine.linear import WITHDRAW_MIN_FRACTION_OF_IM, simulate_linear
from perphedge.engine.results import BacktestResult
from perphedge.errors import UnknownSymbolError
from perphedge.mechanics.brackets import BracketTable
from perphedge.strategies.base import Strategy


def resolve_brackets(market: MarketData, config: BacktestConfig) -> BracketSchedule:
    """Return the bundled Binance bracket tables for the run, resolved once (no I/O in the loop).

    ``bracket_snapshot="in_force"``: each bundled snapshot that lists the symbol applies from its date
    to the next one; bars before the first such snapshot use it (said in the schedule's note). A
    symbol listed after 2022-02-12 (ARBUSDT, POLUSDT) is only in the later snapshots. ``"newest"``: the newest
    table throughout.

    Raises:
        UnknownSymbolError: the bundled snapshots have no table for the symbol (pass ``brackets=``).
    """
    from perphedge.data.brackets import bundled_bracket_table, bundled_snapshot_dates

    dates = bundled_snapshot_dates()
    if config.bracket_snapshot == "newest":
        table = bundled_bracket_table(market.symbol, dates[-1])
        return BracketSchedule.single(
            table, note=f"newest bundled Binance bracket snapshot ({dates[-1]}) throughout"
        )
    # a symbol listed after the first snapshot is only in the later ones: use those that list it
    listed: list[tuple[datetime.date, BracketTable]] = []
    for day in dates:
        try:
            listed.append((day, bundled_bracket_table(market.symbol, day)))
        except UnknownSymbolError:
            continue
    if not listed:
        bundled_bracket_table(market.symbol, dates[-1])  # raises the precise error (close matches, the fix)
    starts = [date_to_ts_ms(day) for day, _ in listed]
    starts[0] = -(2**62)
    first = listed[0][0]
    why = (
        "no older one is bundled" if first == dates[0] else f"the older snapshots do not list {market.symbol}"
    )
    return BracketSchedule(
        start_ts_ms=tuple(starts),
        tables=tuple(table for _, table in listed),
        note=(
            f"bundled Binance bracket snapshots in force at each date ({', '.join(d.isoformat() for d, _ in listed)}); "
            f"bars before {first} use the {first} snapshot ({why})"
        ),
    )


def run_backtest(
    market: MarketData,
    strategy: Strategy,
    config: BacktestConfig,
    *,
    brackets: BracketSchedule | None = None,
) -> BacktestResult:
    """Run ``strategy`` over ``market`` with ``config``; return the time series, ledger, events and attribution.

    ``brackets`` overrides the bundled Binance bracket tables (e.g. a one-bracket table for a symbol
    the bundle lacks, or a user's own MMR).

    ``contract="inverse"`` simulates the coin-margined hedge (see ``engine.inverse.simulate_inverse``); it needs
    ``brackets`` in coin notional (``data.brackets.bundled_coinm_bracket_table`` has Binance's BTCUSD).

    Raises:
        ConfigError: an unsupported setting, or a leverage above what the symbol's bracket allows.
        DataError: bars or settlements that cannot be simulated (missing prices, a settlement in a gap).
        UnknownSymbolError: no bundled bracket table for the symbol and no ``brackets`` given.
    """
    if config.contract == "inverse":
        check_inverse_config(strategy, config, brackets)
        assert brackets is not None
        return simulate_inverse(market, prepare_arrays(market, config), strategy, config, brackets)
    arrays = prepare_arrays(market, config)
    schedule = brackets if brackets is not None else resolve_brackets(market, config)
    return simulate_linear(market, arrays, strategy, config, schedule, all_spot=False)


def run_buy_and_hold(
    market: MarketData, config: BacktestConfig, *, brackets: BracketSchedule | None = None
) -> BacktestResult:
    """Return the unhedged benchmark: the whole capital (plus any reserve) in spot, bought at the first open.

    Same fees, slippage, window and ledger as ``run_backtest``; no perp, so no brackets are needed.
    """
    arrays = prepare_arrays(market, config)
    schedule = brackets or BracketSchedule.single(BracketTable.single(market.symbol, 0.0), note="no perp leg")
    return simulate_linear(market, arrays, SpotOnly(), config, schedule, all_spot=True)


__all__ = [
    "TIMESERIES_COLUMNS",
    "WITHDRAW_MIN_FRACTION_OF_IM",
    "BacktestConfig",
    "BracketSchedule",
    "resolve_brackets",
    "run_backtest",
    "run_buy_and_hold",
]
