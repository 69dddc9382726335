"""The SQLite journal: schema version, TEXT money, UNIQUE client ids and settlements, idempotent recording."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from perphedge.errors import ConfigError
from perphedge.keeper.journal import SCHEMA_VERSION, Journal
from perphedge.venues.port import (
    ClientOrderId,
    FundingPayment,
    Leg,
    OrderRequest,
    OrderSide,
    OrderState,
    OrderStatus,
)


def _request(cid: str = "phxd1sm0") -> OrderRequest:
    return OrderRequest(
        client_order_id=ClientOrderId(cid),
        leg=Leg.SPOT,
        symbol="BTC/USDT",
        side=OrderSide.BUY,
        qty_base=Decimal("0.5"),
    )


def _status(filled: str, state: OrderState, avg: str = "40000", fee: str = "20") -> OrderStatus:
    return OrderStatus(
        client_order_id=ClientOrderId("phxd1sm0"),
        exchange_order_id="1",
        symbol="BTC/USDT",
        side=OrderSide.BUY,
        state=state,
        qty_base=Decimal("0.5"),
        filled_qty_base=Decimal(filled),
        average_price_usd=Decimal(avg),
        fee_usd=Decimal(fee),
    )


def test_new_journal_has_schema_version_and_reopens(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.sqlite")
    journal.close()
    conn = sqlite3.connect(tmp_path / "j.sqlite")
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        Journal.open(tmp_path / "j.sqlite")


def test_order_intent_is_unique_by_client_id(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.sqlite")
    first = journal.record_order_intent(_request(), decision_no=1, purpose="main", ts_ms=1)
    again = journal.record_order_intent(_request(), decision_no=1, purpose="main", ts_ms=2)
    assert first == again and len(journal.orders()) == 1
    with pytest.raises(sqlite3.IntegrityError):
        journal._conn.execute("INSERT INTO orders SELECT * FROM orders")


def test_recording_the_same_fill_twice_adds_it_once_and_money_is_text(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.sqlite")
    journal.set_book(spot_base=Decimal(0), perp_qty=Decimal(0), ts_ms=0, kind="test", detail={})
    journal.record_order_intent(_request(), decision_no=1, purpose="main", ts_ms=1)
    assert journal.record_order_status(_status("0.2", OrderState.OPEN, "40000", "8"), ts_ms=2) == Decimal(
        "0.2"
    )
    assert journal.record_order_status(
        _status("0.5", OrderState.CLOSED, "40600", "20.3"), ts_ms=3
    ) == Decimal("0.3")
    assert journal.record_order_status(
        _status("0.5", OrderState.CLOSED, "40600", "20.3"), ts_ms=4
    ) == Decimal(0)
    fills = journal.fills()
    assert [f["signed_delta_qty_base"] for f in fills] == ["0.2", "0.3"]
    # the second increment's own price from the cumulative averages: (0.5×40600 − 0.2×40000)/0.3 = 41000
    assert Decimal(fills[1]["price_usd"]) == Decimal(41000)
    assert journal.book() == (Decimal("0.5"), Decimal(0))
    types = journal._conn.execute("SELECT typeof(filled_qty_base), typeof(fee_usd) FROM orders").fetchone()
    assert types == ("text", "text")


def test_funding_is_unique_per_settlement_and_moves_the_watermark(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.sqlite")
    pays = [
        (
            FundingPayment(symbol="BTC/USDT:USDT", settle_ts_ms=t, amount_usd=Decimal("1.5")),
            Decimal("1.5"),
            1e-4,
        )
        for t in (100, 200)
    ]
    assert journal.record_funding(pays, symbol="BTC/USDT:USDT", ts_ms=1) == 2
    assert journal.record_funding(pays, symbol="BTC/USDT:USDT", ts_ms=2) == 0
    assert journal.funding_watermark_ts_ms("BTC/USDT:USDT") == 200
    assert journal.totals()["funding_received_usd"] == Decimal("3.0")


def test_only_one_keeper_may_hold_a_journal(tmp_path: Path) -> None:
    from perphedge.errors import InputError

    first = Journal.open(tmp_path / "j.sqlite")
    first.acquire_run_lock()
    second = Journal.open(tmp_path / "j.sqlite")
    with pytest.raises(InputError, match="another keeper"):
        second.acquire_run_lock()
    first.close()
    second.acquire_run_lock()  # released when the holder closes (or dies)
    second.close()


def test_an_order_update_interrupted_midway_leaves_nothing_half_written(tmp_path: Path, monkeypatch) -> None:
    journal = Journal.open(tmp_path / "j.sqlite")
    journal.set_book(spot_base=Decimal(0), perp_qty=Decimal(0), ts_ms=0, kind="test", detail={})
    journal.record_order_intent(_request(), decision_no=1, purpose="main", ts_ms=1)

    def crash(key: str, value: str) -> None:  # dies after the order row and the fill row were written
        raise RuntimeError("process killed")

    monkeypatch.setattr(journal, "_set_meta", crash)
    with pytest.raises(RuntimeError):
        journal.record_order_status(_status("0.5", OrderState.CLOSED), ts_ms=2)
    monkeypatch.undo()
    # what another process (the restarted keeper) sees on disk: the whole update rolled back
    other = sqlite3.connect(tmp_path / "j.sqlite")
    assert other.execute("SELECT state, filled_qty_base FROM orders").fetchall() == [("intent", "0")]
    assert other.execute("SELECT COUNT(*) FROM fills").fetchone() == (0,)
    other.close()
    # and recording it again (the restart's reconciliation) adds the fill exactly once
    assert journal.record_order_status(_status("0.5", OrderState.CLOSED), ts_ms=3) == Decimal("0.5")
    assert journal.book() == (Decimal("0.5"), Decimal(0)) and len(journal.fills()) == 1
    journal.close()
