"""The backtest report: one self-contained HTML file (plotly.js inlined, no CDN) that works offline.

``render_backtest_report`` shows one strategy; ``render_compare_report`` overlays several (with the
unhedged spot benchmark) and adds the summary table. Both return the HTML text; the caller writes it.

Charts: equity against spot buy-and-hold, drawdown, the attribution waterfall (every USD of the
change in equity by ledger component), the settled funding rate annualised with each settlement's
own interval (negative periods shaded), the basis, net exposure and hedge ratio, and the margin ratio
with the distance to liquidation. Tables: headline figures, the per-year table, events, the settings.

Charts of long series are thinned for display (every k-th bar, the page says so); every metric and
table is computed from every bar.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from perphedge.data.schema import MarketData
from perphedge.engine.results import ATTRIBUTION_KEYS, BacktestResult
from perphedge.errors import InputError
from perphedge.mechanics.funding import annualize_simple
from perphedge.report.metrics import calc_per_year, calc_summary, to_drawdown_series, to_equity_curve
from perphedge.report.tables import (
    to_metric_rows,
    to_per_year_table,
    to_settings_rows,
    to_summary_rows,
)

MAX_POINTS_PER_TRACE = 12_000
"""Longer series are shown every k-th bar (keeping the last) so the page stays responsive."""

MAX_EVENTS_LISTED = 200
"""Events beyond this many are counted, not listed (liquidations are always listed)."""

BENCHMARK_NAME = "spot buy-and-hold"

_COMPONENT_LABELS: dict[str, str] = {
    "spot_pnl_usd": "Spot PnL",
    "perp_pnl_usd": "Perp PnL",
    "funding_usd": "Funding",
    "fees_usd": "Fees",
    "slippage_usd": "Slippage",
    "borrow_usd": "Borrow",
    "liquidation_usd": "Liquidation",
}

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_BENCHMARK_STYLE = {"color": "#7f7f7f", "dash": "dot", "width": 1.5}
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1a1a1a;
       background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px 0; }
h2 { font-size: 1.2em; margin: 32px 0 8px 0; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta, p.note { color: #555; margin: 4px 0; }
section { background: #fff; border: 1px solid #e5e5e5; border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; white-space: normal; vertical-align: bottom; }
details > summary { cursor: pointer; color: #333; margin: 6px 0; }
.ok { color: #2a6f2a; font-weight: 600; }
.wide { overflow-x: auto; }
table.text td, table.text th { text-align: left; white-space: normal; max-width: 760px; overflow-wrap: anywhere; }
table.text td:first-child { white-space: nowrap; }
.warn { color: #a40000; font-weight: 600; }
"""


# --- public API --------------------------------------------------------------------------------------


def render_backtest_report(
    result: BacktestResult, *, market: MarketData | None = None, title: str | None = None
) -> str:
    """Return the HTML report of one backtest (self-contained; plotly.js inlined).

    ``market`` supplies the funding settlements for the funding chart; without it that chart is left
    out and the page says so.
    """
    summary = calc_summary(result)
    heading = title or f"{result.symbol} · {result.strategy} hedge backtest"
    sections = [
        _meta(result, [summary]),
        _section("Headline figures", _kv_table(to_summary_rows(summary)), note=_summary_note()),
        _liquidations_section([result]),
        _figure_section(
            "Equity against spot buy-and-hold",
            _equity_figure([result], include_benchmark=result.strategy != BENCHMARK_NAME),
        ),
        _figure_section("Drawdown", _drawdown_figure([result])),
        _figure_section(
            "Where the money came from",
            _waterfall_figure(result),
            note="Each bar is the sum of the ledger entries of one component; they add up to the change in equity.",
        ),
        _funding_section(market, [result]),
        _figure_section(
            "Basis (perp − spot) / spot", _basis_figure(result), note="Positive: the perp traded above spot."
        ),
        _figure_section("Exposure", _exposure_figure([result], show_hedge_ratio=True), note=_exposure_note()),
        _margin_section([result]),
        _section(
            "Per year", _table(*to_per_year_table(calc_per_year(to_equity_curve(result), result.ledger)))
        ),
        _events_section([result]),
        _section("Settings", _kv_table(to_settings_rows(result.settings), text=True)),
    ]
    return _page(heading, sections)


def render_compare_report(
    results: Sequence[BacktestResult], *, market: MarketData | None = None, title: str | None = None
) -> str:
    """Return the HTML report comparing several backtests of one market (all strategies overlaid).

    Every result must cover the same symbol; the unhedged benchmark may be one of them.

    Raises:
        InputError: if no result is given or they are of different symbols.
    """
    if not results:
        raise InputError("compare needs at least one backtest result; there were none")
    symbols = sorted({r.symbol for r in results})
    if len(symbols) != 1:
        raise InputError(f"compare needs results of one symbol; they were of {', '.join(symbols)}")
    summaries = [calc_summary(r) for r in results]
    has_benchmark = any(r.strategy == BENCHMARK_NAME for r in results)
    heading = title or f"{symbols[0]} · hedging strategies compared"
    sections = [
        _meta(results[0], summaries),
        _section("Summary", _table(*to_metric_rows(summaries)), note=_summary_note()),
        _liquidations_section(results),
        _figure_section("Equity", _equity_figure(results, include_benchmark=not has_benchmark)),
        _figure_section("Drawdown", _drawdown_figure(results)),
        _figure_section(
            "Where the money came from",
            _attribution_bars(results),
            note="USD by ledger component for each strategy; the components add up to the change in equity.",
        ),
        _funding_section(market, results),
        _figure_section(
            "Basis (perp − spot) / spot",
            _basis_figure(results[0]),
            note="Positive: the perp traded above spot.",
        ),
        _figure_section(
            "Net exposure", _exposure_figure(results, show_hedge_ratio=False), note=_exposure_note()
        ),
        _margin_section(results),
    ]
    for result in results:
        per_year = calc_per_year(to_equity_curve(result), result.ledger)
        sections.append(_section(f"Per year: {result.strategy}", _table(*to_per_year_table(per_year))))
    sections.append(_events_section(results))
    for result in results:
        sections.append(
            _section(f"Settings: {result.strategy}", _kv_table(to_settings_rows(result.settings), text=True))
        )
    return _page(heading, sections)


# --- figures -----------------------------------------------------------------------------------------


def _x(index: pd.Index) -> np.ndarray:
    # Epoch milliseconds (UTC) on a date axis: plotly.js reads numbers there as UTC ms, and a float
    # array is embedded as compact binary instead of one ISO string per point.
    return pd.DatetimeIndex(index).as_unit("ms").asi8.astype(np.float64)


def _date_text(moment: pd.Timestamp) -> str:
    # Layout shapes need date strings on a date axis (numbers are not read as ms there).
    return pd.Timestamp(moment).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _thin(frame: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    n = len(frame)
    if n <= MAX_POINTS_PER_TRACE:
        return frame
    step = int(np.ceil(n / MAX_POINTS_PER_TRACE))
    positions = np.unique(np.concatenate([np.arange(0, n, step), [n - 1]]))
    return frame.iloc[positions]


def _layout(
    fig: go.Figure, *, height: int = 420, y_title: str = "", y_format: str | None = None
) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 70, "r": 20, "t": 30, "b": 40},
        template="plotly_white",
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.15},
    )
    fig.update_xaxes(title_text="UTC", type="date")
    if y_title:
        fig.update_yaxes(title_text=y_title)
    if y_format:
        fig.update_yaxes(tickformat=y_format)
    return fig


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def _equity_figure(results: Sequence[BacktestResult], *, include_benchmark: bool) -> go.Figure:
    fig = go.Figure()
    for i, result in enumerate(results):
        curve = _thin(to_equity_curve(result))
        style = _BENCHMARK_STYLE if result.strategy == BENCHMARK_NAME else {"color": _color(i), "width": 2}
        fig.add_trace(go.Scatter(x=_x(curve.index), y=curve.to_numpy(), name=result.strategy, line=style))
        liquidated = _liquidation_times(result)
        if liquidated:
            equity = to_equity_curve(result)
            at = equity.index.searchsorted(pd.DatetimeIndex(liquidated), side="left")
            at = np.minimum(at, len(equity) - 1)
            fig.add_trace(
                go.Scatter(
                    x=_x(pd.DatetimeIndex(liquidated)),
                    y=equity.to_numpy()[at],
                    mode="markers",
                    marker={"symbol": "x", "size": 12, "color": "#d62728", "line": {"width": 2}},
                    name=f"{result.strategy}: LIQUIDATED",
                )
            )
    if include_benchmark and "buy_and_hold_equity_usd" in results[0].timeseries:
        bench = _thin(results[0].timeseries["buy_and_hold_equity_usd"].astype(float))
        fig.add_trace(
            go.Scatter(x=_x(bench.index), y=bench.to_numpy(), name=BENCHMARK_NAME, line=_BENCHMARK_STYLE)
        )
    # Log scale: the same distance is the same return, so a hedge's 5 %/year stays visible next to spot.
    fig = _layout(fig, y_title="equity (USD, log scale)", y_format="$,.0f")
    fig.update_yaxes(type="log")
    return fig


def _drawdown_figure(results: Sequence[BacktestResult]) -> go.Figure:
    fig = go.Figure()
    for i, result in enumerate(results):
        drawdown = _thin(to_drawdown_series(to_equity_curve(result)))
        style = _BENCHMARK_STYLE if result.strategy == BENCHMARK_NAME else {"color": _color(i), "width": 1.5}
        fig.add_trace(
            go.Scatter(x=_x(drawdown.index), y=drawdown.to_numpy(), name=result.strategy, line=style)
        )
    return _layout(fig, height=320, y_title="below running peak", y_format=".0%")


def _waterfall_figure(result: BacktestResult) -> go.Figure:
    labels = ["Initial equity"]
    values = [float(result.initial_equity_usd)]
    measures = ["absolute"]
    for key in ATTRIBUTION_KEYS:
        labels.append(_COMPONENT_LABELS[key])
        values.append(float(result.attribution.get(key, 0.0)))
        measures.append("relative")
    if result.net_transfers_usd:
        labels.append("Deposits − withdrawals")
        values.append(float(result.net_transfers_usd))
        measures.append("relative")
    labels.append("Final equity")
    values.append(float(result.final_equity_usd))
    measures.append("total")
    fig = go.Figure(
        go.Waterfall(
            x=labels,
            y=values,
            measure=measures,
            text=[f"-${-v:,.0f}" if v < 0 else f"${v:,.0f}" for v in values],
            textposition="outside",
            increasing={"marker": {"color": "#2ca02c"}},
            decreasing={"marker": {"color": "#d62728"}},
            totals={"marker": {"color": "#1f77b4"}},
            connector={"line": {"color": "#bbb"}},
            name=result.strategy,
        )
    )
    fig = _layout(fig, y_title="USD", y_format="$,.0f")
    fig.update_xaxes(title_text="", type="category")
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig


def _attribution_bars(results: Sequence[BacktestResult]) -> go.Figure:
    fig = go.Figure()
    labels = [_COMPONENT_LABELS[key] for key in ATTRIBUTION_KEYS]
    for i, result in enumerate(results):
        values = [float(result.attribution.get(key, 0.0)) for key in ATTRIBUTION_KEYS]
        fig.add_trace(go.Bar(x=labels, y=values, name=result.strategy, marker_color=_color(i)))
    fig = _layout(fig, y_title="USD", y_format="$,.0f")
    fig.update_xaxes(title_text="", type="category")
    fig.update_layout(barmode="group", hovermode="closest")
    return fig


def negative_funding_periods(funding: pd.DataFrame) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Return the ``(start, end)`` UTC spans during which the settled funding was negative.

    A settlement at ``S`` pays for the time since the previous settlement (the first one for its own
    interval ``h`` before ``S``); consecutive negative settlements merge into one span. These are the
    shaded bands of the funding chart.
    """
    if len(funding) == 0:
        return []
    negative = funding["rate_per_interval"].to_numpy(dtype=float) < 0
    settle = funding.index
    first_start = settle[0] - pd.Timedelta(hours=float(funding["interval_hours"].iloc[0]))
    accrual_start = settle[:-1].insert(0, first_start)
    periods: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    run_start: pd.Timestamp | None = None
    for i, is_negative in enumerate(negative):
        if is_negative and run_start is None:
            run_start = accrual_start[i]
        if run_start is not None and (not is_negative or i == len(negative) - 1):
            periods.append((run_start, settle[i] if is_negative else settle[i - 1]))
            run_start = None
    return periods


def _funding_figure(market: MarketData, results: Sequence[BacktestResult]) -> go.Figure:
    funding = market.funding
    if len(results) and len(results[0].timeseries):
        ts = results[0].timeseries.index
        funding = funding[(funding.index >= ts[0] - pd.Timedelta(days=1)) & (funding.index <= ts[-1])]
    apr_all = pd.Series(
        np.asarray(
            annualize_simple(
                funding["rate_per_interval"].to_numpy(float), funding["interval_hours"].to_numpy(float)
            )
        ),
        index=funding.index,
    )
    apr = _thin(apr_all)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.55, 0.45])
    fig.add_trace(
        go.Scatter(
            x=_x(apr.index),
            y=apr.to_numpy(),
            name="settled rate, simple APR",
            line={"color": "#1f77b4", "width": 1},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(  # a legend entry for the shaded bands (shapes have none)
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            marker={"symbol": "square", "size": 12, "color": "rgba(214,39,40,0.35)"},
            name="negative funding: the short pays",
        ),
        row=1,
        col=1,
    )
    for i, result in enumerate(results):
        cumulative = _thin(result.timeseries["cumulative_funding_usd"].astype(float))
        style = _BENCHMARK_STYLE if result.strategy == BENCHMARK_NAME else {"color": _color(i), "width": 1.5}
        fig.add_trace(
            go.Scatter(
                x=_x(cumulative.index),
                y=cumulative.to_numpy(),
                name=f"{result.strategy}: funding received",
                line=style,
            ),
            row=2,
            col=1,
        )
    shapes = [
        {
            "type": "rect",
            "xref": xref,
            "yref": f"{yref} domain",
            "x0": _date_text(start),
            "x1": _date_text(end),
            "y0": 0,
            "y1": 1,
            "fillcolor": "rgba(214,39,40,0.22)",
            "line": {"width": 0},
            "layer": "below",
        }
        for start, end in negative_funding_periods(funding)
        for xref, yref in (("x", "y"), ("x2", "y2"))
    ]
    fig.update_layout(shapes=shapes)
    fig = _layout(fig, height=560)
    fig.update_yaxes(title_text="funding APR", tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="cumulative funding (USD)", tickformat="$,.0f", row=2, col=1)
    fig.update_xaxes(title_text="", row=1, col=1)
    return fig


def _basis_figure(result: BacktestResult) -> go.Figure:
    basis = _thin(result.timeseries["basis_fraction"].astype(float))
    fig = go.Figure(
        go.Scatter(
            x=_x(basis.index),
            y=basis.to_numpy(),
            name="basis at bar close",
            line={"color": "#9467bd", "width": 1},
        )
    )
    return _layout(fig, height=300, y_title="basis", y_format=".2%")


def _exposure_figure(results: Sequence[BacktestResult], *, show_hedge_ratio: bool) -> go.Figure:
    fig = go.Figure()
    for i, result in enumerate(results):
        frame = _thin(result.timeseries[["net_exposure_pct", "hedge_ratio"]].astype(float))
        style = _BENCHMARK_STYLE if result.strategy == BENCHMARK_NAME else {"color": _color(i), "width": 1.5}
        fig.add_trace(
            go.Scatter(
                x=_x(frame.index),
                y=frame["net_exposure_pct"].to_numpy(),
                name=f"{result.strategy}: net exposure",
                line={**style, "shape": "hv"},
            )
        )
        if show_hedge_ratio:
            fig.add_trace(
                go.Scatter(
                    x=_x(frame.index),
                    y=frame["hedge_ratio"].to_numpy(),
                    name=f"{result.strategy}: hedge ratio",
                    line={"color": "#ff7f0e", "width": 1, "dash": "dash", "shape": "hv"},
                )
            )
    return _layout(fig, height=320, y_title="fraction of the base quantity", y_format=".0%")


def _liquidation_times(result: BacktestResult) -> list[pd.Timestamp]:
    return [pd.Timestamp(e.ts) for e in result.events if e.kind == "liquidation"]


def _policy_thresholds(results: Sequence[BacktestResult]) -> tuple[float, float] | None:
    # The trigger and target of the collateral policy when every run shares them and a policy acts.
    pairs = {
        (r.settings.get("trigger_margin_ratio"), r.settings.get("target_margin_ratio"))
        for r in results
        if r.strategy != BENCHMARK_NAME and r.settings.get("collateral_policy") not in (None, "none")
    }
    if len(pairs) != 1:
        return None
    trigger, target = pairs.pop()
    if not isinstance(trigger, int | float) or not isinstance(target, int | float):
        return None
    return float(trigger), float(target)


def _margin_figure(results: Sequence[BacktestResult]) -> go.Figure:
    # Log axes: a hedge lives at margin ratios of 0.5–5 % and 10–500 % from its liquidation price; on a
    # linear 0–100 % axis all of that is a flat line at the bottom.
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1)
    lowest_ratio = 1.0
    for i, result in enumerate(results):
        if result.strategy == BENCHMARK_NAME:
            continue  # no perp, no margin
        frame = _thin(result.timeseries[["margin_ratio", "liquidation_distance_pct"]].astype(float))
        x = _x(frame.index)
        ratio = frame["margin_ratio"].to_numpy()
        positive = ratio[np.isfinite(ratio) & (ratio > 0)]
        if positive.size:
            lowest_ratio = min(lowest_ratio, float(positive.min()))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.where(ratio > 0, ratio, np.nan),
                name=f"{result.strategy}: margin ratio",
                line={"color": _color(i), "width": 1.2},
                legendgroup=result.strategy,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.abs(frame["liquidation_distance_pct"].to_numpy()),
                name=f"{result.strategy}: price move to liquidation",
                line={"color": _color(i), "width": 1.2, "dash": "dot"},
                legendgroup=result.strategy,
            ),
            row=2,
            col=1,
        )
        liquidated = _liquidation_times(result)
        if liquidated:
            fig.add_trace(
                go.Scatter(
                    x=_x(pd.DatetimeIndex(liquidated)),
                    y=[1.0] * len(liquidated),
                    mode="markers",
                    marker={"symbol": "x", "size": 12, "color": "#d62728", "line": {"width": 2}},
                    name=f"{result.strategy}: LIQUIDATED",
                    legendgroup=result.strategy,
                ),
                row=1,
                col=1,
            )
    # Lines and their labels as shapes/annotations: plotly's add_hline labels land off a log axis.
    levels = [(1.0, "liquidation (margin ratio 100 %)", "#d62728", "dash")]
    thresholds = _policy_thresholds(results)
    if thresholds is not None:
        trigger, target = thresholds
        levels += [
            (trigger, f"collateral policy acts above {trigger:.2%}", "#555", "dot"),
            (target, f"… and restores {target:.2%}", "#555", "dot"),
        ]
        lowest_ratio = min(lowest_ratio, target)
    for level, text, color, dash in levels:
        fig.add_shape(
            type="line",
            xref="x domain",
            yref="y",
            x0=0,
            x1=1,
            y0=level,
            y1=level,
            line={"color": color, "dash": dash, "width": 1.5 if level == 1.0 else 1},
        )
        fig.add_annotation(
            xref="x domain",
            yref="y",
            x=0.0,
            y=float(np.log10(level)),  # annotations on a log axis take log10 of the value
            text=text,
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font={"size": 11, "color": color},
            bgcolor="rgba(255,255,255,0.7)",
        )
    fig = _layout(fig, height=600)
    fig.update_yaxes(
        title_text="margin ratio (log)",
        type="log",
        tickformat=".2~%",
        range=[np.log10(max(lowest_ratio, 1e-5)) - 0.2, 0.2],
        row=1,
        col=1,
    )
    fig.update_yaxes(title_text="price move to liq. (log)", type="log", tickformat=".0~%", row=2, col=1)
    fig.update_xaxes(title_text="", row=1, col=1)
    return fig


# --- HTML pieces -------------------------------------------------------------------------------------


def _summary_note() -> str:
    return (
        "Returns are time-weighted, in USD (USDT counted as USD). Sharpe and Sortino use a risk-free rate of 0 "
        "and annualise with the bar frequency (365-day years); drawdowns are from the running peak. "
        "Time hedged: share of bars in which the perp reduced the exposure below 100 %."
    )


def _exposure_note() -> str:
    return (
        "Net exposure is spot + signed perp as a fraction of the base quantity: 0 % is neutral, 100 % is plain spot, "
        "200 % is the article's spot-long + perp-long “dynamic” position, which is not neutral."
    )


def _margin_note() -> str:
    return (
        "Top: margin ratio = maintenance margin / margin balance (Binance's definition; 100 % = liquidation), "
        "log scale; dotted lines: where the collateral policy acts and what it restores; a red × marks a "
        "liquidation. Bottom: the price move that would liquidate the perp, |liquidation price − mark| / mark, "
        "log scale; a gap means no liquidation price. Both are taken at bar closes; a liquidation is judged on "
        "the bar's adverse extreme (mark high/low, else perp high/low), so it can happen between two closes."
    )


def _meta(result: BacktestResult, summaries: Sequence[dict[str, Any]]) -> str:
    first = summaries[0]
    text = (
        f"{html.escape(result.exchange)} {html.escape(result.symbol)}, {html.escape(result.timeframe)} bars, "
        f"{html.escape(str(first['start'])[:16])} to {html.escape(str(first['end'])[:16])} UTC, "
        f"initial equity ${first['initial_equity_usd']:,.2f}."
    )
    liquidated = [s["strategy"] for s in summaries if s.get("liquidations")]
    warning = ""
    if liquidated:
        warning = f'<p class="warn">Liquidated: {html.escape(", ".join(map(str, liquidated)))}. See Liquidations below.</p>'
    thinned = ""
    if len(result.timeseries) > MAX_POINTS_PER_TRACE:
        step = int(np.ceil((len(result.timeseries) + 1) / MAX_POINTS_PER_TRACE))
        thinned = f'<p class="note">Charts show every {step}th bar; all figures and tables use every bar.</p>'
    return f'<p class="meta">{text}</p>{warning}{thinned}'


def _section(title: str, body: str, *, note: str | None = None) -> str:
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f"<section><h2>{html.escape(title)}</h2>{note_html}{body}</section>"


def _figure_section(title: str, fig: go.Figure, *, note: str | None = None) -> str:
    div = pio.to_html(fig, include_plotlyjs=False, full_html=False, config=_PLOT_CONFIG)
    return _section(title, f'<div class="chart">{div}</div>', note=note)


def _margin_section(results: Sequence[BacktestResult]) -> str:
    title = "Margin and liquidation"
    has_margin = any(
        r.strategy != BENCHMARK_NAME
        and bool(np.isfinite(r.timeseries["margin_ratio"].to_numpy(dtype=float)).any())
        for r in results
    )
    if not has_margin:
        return _section(title, '<p class="note">No perp position was held: there is no margin to show.</p>')
    return _figure_section(title, _margin_figure(results), note=_margin_note())


def _funding_section(market: MarketData | None, results: Sequence[BacktestResult]) -> str:
    title = "Funding: settled rate (annualised) and funding received"
    if market is None or len(market.funding) == 0:
        return _section(title, '<p class="note">No funding settlements were given to the report.</p>')
    return _figure_section(
        title,
        _funding_figure(market, results),
        note=(
            "Each settlement's rate × settlements per year for its own interval (simple APR; 0.01 % per 8 h = "
            "10.95 %). Red areas: negative funding, when a short pays."
        ),
    )


def _liquidations_section(results: Sequence[BacktestResult]) -> str:
    title = "Liquidations"
    rows = [
        [pd.Timestamp(event.ts).strftime("%Y-%m-%d %H:%M"), result.strategy, event.detail]
        for result in results
        for event in result.events
        if event.kind == "liquidation"
    ]
    hedges = [r for r in results if r.strategy != BENCHMARK_NAME]
    if not rows:
        policies = sorted({str(r.settings.get("collateral_policy", "?")) for r in hedges})
        text = f"No liquidation in {'this run' if len(results) == 1 else 'any run'}" + (
            f" (collateral policy: {', '.join(policies)})." if policies else "."
        )
        return _section(title, f'<p class="ok">{html.escape(text)}</p>')
    warning = (
        f"{len(rows)} liquidation(s). After a liquidation the perp is gone and the spot is left unhedged: "
        "read the returns below with that in mind."
    )
    body = f'<p class="warn">{html.escape(warning)}</p>' + _table(
        ["Time (UTC)", "Strategy", "What happened"], rows, text=True
    )
    return _section(title, body)


def _events_section(results: Sequence[BacktestResult]) -> str:
    rows: list[list[str]] = []
    hidden = 0
    counts: list[str] = []
    for result in results:
        listed = 0
        kinds: dict[str, int] = {}
        for event in result.events:
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
            if event.kind != "liquidation" and listed >= MAX_EVENTS_LISTED:
                hidden += 1
                continue
            listed += 1
            rows.append(
                [pd.Timestamp(event.ts).strftime("%Y-%m-%d %H:%M"), result.strategy, event.kind, event.detail]
            )
        if kinds:
            counts.append(
                f"{result.strategy}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            )
    if not rows:
        return _section("Events", '<p class="note">No events: no liquidation, switch or top-up.</p>')
    note = f"{hidden} further events not listed (every liquidation is)." if hidden else None
    table = _table(["Time (UTC)", "Strategy", "Event", "Detail"], rows, text=True)
    listing = "".join(f"<li>{html.escape(line)}</li>" for line in counts)
    body = (
        f"<ul>{listing}</ul><details><summary>Show the {len(rows)} listed events</summary>{table}</details>"
    )
    return _section("Events", body, note=note)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, text: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    css = ' class="text"' if text else ""
    return f'<div class="wide"><table{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _kv_table(rows: Sequence[tuple[str, str]], *, text: bool = False) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    css = ' class="text"' if text else ""
    return f'<div class="wide"><table{css}><tbody>{body}</tbody></table></div>'


def _page(title: str, sections: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><main><h1>{html.escape(title)}</h1>{''.join(sections)}"
        '<p class="note">Generated by perphedge. The settings tables list every option of each run.</p>'
        "</main></body></html>\n"
    )
