"""The keeper's SQLite journal: its memory (the venue is the truth). The only module importing sqlite3.

Schema (``SCHEMA_VERSION``; money and quantities as TEXT decimals, never floats):

- ``schema_version``: one row, the version of this schema.
- ``meta``: key/value facts (hedge id, base quantity, start time, funding watermark, the book).
- ``decisions``: one row per strategy decision: target, reason, strategy memory, the legs to trade
  (``plan_json``) and its status (``executing`` until its orders are final).
- ``orders``: every order by its client order id (UNIQUE), written as ``intent`` *before* it is sent.
- ``fills``: fill increments, UNIQUE on (client order id, cumulative filled quantity): recording the
  same venue state twice adds nothing.
- ``funding``: funding actually received per settlement, UNIQUE on (symbol, settle_ts_ms), with the
  model's amount beside it.
- ``transfers``: margin transfers by id, written as ``intent`` before they are sent.
- ``events``: reconciliation differences, alarms, refusals and halts.

Every state change is one transaction (``with self._conn``), so a process killed at any point leaves
either the whole change or none of it. The "book" (``meta.book_spot_base`` / ``book_perp_qty``) is
what the journal believes is held: it moves with every fill in the same transaction as the fill.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from perphedge.errors import ConfigError, InputError
from perphedge.venues.port import ClientOrderId, FundingPayment, Leg, OrderRequest, OrderState, OrderStatus

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE decisions (
    decision_no INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL,
    target_spot_fraction TEXT NOT NULL,
    target_perp_fraction TEXT NOT NULL,
    reason TEXT NOT NULL,
    memory_json TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT
);
CREATE TABLE orders (
    client_order_id TEXT NOT NULL UNIQUE,
    decision_no INTEGER NOT NULL,
    leg TEXT NOT NULL,
    purpose TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty_base TEXT NOT NULL,
    reduce_only INTEGER NOT NULL,
    state TEXT NOT NULL,
    exchange_order_id TEXT,
    filled_qty_base TEXT NOT NULL,
    average_price_usd TEXT,
    fee_usd TEXT NOT NULL,
    created_ts_ms INTEGER NOT NULL,
    updated_ts_ms INTEGER NOT NULL
);
CREATE TABLE fills (
    client_order_id TEXT NOT NULL,
    leg TEXT NOT NULL,
    cum_filled_qty_base TEXT NOT NULL,
    signed_delta_qty_base TEXT NOT NULL,
    price_usd TEXT,
    fee_usd TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    UNIQUE (client_order_id, cum_filled_qty_base)
);
CREATE TABLE funding (
    symbol TEXT NOT NULL,
    settle_ts_ms INTEGER NOT NULL,
    amount_usd TEXT NOT NULL,
    model_amount_usd TEXT,
    rate_per_interval TEXT,
    recorded_ts_ms INTEGER NOT NULL,
    UNIQUE (symbol, settle_ts_ms)
);
CREATE TABLE transfers (
    transfer_id TEXT NOT NULL UNIQUE,
    amount_usd TEXT NOT NULL,
    to_futures INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail_json TEXT NOT NULL
);
"""

PENDING_ORDER_STATES = ("intent", OrderState.OPEN.value, "unknown")


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    """A journalled decision. ``plan`` is the list of legs ``{"leg", "symbol", "signed_qty_base", "reduce_only"}``."""

    decision_no: int
    ts_ms: int
    kind: str  # strategy | margin | kill | unwind
    mode: str
    target_spot_fraction: str
    target_perp_fraction: str
    reason: str
    memory_json: str
    plan: tuple[dict[str, Any], ...]
    status: str
    outcome: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRecord:
    """A journalled order."""

    client_order_id: ClientOrderId
    decision_no: int
    leg: Leg
    purpose: str
    symbol: str
    side: str
    qty_base: Decimal
    reduce_only: bool
    state: str
    filled_qty_base: Decimal
    average_price_usd: Decimal | None
    fee_usd: Decimal


class Journal:
    """The SQLite journal of one hedge. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock: Any = None

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open (or create) the journal at ``path``.

        Raises:
            ConfigError: if the file is not a perphedge journal or has another schema version.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path)
        except sqlite3.Error as e:
            raise ConfigError(
                f"cannot open the journal {path} ({e}); point journal_path at a writable file",
                key_path="keeper.journal_path",
            ) from e
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            conn.close()
            raise ConfigError(
                f"{path} is not a SQLite journal ({e}); point journal_path at a new file",
                key_path="keeper.journal_path",
            ) from e
        if not tables:
            with conn:
                conn.executescript(
                    "BEGIN;" + _SCHEMA + f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION}); COMMIT;"
                )
        elif "schema_version" not in tables:
            conn.close()
            raise ConfigError(
                f"{path} is a SQLite file but not a perphedge journal; use another journal_path",
                key_path="keeper.journal_path",
            )
        else:
            (version,) = conn.execute("SELECT version FROM schema_version").fetchone()
            if version != SCHEMA_VERSION:
                conn.close()
                raise ConfigError(
                    f"{path} has journal schema version {version}, this perphedge reads "
                    f"{SCHEMA_VERSION}; upgrade perphedge or start a new journal",
                    key_path="keeper.journal_path",
                )
        return cls(conn, path)

    @property
    def holds_run_lock(self) -> bool:
        return self._lock is not None

    def acquire_run_lock(self) -> None:
        """Take an exclusive lock on ``<journal>.lock`` so only one keeper runs a hedge at a time.

        The operating system releases it when the process ends, however it ends (a kill included).

        Raises:
            InputError: another process holds the lock.
        """
        import fcntl

        handle = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise InputError(
                f"another keeper is running this hedge (journal {self.path} is locked); stop it "
                "first: two keepers on one hedge would trade twice"
            ) from None
        self._lock = handle

    def close(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.close()
            self._lock = None
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic state change: everything inside commits together or not at all."""
        with self._conn:
            yield self._conn

    # -- meta ------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._conn:
            self._set_meta(key, value)

    def set_metas(self, values: dict[str, str]) -> None:
        """Set several meta keys in one transaction."""
        with self._conn:
            for key, value in values.items():
                self._set_meta(key, value)

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- the book (what the journal believes is held) ----------------------------------------------

    def book(self) -> tuple[Decimal, Decimal] | None:
        """Return (spot_base, perp_signed_qty_base) the journal believes is held, or None before the first snapshot."""
        spot, perp = self.get_meta("book_spot_base"), self.get_meta("book_perp_qty")
        if spot is None or perp is None:
            return None
        return Decimal(spot), Decimal(perp)

    def set_book(
        self, *, spot_base: Decimal, perp_qty: Decimal, ts_ms: int, kind: str, detail: dict[str, Any]
    ) -> None:
        """Replace the book by the venue's holdings and record why (one transaction)."""
        with self._conn:
            self._set_meta("book_spot_base", str(spot_base))
            self._set_meta("book_perp_qty", str(perp_qty))
            self._insert_event(ts_ms, kind, detail)

    # -- decisions -------------------------------------------------------------------------------

    def next_decision_no(self) -> int:
        (last,) = self._conn.execute("SELECT COALESCE(MAX(decision_no), 0) FROM decisions").fetchone()
        return int(last) + 1

    def record_decision(self, record: DecisionRecord) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.decision_no,
                    record.ts_ms,
                    record.kind,
                    record.mode,
                    record.target_spot_fraction,
                    record.target_perp_fraction,
                    record.reason,
                    record.memory_json,
                    json.dumps(list(record.plan)),
                    record.status,
                    record.outcome,
                ),
            )

    def set_decision_status(self, decision_no: int, status: str, outcome: str | None = None) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE decisions SET status = ?, outcome = ? WHERE decision_no = ?",
                (status, outcome, decision_no),
            )

    def unfinished_decision(self) -> DecisionRecord | None:
        """Return the decision still ``executing`` (a crash or an unreachable venue interrupted it), if any."""
        row = self._conn.execute(
            "SELECT * FROM decisions WHERE status = 'executing' ORDER BY decision_no LIMIT 1"
        ).fetchone()
        return None if row is None else _decision(row)

    def decisions(self) -> list[DecisionRecord]:
        return [_decision(r) for r in self._conn.execute("SELECT * FROM decisions ORDER BY decision_no")]

    def last_strategy_memory_json(self) -> str | None:
        row = self._conn.execute(
            "SELECT memory_json FROM decisions WHERE kind = 'strategy' ORDER BY decision_no DESC LIMIT 1"
        ).fetchone()
        return None if row is None else row[0]

    # -- orders and fills ------------------------------------------------------------------------

    def record_order_intent(
        self, request: OrderRequest, *, decision_no: int, purpose: str, ts_ms: int
    ) -> OrderRecord:
        """Write an order as ``intent`` before it is sent; return the existing row if it is already there."""
        existing = self.order(request.client_order_id)
        if existing is not None:
            return existing
        with self._conn:
            self._conn.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'intent', NULL, '0', NULL, '0', ?, ?)",
                (
                    request.client_order_id,
                    decision_no,
                    request.leg.value,
                    purpose,
                    request.symbol,
                    request.side.value,
                    str(request.qty_base),
                    int(request.reduce_only),
                    ts_ms,
                    ts_ms,
                ),
            )
        record = self.order(request.client_order_id)
        assert record is not None
        return record

    def order(self, client_order_id: str) -> OrderRecord | None:
        row = self._conn.execute(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else _order(row)

    def orders(self, decision_no: int | None = None) -> list[OrderRecord]:
        if decision_no is None:
            rows = self._conn.execute("SELECT * FROM orders ORDER BY rowid")
        else:
            rows = self._conn.execute(
                "SELECT * FROM orders WHERE decision_no = ? ORDER BY rowid", (decision_no,)
            )
        return [_order(r) for r in rows]

    def pending_orders(self) -> list[OrderRecord]:
        marks = ",".join("?" * len(PENDING_ORDER_STATES))
        rows = self._conn.execute(
            f"SELECT * FROM orders WHERE state IN ({marks}) ORDER BY rowid", PENDING_ORDER_STATES
        )
        return [_order(r) for r in rows]

    def set_order_state(self, client_order_id: str, state: str, ts_ms: int) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE orders SET state = ?, updated_ts_ms = ? WHERE client_order_id = ?",
                (state, ts_ms, client_order_id),
            )

    def record_order_status(self, status: OrderStatus, *, ts_ms: int) -> Decimal:
        """Store the venue's view of an order; add its new fill increment to fills and the book.

        Returns the signed quantity newly filled (0 when the venue reports nothing new), all in one
        transaction, so recording the same status twice changes nothing.
        """
        previous = self.order(status.client_order_id)
        if previous is None:
            raise KeyError(f"order {status.client_order_id} was never journalled as an intent")
        delta = status.filled_qty_base - previous.filled_qty_base
        # the fill's own time when the venue gives it (a fill recovered after a restart happened earlier);
        # never later than now
        fill_ts_ms = ts_ms if status.last_fill_ts_ms is None else min(ts_ms, status.last_fill_ts_ms)
        with self._conn:
            self._conn.execute(
                "UPDATE orders SET state = ?, exchange_order_id = ?, filled_qty_base = ?, average_price_usd = ?, "
                "fee_usd = ?, updated_ts_ms = ? WHERE client_order_id = ?",
                (
                    status.state.value,
                    status.exchange_order_id,
                    str(status.filled_qty_base),
                    None if status.average_price_usd is None else str(status.average_price_usd),
                    str(status.fee_usd),
                    ts_ms,
                    status.client_order_id,
                ),
            )
            if delta > 0:
                signed = delta if status.side.value == "buy" else -delta
                price = increment_price(previous, status, delta)
                self._conn.execute(
                    "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        status.client_order_id,
                        previous.leg.value,
                        str(status.filled_qty_base),
                        str(signed),
                        None if price is None else str(price),
                        str(status.fee_usd - previous.fee_usd),
                        fill_ts_ms,
                    ),
                )
                key = "book_spot_base" if previous.leg is Leg.SPOT else "book_perp_qty"
                held = Decimal(self.get_meta(key) or "0")
                self._set_meta(key, str(held + signed))
                return signed
        return Decimal(0)

    def deleveraged_qty_base(self) -> Decimal:
        """Return the coins by which margin actions shrank the hedge (|net perp fills of ``margin`` decisions|)."""
        total = Decimal(0)
        for (delta,) in self._conn.execute(
            "SELECT f.signed_delta_qty_base FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id "
            "JOIN decisions d ON d.decision_no = o.decision_no WHERE d.kind = 'margin' AND f.leg = 'perp'"
        ):
            total += Decimal(delta)
        return abs(total)

    def fills(self) -> list[dict[str, Any]]:
        cols = (
            "client_order_id",
            "leg",
            "cum_filled_qty_base",
            "signed_delta_qty_base",
            "price_usd",
            "fee_usd",
            "ts_ms",
        )
        return [
            dict(zip(cols, r, strict=True)) for r in self._conn.execute("SELECT * FROM fills ORDER BY rowid")
        ]

    # -- funding ---------------------------------------------------------------------------------

    def funding_watermark_ts_ms(self, symbol: str) -> int | None:
        value = self.get_meta(f"funding_through_ts_ms:{symbol}")
        return None if value is None else int(value)

    def record_funding(
        self,
        payments: Iterable[tuple[FundingPayment, Decimal | None, float | None]],
        *,
        symbol: str,
        ts_ms: int,
    ) -> int:
        """Insert (payment, model amount, rate) rows not seen before and move the watermark; return how many were new.

        UNIQUE (symbol, settle_ts_ms) plus the settled-through watermark make a replay a no-op.
        """
        inserted = 0
        with self._conn:
            watermark = self.funding_watermark_ts_ms(symbol)
            for payment, model, rate in payments:
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO funding VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        symbol,
                        payment.settle_ts_ms,
                        str(payment.amount_usd),
                        None if model is None else str(model),
                        None if rate is None else repr(rate),
                        ts_ms,
                    ),
                )
                inserted += cur.rowcount
                watermark = max(watermark or 0, payment.settle_ts_ms)
            if watermark is not None:
                self._set_meta(f"funding_through_ts_ms:{symbol}", str(watermark))
        return inserted

    def funding_rows(self) -> list[dict[str, Any]]:
        cols = (
            "symbol",
            "settle_ts_ms",
            "amount_usd",
            "model_amount_usd",
            "rate_per_interval",
            "recorded_ts_ms",
        )
        return [
            dict(zip(cols, r, strict=True))
            for r in self._conn.execute("SELECT * FROM funding ORDER BY settle_ts_ms")
        ]

    # -- transfers -------------------------------------------------------------------------------

    def record_transfer_intent(
        self,
        *,
        transfer_id: str,
        amount_usd: Decimal,
        to_futures: bool,
        reason: str,
        ts_ms: int,
        purpose: str = "reserve",
    ) -> None:
        """Journal a transfer before sending it. ``purpose``: reserve (counts against reserve_usd) | proceeds."""
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO transfers VALUES (?, ?, ?, ?, 'intent', ?, ?)",
                (transfer_id, str(amount_usd), int(to_futures), purpose, reason, ts_ms),
            )

    def set_transfer_status(self, transfer_id: str, status: str) -> None:
        with self._conn:
            self._conn.execute("UPDATE transfers SET status = ? WHERE transfer_id = ?", (status, transfer_id))

    def transfers(self, status: str | None = None) -> list[dict[str, Any]]:
        cols = ("transfer_id", "amount_usd", "to_futures", "purpose", "status", "reason", "ts_ms")
        query = "SELECT * FROM transfers" + (" WHERE status = ?" if status else "") + " ORDER BY rowid"
        return [
            dict(zip(cols, r, strict=True)) for r in self._conn.execute(query, (status,) if status else ())
        ]

    # -- events ----------------------------------------------------------------------------------

    def record_event(self, ts_ms: int, kind: str, detail: dict[str, Any]) -> None:
        with self._conn:
            self._insert_event(ts_ms, kind, detail)

    def _insert_event(self, ts_ms: int, kind: str, detail: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO events (ts_ms, kind, detail_json) VALUES (?, ?, ?)",
            (ts_ms, kind, json.dumps(detail, sort_keys=True, default=str)),
        )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT ts_ms, kind, detail_json FROM events"
            + (" WHERE kind = ?" if kind else "")
            + " ORDER BY event_id"
        )
        return [
            {"ts_ms": r[0], "kind": r[1], "detail": json.loads(r[2])}
            for r in self._conn.execute(query, (kind,) if kind else ())
        ]

    # -- summaries -------------------------------------------------------------------------------

    def totals(self) -> dict[str, Decimal]:
        """Return cumulative fees by leg, funding received and the model's funding (USD)."""
        fees = {leg: Decimal(0) for leg in ("spot", "perp")}
        for leg, fee in self._conn.execute("SELECT leg, fee_usd FROM fills"):
            fees[leg] += Decimal(fee)
        funding = model = Decimal(0)
        for amount, model_amount in self._conn.execute("SELECT amount_usd, model_amount_usd FROM funding"):
            funding += Decimal(amount)
            model += Decimal(model_amount) if model_amount is not None else Decimal(0)
        return {
            "fees_spot_usd": fees["spot"],
            "fees_perp_usd": fees["perp"],
            "funding_received_usd": funding,
            "funding_model_usd": model,
        }


def increment_price(previous: OrderRecord, status: OrderStatus, delta: Decimal) -> Decimal | None:
    """Return the average price of the fill increment ``delta`` between a journalled order and the venue's view."""
    if status.average_price_usd is None:
        return None
    if previous.average_price_usd is None or previous.filled_qty_base == 0:
        return status.average_price_usd
    # average price of the new increment from the two cumulative averages
    return (
        status.average_price_usd * status.filled_qty_base
        - previous.average_price_usd * previous.filled_qty_base
    ) / delta


def _decision(row: tuple[Any, ...]) -> DecisionRecord:
    return DecisionRecord(
        decision_no=row[0],
        ts_ms=row[1],
        kind=row[2],
        mode=row[3],
        target_spot_fraction=row[4],
        target_perp_fraction=row[5],
        reason=row[6],
        memory_json=row[7],
        plan=tuple(json.loads(row[8])),
        status=row[9],
        outcome=row[10],
    )


def _order(row: tuple[Any, ...]) -> OrderRecord:
    return OrderRecord(
        client_order_id=ClientOrderId(row[0]),
        decision_no=row[1],
        leg=Leg(row[2]),
        purpose=row[3],
        symbol=row[4],
        side=row[5],
        qty_base=Decimal(row[6]),
        reduce_only=bool(row[7]),
        state=row[8],
        filled_qty_base=Decimal(row[10]),
        average_price_usd=None if row[11] is None else Decimal(row[11]),
        fee_usd=Decimal(row[12]),
    )
