"""What the linear and the inverse simulations share: the market as arrays, the bracket cursor, the
strategy's decisions, the per-bar output columns and the assembly of the ``BacktestResult``.

The semantics of the loop are in ``engine/loop.py`` (module docstring) and docs/engine.md. Nothing
here runs per bar except ``BracketCursor.maintenance_margin`` and ``Decisions.decide`` (both plain
float arithmetic on slots, no allocation unless the strategy is asked).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from perphedge.data.schema import MarketData, time_index
from perphedge.engine.accounts import BracketSchedule
from perphedge.engine.config import BacktestConfig
from perphedge.engine.fills import execute
from perphedge.engine.ledger import LedgerBuilder, attribution_from_ledger, price_pnl_rows
from perphedge.engine.orders import LegOrders, mode_of, orders_for
from perphedge.engine.results import BacktestEvent, BacktestResult
from perphedge.errors import ConfigError, DataError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.funding import SETTLEMENT_JITTER_TOLERANCE_MS
from perphedge.strategies.base import (
    HedgeMode,
    HedgeState,
    MarketView,
    Strategy,
    StrategyMemory,
    TargetHedge,
)

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

_PRICE_COLUMNS = ("spot_open", "spot_close", "perp_open", "perp_high", "perp_low", "perp_close")

# How often a strategy needs to be asked (an optional attribute ``decides_on`` of a strategy):
# "start" = once (static targets), "settlement" = when a new settlement is known, "bar" = every close.
DECIDES_ON_DEFAULT = "bar"


def ts_of(ms: int) -> pd.Timestamp:
    """Return the UTC timestamp of epoch milliseconds ``ms``."""
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketArrays:
    """The market as plain numpy arrays (full history) and the window ``[i0, i1)`` that is simulated."""

    open_ts: np.ndarray
    close_ts: np.ndarray
    spot_open: np.ndarray
    spot_close: np.ndarray
    perp_open: np.ndarray
    perp_close: np.ndarray
    mark_value: np.ndarray  # mark_close, else perp_close
    adverse_open: np.ndarray  # mark_open, else perp_open: where a position already past its LP is closed
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


def prepare_arrays(market: MarketData, config: BacktestConfig) -> MarketArrays:
    """Return the market as arrays, with the simulated window and the bar each settlement is paid in.

    Raises:
        DataError: missing price columns, non-positive prices in the window, a settlement without a
            rate, or a settlement in a gap of bars without a mark price.
    """
    bars = market.bars
    missing = [c for c in (*_PRICE_COLUMNS, "mark_close", "spot_high", "spot_low") if c not in bars.columns]
    if missing:
        raise DataError(
            f"bars lack column(s) {', '.join(missing)}; load data through perphedge.data", where=market.symbol
        )
    open_ts = time_index(bars, f"{market.symbol} bars").as_unit("ms").asi8.astype(np.int64)
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
        mo = bars["mark_open"].to_numpy(dtype=float)
        adverse_open = np.where(np.isfinite(mo) & (mo > 0), mo, arrays["perp_open"])
        liq_source = "mark_high/mark_low (perp_high/perp_low where the mark is missing)"
    else:
        adverse_open = arrays["perp_open"]
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
    f_ts = time_index(funding, f"{market.symbol} funding").as_unit("ms").asi8.astype(np.int64)
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
    return MarketArrays(
        open_ts=open_ts,
        close_ts=close_ts,
        spot_open=arrays["spot_open"],
        spot_close=arrays["spot_close"],
        perp_open=arrays["perp_open"],
        perp_close=arrays["perp_close"],
        mark_value=mark_value,
        adverse_open=adverse_open,
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


def liquidation_fill_price(side: int, liquidation_price: float, bar_open: float) -> float:
    """Return where a position of ``side`` (+1 long, −1 short) judged liquidated in a bar is closed.

    At its liquidation price, unless the bar opened beyond it (the position was past its liquidation
    price from the bar's first price on: opened without margin, or a gap): then at the open, which is
    worse for the position. Closing at the liquidation price there would book a gain the market never
    offered (a short closed below the price it was opened at, in a bar that rose).
    """
    if side < 0:
        return max(liquidation_price, bar_open)
    return min(liquidation_price, bar_open)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopSeries:
    """The arrays the per-bar loop reads, as plain lists of Python floats/ints (fast scalar access).

    Bar lists cover the full history (index ``i``); ``table_of_bar`` covers the window (index ``w``).
    """

    spot_open: list[float]
    spot_close: list[float]
    perp_open: list[float]
    perp_close: list[float]
    mark: list[float]
    adverse_open: list[float]
    adverse_high: list[float]
    adverse_low: list[float]
    open_ms: list[int]
    close_ms: list[int]
    known_at_close: list[int]  # settlements known at each bar's close (jitter tolerated)
    funding_ts_ms: list[int]
    funding_rate: list[float]
    funding_mark: list[float]
    funding_bar: list[int]
    funding_in_gap: list[bool]
    first_settlement: int  # the first settlement paid in the window (funding_bar is sorted)
    known_at_start: int  # settlements known at the first bar's open
    table_of_bar: list[int]  # index into the schedule's tables for each bar of the window


def loop_series(a: MarketArrays, schedule: BracketSchedule) -> LoopSeries:
    """Return the loop's inputs as lists, with the bracket table of each bar resolved before the loop."""
    tol = SETTLEMENT_JITTER_TOLERANCE_MS
    table_starts = np.asarray(schedule.start_ts_ms, dtype=np.int64)
    table_of_bar = np.clip(
        np.searchsorted(table_starts, a.open_ts[a.i0 : a.i1], side="right") - 1, 0, len(schedule.tables) - 1
    )
    return LoopSeries(
        spot_open=a.spot_open.tolist(),
        spot_close=a.spot_close.tolist(),
        perp_open=a.perp_open.tolist(),
        perp_close=a.perp_close.tolist(),
        mark=a.mark_value.tolist(),
        adverse_open=a.adverse_open.tolist(),
        adverse_high=a.adverse_high.tolist(),
        adverse_low=a.adverse_low.tolist(),
        open_ms=a.open_ts.tolist(),
        close_ms=a.close_ts.tolist(),
        known_at_close=np.searchsorted(a.funding_ts, a.close_ts + tol, side="right").tolist(),
        funding_ts_ms=a.funding_ts.tolist(),
        funding_rate=a.funding_rate.tolist(),
        funding_mark=a.funding_mark.tolist(),
        funding_bar=a.funding_bar.tolist(),
        funding_in_gap=a.funding_in_gap.tolist(),
        first_settlement=int(np.searchsorted(a.funding_bar, a.i0, side="left")),
        known_at_start=int(np.searchsorted(a.funding_ts, int(a.open_ts[a.i0]) + tol, side="right")),
        table_of_bar=table_of_bar.tolist(),
    )


class BracketCursor:
    """The bracket in force for the current notional, looked up only when the notional leaves it."""

    __slots__ = ("table", "floor", "cap", "mmr", "cum")

    def __init__(self, table: BracketTable) -> None:
        self.table = table
        self.floor = 1.0
        self.cap = 0.0  # empty range: the first call looks up
        self.mmr = 0.0
        self.cum = 0.0

    def maintenance_margin(self, notional_usd: float) -> float:
        """Return ``notional × mmr − cum`` of the bracket holding ``notional_usd`` (Binance's tiered MM)."""
        if not self.floor <= notional_usd < self.cap:
            b = self.table.for_notional(notional_usd)
            self.floor, self.cap, self.mmr, self.cum = b.floor_usd, b.cap_usd, b.mmr, b.maintenance_amount_usd
        return notional_usd * self.mmr - self.cum


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotOnly:
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


class Decisions:
    """The strategy's side of the loop: when it is asked, what it sees, the switches it makes.

    ``decide`` is called at the first open and then at bar closes; it returns the orders that move the
    holdings to the current target when the target changed or the holdings did (``holdings_changed``),
    else ``None``. Switch and open events are appended to ``events``.
    """

    __slots__ = (
        "strategy",
        "decides_on",
        "memory",
        "last_mode",
        "last_target",
        "known_settlements",
        "switches",
        "events",
        "refuse_short_spot",
        "_funding_ts",
        "_funding_rates",
        "_funding_interval_hours",
        "_close_prices",
    )

    def __init__(
        self,
        strategy: Strategy,
        a: MarketArrays,
        events: list[BacktestEvent],
        *,
        refuse_short_spot: bool = False,
    ) -> None:
        self.strategy = strategy
        self.decides_on: str = getattr(strategy, "decides_on", DECIDES_ON_DEFAULT)
        self.memory = strategy.initial_memory()
        self.last_mode: HedgeMode | None = None
        self.last_target: TargetHedge | None = None
        self.known_settlements = -1
        self.switches = 0
        self.events = events
        self.refuse_short_spot = refuse_short_spot
        self._funding_ts = a.funding_ts
        self._funding_rates = a.funding_rate
        self._funding_interval_hours = a.funding_interval_hours
        self._close_prices = a.spot_close

    def decide(
        self,
        i_view_end: int,
        ts_ms: int,
        k: int,
        spot_price: float,
        perp_price: float,
        mark_price: float,
        spot_frac: float,
        perp_frac: float,
        margin_ratio: float,
        liquidation_distance: float,
        base_qty: float,
        holdings_changed: bool,
    ) -> LegOrders | None:
        """Ask the strategy if due: the view holds bars before ``i_view_end`` and the first ``k`` settlements.

        Raises:
            ConfigError: ``refuse_short_spot`` is set and the strategy asks for a short spot leg.
        """
        last_target = self.last_target
        decides_on = self.decides_on
        ask = (
            last_target is None
            or decides_on == "bar"
            or (decides_on == "settlement" and k != self.known_settlements)
        )
        self.known_settlements = k
        if ask:
            view = MarketView(
                ts_ms=ts_ms,
                spot_price_usd=spot_price,
                perp_price_usd=perp_price,
                mark_price_usd=mark_price,
                funding_settle_ts_ms=self._funding_ts[:k],
                funding_rates=self._funding_rates[:k],
                funding_interval_hours=self._funding_interval_hours[:k],
                close_prices=self._close_prices[:i_view_end],
            )
            state = HedgeState(
                spot_fraction=spot_frac,
                perp_fraction=perp_frac,
                mode=mode_of(spot_frac, perp_frac),
                margin_ratio=None if math.isnan(margin_ratio) else margin_ratio,
                liquidation_distance=None if math.isnan(liquidation_distance) else liquidation_distance,
            )
            target, self.memory = self.strategy.decide(view, state, self.memory)
            if target is not last_target:
                # checked on each new target (the same object again was checked when it was new)
                if self.refuse_short_spot and target.spot_fraction < 0:
                    raise ConfigError(
                        f"strategy {self.strategy.name!r} asked for spot {target.spot_fraction:g} (short spot) "
                        f"at {ts_of(ts_ms)}; the coin-margined hedge cannot short its collateral: use "
                        "contract='linear'",
                        key_path="contract",
                    )
                last_mode = self.last_mode
                if last_mode is not None and target.mode != last_mode:
                    self.switches += 1
                    self.events.append(
                        BacktestEvent(
                            ts=ts_of(ts_ms),
                            kind="switch",
                            detail=f"{last_mode.value} → {target.mode.value}: {target.reason}",
                        )
                    )
                elif last_mode is None:
                    self.events.append(
                        BacktestEvent(
                            ts=ts_of(ts_ms), kind="open", detail=f"{target.mode.value}: {target.reason}"
                        )
                    )
                self.last_mode = target.mode
                self.last_target = last_target = target
                holdings_changed = True
        if holdings_changed and last_target is not None:
            state = HedgeState(
                spot_fraction=spot_frac, perp_fraction=perp_frac, mode=mode_of(spot_frac, perp_frac)
            )
            return orders_for(last_target, state, base_qty)
        return None


def book_spot_fill(
    ledger: LedgerBuilder,
    ts_ms: int,
    qty_base: float,
    price_usd: float,
    fee_rate: float,
    slippage_bps: float,
    note: str,
) -> float:
    """Book a spot fill of ``qty_base`` coins (+ buy) at reference ``price_usd``; return the USD it costs.

    Cost = ``qty × price`` + slippage + taker fee (``fills.execute``); a sale costs a negative amount.
    """
    f = execute(qty_base, price_usd, fee_rate=fee_rate, slippage_bps=slippage_bps)
    ledger.fill(
        ts_ms,
        "spot",
        trade_qty_base=qty_base,
        trade_price_usd=price_usd,
        trade_note=note,
        fee_usd=f.fee_usd,
        slippage_usd=f.slippage_usd,
        fill_qty_base=qty_base,
        fill_price_usd=f.fill_price_usd,
    )
    return qty_base * price_usd + f.slippage_usd + f.fee_usd


def new_columns(n_win: int) -> tuple[list[float], ...]:
    """Return the per-bar output lists: the ``SIMULATED_COLUMNS`` in order (equity is summed at the end
    from cash, spot value and perp value), then the per-bar spot and perp price PnL."""
    return (
        [0.0] * n_win,  # spot_value_usd
        [0.0] * n_win,  # perp_value_usd
        [0.0] * n_win,  # cash_usd
        [0.0] * n_win,  # net_exposure_base
        [0.0] * n_win,  # net_exposure_pct
        [0.0] * n_win,  # hedge_ratio
        [math.nan] * n_win,  # margin_ratio
        [math.nan] * n_win,  # liquidation_distance_pct
        [0.0] * n_win,  # cumulative_funding_usd
        [0.0] * n_win,  # spot price PnL of each bar
        [0.0] * n_win,  # perp price PnL of each bar
    )


SIMULATED_COLUMNS: tuple[str, ...] = TIMESERIES_COLUMNS[1:10]
"""The columns the loop fills bar by bar (from ``spot_value_usd`` to ``cumulative_funding_usd``)."""


def borrow_rates_per_bar(config: BacktestConfig, bar_open_ts: np.ndarray, symbol: str) -> list[float]:
    """Return the borrow rate per day in force at each bar's open: the series' last value at or before it."""
    series = config.borrow_rate_series
    if series is None:
        return [config.borrow_rate_per_day] * bar_open_ts.size
    series_ms = time_index(series, "borrow_rate_series").as_unit("ms").asi8
    position = np.searchsorted(series_ms, bar_open_ts, side="right") - 1
    if position[0] < 0:
        raise DataError(
            f"borrow_rate_series starts at {series.index[0]} but the first bar opens at "
            f"{ts_of(int(bar_open_ts[0]))}; give rates from the start of the run "
            "(the engine does not guess earlier rates)",
            where=symbol,
        )
    return series.to_numpy(dtype=float)[position].tolist()


def _strategy_settings(strategy: Strategy) -> dict[str, Any]:
    if dataclasses.is_dataclass(strategy):
        return {f.name: getattr(strategy, f.name) for f in dataclasses.fields(strategy)}
    return {"name": strategy.name}


def build_result(
    *,
    market: MarketData,
    a: MarketArrays,
    strategy: Strategy,
    config: BacktestConfig,
    schedule: BracketSchedule,
    base_qty: float,
    initial_equity: float,
    columns: tuple[list[float], ...],
    ledger: LedgerBuilder,
    decisions: Decisions,
    trades: int,
    liquidations: int,
    extra_settings: dict[str, Any],
) -> BacktestResult:
    """Assemble the ``BacktestResult`` from the loop's outputs (``columns`` as made by ``new_columns``).

    Equity = cash + spot value + perp value, summed per bar in that order (as the loop would).
    """
    win = slice(a.i0, a.i1)
    close_ts = a.close_ts[win]
    spot_close = a.spot_close[win]
    index = pd.DatetimeIndex(pd.to_datetime(close_ts, unit="ms", utc=True), name="ts")
    bh_qty = initial_equity / (
        a.spot_open[a.i0] * (1.0 + config.slippage_bps / 10_000.0) * (1.0 + config.fee_spot)
    )
    *simulated, spot_pnl_bar, perp_pnl_bar = columns
    spot_value, perp_value, cash = (np.asarray(c, dtype=float) for c in simulated[:3])
    equity = cash + spot_value + perp_value
    data: dict[str, Any] = {"equity_usd": equity}
    data.update(zip(SIMULATED_COLUMNS, (spot_value, perp_value, cash, *simulated[3:]), strict=True))
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
        final_equity_usd=float(equity[-1]),
        base_qty=float(base_qty),
        timeseries=timeseries,
        ledger=ledger_frame,
        events=tuple(decisions.events),
        attribution=attribution_from_ledger(ledger_frame),
        trades=trades,
        switches=decisions.switches,
        liquidations=liquidations,
        net_transfers_usd=0.0,
    )
