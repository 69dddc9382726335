"""Two legs as one unit: place both orders of a decision so that the hedge ends complete or unwound.

Every order gets a deterministic client order id from (hedge id, decision number, leg, purpose,
attempt) — see :func:`client_order_id` — and is journalled as ``intent`` *before* it is sent. Sending
is idempotent: the order is first looked up by its client id (a restart or a retry finds the order
it already placed), and ``create_order`` is never blind-retried: when it fails with
``VenueUnavailable`` the outcome is unknown, so the executor looks the id up until the venue answers;
it re-sends (with the same id) only after the venue has positively said, twice and a poll interval
apart, that it has no such order; a rejected re-send is looked up once more (duplicate client id).

Outcomes handled for each leg: filled, partially filled (wait up to ``leg_timeout``, cancel the
rest, then place one completion order for the remainder), rejected / insufficient funds, and
timeout-but-filled. After both legs, if the fill fractions differ by more than
``max_imbalance_fraction`` the excess of the larger leg is unwound (reduce it to the smaller one's
fraction). What happened is returned as an ``ExecutionReport`` and journalled. If the venue stays
unreachable the decision stays ``executing`` and the next cycle (or the next process) resumes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from perphedge.errors import InsufficientFunds, OrderRejected, VenueUnavailable
from perphedge.keeper.journal import Journal
from perphedge.keeper.log import KeeperLog
from perphedge.venues.port import (
    ClientOrderId,
    Leg,
    OrderRequest,
    OrderSide,
    OrderState,
    OrderStatus,
    TradingVenue,
)

_LEG_CODE = {Leg.SPOT: "s", Leg.PERP: "p"}
_PURPOSE_CODE = {"main": "m", "complete": "c", "unwind": "u", "flatten": "f"}


def client_order_id(
    hedge_id: str, decision_no: int, leg: Leg, purpose: str = "main", attempt: int = 0
) -> ClientOrderId:
    """Return the deterministic client order id ``ph<hedge>d<decision><leg><purpose><attempt>``.

    Alphanumeric and at most 32 characters, which every supported exchange accepts (OKX clOrdId:
    up to 32 alphanumerics; Binance newClientOrderId and Bybit orderLinkId: up to 36).
    """
    return ClientOrderId(f"ph{hedge_id}d{decision_no}{_LEG_CODE[leg]}{_PURPOSE_CODE[purpose]}{attempt}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LegPlan:
    """One leg of a decision: a signed quantity to trade on ``symbol`` (+ buy, − sell)."""

    leg: Leg
    symbol: str
    signed_qty_base: Decimal
    reduce_only: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "leg": self.leg.value,
            "symbol": self.symbol,
            "signed_qty_base": str(self.signed_qty_base),
            "reduce_only": self.reduce_only,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LegPlan:
        return cls(
            leg=Leg(data["leg"]),
            symbol=data["symbol"],
            signed_qty_base=Decimal(data["signed_qty_base"]),
            reduce_only=bool(data["reduce_only"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionLimits:
    """Bounds of a two-leg execution."""

    max_imbalance_fraction: float = 0.02
    leg_timeout_s: float = 30.0
    poll_interval_s: float = 1.0
    lookup_attempts: int = 5  # how often to ask "do you have this client id?" after an unknown outcome
    # consecutive "no such order" answers, poll_interval_s apart, before a timed-out order is re-sent
    # (an exchange may not list an order for a moment after accepting it)
    not_found_confirmations: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionReport:
    """What a two-leg execution did. ``outcome``: complete | refused | unwound | imbalanced | pending."""

    decision_no: int
    outcome: str
    filled_base: dict[str, str]
    planned_base: dict[str, str]
    notes: tuple[str, ...] = field(default_factory=tuple)


class LegFailed(Exception):  # noqa: N818 - control flow inside this module only
    def __init__(self, leg: Leg, reason: str) -> None:
        super().__init__(reason)
        self.leg = leg
        self.reason = reason


class OutcomeUnknown(Exception):  # noqa: N818
    """The venue could not tell whether an order exists; the decision stays pending."""


class TwoLegExecutor:
    """Executes decisions' legs against a venue, journalling every step."""

    def __init__(
        self,
        *,
        venue: TradingVenue,
        journal: Journal,
        log: KeeperLog,
        hedge_id: str,
        limits: ExecutionLimits,
        now_ms: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.venue = venue
        self.journal = journal
        self.log = log
        self.hedge_id = hedge_id
        self.limits = limits
        self.now_ms = now_ms
        self.sleep = sleep
        self.monotonic = monotonic

    # -- public ----------------------------------------------------------------------------------

    def execute(self, decision_no: int, legs: Sequence[LegPlan]) -> ExecutionReport:
        """Run the legs of ``decision_no`` (again, idempotently, if it was interrupted) and settle its status."""
        planned = {lp.leg: lp for lp in legs if lp.signed_qty_base != 0}
        filled: dict[Leg, Decimal] = {leg: Decimal(0) for leg in planned}
        failed: dict[Leg, str] = {}
        notes: list[str] = []
        try:
            for leg, lp in planned.items():
                try:
                    filled[leg] += self._run(decision_no, lp, lp.signed_qty_base, "main", 0)
                except LegFailed as e:
                    failed[leg] = e.reason
                    notes.append(f"{leg.value} leg failed: {e.reason}")
                    if all(v == 0 for v in filled.values()):
                        return self._finish(decision_no, "refused", planned, filled, notes)
                    break  # do not send the other leg after a failure: unwind what filled
            # complete partial fills once (only legs that did not fail outright)
            for leg, lp in planned.items():
                if leg in failed or leg not in filled:
                    continue
                remaining = lp.signed_qty_base - filled[leg]
                if remaining != 0 and self._is_tradeable(lp, remaining):
                    notes.append(
                        f"{leg.value} leg filled {filled[leg]} of {lp.signed_qty_base}; completing {remaining}"
                    )
                    try:
                        filled[leg] += self._run(decision_no, lp, remaining, "complete", 1)
                    except LegFailed as e:
                        notes.append(f"{leg.value} completion failed: {e.reason}")
            outcome = self._balance(decision_no, planned, filled, notes)
        except OutcomeUnknown as e:
            notes.append(str(e))
            self.log.write(
                self.now_ms(), "execution.pending", level="warning", decision_no=decision_no, reason=str(e)
            )
            return ExecutionReport(
                decision_no=decision_no,
                outcome="pending",
                filled_base={k.value: str(v) for k, v in filled.items()},
                planned_base={k.value: str(v.signed_qty_base) for k, v in planned.items()},
                notes=tuple(notes),
            )
        return self._finish(decision_no, outcome, planned, filled, notes)

    # -- steps -----------------------------------------------------------------------------------

    def _finish(
        self,
        decision_no: int,
        outcome: str,
        planned: dict[Leg, LegPlan],
        filled: dict[Leg, Decimal],
        notes: list[str],
    ) -> ExecutionReport:
        report = ExecutionReport(
            decision_no=decision_no,
            outcome=outcome,
            filled_base={k.value: str(v) for k, v in filled.items()},
            planned_base={k.value: str(v.signed_qty_base) for k, v in planned.items()},
            notes=tuple(notes),
        )
        status = "done" if outcome in ("complete", "imbalanced", "unwound") else outcome
        self.journal.set_decision_status(decision_no, status, outcome="; ".join([outcome, *notes]))
        level = "info" if outcome == "complete" else "refuse" if outcome == "refused" else "alarm"
        fields: dict[str, Any] = {
            "decision_no": decision_no,
            "outcome": outcome,
            "filled_base": report.filled_base,
            "planned_base": report.planned_base,
            "notes": list(notes),
        }
        if outcome == "refused":
            fields["reason"] = notes[0] if notes else "the first leg failed"
        self.log.write(self.now_ms(), "execution.finished", level=level, **fields)
        return report

    def _balance(
        self, decision_no: int, planned: dict[Leg, LegPlan], filled: dict[Leg, Decimal], notes: list[str]
    ) -> str:
        if len(planned) < 2:
            return (
                "complete"
                if all(filled[k] == v.signed_qty_base for k, v in planned.items())
                else "imbalanced"
            )
        fractions = {leg: filled[leg] / lp.signed_qty_base for leg, lp in planned.items()}
        low = min(fractions.values())
        spread = max(fractions.values()) - low
        if spread <= Decimal(repr(self.limits.max_imbalance_fraction)):
            return "complete" if all(f == 1 for f in fractions.values()) else "imbalanced"
        unwound = False
        for leg, lp in planned.items():
            excess = (fractions[leg] - low) * lp.signed_qty_base
            rules = self.venue.market_rules(lp.symbol)
            excess = rules.round_amount(excess)
            if excess == 0:
                continue
            if not self._is_tradeable(lp, excess):
                notes.append(
                    f"{leg.value} excess {excess} is below the exchange minimum; left as residual imbalance"
                )
                continue
            notes.append(f"unwinding {excess} of the {leg.value} leg to match the other leg's fill")
            try:
                filled[leg] += self._run(decision_no, lp, -excess, "unwind", 0, reduce_only=False)
                unwound = True
            except LegFailed as e:
                notes.append(f"unwind of the {leg.value} leg failed: {e.reason}")
                return "imbalanced"
        return "unwound" if unwound else "imbalanced"

    def _is_tradeable(self, lp: LegPlan, qty: Decimal) -> bool:
        rules = self.venue.market_rules(lp.symbol)
        return rules.round_amount(qty) != 0 and abs(rules.round_amount(qty)) >= rules.min_amount_base

    def _run(
        self,
        decision_no: int,
        lp: LegPlan,
        signed_qty: Decimal,
        purpose: str,
        attempt: int,
        *,
        reduce_only: bool | None = None,
    ) -> Decimal:
        """Place (or find) one order and return its signed filled quantity once final."""
        rules = self.venue.market_rules(lp.symbol)
        qty = rules.round_amount(abs(signed_qty))
        cid = client_order_id(self.hedge_id, decision_no, lp.leg, purpose, attempt)
        request = OrderRequest(
            client_order_id=cid,
            leg=lp.leg,
            symbol=lp.symbol,
            side=OrderSide.BUY if signed_qty > 0 else OrderSide.SELL,
            qty_base=qty,
            reduce_only=lp.reduce_only if reduce_only is None else reduce_only,
        )
        record = self.journal.record_order_intent(
            request, decision_no=decision_no, purpose=purpose, ts_ms=self.now_ms()
        )
        if record.state == OrderState.REJECTED.value:
            raise LegFailed(lp.leg, f"order {cid} was rejected earlier (journal)")
        status = self._lookup(request, after_error=False)
        if status is None:
            status = self._submit(request)
        status = self._wait_final(request, status)
        self.journal.record_order_status(status, ts_ms=self.now_ms())
        self.log.write(
            self.now_ms(),
            "order.final",
            decision_no=decision_no,
            client_order_id=cid,
            leg=lp.leg.value,
            purpose=purpose,
            side=request.side.value,
            qty_base=str(qty),
            state=status.state.value,
            filled_qty_base=str(status.filled_qty_base),
            average_price_usd=None if status.average_price_usd is None else str(status.average_price_usd),
            fee_usd=str(status.fee_usd),
        )
        if status.state is OrderState.REJECTED:
            raise LegFailed(lp.leg, f"order {cid} was rejected by the venue")
        return status.signed_filled_qty_base

    def _submit(self, request: OrderRequest) -> OrderStatus:
        self.log.write(
            self.now_ms(),
            "order.submit",
            client_order_id=request.client_order_id,
            leg=request.leg.value,
            symbol=request.symbol,
            side=request.side.value,
            qty_base=str(request.qty_base),
            reduce_only=request.reduce_only,
        )
        try:
            return self.venue.create_order(request)
        except (OrderRejected, InsufficientFunds) as e:
            self.journal.set_order_state(request.client_order_id, OrderState.REJECTED.value, self.now_ms())
            self.log.write(
                self.now_ms(),
                "order.rejected",
                level="warning",
                client_order_id=request.client_order_id,
                reason=str(e),
            )
            raise LegFailed(request.leg, str(e)) from e
        except VenueUnavailable as e:
            # Unknown outcome: the order may exist. Never blind-retry: look it up by client id.
            self.journal.set_order_state(request.client_order_id, "unknown", self.now_ms())
            self.log.write(
                self.now_ms(),
                "order.outcome_unknown",
                level="warning",
                client_order_id=request.client_order_id,
                reason=str(e),
            )
            found = self._lookup(request, after_error=True)
            for _ in range(self.limits.not_found_confirmations - 1):
                if found is not None:
                    break
                self.sleep(self.limits.poll_interval_s)
                found = self._lookup(request, after_error=True)
            if found is not None:
                return found
            # The venue positively said "no such order": sending the same client id again is safe.
            self.log.write(
                self.now_ms(),
                "order.resubmit",
                level="warning",
                client_order_id=request.client_order_id,
                reason="the venue confirmed the timed-out order does not exist",
            )
            try:
                return self.venue.create_order(request)
            except (OrderRejected, InsufficientFunds) as e2:
                # a rejected re-send may mean "duplicate client order id": the first one exists after all
                late = self._lookup(request, after_error=True)
                if late is not None:
                    self.log.write(
                        self.now_ms(),
                        "order.found_late",
                        level="warning",
                        client_order_id=request.client_order_id,
                        reason=f"the re-send was rejected ({e2}) and the original order is now listed",
                    )
                    return late
                self.journal.set_order_state(
                    request.client_order_id, OrderState.REJECTED.value, self.now_ms()
                )
                raise LegFailed(request.leg, str(e2)) from e2
            except VenueUnavailable as e2:
                raise OutcomeUnknown(
                    f"order {request.client_order_id}: venue unavailable after re-send ({e2})"
                ) from e2

    def _lookup(self, request: OrderRequest, *, after_error: bool) -> OrderStatus | None:
        """Ask the venue for the order by client id; retry while the venue is unavailable."""
        attempts = self.limits.lookup_attempts
        for attempt in range(attempts):
            try:
                return self.venue.fetch_order_by_client_id(request.symbol, request.client_order_id)
            except VenueUnavailable as e:
                if attempt == attempts - 1:
                    raise OutcomeUnknown(
                        f"order {request.client_order_id}: cannot tell whether it exists, the venue "
                        f"is unavailable ({e}); will look again next cycle"
                    ) from e
                self.sleep(self.limits.poll_interval_s * 2**attempt)
        return None  # pragma: no cover

    def _wait_final(self, request: OrderRequest, status: OrderStatus) -> OrderStatus:
        deadline = self.monotonic() + self.limits.leg_timeout_s
        while not status.is_final and self.monotonic() < deadline:
            self.sleep(self.limits.poll_interval_s)
            status = self._lookup(request, after_error=False) or status
        if not status.is_final:
            self.log.write(
                self.now_ms(),
                "order.cancel",
                level="warning",
                client_order_id=request.client_order_id,
                reason=f"not filled within {self.limits.leg_timeout_s:g} s; filled "
                f"{status.filled_qty_base} of {status.qty_base}",
            )
            try:
                self.venue.cancel_order(request.symbol, request.client_order_id)
            except VenueUnavailable as e:
                raise OutcomeUnknown(
                    f"order {request.client_order_id}: cancel failed, venue unavailable ({e})"
                ) from e
            status = self._lookup(request, after_error=False) or status
        return status
