"""Reconciliation: the venue is the truth, the journal is the memory; differences are resolved and logged.

Run at start and at every cycle (startup and crash recovery are the same path):

1. ``resolve_pending_orders``: every order the journal has as intent/open/unknown is looked up by its
   client id; what the venue reports (fills included) is journalled. This is what repairs a crash
   between "order sent" and "fill recorded".
2. ``reconcile_holdings``: the venue's spot balance and perp position are compared with the
   journal's book; a difference is logged and recorded as an event, and the book adopts the venue.
3. ``reconcile_funding``: funding actually paid (``fetch_funding_history``) since the settled-through
   watermark, including settlements that happened while the keeper was down, is journalled once
   (UNIQUE (symbol, settle_ts_ms)) next to the model's amount ``−qty × mark × rate`` (Binance funding
   FAQ, ``mechanics.funding.funding_cashflow_linear_usd``) for the position the journal held then.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from perphedge.keeper.journal import Journal
from perphedge.keeper.log import KeeperLog
from perphedge.mechanics.funding import funding_cashflow_linear_usd
from perphedge.units import MS_PER_MINUTE
from perphedge.venues.port import Balances, FundingPayment, PerpPosition, Quote, TradingVenue, to_decimal

FUNDING_MATCH_TOLERANCE_MS = (
    MS_PER_MINUTE  # a payment's time vs the rate's settlement time (ms jitter, delays)
)
FUNDING_MISMATCH_ABS_USD = Decimal("0.01")
FUNDING_MISMATCH_REL = Decimal("0.01")  # 1 % of the model amount


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What the venue says now."""

    quote: Quote
    balances: Balances
    position: PerpPosition | None

    @property
    def perp_qty_base(self) -> Decimal:
        return Decimal(0) if self.position is None else self.position.signed_qty_base

    @property
    def spot_base(self) -> Decimal:
        return self.balances.spot_base

    @property
    def equity_usd(self) -> Decimal:
        """Spot coins at the spot price + both wallets' cash + the perp's unrealised PnL (USD)."""
        upnl = Decimal(0) if self.position is None else self.position.unrealized_pnl_usd
        return (
            self.balances.spot_base * self.quote.spot_price_usd
            + self.balances.spot_usd
            + self.balances.futures_wallet_usd
            + upnl
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldingsDifference:
    spot_journal: Decimal
    spot_venue: Decimal
    perp_journal: Decimal
    perp_venue: Decimal

    @property
    def perp_vanished(self) -> bool:
        """The journal holds a perp position the venue no longer has (liquidated or closed elsewhere)."""
        return self.perp_journal != 0 and self.perp_venue == 0


def take_snapshot(venue: TradingVenue, spot_symbol: str, perp_symbol: str) -> Snapshot:
    """Read quote, balances and position from the venue (VenueUnavailable propagates)."""
    return Snapshot(
        quote=venue.fetch_quote(spot_symbol, perp_symbol),
        balances=venue.fetch_balances(spot_symbol, perp_symbol),
        position=venue.fetch_perp_position(perp_symbol),
    )


def resolve_pending_orders(venue: TradingVenue, journal: Journal, log: KeeperLog, now_ms: int) -> int:
    """Journal the venue's view of every pending order; return how many gained fills."""
    recovered = 0
    for record in journal.pending_orders():
        status = venue.fetch_order_by_client_id(record.symbol, record.client_order_id)
        if status is None:
            continue  # never reached the venue; the unfinished decision will (re)send it
        delta = journal.record_order_status(status, ts_ms=now_ms)
        if delta != 0:
            recovered += 1
            log.write(
                now_ms,
                "reconcile.order_recovered",
                level="warning",
                client_order_id=record.client_order_id,
                state=status.state.value,
                filled_delta_base=str(delta),
                reason="the venue filled an order whose fill the journal had not recorded (restart)",
            )
    return recovered


def resolve_pending_transfers(venue: TradingVenue, journal: Journal, log: KeeperLog, now_ms: int) -> int:
    """Settle transfers journalled as ``intent`` (a crash between sending and recording); return how many.

    The venue is asked whether the transfer happened: yes → ``done``; no → ``abandoned`` (the policy
    may send a new one); cannot tell → ``unknown``, counted as used by the reserve (conservative) and alarmed.
    """
    settled = 0
    for transfer in journal.transfers("intent"):
        happened = venue.has_transfer(transfer["transfer_id"])
        status = {True: "done", False: "abandoned", None: "unknown"}[happened]
        journal.set_transfer_status(transfer["transfer_id"], status)
        log.write(
            now_ms,
            "reconcile.transfer",
            level="info" if happened is not None else "alarm",
            transfer_id=transfer["transfer_id"],
            amount_usd=transfer["amount_usd"],
            status=status,
            reason="a previous run stopped between sending a transfer and recording it",
        )
        settled += 1
    return settled


def reconcile_holdings(
    journal: Journal, snapshot: Snapshot, log: KeeperLog, now_ms: int
) -> HoldingsDifference | None:
    """Compare the venue's holdings with the journal's book; adopt the venue's and log any difference."""
    book = journal.book()
    venue_spot, venue_perp = snapshot.spot_base, snapshot.perp_qty_base
    if book is None:
        detail = {"spot_base": str(venue_spot), "perp_qty_base": str(venue_perp)}
        journal.set_book(
            spot_base=venue_spot, perp_qty=venue_perp, ts_ms=now_ms, kind="reconcile.initial", detail=detail
        )
        log.write(now_ms, "reconcile.initial", **detail)
        return None
    spot_book, perp_book = book
    if spot_book == venue_spot and perp_book == venue_perp:
        return None
    diff = HoldingsDifference(
        spot_journal=spot_book, spot_venue=venue_spot, perp_journal=perp_book, perp_venue=venue_perp
    )
    detail = {
        "spot_journal": str(spot_book),
        "spot_venue": str(venue_spot),
        "perp_journal": str(perp_book),
        "perp_venue": str(venue_perp),
        # the prices the difference is valued at in the PnL attribution (keeper/status.py)
        "spot_price_usd": str(snapshot.quote.spot_price_usd),
        "mark_price_usd": str(snapshot.quote.mark_price_usd),
        "resolution": "adopted the venue's holdings",
    }
    journal.set_book(
        spot_base=venue_spot, perp_qty=venue_perp, ts_ms=now_ms, kind="reconcile.difference", detail=detail
    )
    log.write(now_ms, "reconcile.difference", level="alarm" if diff.perp_vanished else "warning", **detail)
    return diff


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingCheck:
    new_payments: int
    received_usd: Decimal
    model_usd: Decimal
    mismatches: int


def reconcile_funding(
    venue: TradingVenue, journal: Journal, log: KeeperLog, *, perp_symbol: str, start_ts_ms: int, now_ms: int
) -> FundingCheck:
    """Journal funding payments after the watermark, each with the model amount; log mismatches."""
    watermark = journal.funding_watermark_ts_ms(perp_symbol)
    since = start_ts_ms if watermark is None else watermark + 1
    payments = [
        p
        for p in venue.fetch_funding_history(perp_symbol, since)
        if watermark is None or p.settle_ts_ms > watermark
    ]
    if not payments:
        return FundingCheck(new_payments=0, received_usd=Decimal(0), model_usd=Decimal(0), mismatches=0)
    rates = venue.fetch_funding_rates(perp_symbol, payments[0].settle_ts_ms - FUNDING_MATCH_TOLERANCE_MS)
    rows: list[tuple[FundingPayment, Decimal | None, float | None]] = []
    received = model_total = Decimal(0)
    mismatches = 0
    for payment in payments:
        event = min(rates, key=lambda r: abs(r.settle_ts_ms - payment.settle_ts_ms), default=None)
        model: Decimal | None = None
        rate: float | None = None
        if event is not None and abs(event.settle_ts_ms - payment.settle_ts_ms) <= FUNDING_MATCH_TOLERANCE_MS:
            rate = event.rate_per_interval
            qty = perp_qty_at(journal, payment.settle_ts_ms)
            if event.mark_price_usd is not None:
                model = to_decimal(funding_cashflow_linear_usd(float(qty), event.mark_price_usd, rate))
                model = model.quantize(Decimal("0.00000001"))
        rows.append((payment, model, rate))
        received += payment.amount_usd
        if model is not None:
            model_total += model
            gap = payment.amount_usd - model
            if abs(gap) > max(FUNDING_MISMATCH_ABS_USD, FUNDING_MISMATCH_REL * abs(model)):
                mismatches += 1
                log.write(
                    now_ms,
                    "funding.mismatch",
                    level="warning",
                    settle_ts_ms=payment.settle_ts_ms,
                    received_usd=str(payment.amount_usd),
                    model_usd=str(model),
                    difference_usd=str(gap),
                )
    inserted = journal.record_funding(rows, symbol=perp_symbol, ts_ms=now_ms)
    log.write(
        now_ms,
        "funding.recorded",
        new_payments=inserted,
        received_usd=str(received),
        model_usd=str(model_total),
        through_ts_ms=payments[-1].settle_ts_ms,
    )
    return FundingCheck(
        new_payments=inserted, received_usd=received, model_usd=model_total, mismatches=mismatches
    )


def perp_qty_at(journal: Journal, ts_ms: int) -> Decimal:
    """Return the perp position the journal held at ``ts_ms``: the book now, less the perp fills after
    ``ts_ms`` and less the holdings differences adopted at or after ``ts_ms``.

    A difference is found at the first reconciliation after it happened, which for a settlement at
    ``ts_ms`` is at or after ``ts_ms``; a payment for that settlement means the position was still held
    then (a short liquidated after two settlements was paid for both, on the whole short).
    """
    book = journal.book()
    held = Decimal(0) if book is None else book[1]
    for fill in journal.fills():
        if fill["leg"] == "perp" and fill["ts_ms"] > ts_ms:
            held -= Decimal(fill["signed_delta_qty_base"])
    for event in journal.events("reconcile.difference"):
        if event["ts_ms"] >= ts_ms:
            detail = event["detail"]
            held -= Decimal(detail["perp_venue"]) - Decimal(detail["perp_journal"])
    return held
