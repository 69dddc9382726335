"""The HTML report: self-contained, complete, and rendered without errors by a real browser (Debian chromium)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perphedge.errors import InputError
from perphedge.report.html import (
    negative_funding_periods,
    render_backtest_report,
    render_compare_report,
)
from tests.report.builders import btc_8h, spot_only_result

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def spot_report() -> str:
    market = btc_8h()
    return render_backtest_report(spot_only_result(market), market=market)


def test_report_is_self_contained_with_plotly_inlined(spot_report: str) -> None:
    assert spot_report.startswith("<!DOCTYPE html>")
    # plotly.js is inlined (its bundle header), and nothing is fetched from the network
    assert "plotly.js v" in spot_report[:400_000]
    assert re.search(r"<script[^>]+src=", spot_report) is None
    markup = re.sub(r"<script[^>]*>.*?</script>", "", spot_report, flags=re.S)
    assert re.search(r"""(src|href)=["']?https?:""", markup) is None  # the browser test checks requests
    assert '<link rel="stylesheet"' not in spot_report


def test_report_has_every_section_the_issue_asks_for(spot_report: str) -> None:
    for title in (
        "Headline figures",
        "Equity against spot buy-and-hold",
        "Drawdown",
        "Where the money came from",
        "Funding: settled rate (annualised) and funding received",
        "Basis (perp − spot) / spot",
        "Exposure",
        "Margin and liquidation",
        "Per year",
        "Settings",
    ):
        assert f"<h2>{title}</h2>" in spot_report, title
    for year in range(2020, 2027):
        assert f"<td>{year}</td>" in spot_report
    # spot only: no margin chart, said plainly
    assert "No perp position was held" in spot_report


def test_report_without_market_says_the_funding_chart_is_missing() -> None:
    page = render_backtest_report(spot_only_result(btc_8h()))
    assert "No funding settlements were given to the report." in page


def test_report_escapes_names() -> None:
    result = dataclasses.replace(spot_only_result(btc_8h()), strategy="<script>alert(1)</script>")
    page = render_backtest_report(result)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_compare_report_refuses_mixed_symbols_and_nothing() -> None:
    btc = spot_only_result(btc_8h())
    other = dataclasses.replace(btc, symbol="ETHUSDT")
    with pytest.raises(InputError, match="one symbol"):
        render_compare_report([btc, other])
    with pytest.raises(InputError, match="at least one"):
        render_compare_report([])


def test_negative_funding_periods_real_btc_cover_exactly_the_negative_settlements() -> None:
    # Arrange
    funding = btc_8h().funding
    # Act
    periods = negative_funding_periods(funding)
    # Assert: every settlement inside a span (S in (start, end]) is negative, and every negative one is inside
    settle = funding.index
    inside = np.zeros(len(funding), dtype=bool)
    for start, end in periods:
        assert start < end
        inside |= (settle > start) & (settle <= end)
    negative = funding["rate_per_interval"].to_numpy() < 0
    assert np.array_equal(inside, negative)
    # spans do not touch: consecutive negative settlements were merged
    assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(periods, periods[1:], strict=False))
    # the COVID crash: funding went negative at the 2020-03-13 settlements
    march_13 = pd.Timestamp("2020-03-13 08:00", tz="UTC")
    assert any(start < march_13 <= end for start, end in periods)


# --- the browser test --------------------------------------------------------------------------------


def _require_chromium() -> Path:
    # Fails, never skips: a CI without the browser must not pass silently (.ci/run installs it). On a
    # machine without chromium, deselect the test explicitly: pytest -m "not browser".
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does) or deselect this test "
            'with pytest -m "not browser"'
        )
    return CHROMIUM


def open_in_chromium(page_path: Path, screenshot: Path | None = None) -> dict[str, object]:
    """Open ``page_path`` in headless chromium and return what a user would see went wrong or rendered."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    external_requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(_require_chromium()), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "request",
                lambda r: (
                    external_requests.append(r.url)
                    if not r.url.startswith(("file:", "data:", "blob:"))
                    else None
                ),
            )
            page.goto(page_path.as_uri())
            page.wait_for_function(
                "() => { const plots = document.querySelectorAll('.js-plotly-plot');"
                " return plots.length > 0 && Array.from(plots).every(p => p._fullLayout); }",
                timeout=60_000,
            )
            charts = page.evaluate(
                """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => ({
                    svg: p.querySelectorAll('.main-svg').length,
                    traces: p.querySelectorAll('.trace').length,
                    drawn: p.querySelectorAll('.trace path, .trace rect, .point path').length,
                    section: p.closest('section').querySelector('h2').textContent }))"""
            )
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    return {"problems": problems, "external_requests": external_requests, "charts": charts}


@pytest.mark.browser
def test_compare_report_renders_in_chromium_without_errors(tmp_path: Path) -> None:
    # Arrange: the compare report of the real BTC history, as `perphedge compare` writes it
    from perphedge.cli.backtest_cmd import run_comparison
    from perphedge.engine.config import BacktestConfig

    market = btc_8h()
    results = run_comparison(market, BacktestConfig())
    path = tmp_path / "compare.html"
    path.write_text(render_compare_report(results, market=market), encoding="utf-8")
    # Act
    seen = open_in_chromium(path, screenshot=tmp_path / "compare.png")
    # Assert
    assert seen["problems"] == []
    assert seen["external_requests"] == []  # works offline
    charts = seen["charts"]
    assert len(charts) >= 5
    for chart in charts:
        assert chart["svg"] >= 1, chart
        assert chart["traces"] >= 1 and chart["drawn"] >= 1, chart
    assert (tmp_path / "compare.png").stat().st_size > 10_000


# --- liquidations and the margin chart, on real engine runs ---------------------------------------------


@pytest.fixture(scope="module")
def liquidated_2020() -> tuple[object, object]:
    # A 2x full hedge with no collateral policy: BTC's 2020 rally liquidates the short on 2020-08-01.
    from perphedge.engine.config import BacktestConfig
    from perphedge.engine.loop import run_backtest
    from perphedge.strategies.registry import build_strategy

    market = btc_8h()
    config = BacktestConfig(
        start=pd.Timestamp("2020-01-01", tz="UTC"),
        end=pd.Timestamp("2021-01-01", tz="UTC"),
        collateral_policy="none",
    )
    return market, run_backtest(market, build_strategy("full"), config)


def test_report_shows_a_liquidation_before_the_charts_and_marks_it(liquidated_2020) -> None:
    # Arrange
    market, result = liquidated_2020
    assert result.liquidations == 1
    (event,) = [e for e in result.events if e.kind == "liquidation"]
    # Act
    page = render_backtest_report(result, market=market)
    # Assert: a red warning at the top, the Liquidations section right after the headline figures
    assert '<p class="warn">Liquidated: full.' in page
    assert (
        page.index("<h2>Headline figures</h2>")
        < page.index("<h2>Liquidations</h2>")
        < page.index("<h2>Equity against spot buy-and-hold</h2>")
    )
    liquidations = page[page.index("<h2>Liquidations</h2>") : page.index("<h2>Equity against")]
    assert "1 liquidation(s)" in liquidations and "2020-08-01 08:00" in liquidations
    assert html_escape(event.detail) in liquidations
    # marked on the equity and margin charts
    assert page.count('"name":"full: LIQUIDATED"') == 2


def test_report_says_plainly_when_no_run_was_liquidated() -> None:
    from perphedge.engine.config import BacktestConfig
    from perphedge.engine.loop import run_backtest
    from perphedge.strategies.registry import build_strategy

    market = btc_8h()
    config = BacktestConfig(
        start=pd.Timestamp("2023-01-01", tz="UTC"), end=pd.Timestamp("2023-07-01", tz="UTC")
    )
    result = run_backtest(market, build_strategy("partial", ratio=0.5), config)
    assert result.liquidations == 0
    page = render_backtest_report(result, market=market)
    assert '<p class="ok">No liquidation in this run (collateral policy: sell_spot).</p>' in page
    assert "LIQUIDATED" not in page and '<p class="warn">' not in page


def test_margin_chart_is_on_log_axes_with_the_policy_thresholds(liquidated_2020) -> None:
    # a hedge lives at margin ratios of 0.1–5 %: a linear 0–100 % axis flattens it to the floor
    from perphedge.cli.backtest_cmd import run_comparison
    from perphedge.engine.config import BacktestConfig

    market = btc_8h()
    config = BacktestConfig(
        start=pd.Timestamp("2021-01-01", tz="UTC"), end=pd.Timestamp("2021-07-01", tz="UTC")
    )
    page = render_compare_report(run_comparison(market, config), market=market)
    margin = page[page.index("<h2>Margin and liquidation</h2>") : page.index("<h2>Per year")]
    assert margin.count('"type":"log"') >= 2
    assert "collateral policy acts above 2.00%" in margin and "… and restores 0.80%" in margin
    assert "liquidation (margin ratio 100 %)" in margin
    # the liquidated run has no policy lines to draw
    _, liquidated = liquidated_2020
    alone = render_backtest_report(liquidated)
    assert "collateral policy acts above" not in alone


def html_escape(text: str) -> str:
    import html

    return html.escape(text)
