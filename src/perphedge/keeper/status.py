"""``perphedge status``: what the hedge holds now, how safe it is, and where its PnL came from.

PnL attribution since the keeper's start (USD; transfers between the hedge's own wallets are not PnL):

- ``spot_pnl_usd`` = spot coins now × spot price − coins at start × start price − Σ spot fill
  quantity × fill price (the cash spent on or received from spot trades, before fees);
- ``perp_pnl_usd`` = Σ −perp fill quantity × fill price + perp position × mark (realised + unrealised);
- ``funding_usd`` = Σ funding actually received (journal, from ``fetch_funding_history``);
- ``fees_usd`` = −Σ fees of all fills;
- ``other_usd`` = equity change − the four above (liquidation clearance fees, borrow interest, or
  anything the journal did not see; 0 when everything is explained).

A holdings difference the keeper adopted from the venue (a liquidation, a trade outside the keeper) is
counted in the spot and perp PnL as if traded at the spot price and mark at which it was found
(journalled with the ``reconcile.difference`` event); ``other_usd`` then holds only what that
valuation misses, e.g. a liquidation's clearance fee and its close at the liquidation price.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perphedge.keeper.journal import Journal, increment_price
from perphedge.keeper.reconcile import take_snapshot
from perphedge.keeper.risk import read_risk
from perphedge.keeper.spec import HedgeSpec
from perphedge.mechanics.funding import funding_cashflow_linear_usd
from perphedge.units import MS_PER_DAY
from perphedge.venues.port import TradingVenue, to_decimal

STATUS_KEYS = (
    "hedge_id",
    "venue",
    "ts_ms",
    "halted",
    "base_qty",
    "spot_base",
    "perp_qty_base",
    "spot_price_usd",
    "mark_price_usd",
    "balances",
    "hedge_ratio",
    "net_exposure_base",
    "net_exposure_fraction",
    "margin_ratio",
    "liquidation_price_usd",
    "liquidation_distance",
    "next_funding_ts_ms",
    "expected_funding_usd",
    "expected_funding_basis",
    "equity_usd",
    "start_equity_usd",
    "pnl",
    "decisions",
    "orders",
)


def hedge_status(spec: HedgeSpec, venue: TradingVenue, journal: Journal, now_ms: int) -> dict[str, Any]:
    """Return the hedge's status as a JSON-ready dict with the stable keys ``STATUS_KEYS`` (money as strings)."""
    snap = take_snapshot(venue, spec.spot_symbol, spec.perp_symbol)
    reading = read_risk(snap, now_ms)
    quote = snap.quote
    spot, perp = snap.spot_base, snap.perp_qty_base
    base_qty = Decimal(journal.get_meta("base_qty") or "0") - journal.deleveraged_qty_base()
    spot_notional = spot * quote.spot_price_usd
    perp_notional = abs(perp) * quote.mark_price_usd
    # expected payment at the next settlement: the exchange's predicted rate when it publishes one, else the
    # last settled rate (the paper venue publishes none: a replay must not reveal the next settlement)
    basis: str | None  # None when no rate is known at all
    rate, basis = quote.funding_rate_per_interval, "predicted_rate"
    if rate is None:
        settled = venue.fetch_funding_rates(spec.perp_symbol, now_ms - 7 * MS_PER_DAY)
        rate, basis = (settled[-1].rate_per_interval, "last_settled_rate") if settled else (None, None)
    expected = None
    if rate is not None:
        cashflow = funding_cashflow_linear_usd(float(perp), float(quote.mark_price_usd), rate)
        expected = _money(to_decimal(cashflow).quantize(Decimal("0.00000001")))
    start_equity = journal.get_meta("start_equity_usd")
    pnl = None
    if start_equity is not None:
        pnl = _attribution(
            journal,
            _unrecorded_fills(venue, journal),
            snap.equity_usd,
            Decimal(start_equity),
            spot,
            quote.spot_price_usd,
            perp,
            quote.mark_price_usd,
        )
    decisions = journal.decisions()
    status = {
        "hedge_id": spec.hedge_id,
        "venue": venue.name,
        "ts_ms": quote.ts_ms,
        "halted": journal.get_meta("halted"),
        "base_qty": str(base_qty),
        "spot_base": str(spot),
        "perp_qty_base": str(perp),
        "spot_price_usd": str(quote.spot_price_usd),
        "mark_price_usd": str(quote.mark_price_usd),
        "balances": {
            "spot_base": str(snap.balances.spot_base),
            "spot_usd": str(snap.balances.spot_usd),
            "futures_wallet_usd": str(snap.balances.futures_wallet_usd),
        },
        "hedge_ratio": float(perp_notional / spot_notional) if spot_notional else None,
        "net_exposure_base": str(spot + perp),
        "net_exposure_fraction": float((spot + perp) / base_qty) if base_qty else None,
        "margin_ratio": reading.margin_ratio,
        "liquidation_price_usd": None
        if snap.position is None or snap.position.liquidation_price_usd is None
        else str(snap.position.liquidation_price_usd),
        "liquidation_distance": reading.liquidation_distance,
        "next_funding_ts_ms": quote.next_funding_ts_ms,
        "expected_funding_usd": expected,
        "expected_funding_basis": basis,
        "equity_usd": _money(snap.equity_usd),
        "start_equity_usd": start_equity,
        "pnl": pnl,
        "decisions": len(decisions),
        "orders": len(journal.orders()),
    }
    assert tuple(status) == STATUS_KEYS
    return status


def _unrecorded_fills(venue: TradingVenue, journal: Journal) -> list[dict[str, Any]]:
    """Return the fills the venue reports for orders the journal still has pending (a crash between an order's
    fill and its journalling), shaped like ``Journal.fills()`` rows; read-only: the next keeper cycle journals them.

    Without them the venue's holdings (in equity) would be valued without the trades that made them."""
    rows = []
    for record in journal.pending_orders():
        status = venue.fetch_order_by_client_id(record.symbol, record.client_order_id)
        if status is None or status.filled_qty_base <= record.filled_qty_base:
            continue
        delta = status.filled_qty_base - record.filled_qty_base
        price = increment_price(record, status, delta)
        rows.append(
            {
                "leg": record.leg.value,
                "signed_delta_qty_base": str(delta if status.side.value == "buy" else -delta),
                "price_usd": None if price is None else str(price),
                "fee_usd": str(status.fee_usd - record.fee_usd),
            }
        )
    return rows


def _attribution(
    journal: Journal,
    unrecorded_fills: list[dict[str, Any]],
    equity: Decimal,
    start_equity: Decimal,
    spot: Decimal,
    spot_price: Decimal,
    perp: Decimal,
    mark: Decimal,
) -> dict[str, str]:
    start_spot = Decimal(journal.get_meta("start_spot_base") or "0")
    start_price = Decimal(journal.get_meta("start_spot_price_usd") or "0")
    spot_cash = perp_cash = fees = Decimal(0)
    for fill in [*journal.fills(), *unrecorded_fills]:
        qty, price = Decimal(fill["signed_delta_qty_base"]), Decimal(fill["price_usd"] or "0")
        fees += Decimal(fill["fee_usd"])
        if fill["leg"] == "spot":
            spot_cash -= qty * price
        else:
            perp_cash -= qty * price
    for event in journal.events("reconcile.difference"):
        detail = event["detail"]
        if "mark_price_usd" not in detail:  # journalled before the prices were recorded: left to other
            continue
        spot_cash -= (Decimal(detail["spot_venue"]) - Decimal(detail["spot_journal"])) * Decimal(
            detail["spot_price_usd"]
        )
        perp_cash -= (Decimal(detail["perp_venue"]) - Decimal(detail["perp_journal"])) * Decimal(
            detail["mark_price_usd"]
        )
    totals = journal.totals()
    spot_pnl = spot * spot_price - start_spot * start_price + spot_cash
    perp_pnl = perp_cash + perp * mark
    funding = totals["funding_received_usd"]
    other = equity - start_equity - spot_pnl - perp_pnl - funding + fees
    return {
        "spot_pnl_usd": _money(spot_pnl),
        "perp_pnl_usd": _money(perp_pnl),
        "funding_usd": _money(funding),
        "funding_model_usd": _money(totals["funding_model_usd"]),
        "fees_usd": _money(-fees),
        "other_usd": _money(other),
        "total_usd": _money(equity - start_equity),
    }


def _money(value: Decimal) -> str:
    """Return a Decimal as a plain decimal string (``0.0000000000``, never ``0E-10``)."""
    return format(value, "f")
