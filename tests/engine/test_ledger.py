"""The ledger: rows in time order, price rows from per-bar arrays, attribution as sums by component."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perphedge.engine.ledger import (
    LEDGER_COLUMNS,
    LedgerBuilder,
    attribution_from_ledger,
    external_transfers_usd,
    price_pnl_rows,
)
from perphedge.engine.results import ATTRIBUTION_KEYS

T0 = 1_600_000_000_000


def test_rows_keep_booking_order_at_equal_times_and_sum_by_component() -> None:
    ledger = LedgerBuilder()
    ledger.add(T0 + 10, "funding", "perp", "funding", 3.0)
    ledger.add(T0, "trade", "spot", "spot_pnl", 0.0, 1.0, 100.0, "buy")
    ledger.add(T0, "fee", "spot", "fees", -0.1, 1.0, 100.0)
    ledger.add(T0, "transfer", "spot", "transfer", -50.0)
    ledger.add(T0, "transfer", "perp", "transfer", 50.0)
    prices = price_pnl_rows(
        np.array([T0 + 5, T0 + 6]), "perp", np.array([0.0, -2.5]), np.array([100.0, 97.5])
    )
    frame = ledger.to_frame([prices])
    assert tuple(frame.columns) == LEDGER_COLUMNS
    assert list(frame["kind"].astype(str)) == ["trade", "fee", "transfer", "transfer", "price_pnl", "funding"]
    assert frame["ts"].dt.tz is not None
    attribution = attribution_from_ledger(frame)
    assert set(attribution) == set(ATTRIBUTION_KEYS)
    assert attribution["funding_usd"] == 3.0 and attribution["fees_usd"] == -0.1
    assert attribution["perp_pnl_usd"] == -2.5 and attribution["spot_pnl_usd"] == 0.0
    assert external_transfers_usd(frame) == 0.0  # internal transfers are pairs, not flows


def test_external_transfers_are_counted_as_flows() -> None:
    ledger = LedgerBuilder()
    ledger.add(T0, "transfer", "external", "transfer", 1_000.0, note="deposit")
    frame = ledger.to_frame()
    assert external_transfers_usd(frame) == 1_000.0
    assert sum(attribution_from_ledger(frame).values()) == pytest.approx(0.0)
    assert isinstance(frame["ts"].iloc[0], pd.Timestamp)
