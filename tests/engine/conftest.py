"""Shared real-data fixtures for the engine tests (bundled Binance BTCUSDT, loaded once)."""

from __future__ import annotations

import pytest

from perphedge.data.bundled import load_bundled
from perphedge.data.schema import MarketData


@pytest.fixture(scope="session")
def btc_8h() -> MarketData:
    """Bundled Binance BTCUSDT 8-hour bars and settlements, 2020-01 … 2026-02."""
    return load_bundled("BTCUSDT", "8h")


@pytest.fixture(scope="session")
def btc_1h() -> MarketData:
    """Bundled Binance BTCUSDT hourly bars (with real gaps) and settlements."""
    return load_bundled("BTCUSDT", "1h")
