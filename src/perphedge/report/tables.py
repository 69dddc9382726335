"""Tables of results as plain rows of strings, shared by the terminal (rich, in cli/) and the HTML report.

Only presentation lives here: the numbers come from :mod:`perphedge.report.metrics` unchanged.
Fractions are shown as percents (0.0523 → "5.23 %"), money as USD with thousands separators,
dates as UTC. A figure that is undefined (``None``) is shown as "–".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

MISSING = "–"


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column of a results table: the summary key, its header and how to format it."""

    key: str
    header: str
    kind: str  # pct | usd | ratio | int | qty (coins) | date | text | multiple


SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column(key="start", header="Start", kind="date"),
    Column(key="end", header="End", kind="date"),
    Column(key="initial_equity_usd", header="Initial equity", kind="usd"),
    Column(key="final_equity_usd", header="Final equity", kind="usd"),
    Column(key="total_return", header="Total return", kind="pct"),
    Column(key="cagr", header="CAGR", kind="pct"),
    Column(key="volatility", header="Volatility (ann.)", kind="pct"),
    Column(key="sharpe", header="Sharpe (rf 0)", kind="ratio"),
    Column(key="sortino", header="Sortino", kind="ratio"),
    Column(key="max_drawdown", header="Max drawdown", kind="pct"),
    Column(key="max_drawdown_start", header="Drawdown peak", kind="date"),
    Column(key="max_drawdown_trough", header="Drawdown trough", kind="date"),
    Column(key="max_drawdown_end", header="Recovered", kind="date"),
    Column(key="calmar", header="Calmar", kind="ratio"),
    Column(key="spot_pnl_usd", header="Spot PnL", kind="usd"),
    Column(key="perp_pnl_usd", header="Perp PnL", kind="usd"),
    Column(key="funding_usd", header="Funding", kind="usd"),
    Column(key="fees_usd", header="Fees", kind="usd"),
    Column(key="slippage_usd", header="Slippage", kind="usd"),
    Column(key="borrow_usd", header="Borrow interest", kind="usd"),
    Column(key="liquidation_usd", header="Liquidation loss", kind="usd"),
    Column(key="trades", header="Trades", kind="int"),
    Column(key="switches", header="Switches", kind="int"),
    Column(key="liquidations", header="Liquidations", kind="int"),
    Column(key="time_hedged_pct", header="Time hedged", kind="pct"),
    Column(key="worst_margin_ratio", header="Worst margin ratio", kind="pct"),
    Column(key="min_liquidation_distance", header="Closest to liquidation", kind="pct"),
    Column(key="realised_funding_apr_on_hedged_notional", header="Funding APR on perp notional", kind="pct"),
    Column(key="spot_qty_start_base", header="Spot coins at start", kind="qty"),
    Column(key="spot_qty_end_base", header="Spot coins at end", kind="qty"),
)
"""Every row of the single-backtest summary, in display order."""

COMPARE_KEYS: tuple[str, ...] = (
    "final_equity_usd",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "max_drawdown",
    "funding_usd",
    "fees_usd",
    "borrow_usd",
    "liquidations",
    "switches",
    "time_hedged_pct",
    "worst_margin_ratio",
    "spot_qty_start_base",
    "spot_qty_end_base",
)
"""The columns of the ``compare`` table (one row per strategy)."""

PER_YEAR_COLUMNS: tuple[Column, ...] = (
    Column(key="start_equity_usd", header="Start equity", kind="usd"),
    Column(key="end_equity_usd", header="End equity", kind="usd"),
    Column(key="return", header="Return", kind="pct"),
    Column(key="max_drawdown", header="Max drawdown", kind="pct"),
    Column(key="spot_pnl_usd", header="Spot PnL", kind="usd"),
    Column(key="perp_pnl_usd", header="Perp PnL", kind="usd"),
    Column(key="funding_usd", header="Funding", kind="usd"),
    Column(key="fees_usd", header="Fees", kind="usd"),
    Column(key="slippage_usd", header="Slippage", kind="usd"),
    Column(key="borrow_usd", header="Borrow", kind="usd"),
    Column(key="liquidation_usd", header="Liquidation", kind="usd"),
)
"""Columns of the per-year table; those the ledger did not produce are left out."""

_COLUMN_BY_KEY = {column.key: column for column in SUMMARY_COLUMNS}


def format_value(value: Any, kind: str, *, compact: bool = False) -> str:
    """Return ``value`` formatted for a table: pct, usd, ratio, int, qty (coins), date or text; "–" when undefined.

    ``compact`` (narrow terminals) rounds USD to whole dollars and percents to one decimal.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if kind == "pct":
        return f"{value * 100:,.1f}%" if compact else f"{value * 100:,.2f} %"
    if kind == "usd":
        digits = 0 if compact else 2
        return f"-${-value:,.{digits}f}" if value < 0 else f"${value:,.{digits}f}"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "qty":
        return f"{value:,.4f}" if compact else f"{value:,.6f}"
    if kind == "int":
        return f"{int(value):,d}"
    if kind == "date":
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    return str(value)


def to_summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Return ``(label, formatted value)`` for each summary figure of one backtest."""
    return [(column.header, format_value(summary.get(column.key), column.kind)) for column in SUMMARY_COLUMNS]


def to_compare_table(summaries: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Return the headers and one row of formatted figures per strategy (the ``compare`` table)."""
    headers = ["Strategy"] + [_COLUMN_BY_KEY[key].header for key in COMPARE_KEYS]
    rows = [
        [str(summary["strategy"])]
        + [format_value(summary.get(key), _COLUMN_BY_KEY[key].kind) for key in COMPARE_KEYS]
        for summary in summaries
    ]
    return headers, rows


def to_metric_rows(
    summaries: Sequence[dict[str, Any]], keys: Sequence[str] | None = None, *, compact: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Return the compare table transposed: one row per figure, one column per strategy.

    ``keys`` picks the figures (default: every summary row); ``compact`` rounds for a terminal.
    """
    columns = SUMMARY_COLUMNS if keys is None else tuple(_COLUMN_BY_KEY[key] for key in keys)
    headers = ["Figure"] + [str(summary["strategy"]) for summary in summaries]
    rows = [
        [column.header] + [format_value(s.get(column.key), column.kind, compact=compact) for s in summaries]
        for column in columns
    ]
    return headers, rows


def to_per_year_table(per_year: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Return the headers and formatted rows of a :func:`~perphedge.report.metrics.calc_per_year` table."""
    columns = [column for column in PER_YEAR_COLUMNS if column.key in per_year.columns]
    headers = ["Year"] + [column.header for column in columns]
    rows = [
        [str(year)] + [format_value(float(row[column.key]), column.kind) for column in columns]
        for year, row in per_year.iterrows()
    ]
    return headers, rows


def to_settings_rows(settings: dict[str, Any]) -> list[tuple[str, str]]:
    """Return ``(setting, value)`` rows of the settings that shaped a run, in their given order."""
    return [(str(key), _setting_text(value)) for key, value in settings.items()]


def _setting_text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)
