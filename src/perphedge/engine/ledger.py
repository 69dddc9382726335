"""The ledger: every cash flow of a backtest as a row; the attribution is a sum over it.

Rows are appended in time order while the loop runs (plain lists, no pandas in the hot loop) and turned
into the ``BacktestResult.ledger`` frame at the end. Columns (see ``engine/results.py``):
``ts, kind, leg, component, amount_usd, qty_base, price_usd, note``; ``amount_usd`` is signed, + = a
gain to the account.

Kinds and the component each feeds:
    trade        spot_pnl / perp_pnl  amount 0: a trade swaps cash for coins at the reference price
    price_pnl    spot_pnl / perp_pnl  mark-to-market of a leg between two marks (bar open, fill, bar close)
    fee          fees                 taker fee of a fill
    slippage     slippage             cost of filling worse than the reference price
    funding      funding              funding settled on the perp position
    borrow       borrow               interest on coins borrowed for reverse carry
    liquidation  liquidation          the clearance fee charged when the perp is liquidated
    transfer     transfer             money moved between our own wallets (pairs summing to 0) or external
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perphedge.engine.results import ATTRIBUTION_KEYS

LEDGER_COLUMNS: tuple[str, ...] = (
    "ts",
    "kind",
    "leg",
    "component",
    "amount_usd",
    "qty_base",
    "price_usd",
    "note",
)

COMPONENT_TO_KEY: dict[str, str] = {
    "spot_pnl": "spot_pnl_usd",
    "perp_pnl": "perp_pnl_usd",
    "funding": "funding_usd",
    "fees": "fees_usd",
    "slippage": "slippage_usd",
    "borrow": "borrow_usd",
    "liquidation": "liquidation_usd",
}


class LedgerBuilder:
    """Append-only rows of cash flows; internal to one backtest run."""

    __slots__ = ("ts_ms", "kind", "leg", "component", "amount_usd", "qty_base", "price_usd", "note")

    def __init__(self) -> None:
        self.ts_ms: list[int] = []
        self.kind: list[str] = []
        self.leg: list[str] = []
        self.component: list[str] = []
        self.amount_usd: list[float] = []
        self.qty_base: list[float] = []
        self.price_usd: list[float] = []
        self.note: list[str] = []

    def add(
        self,
        ts_ms: int,
        kind: str,
        leg: str,
        component: str,
        amount_usd: float,
        qty_base: float = float("nan"),
        price_usd: float = float("nan"),
        note: str = "",
    ) -> None:
        """Append one row."""
        self.ts_ms.append(ts_ms)
        self.kind.append(kind)
        self.leg.append(leg)
        self.component.append(component)
        self.amount_usd.append(amount_usd)
        self.qty_base.append(qty_base)
        self.price_usd.append(price_usd)
        self.note.append(note)

    def fill(
        self,
        ts_ms: int,
        leg: str,
        *,
        trade_qty_base: float,
        trade_price_usd: float,
        trade_note: str,
        fee_usd: float,
        slippage_usd: float,
        fill_qty_base: float,
        fill_price_usd: float,
    ) -> None:
        """Append the rows of one fill: the trade (amount 0, at the reference price), its fee and its slippage.

        ``fee_usd`` and ``slippage_usd`` are costs (booked negative); no slippage row when it is 0.
        """
        component = "spot_pnl" if leg == "spot" else "perp_pnl"
        self.add(ts_ms, "trade", leg, component, 0.0, trade_qty_base, trade_price_usd, trade_note)
        self.add(ts_ms, "fee", leg, "fees", -fee_usd, fill_qty_base, fill_price_usd)
        if slippage_usd:
            self.add(ts_ms, "slippage", leg, "slippage", -slippage_usd, fill_qty_base, fill_price_usd)

    def transfer(
        self, ts_ms: int, source_leg: str, destination_leg: str, amount_usd: float, note: str
    ) -> None:
        """Append a transfer between two of our own wallets: a pair of rows summing to 0."""
        self.add(ts_ms, "transfer", source_leg, "transfer", -amount_usd, note=note)
        self.add(ts_ms, "transfer", destination_leg, "transfer", amount_usd, note=note)

    def to_frame(self, extra: Sequence[pd.DataFrame] = ()) -> pd.DataFrame:
        """Return the rows (plus ``extra`` frames with the same columns) as one frame in time order.

        The sort is stable, so rows at the same time keep the order they were booked in (extras after).
        """
        frame = pd.DataFrame(
            {
                "ts": pd.to_datetime(np.asarray(self.ts_ms, dtype=np.int64), unit="ms", utc=True),
                "kind": self.kind,
                "leg": self.leg,
                "component": self.component,
                "amount_usd": np.asarray(self.amount_usd, dtype=float),
                "qty_base": np.asarray(self.qty_base, dtype=float),
                "price_usd": np.asarray(self.price_usd, dtype=float),
                "note": self.note,
            }
        )
        frames = [frame, *[f for f in extra if len(f)]]
        if len(frames) > 1:
            frame = pd.concat(frames, ignore_index=True)
        frame = frame.sort_values("ts", kind="stable", ignore_index=True)
        for column in ("kind", "leg", "component"):
            frame[column] = frame[column].astype("category")
        return frame


def price_pnl_rows(
    ts_ms: np.ndarray, leg: str, amount_usd: np.ndarray, price_usd: np.ndarray
) -> pd.DataFrame:
    """Return ``price_pnl`` rows for one leg from per-bar arrays, skipping bars where it is exactly 0."""
    keep = amount_usd != 0.0
    n = int(keep.sum())
    component = "spot_pnl" if leg == "spot" else "perp_pnl"
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(ts_ms[keep], unit="ms", utc=True),
            "kind": np.full(n, "price_pnl", dtype=object),
            "leg": np.full(n, leg, dtype=object),
            "component": np.full(n, component, dtype=object),
            "amount_usd": amount_usd[keep],
            "qty_base": np.full(n, np.nan),
            "price_usd": price_usd[keep],
            "note": np.full(n, "", dtype=object),
        }
    )


def attribution_from_ledger(ledger: pd.DataFrame) -> dict[str, float]:
    """Return the USD total of each attribution component (``ATTRIBUTION_KEYS``), summed over the ledger.

    Transfers are not returns and are left out (internal ones sum to 0 anyway).
    """
    sums = ledger.groupby("component", observed=True)["amount_usd"].sum()
    out = {key: 0.0 for key in ATTRIBUTION_KEYS}
    for component, key in COMPONENT_TO_KEY.items():
        if component in sums.index:
            out[key] = float(sums[component])
    return out


def external_transfers_usd(ledger: pd.DataFrame) -> float:
    """Return the net external deposits (+) and withdrawals (−): transfer rows with leg ``external``."""
    rows = ledger[(ledger["kind"] == "transfer") & (ledger["leg"] == "external")]
    return float(rows["amount_usd"].sum())
