"""Performance metrics of a backtest: pure functions with ffn's verbs (``to_*`` maps, ``calc_*`` reduces).

Conventions (each function's docstring repeats the ones it uses):
- Returns are simple returns per bar, as fractions (0.01 = 1 %), computed from the equity curve in USD.
  External deposits and withdrawals are flows, not returns: ``r_t = (E_t − F_t) / E_{t−1} − 1``
  (the time-weighted return; GIPS, and bt's ``StrategyBase.adjust`` flow handling).
- A year is 365 days: crypto trades every day, and perphedge annualises funding the same way
  (``perphedge.units.HOURS_PER_YEAR``). Periods per year come from the bar spacing
  (8-hour bars: 1,095 a year; hourly bars: 8,760).
- Annualised volatility and the Sharpe/Sortino ratios scale by ``sqrt(periods per year)``, the
  i.i.d. rule (Lo, "The Statistics of Sharpe Ratios", Financial Analysts Journal 58(4), 2002, eq. 7).
  The risk-free rate is 0 unless given (a USD stablecoin holder has no risk-free leg by default).
- Drawdowns are fractions ≤ 0 (−0.25 = the equity is 25 % below its running peak), as in ffn; below
  −1 when the equity went negative (an account that lost more than it had).
- Undefined ratios (zero volatility, zero drawdown, too few bars) are ``math.nan``; ``calc_summary``
  turns them into ``None`` so ``--json`` stays valid JSON.

Definitions follow ffn (pmorissette/ffn, ``ffn/core.py``: ``to_returns``, ``to_drawdown_series``,
``calc_cagr``, ``calc_sharpe``, ``calc_sortino_ratio``, ``calc_calmar_ratio``) except where stated:
Sortino uses the target downside deviation of Sortino & Price (1994); years are 365 days, not 365.25.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from perphedge.data.schema import TIMEFRAME_MS, time_index
from perphedge.engine.results import ATTRIBUTION_KEYS, BacktestResult
from perphedge.errors import InputError
from perphedge.units import DAYS_PER_YEAR, HOURS_PER_YEAR, MS_PER_DAY

YEAR = pd.Timedelta(days=DAYS_PER_YEAR)
"""The year used for every annualisation here: 365 days."""

RELATIVE_NOISE = 1e-12
"""A deviation below this fraction of the mean return is floating-point noise: the ratio is undefined."""

HEDGED_NET_EXPOSURE_TOLERANCE = 1e-9
"""A bar counts as hedged when its net exposure is below 100 % by more than this (fraction of Q)."""


# --- validation --------------------------------------------------------------------------------------


def _require_series(name: str, series: pd.Series, *, min_length: int = 2) -> pd.Series:
    if not isinstance(series, pd.Series):
        raise InputError(
            f"{name} must be a pandas Series indexed by UTC time; it was {type(series).__name__}"
        )
    if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
        raise InputError(f"{name} must have a tz-aware UTC DatetimeIndex; its index was {series.index.dtype}")
    if len(series) < min_length:
        raise InputError(f"{name} needs at least {min_length} points; it had {len(series)}")
    if not series.index.is_monotonic_increasing or series.index.has_duplicates:
        raise InputError(
            f"{name} must be indexed by strictly increasing times; sort it and remove duplicates"
        )
    values = series.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        at = series.index[int(np.argmax(~np.isfinite(values)))]
        raise InputError(
            f"{name} at {at.isoformat()} was {float(series.loc[at])!r}; every value must be a finite number"
        )
    return series.astype(float)


def _require_positive_equity(name: str, equity: pd.Series) -> pd.Series:
    equity = _require_series(name, equity)
    if (equity <= 0).any():
        at = equity.index[int(np.argmax(equity.to_numpy() <= 0))]
        raise InputError(
            f"{name} at {at.isoformat()} was {float(equity.loc[at])!r} USD; returns need a positive equity "
            "(the account was wiped out: read the liquidation events instead of ratios)"
        )
    return equity


def _require_positive_start(name: str, equity: pd.Series) -> pd.Series:
    # a drawdown needs a positive running peak, which a positive first point guarantees; later points
    # may be 0 or negative (an account that lost more than it had: drawdowns below -100 %)
    equity = _require_series(name, equity)
    if not float(equity.iloc[0]) > 0:
        raise InputError(
            f"{name} starts at {equity.index[0].isoformat()} with {float(equity.iloc[0])!r} USD; "
            "drawdowns and returns are measured from a positive starting equity"
        )
    return equity


# --- maps (series -> series) -------------------------------------------------------------------------


def to_returns(equity_usd: pd.Series, flows_usd: pd.Series | None = None) -> pd.Series:
    """Return the simple return of each bar ``r_t = (E_t − F_t) / E_{t−1} − 1`` (fractions).

    ``flows_usd`` are external deposits (+) and withdrawals (−) booked at time t (aligned to the
    equity index; missing times mean no flow): they move equity but are not performance (the
    time-weighted return; ffn's ``to_returns`` is the case F = 0). The first point has no return and
    is left out, so the result is one shorter than ``equity_usd``.

    Raises:
        InputError: if the equity is not a finite, positive series on a UTC index.
    """
    equity = _require_positive_equity("equity_usd", equity_usd)
    values = equity.to_numpy()
    if flows_usd is None:
        flow = np.zeros_like(values)
    else:
        extra = flows_usd.index.difference(equity.index)
        if len(extra):
            raise InputError(
                f"flows_usd has {len(extra)} time(s) not on the equity index, first {extra[0].isoformat()}; "
                "book each flow at a bar time of the equity curve"
            )
        flow = flows_usd.reindex(equity.index, fill_value=0.0).to_numpy(dtype=float)
    returns = (values[1:] - flow[1:]) / values[:-1] - 1.0
    return pd.Series(returns, index=equity.index[1:], name="return")


def to_wealth_index(returns: pd.Series, start: pd.Timestamp | None = None) -> pd.Series:
    """Return the growth of 1 USD invested: ``W_t = Π (1 + r_i)``, starting at 1 at ``start``.

    ``start`` (the time before the first return) is prepended with W = 1 when given. With no flows
    ``W_t = E_t / E_0``.
    """
    wealth = (1.0 + returns.astype(float)).cumprod()
    if start is not None:
        wealth = pd.concat([pd.Series([1.0], index=pd.DatetimeIndex([start])), wealth])
    wealth.name = "wealth"
    return wealth


def to_drawdown_series(equity_usd: pd.Series) -> pd.Series:
    """Return the drawdown at each time ``E_t / max_{s ≤ t} E_s − 1`` (fractions ≤ 0; ffn's definition).

    Below −1 (−100 %) where the equity went negative (the account lost more than it had).

    Raises:
        InputError: if the equity is not a finite series on a UTC index starting above 0.
    """
    equity = _require_positive_start("equity_usd", equity_usd)
    drawdown = equity / equity.cummax() - 1.0
    drawdown.name = "drawdown"
    return drawdown


# --- reductions --------------------------------------------------------------------------------------


def calc_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Return the bars per 365-day year implied by the median spacing of ``index``.

    8-hour bars give 1,095, hourly bars 8,760. The median ignores the odd missing bar.

    Raises:
        InputError: with fewer than two times or a non-increasing index.
    """
    if len(index) < 2:
        raise InputError(f"the bar frequency needs at least two times; there were {len(index)}")
    spacing_ns = np.diff(index.as_unit("ns").asi8)
    if np.any(spacing_ns <= 0):
        raise InputError("the times must be strictly increasing to infer the bar frequency; sort them")
    median_ms = float(np.median(spacing_ns)) / 1e6
    return DAYS_PER_YEAR * MS_PER_DAY / median_ms


def calc_total_return(equity_usd: pd.Series) -> float:
    """Return ``E_end / E_start − 1`` (fraction; below −1 when the end is negative). Use it on a wealth
    index when there are flows.

    Raises:
        InputError: if the equity is not a finite series on a UTC index starting above 0.
    """
    equity = _require_positive_start("equity_usd", equity_usd)
    return float(equity.iloc[-1] / equity.iloc[0] - 1.0)


def calc_years(index: pd.DatetimeIndex) -> float:
    """Return the time from the first to the last time of ``index`` in 365-day years."""
    return float((index[-1] - index[0]) / YEAR)


def calc_cagr(equity_usd: pd.Series) -> float:
    """Return the compound annual growth rate ``(E_end / E_start)^(1 / years) − 1`` (fraction).

    Years are the elapsed time between the first and last point over 365 days (ffn's ``calc_cagr``
    uses 365.25). Over less than a year this extrapolates, as every CAGR does: read it with the dates.

    Raises:
        InputError: if the series spans no time.
    """
    equity = _require_positive_equity("equity_usd", equity_usd)
    years = calc_years(time_index(equity, "equity_usd"))
    if years <= 0:
        raise InputError("the CAGR needs a series that spans some time; its first and last times were equal")
    return float((equity.iloc[-1] / equity.iloc[0]) ** (1.0 / years) - 1.0)


def calc_volatility(returns: pd.Series, periods_per_year: float) -> float:
    """Return the annualised volatility ``std(r, ddof=1) × sqrt(periods_per_year)`` (fraction).

    Pass the bar frequency from :func:`calc_periods_per_year` (8-hour bars: 1,095).
    ``nan`` with fewer than two returns.
    """
    values = returns.to_numpy(dtype=float)
    if values.size < 2:
        return math.nan
    return float(np.std(values, ddof=1) * math.sqrt(periods_per_year))


def calc_sharpe(returns: pd.Series, periods_per_year: float, risk_free_rate_per_year: float = 0.0) -> float:
    """Return the annualised Sharpe ratio ``mean(r − rf) / std(r − rf, ddof=1) × sqrt(periods_per_year)``.

    ``rf = risk_free_rate_per_year / periods_per_year`` per bar; 0 by default. Sharpe, "The Sharpe
    Ratio", J. Portfolio Management 21(1), 1994 (ex-post form, eq. 9); annualised by sqrt(q) (Lo 2002,
    eq. 7), as ffn's ``calc_sharpe``. ``nan`` when the returns do not vary or there are fewer than two.
    """
    excess = returns.to_numpy(dtype=float) - risk_free_rate_per_year / periods_per_year
    if excess.size < 2:
        return math.nan
    std = float(np.std(excess, ddof=1))
    if _is_rounding_noise(std, float(np.mean(excess))):
        return math.nan
    return float(np.mean(excess) / std * math.sqrt(periods_per_year))


def calc_sortino(returns: pd.Series, periods_per_year: float, target_return_per_year: float = 0.0) -> float:
    """Return the annualised Sortino ratio ``mean(r − T) / DD × sqrt(periods_per_year)``.

    ``DD = sqrt(mean(min(r − T, 0)²))`` over *all* bars: the target downside deviation of Sortino &
    Price, "Performance Measurement in a Downside Risk Framework", J. Investing 3(3), 1994.
    ``T = target_return_per_year / periods_per_year`` per bar, 0 by default. (ffn uses the sample
    standard deviation of ``min(r, 0)`` instead.) ``nan`` when no bar falls below the target.
    """
    excess = returns.to_numpy(dtype=float) - target_return_per_year / periods_per_year
    if excess.size < 2:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if _is_rounding_noise(downside, float(np.mean(excess))):
        return math.nan
    return float(np.mean(excess) / downside * math.sqrt(periods_per_year))


def _is_rounding_noise(deviation: float, mean: float) -> bool:
    # A constant return series has a standard deviation of a few ulps, not 0: its ratio is undefined.
    return not math.isfinite(deviation) or deviation <= RELATIVE_NOISE * max(abs(mean), np.finfo(float).tiny)


@dataclass(frozen=True, slots=True, kw_only=True)
class MaxDrawdown:
    """The deepest fall from a running peak, with its dates (UTC).

    ``max_drawdown`` is a fraction ≤ 0. ``peak_ts`` is the last peak before the trough, ``trough_ts``
    the lowest point, ``recovery_ts`` the first time equity was back at the peak, or ``None`` if it
    never recovered within the series. All three are ``None`` when there was no drawdown.
    """

    max_drawdown: float
    peak_ts: pd.Timestamp | None
    trough_ts: pd.Timestamp | None
    recovery_ts: pd.Timestamp | None


def calc_max_drawdown(equity_usd: pd.Series) -> MaxDrawdown:
    """Return the maximum drawdown ``min_t (E_t / max_{s ≤ t} E_s − 1)`` and its peak/trough/recovery dates.

    Below −1 when the equity went negative.

    Raises:
        InputError: if the equity is not a finite series on a UTC index starting above 0.
    """
    equity = _require_positive_start("equity_usd", equity_usd)
    drawdown = to_drawdown_series(equity)
    trough_pos = int(np.argmin(drawdown.to_numpy()))
    worst = float(drawdown.iloc[trough_pos])
    if worst >= 0.0:
        return MaxDrawdown(max_drawdown=0.0, peak_ts=None, trough_ts=None, recovery_ts=None)
    values = equity.to_numpy()
    peak_pos = int(np.argmax(values[: trough_pos + 1]))  # first time the running peak was reached
    peak_value = values[peak_pos]
    after = np.flatnonzero(values[trough_pos:] >= peak_value)
    recovery = equity.index[trough_pos + int(after[0])] if after.size else None
    return MaxDrawdown(
        max_drawdown=worst,
        peak_ts=equity.index[peak_pos],
        trough_ts=equity.index[trough_pos],
        recovery_ts=recovery,
    )


def calc_calmar(equity_usd: pd.Series) -> float:
    """Return the Calmar ratio ``CAGR / |max drawdown|`` over the whole series (ffn's ``calc_calmar_ratio``).

    Young's original (Futures, 1991) uses the last 36 months; ffn and perphedge use the full period.
    ``nan`` when there was no drawdown.
    """
    max_drawdown = calc_max_drawdown(equity_usd).max_drawdown
    if max_drawdown == 0.0:
        return math.nan
    return calc_cagr(equity_usd) / abs(max_drawdown)


def calc_per_year(equity_usd: pd.Series, ledger: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return one row per calendar year (UTC) of the equity curve.

    Columns: ``start_equity_usd`` (the last equity before the year, or the first point),
    ``end_equity_usd``, ``return`` (end / start − 1), ``max_drawdown`` (within the year, from the
    start equity), and, when a ledger is given, the sum of its ``amount_usd`` by ``component``
    for the year in ``<component>_usd`` columns (funding_usd, fees_usd, …; 0 when none).
    Flows are not taken out here: with external transfers read the returns from a wealth index.
    A year that starts at or below 0 USD (the account lost more than it had) has no return and no
    drawdown (``nan``): neither is defined from a non-positive base.

    Raises:
        InputError: if the equity is not a finite series on a UTC index starting above 0.
    """
    equity = _require_positive_start("equity_usd", equity_usd)
    years = time_index(equity, "equity_usd").year
    rows: list[dict[str, Any]] = []
    previous_end: float | None = None
    for year in sorted(set(years)):
        in_year = equity[years == year]
        start_equity = float(in_year.iloc[0]) if previous_end is None else previous_end
        path = np.concatenate([[start_equity], in_year.to_numpy()])
        end_equity = float(in_year.iloc[-1])
        if start_equity > 0:
            year_return = end_equity / start_equity - 1.0
            drawdown = float(np.min(path / np.maximum.accumulate(path) - 1.0))
        else:
            year_return = drawdown = math.nan
        rows.append(
            {
                "year": int(year),
                "start_equity_usd": start_equity,
                "end_equity_usd": end_equity,
                "return": year_return,
                "max_drawdown": drawdown,
            }
        )
        previous_end = end_equity
    table = pd.DataFrame(rows).set_index("year")
    if ledger is not None and len(ledger):
        by_year = ledger.groupby([pd.DatetimeIndex(ledger["ts"]).year, "component"])["amount_usd"].sum()
        for component in sorted(ledger["component"].unique()):
            column = component if component.endswith("_usd") else f"{component}_usd"
            table[column] = [float(by_year.get((year, component), 0.0)) for year in table.index]
    return table


# --- the summary of a backtest ---------------------------------------------------------------------


def to_equity_curve(result: BacktestResult) -> pd.Series:
    """Return the equity in USD with the initial equity prepended one bar before the first close.

    ``result.timeseries`` holds one row per bar at the bar's close; the account held
    ``initial_equity_usd`` at the open of the first bar, so that is where the curve starts.
    """
    equity = result.timeseries["equity_usd"].astype(float)
    bar = (
        pd.Timedelta(milliseconds=TIMEFRAME_MS[result.timeframe])
        if result.timeframe in TIMEFRAME_MS
        else None
    )
    if bar is None or len(equity) == 0:
        raise InputError(
            f"the backtest of {result.strategy} has timeframe {result.timeframe!r} and {len(equity)} bars; "
            f"metrics need at least one bar of a known timeframe ({', '.join(TIMEFRAME_MS)})"
        )
    start = equity.index[0] - bar
    curve = pd.concat(
        [pd.Series([float(result.initial_equity_usd)], index=pd.DatetimeIndex([start])), equity]
    )
    curve.name = "equity_usd"
    return curve


def to_external_flows(result: BacktestResult, index: pd.DatetimeIndex) -> pd.Series | None:
    """Return external deposits (+) and withdrawals (−) summed onto ``index``, or None if there are none.

    External flows are the ledger's ``transfer`` rows on the ``external`` leg (engine/ledger.py);
    moves between our own wallets come in pairs that sum to zero and are not flows. A flow booked
    inside a bar is assigned to the first curve time at or after it.
    """
    ledger = result.ledger
    if ledger is None or len(ledger) == 0 or not {"kind", "leg"} <= set(ledger.columns):
        return None
    transfers = ledger[(ledger["kind"] == "transfer") & (ledger["leg"] == "external")]
    if transfers.empty:
        return None
    positions = index.searchsorted(pd.DatetimeIndex(transfers["ts"]), side="left")
    positions = np.minimum(positions, len(index) - 1)
    flows = np.zeros(len(index))
    np.add.at(flows, positions, transfers["amount_usd"].to_numpy(dtype=float))
    return pd.Series(flows, index=index, name="flow_usd")


def calc_time_hedged(timeseries: pd.DataFrame) -> float:
    """Return the share of bars (fraction 0–1) in which the perp reduced the directional exposure.

    A bar is hedged when a perp position offsets spot (``hedge_ratio > 0``) and the net exposure is
    below 100 % of the base quantity: a full, partial or reverse-carry hedge counts, unhedged spot
    and the article's spot-long + perp-long (200 % long) do not.
    """
    if len(timeseries) == 0:
        return math.nan
    hedge_ratio = timeseries["hedge_ratio"].to_numpy(dtype=float)
    net = np.abs(timeseries["net_exposure_pct"].to_numpy(dtype=float))
    hedged = (hedge_ratio > 0) & (net < 1.0 - HEDGED_NET_EXPOSURE_TOLERANCE)
    return float(np.mean(hedged))


def calc_realised_funding_apr(
    timeseries: pd.DataFrame, funding_usd: float, *, contract: str = "linear"
) -> float:
    """Return the funding received per year per USD of perp notional held (fraction, simple APR).

    ``funding_usd / Σ_t (perp notional_t × bar length_t in years)``, with perp notional =
    ``hedge_ratio × spot notional``, the spot notional being the one the engine divides by
    (engine/results.py): ``|spot_value_usd|`` for a linear hedge; for ``contract="inverse"`` the
    coins of the whole account, ``spot_value_usd + perp_value_usd`` (the spot coins, once the
    short's realised PnL and funding in coins are added, are what the contracts are set against).
    365-day years. For a full hedge that settled 0.01 % every 8 h throughout, this is 10.95 %.
    ``nan`` when no perp position was ever held.
    """
    if len(timeseries) < 2:
        return math.nan
    spot_notional = timeseries["spot_value_usd"].to_numpy(dtype=float)
    if contract == "inverse":
        spot_notional = spot_notional + timeseries["perp_value_usd"].to_numpy(dtype=float)
    notional = timeseries["hedge_ratio"].to_numpy(dtype=float) * np.abs(spot_notional)
    notional = np.where(np.isfinite(notional), notional, 0.0)
    spacing_years = np.diff(pd.DatetimeIndex(timeseries.index).as_unit("ns").asi8) / (
        HOURS_PER_YEAR * 3_600 * 1e9
    )
    bar_years = np.concatenate([[float(np.median(spacing_years))], spacing_years])
    exposure_usd_years = float(np.sum(notional * bar_years))
    if exposure_usd_years <= 0.0:
        return math.nan
    return funding_usd / exposure_usd_years


def _spot_qty(timeseries: pd.DataFrame, position: int) -> float | None:
    # spot_value_usd = coins × spot close (engine/results.py), so coins = value / close.
    if len(timeseries) == 0 or not {"spot_value_usd", "spot_close"} <= set(timeseries.columns):
        return None
    close = float(timeseries["spot_close"].iloc[position])
    if not math.isfinite(close) or close <= 0.0:
        return None
    return float(timeseries["spot_value_usd"].iloc[position]) / close


def _json_number(value: float | int | None) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.isoformat()


SUMMARY_KEYS: tuple[str, ...] = (
    "strategy",
    "symbol",
    "exchange",
    "timeframe",
    "start",
    "end",
    "years",
    "initial_equity_usd",
    "final_equity_usd",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_start",
    "max_drawdown_trough",
    "max_drawdown_end",
    "calmar",
    "spot_pnl_usd",
    "perp_pnl_usd",
    "funding_usd",
    "fees_usd",
    "slippage_usd",
    "borrow_usd",
    "liquidation_usd",
    "net_transfers_usd",
    "trades",
    "switches",
    "liquidations",
    "time_hedged_pct",
    "worst_margin_ratio",
    "min_liquidation_distance",
    "realised_funding_apr_on_hedged_notional",
    "spot_qty_start_base",
    "spot_qty_end_base",
)
"""The keys of :func:`calc_summary`, in order: the stable ``--json`` contract of ``perphedge backtest``."""


def calc_summary(result: BacktestResult) -> dict[str, Any]:
    """Return the headline figures of a backtest as a JSON-able dict with the keys :data:`SUMMARY_KEYS`.

    Fractions throughout (``total_return`` 0.05 = 5 %; ``time_hedged_pct`` is a fraction of bars,
    0–1, like ``net_exposure_pct`` in the results); money in USD; dates ISO 8601 UTC. The returns are
    time-weighted (external transfers are taken out); Sharpe and Sortino use a risk-free rate of 0
    and the bar frequency for annualisation; CAGR and volatility use 365-day years.
    ``max_drawdown_start`` is the peak before the worst fall and ``max_drawdown_end`` the recovery
    (``None`` if equity never got back). Undefined figures are ``None``. When the equity reached 0
    or below (more than the capital lost), returns are undefined: ``cagr``, ``volatility``,
    ``sharpe``, ``sortino`` and ``calmar`` are ``None``, ``total_return`` and ``max_drawdown`` are
    below −1. ``worst_margin_ratio`` is
    the highest maintenance-margin / margin-balance ratio at a bar close (1 = liquidation) and
    ``min_liquidation_distance`` the smallest |liquidation price − mark| / mark at a bar close; the
    engine judges liquidation on the bar's adverse extreme, between two closes, so a liquidated run
    reports 1 and 0 (the margin ratio did reach 100 %), never the last close before it.
    ``spot_qty_start_base`` / ``spot_qty_end_base`` are the coins in the spot wallet at the first and
    last bar close (negative when short through a borrow): a margin policy that sells spot, or a
    reinvestment of funding, changes how many coins the holder ends with, which returns do not show.
    """
    timeseries = result.timeseries
    equity = to_equity_curve(result)
    times = time_index(equity, "the equity curve")
    flows = to_external_flows(result, times)
    periods = calc_periods_per_year(times)
    undefined_drawdown = MaxDrawdown(max_drawdown=math.nan, peak_ts=None, trough_ts=None, recovery_ts=None)
    if bool((equity > 0).all()):
        returns = to_returns(equity, flows)
        wealth = to_wealth_index(returns, start=equity.index[0])
        total_return = calc_total_return(wealth)
        cagr, calmar = calc_cagr(wealth), calc_calmar(wealth)
        volatility, sharpe = calc_volatility(returns, periods), calc_sharpe(returns, periods)
        sortino = calc_sortino(returns, periods)
        drawdown = calc_max_drawdown(wealth)
    else:
        # The equity reached 0 or below (the account lost more than it had): returns through it, and the
        # CAGR, volatility and ratios built on them, are undefined. The total return and the drawdown
        # from the positive start are not (both below -100 % when the equity is negative); with external
        # flows they would need returns, so they are undefined too.
        total_return = calc_total_return(equity) if flows is None else math.nan
        cagr = calmar = volatility = sharpe = sortino = math.nan
        drawdown = calc_max_drawdown(equity) if flows is None else undefined_drawdown
    attribution = {key: float(result.attribution.get(key, 0.0)) for key in ATTRIBUTION_KEYS}
    margin = (
        timeseries["margin_ratio"].to_numpy(dtype=float) if "margin_ratio" in timeseries else np.array([])
    )
    margin = margin[np.isfinite(margin)]
    distance = (
        np.abs(timeseries["liquidation_distance_pct"].to_numpy(dtype=float))
        if "liquidation_distance_pct" in timeseries
        else np.array([])
    )
    distance = distance[np.isfinite(distance)]
    if result.liquidations:
        margin = np.append(margin, 1.0)
        distance = np.append(distance, 0.0)
    summary: dict[str, Any] = {
        "strategy": result.strategy,
        "symbol": result.symbol,
        "exchange": result.exchange,
        "timeframe": result.timeframe,
        "start": _iso(equity.index[0]),
        "end": _iso(equity.index[-1]),
        "years": calc_years(times),
        "initial_equity_usd": float(result.initial_equity_usd),
        "final_equity_usd": float(result.final_equity_usd),
        "total_return": total_return,
        "cagr": cagr,
        "volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": drawdown.max_drawdown,
        "max_drawdown_start": _iso(drawdown.peak_ts),
        "max_drawdown_trough": _iso(drawdown.trough_ts),
        "max_drawdown_end": _iso(drawdown.recovery_ts),
        "calmar": calmar,
        **attribution,
        "net_transfers_usd": float(result.net_transfers_usd),
        "trades": int(result.trades),
        "switches": int(result.switches),
        "liquidations": int(result.liquidations),
        "time_hedged_pct": calc_time_hedged(timeseries),
        "worst_margin_ratio": float(margin.max()) if margin.size else None,
        "min_liquidation_distance": float(distance.min()) if distance.size else None,
        "realised_funding_apr_on_hedged_notional": calc_realised_funding_apr(
            timeseries, attribution["funding_usd"], contract=str(result.settings.get("contract", "linear"))
        ),
        "spot_qty_start_base": _spot_qty(timeseries, 0),
        "spot_qty_end_base": _spot_qty(timeseries, -1),
    }
    assert tuple(summary) == SUMMARY_KEYS  # the JSON contract; a mismatch is a bug here
    return {key: _json_number(value) for key, value in summary.items()}
