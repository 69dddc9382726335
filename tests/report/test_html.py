"""The HTML report: self-contained, complete, and rendered without errors by a real browser (Debian chromium)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perphedge.errors import InputError
from perphedge.report.html import (
    BENCHMARK_NAME,
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


def _chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("/usr/bin/chromium is missing in CI: .ci/run must install Debian's chromium package")
    pytest.skip(
        "Debian's chromium is not installed (/usr/bin/chromium); apt-get install chromium to run this test"
    )


def open_in_chromium(page_path: Path, screenshot: Path | None = None) -> dict[str, object]:
    """Open ``page_path`` in headless chromium and return what a user would see went wrong or rendered."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    external_requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(_chromium_or_skip()), args=CHROMIUM_ARGS)
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
    # Arrange: a compare report of the real BTC history (spot benchmark; engine results when available)
    market = btc_8h()
    results = [dataclasses.replace(spot_only_result(market), strategy=BENCHMARK_NAME)]
    try:
        from perphedge.cli.backtest_cmd import run_comparison
        from perphedge.engine.config import BacktestConfig

        results = run_comparison(market, BacktestConfig())
    except ImportError:  # the engine is not there yet: the benchmark alone still exercises every chart
        pass
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
