"""The backtest loop: bars and funding settlements in time order, one strategy, every cash flow booked.

Semantics (docs/engine.md has the full text; tests pin each point down):

Each bar ``i`` (labelled by its open time, covering [open, close)):
1. **Open**: orders decided at the previous close fill at this bar's open, both legs at the same step
   (spot at ``spot_open``, perp at ``perp_open``), each with its taker fee and slippage (``fills``).
2. **Liquidation**: if the perp position's liquidation price (Binance formula,
   ``mechanics.liquidation.liquidation_price_linear``, bracket table in force that day) lies within the
   bar's adverse extreme of the mark price (``mark_high`` / ``mark_low`` when the data has mark OHLC,
   else ``perp_high`` / ``perp_low``), the perp is closed at the liquidation price, the clearance fee
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
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from perphedge.data.schema import MarketData
from perphedge.engine.accounts import BracketSchedule, apply_perp_fill, date_to_ts_ms, split_capital
from perphedge.engine.config import BacktestConfig
from perphedge.engine.fills import execute
from perphedge.engine.ledger import LedgerBuilder, attribution_from_ledger, price_pnl_rows
from perphedge.engine.orders import mode_of, orders_for
from perphedge.engine.results import BacktestEvent, BacktestResult
from perphedge.errors import ConfigError, DataError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.funding import SETTLEMENT_JITTER_TOLERANCE_MS
from perphedge.mechanics.liquidation import liquidation_price_linear
from perphedge.strategies.base import (
    HedgeMode,
    HedgeState,
    MarketView,
    Strategy,
    StrategyMemory,
    TargetHedge,
)
from perphedge.units import MS_PER_DAY

TIMESERIES_COLUMNS: tuple[str, ...] = (
    "equity_usd",
    "spot_value_usd",
    "perp_value_usd",
    "cash_usd",
    "net_exposure_base",
    "net_exposure_pct",
    "hedge_ratio",
    "margin_ratio",
    "liquidation_distance_pct",
    "cumulative_funding_usd",
    "basis_fraction",
    "spot_close",
    "perp_close",
    "mark_close",
    "buy_and_hold_equity_usd",
)

WITHDRAW_MIN_FRACTION_OF_IM = 0.01
"""``withdraw_excess`` moves margin above the initial margin only when it exceeds 1 % of it (no dust rows)."""

_PRICE_COLUMNS = ("spot_open", "spot_close", "perp_open", "perp_high", "perp_low", "perp_close")

# How often a strategy needs to be asked (an optional attribute ``decides_on`` of a strategy):
# "start" = once (static targets), "settlement" = when a new settlement is known, "bar" = every close.
_DECIDES_ON_DEFAULT = "bar"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Arrays:
    """The market as plain numpy arrays (full history) and the window ``[i0, i1)`` that is simulated."""

    open_ts: np.ndarray
    close_ts: np.ndarray
    spot_open: np.ndarray
    spot_close: np.ndarray
    perp_open: np.ndarray
    perp_close: np.ndarray
    mark_value: np.ndarray  # mark_close, else perp_close
    adverse_high: np.ndarray  # mark_high, else perp_high
    adverse_low: np.ndarray
    i0: int
    i1: int
    funding_ts: np.ndarray
    funding_rate: np.ndarray
    funding_interval_hours: np.ndarray
    funding_mark: np.ndarray
    funding_bar: np.ndarray  # the bar each settlement is paid in (outside [i0, i1) = not paid)
    funding_in_gap: np.ndarray  # bool: settled in a gap of missing bars, paid before that bar's fills
    gaps: int  # number of gaps between consecutive bars in the window
    liquidation_price_source: str
    valuation_source: str


def _prepare(market: MarketData, config: BacktestConfig) -> _Arrays:
    bars = market.bars
    missing = [c for c in (*_PRICE_COLUMNS, "mark_close", "spot_high", "spot_low") if c not in bars.columns]
    if missing:
        raise DataError(
            f"bars lack column(s) {', '.join(missing)}; load data through perphedge.data", where=market.symbol
        )
    open_ts = bars.index.as_unit("ms").asi8.astype(np.int64)
    n = open_ts.size
    i0 = (
        0
        if config.start is None
        else int(np.searchsorted(open_ts, config.start.value // 1_000_000, side="left"))
    )
    i1 = (
        n if config.end is None else int(np.searchsorted(open_ts, config.end.value // 1_000_000, side="left"))
    )
    if i1 - i0 < 1:
        raise DataError(
            f"no bars open between start {config.start} and end {config.end}; the data covers "
            f"{bars.index[0] if n else 'nothing'} to {bars.index[-1] if n else 'nothing'}",
            where=market.symbol,
        )
    arrays = {c: bars[c].to_numpy(dtype=float) for c in (*_PRICE_COLUMNS, "mark_close")}
    for c in _PRICE_COLUMNS:
        window = arrays[c][i0:i1]
        bad = ~(np.isfinite(window) & (window > 0))
        if bad.any():
            j = int(np.argmax(bad)) + i0
            raise DataError(
                f"{c} was {float(arrays[c][j])!r} at {bars.index[j]}; prices must be positive numbers; "
                "repair or re-fetch the data (perphedge data fetch)",
                where=market.symbol,
            )
    mark_close = arrays["mark_close"]
    mark_value = np.where(np.isfinite(mark_close) & (mark_close > 0), mark_close, arrays["perp_close"])
    if market.has_mark_ohlc:
        mh = bars["mark_high"].to_numpy(dtype=float)
        ml = bars["mark_low"].to_numpy(dtype=float)
        adverse_high = np.where(np.isfinite(mh), mh, bars["perp_high"].to_numpy(dtype=float))
        adverse_low = np.where(np.isfinite(ml), ml, bars["perp_low"].to_numpy(dtype=float))
        liq_source = "mark_high/mark_low (perp_high/perp_low where the mark is missing)"
    else:
        adverse_high = arrays["perp_high"]
        adverse_low = arrays["perp_low"]
        liq_source = "perp_high/perp_low (the data has no mark OHLC)"
    n_mark = int(np.isfinite(mark_close[i0:i1]).sum())
    valuation = (
        "mark_close"
        if n_mark == i1 - i0
        else f"mark_close where known ({n_mark} of {i1 - i0} bars), else perp_close"
    )
    close_ts = open_ts + market.timeframe_ms

    funding = market.funding
    f_ts = funding.index.as_unit("ms").asi8.astype(np.int64)
    f_rate = funding["rate_per_interval"].to_numpy(dtype=float)
    f_int = funding["interval_hours"].to_numpy(dtype=float)
    f_mark = (
        funding["mark_price"].to_numpy(dtype=float) if "mark_price" in funding else np.full(f_ts.size, np.nan)
    )
    shifted = f_ts - SETTLEMENT_JITTER_TOLERANCE_MS
    # the bar a settlement is paid in: the first bar whose close is at or after it (jitter tolerated);
    # a settlement inside a gap of missing bars is paid at the next bar's open, before its fills
    f_bar = np.searchsorted(close_ts, shifted, side="left")
    f_bar = np.where((f_bar == i0) & (shifted < open_ts[min(i0, n - 1)]), i0 - 1, f_bar)  # before the window
    inside = (f_bar >= i0) & (f_bar < i1)
    in_gap = inside & (shifted < open_ts[np.clip(f_bar, 0, n - 1)])
    bad_rate = inside & ~np.isfinite(f_rate)
    if bad_rate.any():
        k = int(np.argmax(bad_rate))
        raise DataError(
            f"rate_per_interval was {f_rate[k]!r} at {funding.index[k]}; every settlement needs a rate",
            where=market.symbol,
        )
    no_mark_in_gap = in_gap & ~(f_mark > 0)
    if no_mark_in_gap.any():
        k = int(np.argmax(no_mark_in_gap))
        raise DataError(
            f"the settlement at {funding.index[k]} falls in a gap between bars and has no mark_price, so its "
            "notional is unknown; fill the bar gap (perphedge data fetch) before backtesting",
            where=market.symbol,
        )
    gap_bars = int(np.count_nonzero(np.diff(open_ts[i0:i1]) != market.timeframe_ms))
    return _Arrays(
        open_ts=open_ts,
        close_ts=close_ts,
        spot_open=arrays["spot_open"],
        spot_close=arrays["spot_close"],
        perp_open=arrays["perp_open"],
        perp_close=arrays["perp_close"],
        mark_value=mark_value,
        adverse_high=adverse_high,
        adverse_low=adverse_low,
        i0=i0,
        i1=i1,
        funding_ts=f_ts,
        funding_rate=f_rate,
        funding_interval_hours=f_int,
        funding_mark=f_mark,
        funding_bar=f_bar,
        funding_in_gap=in_gap,
        gaps=gap_bars,
        liquidation_price_source=liq_source,
        valuation_source=valuation,
    )


def resolve_brackets(market: MarketData, config: BacktestConfig) -> BracketSchedule:
    """Return the bundled Binance bracket tables for the run, resolved once (no I/O in the loop).

    ``bracket_snapshot="in_force"``: each bundled snapshot applies from its date to the next one; bars
    before the first snapshot use the earliest (said in the schedule's note). ``"newest"``: the newest
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
    tables = tuple(bundled_bracket_table(market.symbol, d) for d in dates)
    starts = [date_to_ts_ms(d) for d in dates]
    starts[0] = -(2**62)
    return BracketSchedule(
        start_ts_ms=tuple(starts),
        tables=tables,
        note=(
            f"bundled Binance bracket snapshots in force at each date ({', '.join(d.isoformat() for d in dates)}); "
            f"bars before {dates[0]} use the {dates[0]} snapshot (no older one is bundled)"
        ),
    )


class _Brackets:
    """The bracket in force for the current notional, looked up only when the notional leaves it."""

    __slots__ = ("table", "floor", "cap", "mmr", "cum")

    def __init__(self, table: BracketTable) -> None:
        self.table = table
        self.floor = 1.0
        self.cap = 0.0  # empty range: the first call looks up
        self.mmr = 0.0
        self.cum = 0.0

    def maintenance_margin(self, notional_usd: float) -> float:
        if not self.floor <= notional_usd < self.cap:
            b = self.table.for_notional(notional_usd)
            self.floor, self.cap, self.mmr, self.cum = b.floor_usd, b.cap_usd, b.mmr, b.maintenance_amount_usd
        return notional_usd * self.mmr - self.cum


@dataclass(frozen=True, slots=True, kw_only=True)
class _SpotOnly:
    """The benchmark: hold the spot, never hedge (used by ``run_buy_and_hold``)."""

    name: str = "buy-and-hold"
    decides_on: str = "start"

    def initial_memory(self) -> StrategyMemory:
        return StrategyMemory()

    def decide(
        self, view: MarketView, state: HedgeState, memory: StrategyMemory
    ) -> tuple[TargetHedge, StrategyMemory]:
        return TargetHedge(
            spot_fraction=1.0, perp_fraction=0.0, mode=HedgeMode.UNHEDGED, reason="buy and hold"
        ), memory


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

    ``contract="inverse"`` simulates the coin-margined hedge (see ``_simulate_inverse``); it needs
    ``brackets`` in coin notional (COIN-M tables are not bundled).

    Raises:
        ConfigError: an unsupported setting, or a leverage above what the symbol's bracket allows.
        DataError: bars or settlements that cannot be simulated (missing prices, a settlement in a gap).
        UnknownSymbolError: no bundled bracket table for the symbol and no ``brackets`` given.
    """
    if config.contract == "inverse":
        _check_inverse_config(strategy, config, brackets)
        assert brackets is not None
        return _simulate_inverse(market, _prepare(market, config), strategy, config, brackets)
    arrays = _prepare(market, config)
    schedule = brackets if brackets is not None else resolve_brackets(market, config)
    return _simulate(market, arrays, strategy, config, schedule, all_spot=False)


def run_buy_and_hold(
    market: MarketData, config: BacktestConfig, *, brackets: BracketSchedule | None = None
) -> BacktestResult:
    """Return the unhedged benchmark: the whole capital (plus any reserve) in spot, bought at the first open.

    Same fees, slippage, window and ledger as ``run_backtest``; no perp, so no brackets are needed.
    """
    arrays = _prepare(market, config)
    schedule = brackets or BracketSchedule.single(BracketTable.single(market.symbol, 0.0), note="no perp leg")
    return _simulate(market, arrays, _SpotOnly(), config, schedule, all_spot=True)


def _borrow_rates_per_bar(config: BacktestConfig, bar_open_ts: np.ndarray, symbol: str) -> list[float]:
    """Return the borrow rate per day in force at each bar's open: the series' last value at or before it."""
    series = config.borrow_rate_series
    if series is None:
        return [config.borrow_rate_per_day] * bar_open_ts.size
    series_ms = series.index.as_unit("ms").asi8
    position = np.searchsorted(series_ms, bar_open_ts, side="right") - 1
    if position[0] < 0:
        raise DataError(
            f"borrow_rate_series starts at {series.index[0]} but the first bar opens at "
            f"{pd.Timestamp(int(bar_open_ts[0]), unit='ms', tz='UTC')}; give rates from the start of the run "
            "(the engine does not guess earlier rates)",
            where=symbol,
        )
    return series.to_numpy(dtype=float)[position].tolist()


def _strategy_settings(strategy: Strategy) -> dict[str, Any]:
    if dataclasses.is_dataclass(strategy):
        return {f.name: getattr(strategy, f.name) for f in dataclasses.fields(strategy)}
    return {"name": strategy.name}


def _simulate(
    market: MarketData,
    a: _Arrays,
    strategy: Strategy,
    config: BacktestConfig,
    schedule: BracketSchedule,
    *,
    all_spot: bool,
) -> BacktestResult:
    i0, i1 = a.i0, a.i1
    n_win = i1 - i0
    open_ts, close_ts = a.open_ts, a.close_ts
    # numpy arrays for the strategy's views; plain lists of Python floats for the per-bar arithmetic
    sc_array, f_ts, f_rate_array, f_int = a.spot_close, a.funding_ts, a.funding_rate, a.funding_interval_hours
    tol = SETTLEMENT_JITTER_TOLERANCE_MS
    bar_days = (close_ts[0] - open_ts[0]) / MS_PER_DAY
    known_at_close = np.searchsorted(f_ts, close_ts + tol, side="right").tolist()
    so, sc, po, pc, mk = (
        x.tolist() for x in (a.spot_open, a.spot_close, a.perp_open, a.perp_close, a.mark_value)
    )
    adv_hi, adv_lo = a.adverse_high.tolist(), a.adverse_low.tolist()
    f_rate, f_mark, f_bar, f_gap = (
        x.tolist() for x in (a.funding_rate, a.funding_mark, a.funding_bar, a.funding_in_gap)
    )
    f_ts_list = f_ts.tolist()
    open_ms_list, close_ms_list = open_ts.tolist(), close_ts.tolist()

    fee_spot, fee_perp, slip = config.fee_spot, config.fee_perp, config.slippage_bps
    leverage = config.leverage
    cross = config.margin_mode == "cross"
    borrow_rates = _borrow_rates_per_bar(config, open_ts[i0:i1], market.symbol)
    policy = config.collateral_policy
    ledger = LedgerBuilder()
    events: list[BacktestEvent] = []

    def ts_of(ms: int) -> pd.Timestamp:
        return pd.Timestamp(int(ms), unit="ms", tz="UTC")

    # --- bracket tables per bar (resolved before the loop) ---
    table_starts = np.asarray(schedule.start_ts_ms, dtype=np.int64)
    table_of_bar = np.clip(
        np.searchsorted(table_starts, open_ts[i0:i1], side="right") - 1, 0, len(schedule.tables) - 1
    )
    brackets_now = _Brackets(schedule.tables[int(table_of_bar[0])])
    table_index = int(table_of_bar[0])

    # --- starting balances ---
    t0 = int(open_ts[i0])
    reserve = config.reserve_usd
    spot_qty = 0.0
    perp_qty = 0.0
    entry = 0.0
    if config.spot_qty_base is not None and not all_spot:
        # coins already held; the collateral (and any reserve) arrive as USD in the spot wallet
        base_qty = config.spot_qty_base
        spot_qty = base_qty
        collateral = float(config.collateral)  # type: ignore[arg-type]
        initial_equity = base_qty * so[i0] + collateral + reserve
        cash = collateral + reserve
    else:
        capital = config.capital_usd
        if all_spot and config.spot_qty_base is not None:
            capital = config.spot_qty_base * so[i0] + float(config.collateral)  # type: ignore[arg-type]
        initial_equity = capital + reserve
        cash = initial_equity
        if all_spot:
            spot_budget, collateral = capital, 0.0
        else:
            split = split_capital(capital, leverage)
            spot_budget, collateral = split.spot_budget_usd, split.collateral_usd
        # the spot budget pays for the coins, the entry slippage and the entry fee
        base_qty = spot_budget / (so[i0] * (1.0 + slip / 10_000.0) * (1.0 + fee_spot))
    wallet_deposit = collateral + (reserve if cross else 0.0)
    wallet = 0.0
    if wallet_deposit > 0:
        cash -= wallet_deposit
        wallet = wallet_deposit
        ledger.add(
            t0,
            "transfer",
            "spot",
            "transfer",
            -wallet_deposit,
            note="spot wallet → futures wallet (collateral)",
        )
        ledger.add(
            t0,
            "transfer",
            "perp",
            "transfer",
            wallet_deposit,
            note="spot wallet → futures wallet (collateral)",
        )
    reserve_left = reserve if (policy == "reserve" and not cross) else 0.0
    # --- leverage allowed by the bracket of the starting notional ---
    if not all_spot:
        start_notional = base_qty * po[i0]
        allowed = schedule.tables[table_index].for_notional(start_notional).max_leverage
        if leverage > allowed:
            raise ConfigError(
                f"leverage was {leverage:g} but {market.symbol} allows at most {allowed:g}x for a notional of "
                f"{start_notional:,.2f} (bracket table in force at {ts_of(t0).date()}); lower --leverage",
                key_path="leverage",
            )

    # --- per-bar output arrays ---
    eq_arr = [0.0] * n_win
    spot_val_arr = [0.0] * n_win
    perp_val_arr = [0.0] * n_win
    cash_arr = [0.0] * n_win
    net_arr = [0.0] * n_win
    netpct_arr = [0.0] * n_win
    hr_arr = [0.0] * n_win
    mr_arr = [math.nan] * n_win
    ld_arr = [math.nan] * n_win
    cumf_arr = [0.0] * n_win
    spot_pnl_bar = [0.0] * n_win
    perp_pnl_bar = [0.0] * n_win

    decides_on = getattr(strategy, "decides_on", _DECIDES_ON_DEFAULT)
    memory = strategy.initial_memory()
    last_mode: HedgeMode | None = None
    last_target: TargetHedge | None = None
    known_settlements = -1
    trades = 0
    switches = 0
    liquidations = 0
    cum_funding = 0.0
    frozen = False
    lp: float | None = None
    lp_dirty = True
    last_spot_px = so[i0]
    last_perp_px = po[i0]
    pend_spot = 0.0
    pend_perp = 0.0
    pend_shrink_value = 0.0  # sell_spot policy: value of spot sold to move into the futures wallet
    holdings_changed = True

    def decide(
        i_view_end: int,
        ts_ms: int,
        k: int,
        sp: float,
        pp: float,
        mp: float,
        margin_ratio: float = math.nan,
        liquidation_distance: float = math.nan,
    ) -> None:
        """Ask the strategy: the view holds bars before ``i_view_end`` and the first ``k`` settlements."""
        nonlocal \
            memory, \
            last_mode, \
            last_target, \
            known_settlements, \
            switches, \
            pend_spot, \
            pend_perp, \
            holdings_changed
        ask = (
            last_target is None
            or decides_on == "bar"
            or (decides_on == "settlement" and k != known_settlements)
        )
        known_settlements = k
        spot_frac, perp_frac = spot_qty / base_qty, perp_qty / base_qty
        if ask:
            view = MarketView(
                ts_ms=ts_ms,
                spot_price_usd=sp,
                perp_price_usd=pp,
                mark_price_usd=mp,
                funding_settle_ts_ms=f_ts[:k],
                funding_rates=f_rate_array[:k],
                funding_interval_hours=f_int[:k],
                close_prices=sc_array[:i_view_end],
            )
            state = HedgeState(
                spot_fraction=spot_frac,
                perp_fraction=perp_frac,
                mode=mode_of(spot_frac, perp_frac),
                margin_ratio=None if math.isnan(margin_ratio) else margin_ratio,
                liquidation_distance=None if math.isnan(liquidation_distance) else liquidation_distance,
            )
            target, memory = strategy.decide(view, state, memory)
            if target is not last_target:
                if last_mode is not None and target.mode != last_mode:
                    switches += 1
                    events.append(
                        BacktestEvent(
                            ts=ts_of(ts_ms),
                            kind="switch",
                            detail=f"{last_mode.value} → {target.mode.value}: {target.reason}",
                        )
                    )
                elif last_mode is None:
                    events.append(
                        BacktestEvent(
                            ts=ts_of(ts_ms), kind="open", detail=f"{target.mode.value}: {target.reason}"
                        )
                    )
                last_mode = target.mode
                last_target = target
                holdings_changed = True
        if holdings_changed and last_target is not None:
            state = HedgeState(
                spot_fraction=spot_frac, perp_fraction=perp_frac, mode=mode_of(spot_frac, perp_frac)
            )
            orders = orders_for(last_target, state, base_qty)
            pend_spot, pend_perp = orders.spot_delta_base, orders.perp_delta_base
            holdings_changed = False

    # first decision at the first bar's open
    decide(i0, t0, int(np.searchsorted(f_ts, t0 + tol, side="right")), so[i0], po[i0], po[i0])

    fp = int(np.searchsorted(f_bar, i0, side="left"))  # first settlement paid in the window (f_bar is sorted)
    nf = len(f_ts_list)
    table_list = table_of_bar.tolist()

    for w in range(n_win):
        i = i0 + w
        bar_open_ms = open_ms_list[i]
        if table_list[w] != table_index:
            table_index = table_list[w]
            brackets_now = _Brackets(schedule.tables[table_index])
            lp_dirty = True
        # 0. settlements that fell in a gap of missing bars before this bar: paid on the position then
        while fp < nf and f_bar[fp] == i and f_gap[fp]:
            if perp_qty != 0.0:
                cash_flow = -perp_qty * f_mark[fp] * f_rate[fp]
                wallet += cash_flow
                cum_funding += cash_flow
                ledger.add(
                    f_ts_list[fp],
                    "funding",
                    "perp",
                    "funding",
                    cash_flow,
                    perp_qty,
                    f_mark[fp],
                    f"rate {f_rate[fp]:.8f} (settled during a gap in the bars)",
                )
                lp_dirty = True
            fp += 1
        # 1. fills at the open
        if pend_spot != 0.0 or pend_perp != 0.0:
            spot_pnl_bar[w] += spot_qty * (so[i] - last_spot_px)
            perp_pnl_bar[w] += perp_qty * (po[i] - last_perp_px)
            last_spot_px = so[i]
            last_perp_px = po[i]
            if pend_spot != 0.0:
                f = execute(pend_spot, so[i], fee_rate=fee_spot, slippage_bps=slip)
                cash -= pend_spot * so[i] + f.slippage_usd + f.fee_usd
                spot_qty += pend_spot
                ledger.add(
                    bar_open_ms,
                    "trade",
                    "spot",
                    "spot_pnl",
                    0.0,
                    pend_spot,
                    so[i],
                    "buy" if pend_spot > 0 else "sell",
                )
                ledger.add(bar_open_ms, "fee", "spot", "fees", -f.fee_usd, pend_spot, f.fill_price_usd)
                if f.slippage_usd:
                    ledger.add(
                        bar_open_ms,
                        "slippage",
                        "spot",
                        "slippage",
                        -f.slippage_usd,
                        pend_spot,
                        f.fill_price_usd,
                    )
                trades += 1
            if pend_perp != 0.0:
                f = execute(pend_perp, po[i], fee_rate=fee_perp, slippage_bps=slip)
                qty_before = perp_qty
                position = apply_perp_fill(perp_qty, entry, pend_perp, po[i])
                wallet += position.realized_pnl_usd - f.slippage_usd - f.fee_usd
                perp_qty, entry = position.qty_base, position.entry_price_usd
                ledger.add(
                    bar_open_ms,
                    "trade",
                    "perp",
                    "perp_pnl",
                    0.0,
                    pend_perp,
                    po[i],
                    "buy" if pend_perp > 0 else "sell",
                )
                ledger.add(bar_open_ms, "fee", "perp", "fees", -f.fee_usd, pend_perp, f.fill_price_usd)
                if f.slippage_usd:
                    ledger.add(
                        bar_open_ms,
                        "slippage",
                        "perp",
                        "slippage",
                        -f.slippage_usd,
                        pend_perp,
                        f.fill_price_usd,
                    )
                trades += 1
                lp_dirty = True
                if perp_qty != 0.0 and abs(perp_qty) > abs(qty_before):
                    # an increase needs its initial margin from the available balance (Binance: IM = notional / L)
                    added_margin = (
                        (abs(perp_qty) - abs(qty_before) if perp_qty * qty_before > 0 else abs(perp_qty))
                        * po[i]
                        / leverage
                    )
                    kept_margin = abs(qty_before) * po[i] / leverage if perp_qty * qty_before > 0 else 0.0
                    # checked before this fill's fee and slippage are taken, as the exchange checks the order
                    available = wallet + f.fee_usd + f.slippage_usd + perp_qty * (po[i] - entry) - kept_margin
                    if added_margin > available * (1.0 + 1e-9):
                        events.append(
                            BacktestEvent(
                                ts=ts_of(bar_open_ms),
                                kind="margin_call",
                                detail=(
                                    f"the order needed {added_margin:,.2f} USD initial margin at {leverage:g}x but only "
                                    f"{available:,.2f} USD was available; it was filled anyway (the engine does not "
                                    "refuse orders): add collateral or lower the leverage"
                                ),
                            )
                        )
            if pend_shrink_value > 0.0:
                amount = min(pend_shrink_value, max(cash, 0.0))
                if amount > 0.0:
                    cash -= amount
                    wallet += amount
                    ledger.add(
                        bar_open_ms,
                        "transfer",
                        "spot",
                        "transfer",
                        -amount,
                        note="spot sale → futures wallet",
                    )
                    ledger.add(
                        bar_open_ms, "transfer", "perp", "transfer", amount, note="spot sale → futures wallet"
                    )
                    lp_dirty = True
                pend_shrink_value = 0.0
            pend_spot = pend_perp = 0.0

        # 2. liquidation on the bar's adverse extreme
        if perp_qty != 0.0:
            if lp_dirty:
                lp = liquidation_price_linear(
                    side=1 if perp_qty > 0 else -1,
                    qty_base=abs(perp_qty),
                    entry_price=entry,
                    wallet_balance_usd=wallet,
                    table=brackets_now.table,
                )
                lp_dirty = False
            if lp is not None and ((perp_qty < 0 and adv_hi[i] >= lp) or (perp_qty > 0 and adv_lo[i] <= lp)):
                liq_price = lp
                perp_pnl_bar[w] += perp_qty * (liq_price - last_perp_px)
                last_perp_px = liq_price
                wallet += perp_qty * (liq_price - entry)
                notional = abs(perp_qty) * liq_price
                clearance = min(config.clearance_fee * notional, max(wallet, 0.0))
                wallet -= clearance
                # booked at the bar's close: the time within the bar is unknown, and the equity series is at closes
                ledger.add(
                    close_ms_list[i],
                    "liquidation",
                    "perp",
                    "liquidation",
                    -clearance,
                    -perp_qty,
                    liq_price,
                    f"clearance fee {config.clearance_fee:.2%} of {notional:,.2f} (capped at the margin left)",
                )
                events.append(
                    BacktestEvent(
                        ts=ts_of(close_ms_list[i]),
                        kind="liquidation",
                        detail=(
                            f"{'short' if perp_qty < 0 else 'long'} {abs(perp_qty):.6g} liquidated at {liq_price:,.2f} during the bar "
                            f"opening {ts_of(bar_open_ms):%Y-%m-%d %H:%M} UTC "
                            f"(bar {'high' if perp_qty < 0 else 'low'} {adv_hi[i] if perp_qty < 0 else adv_lo[i]:,.2f}); "
                            f"clearance fee {clearance:,.2f} USD; the spot is left unhedged and trading stops"
                        ),
                    )
                )
                liquidations += 1
                perp_qty = 0.0
                entry = 0.0
                lp = None
                frozen = True

        # 3. funding settlements paid in this bar
        settled_this_bar = 0.0
        while fp < nf and f_bar[fp] == i:
            if perp_qty != 0.0:
                mark = f_mark[fp] if f_mark[fp] > 0 else pc[i]  # NaN > 0 is False
                cash_flow = -perp_qty * mark * f_rate[fp]
                wallet += cash_flow
                cum_funding += cash_flow
                settled_this_bar += cash_flow
                ledger.add(
                    f_ts_list[fp],
                    "funding",
                    "perp",
                    "funding",
                    cash_flow,
                    perp_qty,
                    mark,
                    f"rate {f_rate[fp]:.8f}",
                )
                lp_dirty = True
            fp += 1

        # 4. close: borrow interest, marks, policies, decision, records
        spot_px = sc[i]
        mark_px = mk[i]
        close_ms = close_ms_list[i]
        if spot_qty < 0.0:
            interest = -spot_qty * spot_px * borrow_rates[w] * bar_days
            cash -= interest
            ledger.add(
                close_ms, "borrow", "borrow", "borrow", -interest, spot_qty, spot_px, "margin borrow interest"
            )
        spot_pnl_bar[w] += spot_qty * (spot_px - last_spot_px)
        perp_pnl_bar[w] += perp_qty * (mark_px - last_perp_px)
        last_spot_px = spot_px
        last_perp_px = mark_px

        margin_ratio = math.nan
        if perp_qty != 0.0:
            notional = abs(perp_qty) * mark_px
            maintenance = brackets_now.maintenance_margin(notional)
            balance = wallet + perp_qty * (mark_px - entry)
            margin_ratio = maintenance / balance if balance > 0 else math.inf
            if not frozen and margin_ratio > config.trigger_margin_ratio:
                if policy == "reserve" and reserve_left > 0.0:
                    add = min(
                        maintenance / config.target_margin_ratio - balance, reserve_left, max(cash, 0.0)
                    )
                    if add > 0.0:
                        cash -= add
                        wallet += add
                        reserve_left -= add
                        ledger.add(
                            close_ms,
                            "transfer",
                            "reserve",
                            "transfer",
                            -add,
                            note="reserve → futures wallet (top-up)",
                        )
                        ledger.add(
                            close_ms,
                            "transfer",
                            "perp",
                            "transfer",
                            add,
                            note="reserve → futures wallet (top-up)",
                        )
                        events.append(
                            BacktestEvent(
                                ts=ts_of(close_ms),
                                kind="top_up",
                                detail=f"margin ratio {margin_ratio:.1%} > {config.trigger_margin_ratio:.0%}: "
                                f"moved {add:,.2f} USD from the reserve ({reserve_left:,.2f} left)",
                            )
                        )
                        lp_dirty = True
                        balance += add
                        margin_ratio = maintenance / balance
                elif policy == "sell_spot" and spot_qty > 0.0:
                    target_ratio = config.target_margin_ratio
                    a_mm = notional * brackets_now.mmr
                    b_spot = spot_qty * spot_px
                    keep = (target_ratio * (balance + b_spot) + brackets_now.cum) / (
                        a_mm + target_ratio * b_spot
                    )
                    keep = min(max(keep, 0.0), 1.0)
                    if keep < 1.0:
                        base_qty *= keep
                        pend_shrink_value = (1.0 - keep) * spot_qty * spot_px * (1.0 - fee_spot)
                        holdings_changed = True
                        events.append(
                            BacktestEvent(
                                ts=ts_of(close_ms),
                                kind="reduce",
                                detail=f"margin ratio {margin_ratio:.1%} > {config.trigger_margin_ratio:.0%}: "
                                f"shrink both legs to {keep:.2%} and move the spot sale into the futures wallet",
                            )
                        )
            if (
                not frozen
                and config.reinvest_funding
                and settled_this_bar > 0.0
                and spot_qty > 0.0
                and perp_qty < 0.0
            ):
                amount = min(settled_this_bar * leverage / (1.0 + leverage), wallet)
                if amount > 0.0:
                    wallet -= amount
                    cash += amount
                    base_qty += amount / (spot_px * (1.0 + slip / 10_000.0) * (1.0 + fee_spot))
                    holdings_changed = True
                    ledger.add(close_ms, "transfer", "perp", "transfer", -amount, note="reinvest funding")
                    ledger.add(close_ms, "transfer", "spot", "transfer", amount, note="reinvest funding")
                    balance -= amount
                    lp_dirty = True
            if not frozen and config.withdraw_excess and not holdings_changed:
                initial_margin = notional / leverage
                excess = min(balance - initial_margin, wallet)
                if excess > WITHDRAW_MIN_FRACTION_OF_IM * initial_margin:
                    wallet -= excess
                    cash += excess
                    balance -= excess
                    margin_ratio = maintenance / balance
                    ledger.add(
                        close_ms, "transfer", "perp", "transfer", -excess, note="withdraw excess margin"
                    )
                    ledger.add(
                        close_ms, "transfer", "spot", "transfer", excess, note="withdraw excess margin"
                    )
                    lp_dirty = True

        spot_value = spot_qty * spot_px
        perp_value = wallet + perp_qty * (mark_px - entry)
        eq_arr[w] = cash + spot_value + perp_value
        spot_val_arr[w] = spot_value
        perp_val_arr[w] = perp_value
        cash_arr[w] = cash
        net_arr[w] = spot_qty + perp_qty
        netpct_arr[w] = (spot_qty + perp_qty) / base_qty
        hr_arr[w] = abs(perp_qty) * pc[i] / abs(spot_value) if spot_value != 0.0 else 0.0
        mr_arr[w] = margin_ratio
        if perp_qty != 0.0:
            if lp_dirty:
                lp = liquidation_price_linear(
                    side=1 if perp_qty > 0 else -1,
                    qty_base=abs(perp_qty),
                    entry_price=entry,
                    wallet_balance_usd=wallet,
                    table=brackets_now.table,
                )
                lp_dirty = False
            if lp is not None:
                ld_arr[w] = (lp - mark_px) / mark_px
        cumf_arr[w] = cum_funding

        if not frozen and w + 1 < n_win:
            k = known_at_close[i]
            if (
                decides_on == "bar"
                or holdings_changed
                or (decides_on == "settlement" and k != known_settlements)
            ):
                decide(i + 1, close_ms, k, spot_px, pc[i], mark_px, mr_arr[w], ld_arr[w])

    return _result(
        market=market,
        a=a,
        strategy=strategy,
        config=config,
        schedule=schedule,
        base_qty=base_qty,
        initial_equity=initial_equity,
        columns=(
            eq_arr,
            spot_val_arr,
            perp_val_arr,
            cash_arr,
            net_arr,
            netpct_arr,
            hr_arr,
            mr_arr,
            ld_arr,
            cumf_arr,
        ),
        spot_pnl_bar=spot_pnl_bar,
        perp_pnl_bar=perp_pnl_bar,
        ledger=ledger,
        events=events,
        trades=trades,
        switches=switches,
        liquidations=liquidations,
        extra_settings={},
    )


_SIMULATED_COLUMNS: tuple[str, ...] = (
    "equity_usd",
    "spot_value_usd",
    "perp_value_usd",
    "cash_usd",
    "net_exposure_base",
    "net_exposure_pct",
    "hedge_ratio",
    "margin_ratio",
    "liquidation_distance_pct",
    "cumulative_funding_usd",
)


def _result(
    *,
    market: MarketData,
    a: _Arrays,
    strategy: Strategy,
    config: BacktestConfig,
    schedule: BracketSchedule,
    base_qty: float,
    initial_equity: float,
    columns: tuple[list[float], ...],
    spot_pnl_bar: list[float],
    perp_pnl_bar: list[float],
    ledger: LedgerBuilder,
    events: list[BacktestEvent],
    trades: int,
    switches: int,
    liquidations: int,
    extra_settings: dict[str, Any],
) -> BacktestResult:
    win = slice(a.i0, a.i1)
    close_ts = a.close_ts[win]
    spot_close = a.spot_close[win]
    index = pd.DatetimeIndex(pd.to_datetime(close_ts, unit="ms", utc=True), name="ts")
    bh_qty = initial_equity / (
        a.spot_open[a.i0] * (1.0 + config.slippage_bps / 10_000.0) * (1.0 + config.fee_spot)
    )
    data: dict[str, Any] = dict(zip(_SIMULATED_COLUMNS, columns, strict=True))
    data.update(
        {
            "basis_fraction": (a.perp_close[win] - spot_close) / spot_close,
            "spot_close": spot_close,
            "perp_close": a.perp_close[win],
            "mark_close": a.mark_value[win],
            "buy_and_hold_equity_usd": bh_qty * spot_close,
        }
    )
    timeseries = pd.DataFrame(data, index=index)
    price_rows = [
        price_pnl_rows(close_ts, "spot", np.asarray(spot_pnl_bar), spot_close),
        price_pnl_rows(close_ts, "perp", np.asarray(perp_pnl_bar), a.mark_value[win]),
    ]
    ledger_frame = ledger.to_frame(price_rows)
    settings: dict[str, Any] = {
        **config.to_settings(),
        "strategy": strategy.name,
        "strategy_options": _strategy_settings(strategy),
        "brackets": schedule.note,
        "liquidation_judged_on": a.liquidation_price_source,
        "perp_valued_at": a.valuation_source,
        "funding_notional_at": "settlement mark_price where known, else the perp close of the bar ending at it",
        "usdt_is_usd": True,
        "bar_gaps": a.gaps,
        "base_qty": base_qty,
        **extra_settings,
    }
    return BacktestResult(
        strategy=strategy.name,
        symbol=market.symbol,
        exchange=market.exchange,
        timeframe=market.timeframe,
        settings=settings,
        initial_equity_usd=float(initial_equity),
        final_equity_usd=float(columns[0][-1]),
        base_qty=float(base_qty),
        timeseries=timeseries,
        ledger=ledger_frame,
        events=tuple(events),
        attribution=attribution_from_ledger(ledger_frame),
        trades=trades,
        switches=switches,
        liquidations=liquidations,
        net_transfers_usd=0.0,
    )


__all__ = ["BacktestConfig", "BracketSchedule", "resolve_brackets", "run_backtest", "run_buy_and_hold"]


# --- inverse (COIN-M) ----------------------------------------------------------------------------------


def _check_inverse_config(
    strategy: Strategy, config: BacktestConfig, brackets: BracketSchedule | None
) -> None:
    if brackets is None:
        raise ConfigError(
            "contract='inverse' needs the COIN-M maintenance brackets in coin notional, and perphedge bundles "
            "USDⓈ-M brackets only; pass brackets=BracketSchedule.single(BracketTable.single(symbol, mmr, "
            "maintenance_amount_coin)) with the exchange's COIN-M MMR (Binance BTCUSD: 0.4 % in the first bracket)",
            key_path="contract",
        )
    unsupported = [
        name
        for name, on in (
            (f"collateral_policy={config.collateral_policy!r}", config.collateral_policy != "none"),
            ("withdraw_excess", config.withdraw_excess),
            ("reinvest_funding", config.reinvest_funding),
        )
        if on
    ]
    if unsupported:
        raise ConfigError(
            f"with contract='inverse' the coins are the collateral (1x), so {', '.join(unsupported)} do not apply; "
            "they were set: remove them or use contract='linear'",
            key_path="collateral_policy",
        )
    if getattr(strategy, "negative_mode", None) == "reverse":
        raise ConfigError(
            "reverse carry (negative_mode='reverse') sells borrowed coins, which the coin-margined hedge "
            "cannot post as collateral; use negative_mode='unhedge' or contract='linear'",
            key_path="negative_mode",
        )


def _settle_asset(ccxt_symbol: str) -> tuple[str, str]:
    base = ccxt_symbol.split("/", 1)[0]
    settle = ccxt_symbol.split(":", 1)[1] if ":" in ccxt_symbol else ""
    return base, settle


def _simulate_inverse(
    market: MarketData,
    a: _Arrays,
    strategy: Strategy,
    config: BacktestConfig,
    schedule: BracketSchedule,
) -> BacktestResult:
    """Simulate the coin-margined hedge: the spot coins sit in the futures wallet as collateral and the
    perp is shorted in whole contracts of ``contract_size_usd`` for their USD value.

    Coin amounts (wallet, PnL, funding, fees) are valued in USD at the spot price; the unrealised PnL is
    computed at the mark (Binance COIN-M: PnL = contracts × size × side × (1/entry − 1/mark)). Funding
    is ``−contracts × size / mark × rate`` coins (``mechanics.funding.funding_cashflow_inverse_coin``).
    Liquidation: ``mechanics.liquidation.liquidation_price_inverse`` with the whole wallet (the coins are
    the collateral); a short of the coins' own value has no liquidation price on a rise.
    """
    from perphedge.engine.accounts import apply_inverse_fill
    from perphedge.mechanics.funding import funding_cashflow_inverse_coin
    from perphedge.mechanics.liquidation import liquidation_price_inverse

    i0, i1 = a.i0, a.i1
    n_win = i1 - i0
    size = config.resolved_contract_size_usd(market.symbol)
    sc_array, f_ts, f_rate_array, f_int = a.spot_close, a.funding_ts, a.funding_rate, a.funding_interval_hours
    tol = SETTLEMENT_JITTER_TOLERANCE_MS
    known_at_close = np.searchsorted(f_ts, a.close_ts + tol, side="right").tolist()
    so, sc, po, pc, mk = (
        x.tolist() for x in (a.spot_open, a.spot_close, a.perp_open, a.perp_close, a.mark_value)
    )
    adv_hi, adv_lo = a.adverse_high.tolist(), a.adverse_low.tolist()
    f_rate, f_mark, f_bar, f_gap = (
        x.tolist() for x in (a.funding_rate, a.funding_mark, a.funding_bar, a.funding_in_gap)
    )
    f_ts_list = f_ts.tolist()
    open_ms_list, close_ms_list = a.open_ts.tolist(), a.close_ts.tolist()
    fee_spot, fee_perp, slip = config.fee_spot, config.fee_perp, config.slippage_bps
    ledger = LedgerBuilder()
    events: list[BacktestEvent] = []

    def ts_of(ms: int) -> pd.Timestamp:
        return pd.Timestamp(int(ms), unit="ms", tz="UTC")

    table_starts = np.asarray(schedule.start_ts_ms, dtype=np.int64)
    table_list = np.clip(
        np.searchsorted(table_starts, a.open_ts[i0:i1], side="right") - 1, 0, len(schedule.tables) - 1
    ).tolist()
    table_index = table_list[0]
    brackets_now = _Brackets(schedule.tables[table_index])

    t0 = open_ms_list[i0]
    reserve = config.reserve_usd
    other_coin = 0.0  # realised PnL + funding − perp fees, in coins, in the futures wallet
    if config.spot_qty_base is not None:
        base_qty = config.spot_qty_base
        spot_qty = base_qty
        other_coin = float(config.collateral)  # type: ignore[arg-type]  # extra coins posted
        cash = reserve
        initial_equity = (spot_qty + other_coin) * so[i0] + reserve
    else:
        cash = config.capital_usd + reserve
        initial_equity = cash
        base_qty = config.capital_usd / (so[i0] * (1.0 + slip / 10_000.0) * (1.0 + fee_spot))
        spot_qty = 0.0
    contracts = 0.0
    entry = 0.0

    eq_arr = [0.0] * n_win
    spot_val_arr = [0.0] * n_win
    perp_val_arr = [0.0] * n_win
    cash_arr = [0.0] * n_win
    net_arr = [0.0] * n_win
    netpct_arr = [0.0] * n_win
    hr_arr = [0.0] * n_win
    mr_arr = [math.nan] * n_win
    ld_arr = [math.nan] * n_win
    cumf_arr = [0.0] * n_win
    spot_pnl_bar = [0.0] * n_win
    perp_pnl_bar = [0.0] * n_win

    decides_on = getattr(strategy, "decides_on", _DECIDES_ON_DEFAULT)
    memory = strategy.initial_memory()
    last_mode: HedgeMode | None = None
    last_target: TargetHedge | None = None
    known_settlements = -1
    trades = switches = liquidations = 0
    cum_funding = 0.0
    frozen = False
    lp: float | None = None
    lp_dirty = True
    value_px = so[i0]  # the price coins are valued at (spot), as of the last mark
    upnl_mark = po[i0]  # the mark the unrealised PnL was last computed at
    pend_spot = 0.0
    pend_perp_fraction: float | None = None
    holdings_changed = True

    def upnl(mark: float) -> float:
        return contracts * size * (1.0 / entry - 1.0 / mark) if contracts else 0.0

    # The perp leg's fraction is the one last filled (a short of the coins' USD value at fill time stays
    # "−1" while held: re-sizing it to each new price would trade every bar). Whole contracts only.
    held_perp_fraction = 0.0

    def decide(
        i_view_end: int, ts_ms: int, k: int, sp: float, pp: float, mp: float, mr: float, ld: float
    ) -> None:
        nonlocal memory, last_mode, last_target, known_settlements, switches, pend_spot, pend_perp_fraction
        nonlocal holdings_changed
        ask = (
            last_target is None
            or decides_on == "bar"
            or (decides_on == "settlement" and k != known_settlements)
        )
        known_settlements = k
        spot_frac, perp_frac = spot_qty / base_qty, held_perp_fraction
        if ask:
            view = MarketView(
                ts_ms=ts_ms,
                spot_price_usd=sp,
                perp_price_usd=pp,
                mark_price_usd=mp,
                funding_settle_ts_ms=f_ts[:k],
                funding_rates=f_rate_array[:k],
                funding_interval_hours=f_int[:k],
                close_prices=sc_array[:i_view_end],
            )
            state = HedgeState(
                spot_fraction=spot_frac,
                perp_fraction=perp_frac,
                mode=mode_of(spot_frac, perp_frac),
                margin_ratio=None if math.isnan(mr) else mr,
                liquidation_distance=None if math.isnan(ld) else ld,
            )
            target, memory = strategy.decide(view, state, memory)
            if target.spot_fraction < 0:
                raise ConfigError(
                    f"strategy {strategy.name!r} asked for spot {target.spot_fraction:g} (short spot) at "
                    f"{ts_of(ts_ms)}; the coin-margined hedge cannot short its collateral: use contract='linear'",
                    key_path="contract",
                )
            if target is not last_target:
                if last_mode is not None and target.mode != last_mode:
                    switches += 1
                    events.append(
                        BacktestEvent(
                            ts=ts_of(ts_ms),
                            kind="switch",
                            detail=f"{last_mode.value} → {target.mode.value}: {target.reason}",
                        )
                    )
                elif last_mode is None:
                    events.append(
                        BacktestEvent(
                            ts=ts_of(ts_ms), kind="open", detail=f"{target.mode.value}: {target.reason}"
                        )
                    )
                last_mode = target.mode
                last_target = target
                holdings_changed = True
        if holdings_changed and last_target is not None:
            state = HedgeState(
                spot_fraction=spot_frac, perp_fraction=perp_frac, mode=mode_of(spot_frac, perp_frac)
            )
            orders = orders_for(last_target, state, base_qty)
            pend_spot = orders.spot_delta_base
            pend_perp_fraction = last_target.perp_fraction if orders.perp_delta_base != 0.0 else None
            holdings_changed = False

    decide(
        i0, t0, int(np.searchsorted(f_ts, t0 + tol, side="right")), so[i0], po[i0], po[i0], math.nan, math.nan
    )
    fp = int(np.searchsorted(f_bar, i0, side="left"))
    nf = len(f_ts_list)

    def book_funding(fp: int, fallback_mark: float, note: str) -> float:
        nonlocal other_coin, cum_funding, lp_dirty
        mark = f_mark[fp] if f_mark[fp] > 0 else fallback_mark
        coin = funding_cashflow_inverse_coin(contracts, size, mark, f_rate[fp])
        other_coin += coin
        amount = coin * value_px
        cum_funding += amount
        ledger.add(f_ts_list[fp], "funding", "perp", "funding", amount, contracts * size / mark, mark, note)
        lp_dirty = True
        return amount

    for w in range(n_win):
        i = i0 + w
        bar_open_ms = open_ms_list[i]
        if table_list[w] != table_index:
            table_index = table_list[w]
            brackets_now = _Brackets(schedule.tables[table_index])
            lp_dirty = True
        while fp < nf and f_bar[fp] == i and f_gap[fp]:
            if contracts:
                book_funding(fp, f_mark[fp], f"rate {f_rate[fp]:.8f} (settled during a gap in the bars)")
            fp += 1
        # 1. fills at the open
        if pend_spot != 0.0 or pend_perp_fraction is not None:
            coins = spot_qty + other_coin
            spot_pnl_bar[w] += coins * (so[i] - value_px)
            perp_pnl_bar[w] += upnl(po[i]) * so[i] - upnl(upnl_mark) * value_px
            value_px, upnl_mark = so[i], po[i]
            if pend_spot != 0.0:
                f = execute(pend_spot, so[i], fee_rate=fee_spot, slippage_bps=slip)
                cash -= pend_spot * so[i] + f.slippage_usd + f.fee_usd
                spot_qty += pend_spot
                ledger.add(
                    bar_open_ms,
                    "trade",
                    "spot",
                    "spot_pnl",
                    0.0,
                    pend_spot,
                    so[i],
                    ("buy" if pend_spot > 0 else "sell")
                    + " (coins held in the futures wallet as collateral)",
                )
                ledger.add(bar_open_ms, "fee", "spot", "fees", -f.fee_usd, pend_spot, f.fill_price_usd)
                if f.slippage_usd:
                    ledger.add(
                        bar_open_ms,
                        "slippage",
                        "spot",
                        "slippage",
                        -f.slippage_usd,
                        pend_spot,
                        f.fill_price_usd,
                    )
                trades += 1
                lp_dirty = True
            if pend_perp_fraction is not None:
                target_contracts = float(round(pend_perp_fraction * base_qty * po[i] / size))
                delta = target_contracts - contracts
                held_perp_fraction = pend_perp_fraction
                if delta != 0.0:
                    fill_px = po[i] * (1.0 + (slip / 10_000.0 if delta > 0 else -slip / 10_000.0))
                    fee_coin = abs(delta) * size / fill_px * fee_perp
                    slip_coin = abs(delta) * size * abs(1.0 / po[i] - 1.0 / fill_px)
                    position = apply_inverse_fill(contracts, entry, delta, po[i], size)
                    contracts, entry = position.contracts, position.entry_price_usd
                    other_coin += position.realized_pnl_coin - fee_coin - slip_coin
                    ledger.add(
                        bar_open_ms,
                        "trade",
                        "perp",
                        "perp_pnl",
                        0.0,
                        delta * size / po[i],
                        po[i],
                        f"{'buy' if delta > 0 else 'sell'} {abs(delta):.0f} contracts of {size:g} USD",
                    )
                    ledger.add(
                        bar_open_ms,
                        "fee",
                        "perp",
                        "fees",
                        -fee_coin * value_px,
                        delta * size / po[i],
                        fill_px,
                    )
                    if slip_coin:
                        ledger.add(
                            bar_open_ms,
                            "slippage",
                            "perp",
                            "slippage",
                            -slip_coin * value_px,
                            delta * size / po[i],
                            fill_px,
                        )
                    trades += 1
                    lp_dirty = True
            pend_spot = 0.0
            pend_perp_fraction = None
        # 2. liquidation
        if contracts:
            if lp_dirty:
                lp = liquidation_price_inverse(
                    side=1 if contracts > 0 else -1,
                    contracts=abs(contracts),
                    contract_size_usd=size,
                    entry_price=entry,
                    wallet_balance_coin=spot_qty + other_coin,
                    table=brackets_now.table,
                )
                lp_dirty = False
            if lp is not None and (
                (contracts < 0 and adv_hi[i] >= lp) or (contracts > 0 and adv_lo[i] <= lp)
            ):
                perp_pnl_bar[w] += upnl(lp) * value_px - upnl(upnl_mark) * value_px
                upnl_mark = lp
                realized = upnl(lp)
                notional_coin = abs(contracts) * size / lp
                coins = spot_qty + other_coin + realized
                clearance = min(config.clearance_fee * notional_coin, max(coins, 0.0))
                ledger.add(
                    close_ms_list[i],
                    "liquidation",
                    "perp",
                    "liquidation",
                    -clearance * value_px,
                    -contracts * size / lp,
                    lp,
                    f"clearance fee {config.clearance_fee:.2%} of {notional_coin:.6g} coins (capped at the margin left)",
                )
                events.append(
                    BacktestEvent(
                        ts=ts_of(close_ms_list[i]),
                        kind="liquidation",
                        detail=(
                            f"{'short' if contracts < 0 else 'long'} {abs(contracts):.0f} contracts liquidated at "
                            f"{lp:,.2f} during the bar opening {ts_of(bar_open_ms):%Y-%m-%d %H:%M} UTC; the coins "
                            "left in the wallet are held unhedged and trading stops"
                        ),
                    )
                )
                liquidations += 1
                spot_qty, other_coin = coins - clearance, 0.0  # what is left is plain coins
                contracts, entry, lp = 0.0, 0.0, None
                held_perp_fraction = 0.0
                frozen = True
        # 3. funding
        while fp < nf and f_bar[fp] == i:
            if contracts:
                book_funding(fp, pc[i], f"rate {f_rate[fp]:.8f}")
            fp += 1
        # 4. close
        spot_px, mark_px, close_ms = sc[i], mk[i], close_ms_list[i]
        coins = spot_qty + other_coin
        spot_pnl_bar[w] += coins * (spot_px - value_px)
        perp_pnl_bar[w] += upnl(mark_px) * spot_px - upnl(upnl_mark) * value_px
        value_px, upnl_mark = spot_px, mark_px
        unrealized = upnl(mark_px)
        margin_ratio = math.nan
        if contracts:
            maintenance = brackets_now.maintenance_margin(abs(contracts) * size / mark_px)
            balance = coins + unrealized
            margin_ratio = maintenance / balance if balance > 0 else math.inf
            if lp_dirty:
                lp = liquidation_price_inverse(
                    side=1 if contracts > 0 else -1,
                    contracts=abs(contracts),
                    contract_size_usd=size,
                    entry_price=entry,
                    wallet_balance_coin=coins,
                    table=brackets_now.table,
                )
                lp_dirty = False
            if lp is not None:
                ld_arr[w] = (lp - mark_px) / mark_px
        spot_value = spot_qty * spot_px
        perp_value = (other_coin + unrealized) * spot_px
        eq_arr[w] = cash + spot_value + perp_value
        spot_val_arr[w] = spot_value
        perp_val_arr[w] = perp_value
        cash_arr[w] = cash
        # coin delta of the account: d(equity in USD)/d(price) = coins + upnl + contracts × size / mark
        net = coins + unrealized + contracts * size / mark_px
        net_arr[w] = net
        netpct_arr[w] = net / base_qty
        account_coins = coins + unrealized
        hr_arr[w] = abs(contracts) * size / (account_coins * spot_px) if account_coins > 0 else 0.0
        mr_arr[w] = margin_ratio
        cumf_arr[w] = cum_funding
        if not frozen and w + 1 < n_win:
            k = known_at_close[i]
            if (
                decides_on == "bar"
                or holdings_changed
                or (decides_on == "settlement" and k != known_settlements)
            ):
                decide(i + 1, close_ms, k, spot_px, pc[i], mark_px, margin_ratio, ld_arr[w])

    base, settle = _settle_asset(market.ccxt_symbol)
    data_note = f"prices and funding of {market.ccxt_symbol}"
    if settle and settle != base:
        data_note += (
            f": a {settle}-margined contract used as a stand-in for the coin-margined one (same underlying; "
            "their basis and funding differ): fetch the inverse perpetual's history for a faithful run"
        )
    return _result(
        market=market,
        a=a,
        strategy=strategy,
        config=config,
        schedule=schedule,
        base_qty=base_qty,
        initial_equity=initial_equity,
        columns=(
            eq_arr,
            spot_val_arr,
            perp_val_arr,
            cash_arr,
            net_arr,
            netpct_arr,
            hr_arr,
            mr_arr,
            ld_arr,
            cumf_arr,
        ),
        spot_pnl_bar=spot_pnl_bar,
        perp_pnl_bar=perp_pnl_bar,
        ledger=ledger,
        events=events,
        trades=trades,
        switches=switches,
        liquidations=liquidations,
        extra_settings={
            "contract_size_usd": size,
            "inverse_data": data_note,
            "effective_leverage": "1x or less: the coins are the collateral; the leverage setting is not used",
        },
    )
