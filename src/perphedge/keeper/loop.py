"""The keeper loop: reconcile, check risk, decide with the strategy, act, record — every cycle.

One cycle:
1. reconcile (pending orders by client id, holdings, funding received) — the same path at start
   and after a crash;
2. resume a decision a crash or an outage interrupted (idempotently, by client order id);
3. refuse to act on stale prices (kill switch after ``kill_after_stale_cycles`` stale cycles);
4. kill switch on max loss; a perp that vanished at the venue (liquidation) halts;
5. margin: margin ratio above the trigger or liquidation distance below the minimum → alarm and act
   by the collateral policy (transfer from the reserve, or sell spot and buy back the short);
6. decide with the strategy (the same ``decide`` as the backtest) and turn the target into leg
   quantities with the backtest's ``engine.orders.orders_for``; refuse below exchange minimums;
7. execute both legs as one unit (``two_leg``) and journal everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import numpy as np

from perphedge.engine.orders import mode_of, orders_for
from perphedge.errors import ConfigError, DataError, KeeperHalted, VenueError, VenueUnavailable
from perphedge.keeper.clock import Clock
from perphedge.keeper.journal import DecisionRecord, Journal
from perphedge.keeper.log import KeeperLog
from perphedge.keeper.reconcile import (
    Snapshot,
    reconcile_funding,
    reconcile_holdings,
    resolve_pending_orders,
    resolve_pending_transfers,
    take_snapshot,
)
from perphedge.keeper.risk import (
    account_settings_mismatch,
    deleverage_qty_base,
    is_distance_breached,
    max_loss_reason,
    read_risk,
    stale_reason,
    top_up_for_liquidation_distance_usd,
    top_up_for_margin_ratio_usd,
)
from perphedge.keeper.spec import HedgeSpec
from perphedge.keeper.two_leg import ExecutionLimits, ExecutionReport, LegPlan, TwoLegExecutor
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.funding import infer_interval_hours
from perphedge.strategies.base import HedgeState, MarketView, Strategy, StrategyMemory
from perphedge.units import MS_PER_DAY
from perphedge.venues.port import Leg, TradingVenue, to_decimal

FUNDING_LOOKBACK_MS = 90 * MS_PER_DAY
CLOSES_LOOKBACK_BARS = 500
MAX_FAILED_EXECUTIONS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleResult:
    """What one cycle did: ``action`` is hold | trade | refuse | margin | resume | halt."""

    cycle: int
    ts_ms: int
    action: str
    reason: str
    report: ExecutionReport | None = None


class Keeper:
    """Runs one hedge against one venue with one journal."""

    def __init__(
        self,
        *,
        spec: HedgeSpec,
        venue: TradingVenue,
        journal: Journal,
        log: KeeperLog,
        clock: Clock,
        strategy: Strategy,
        bracket_table: BracketTable | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.spec = spec
        self.venue = venue
        self.journal = journal
        self.log = log
        self.clock = clock
        self.strategy = strategy
        self.bracket_table = bracket_table
        self.stale_cycles = 0
        self.cycle_no = 0
        self._settings_note: tuple[bool, tuple[str, ...]] | None = None
        self.executor = TwoLegExecutor(
            venue=venue,
            journal=journal,
            log=log,
            hedge_id=spec.hedge_id,
            now_ms=clock.now_ms,
            sleep=sleep,
            monotonic=monotonic,
            limits=ExecutionLimits(
                max_imbalance_fraction=spec.risk.max_imbalance_fraction,
                leg_timeout_s=spec.risk.leg_timeout_s,
                poll_interval_s=poll_interval_s,
            ),
        )

    # -- running ---------------------------------------------------------------------------------

    def run(
        self, cycles: int | None, *, on_cycle: Callable[[CycleResult], None] | None = None
    ) -> list[CycleResult]:
        """Run ``cycles`` cycles (None = until the clock is exhausted); KeeperHalted stops it.

        ``on_cycle`` is called after every cycle (the CLI's progress bar).
        """
        if not self.journal.holds_run_lock:
            self.journal.acquire_run_lock()
        halted = self.journal.get_meta("halted")
        if halted:
            raise KeeperHalted(
                f"this hedge was halted earlier ({halted}); inspect it with perphedge status, then "
                "run perphedge keep --clear-halt to resume"
            )
        results: list[CycleResult] = []
        done = 0
        while cycles is None or done < cycles:
            results.append(self.cycle())
            if on_cycle is not None:
                on_cycle(results[-1])
            done += 1
            if (cycles is not None and done >= cycles) or self.clock.is_exhausted():
                break
            self.clock.wait_next_cycle()
        return results

    def cycle(self) -> CycleResult:
        """Run one cycle (see the module docstring)."""
        self.cycle_no += 1
        now = self.clock.now_ms()
        try:
            return self._cycle(now)
        except VenueUnavailable as e:
            return self._refuse(now, f"venue unavailable: {e}; will retry next cycle", stale=True)
        except KeeperHalted:
            raise

    def _cycle(self, now: int) -> CycleResult:
        spec = self.spec
        snapshot = self._reconcile(now)
        base_qty = self._base_qty(snapshot, now)

        unfinished = self.journal.unfinished_decision()
        if unfinished is not None:
            self.log.write(
                now,
                "decision.resume",
                level="warning",
                decision_no=unfinished.decision_no,
                reason="a previous run stopped while executing this decision",
            )
            report = self.executor.execute(
                unfinished.decision_no, [LegPlan.from_json(p) for p in unfinished.plan]
            )
            self._count_failures(now, report)
            if report.outcome == "pending":
                return CycleResult(
                    cycle=self.cycle_no, ts_ms=now, action="refuse", reason="decision still pending"
                )
            if unfinished.kind == "kill":
                self._halt(now, unfinished.reason)
            if unfinished.mode == "deleverage":
                self._move_proceeds(now, unfinished.decision_no, unfinished.reason)
            snapshot = self._reconcile(now)

        reading = read_risk(snapshot, now)
        stale = stale_reason(reading, spec.risk.max_price_age_s)
        if stale:
            return self._refuse(now, stale, stale=True)
        self.stale_cycles = 0

        start_equity = Decimal(self.journal.get_meta("start_equity_usd") or "0")
        loss = max_loss_reason(reading.equity_usd, start_equity, self._net_deposits(), spec.risk.max_loss_usd)
        if loss:
            self._kill(now, snapshot, loss)

        margin_result = self._margin(now, snapshot, reading, base_qty)
        if margin_result is not None:
            return margin_result

        return self._decide_and_act(now, snapshot, reading, base_qty)

    # -- reconcile -------------------------------------------------------------------------------

    def _reconcile(self, now: int) -> Snapshot:
        spec = self.spec
        resolve_pending_orders(self.venue, self.journal, self.log, now)
        resolve_pending_transfers(self.venue, self.journal, self.log, now)
        snapshot = take_snapshot(self.venue, spec.spot_symbol, spec.perp_symbol)
        if self.journal.get_meta("started_ts_ms") is None:
            self.journal.set_metas(
                {
                    "started_ts_ms": str(now),
                    "start_equity_usd": str(snapshot.equity_usd),
                    "start_spot_price_usd": str(snapshot.quote.spot_price_usd),
                    "start_spot_base": str(snapshot.spot_base),
                    "start_perp_qty": str(snapshot.perp_qty_base),
                }
            )
            self.log.write(
                now,
                "keeper.start",
                hedge_id=spec.hedge_id,
                venue=self.venue.name,
                equity_usd=str(snapshot.equity_usd),
                strategy=spec.strategy,
            )
        diff = reconcile_holdings(self.journal, snapshot, self.log, now)
        reconcile_funding(
            self.venue,
            self.journal,
            self.log,
            perp_symbol=spec.perp_symbol,
            start_ts_ms=int(self.journal.get_meta("started_ts_ms") or now),
            now_ms=now,
        )
        if diff is not None and diff.perp_vanished:
            self._halt(
                now,
                f"the perp position of {diff.perp_journal} is gone at the venue (liquidated or closed "
                "outside the keeper); the spot leg is unhedged",
            )
        self._check_account_settings(now, snapshot)
        return snapshot

    def _check_account_settings(self, now: int, snapshot: Snapshot) -> None:
        """Halt when the venue's position runs at another leverage / margin mode than the spec.

        The keeper never changes these on the exchange; it verifies them on every reconciliation from
        the position the venue reports (so at start when a position exists, else right after the
        first perp fill). What the venue does not report is logged (once, and again when that changes).
        """
        spec = self.spec
        mismatch = account_settings_mismatch(
            snapshot.position, leverage=spec.leverage, margin_mode=spec.margin_mode
        )
        if mismatch is not None:
            self._halt(now, mismatch)
        position = snapshot.position
        unverified = tuple(
            name
            for name, value in (
                ("leverage", None if position is None else position.leverage),
                ("margin mode", None if position is None else position.margin_mode),
            )
            if value is None
        )
        note = (position is None, unverified)
        if unverified and note != self._settings_note:
            self._settings_note = note
            self.log.write(
                now,
                "keeper.settings_unverified",
                level="info" if position is None else "warning",
                reason=f"the venue reports no {' or '.join(unverified)} "
                + ("(no perp position yet)" if position is None else "for the position")
                + f"; make sure {spec.perp_symbol} is set to {spec.margin_mode} at {spec.leverage:g}x "
                "on the exchange (the keeper checks again after every fill)",
            )

    def _base_qty(self, snapshot: Snapshot, now: int) -> Decimal:
        """Return the hedge's base quantity Q: fixed at the first start, less what deleveraging sold since."""
        stored = self.journal.get_meta("base_qty")
        if stored is not None:
            return Decimal(stored) - self.journal.deleveraged_qty_base()
        spec = self.spec
        rules = self.venue.market_rules(spec.perp_symbol)
        if spec.spot_qty_base is not None:
            qty = to_decimal(spec.spot_qty_base)
        else:
            assert spec.capital_usd is not None
            spot_notional = (
                to_decimal(spec.capital_usd) * to_decimal(spec.leverage) / (1 + to_decimal(spec.leverage))
            )
            qty = spot_notional / snapshot.quote.spot_price_usd
        qty = rules.round_amount(qty)
        if qty <= 0:
            key = "hedge.spot_qty_base" if spec.spot_qty_base is not None else "hedge.capital_usd"
            given = spec.spot_qty_base if spec.spot_qty_base is not None else spec.capital_usd
            raise ConfigError(
                f"it was {given:g}, which makes a hedge of less than one perp step ({rules.amount_step_base} "
                f"{spec.perp_symbol} at {snapshot.quote.spot_price_usd} USD); raise it",
                key_path=key,
            )
        self.journal.set_meta("base_qty", str(qty))
        self.log.write(
            now,
            "keeper.base_qty",
            base_qty=str(qty),
            reason="coins held (spot_qty_base)"
            if spec.spot_qty_base is not None
            else "capital × L/(1+L) at the start price, rounded down to the perp step",
        )
        return qty

    def _net_deposits(self) -> Decimal:
        return Decimal(0)  # transfers move money between the hedge's own wallets: not a flow in or out

    # -- risk actions ----------------------------------------------------------------------------

    def _margin(self, now: int, snapshot: Snapshot, reading: Any, base_qty: Decimal) -> CycleResult | None:
        spec, col = self.spec, self.spec.collateral
        why = self._margin_breach(snapshot, reading)
        if why is None:
            return None
        self.log.write(
            now,
            "risk.alarm",
            level="alarm",
            reason=why,
            margin_ratio=reading.margin_ratio,
            liquidation_distance=reading.liquidation_distance,
        )
        amount = top_up_for_margin_ratio_usd(snapshot, col.target_margin_ratio)
        if self.bracket_table is not None and reading.liquidation_distance is not None:
            amount = max(
                amount,
                top_up_for_liquidation_distance_usd(
                    snapshot, self.bracket_table, 2 * spec.risk.min_liquidation_distance
                ),
            )
        if col.policy == "none":
            return self._refuse(now, f"{why}; collateral policy is 'none': alarm only, not acting")
        if col.policy == "reserve":
            left = self._reserve_left(snapshot)
            if amount > 0 and left >= amount:
                return self._transfer(now, amount, why)
            if amount > 0 and left > 0:
                # the reserve's rest covers only part of the top-up: move it, then deleverage for the rest in
                # this same cycle (a dust top-up alone would leave the hedge exposed until the next cycle)
                topped = self._transfer(
                    now, left, f"{why}; the last {left} USD of the reserve, {amount} USD needed"
                )
                snapshot = take_snapshot(self.venue, spec.spot_symbol, spec.perp_symbol)
                if self._margin_breach(snapshot, read_risk(snapshot, now)) is None:
                    return topped  # the rest of the reserve cleared the alarm: no need to sell
                why += (
                    f"; the reserve ({col.reserve_usd:g} USD) is used up after its last {left} USD of the "
                    f"{amount} USD needed: deleveraging for the rest"
                )
            elif amount > 0:
                why += f"; the reserve ({col.reserve_usd:g} USD) is used up: deleveraging instead"
            else:
                why += "; no top-up restores the targets: deleveraging instead"
        return self._deleverage(now, snapshot, why)

    def _margin_breach(self, snapshot: Snapshot, reading: Any) -> str | None:
        """Return why the margin needs action (ratio above the trigger, liquidation too close), else None."""
        spec, col = self.spec, self.spec.collateral
        position = snapshot.position
        if position is None:
            return None
        sign = 1 if position.signed_qty_base > 0 else -1
        ratio_high = reading.margin_ratio is not None and reading.margin_ratio > col.trigger_margin_ratio
        too_close = is_distance_breached(
            reading.liquidation_distance, sign, spec.risk.min_liquidation_distance
        )
        if not (ratio_high or too_close):
            return None
        return (
            f"margin ratio {reading.margin_ratio:.3f} above trigger {col.trigger_margin_ratio:g}"
            if ratio_high
            else f"liquidation distance {reading.liquidation_distance:.4f} below {spec.risk.min_liquidation_distance:g}"
        )

    def _deleverage(self, now: int, snapshot: Snapshot, why: str) -> CycleResult:
        """Buy back part of the short and sell the same spot quantity: neutral, further from liquidation."""
        spec, position = self.spec, snapshot.position
        assert position is not None
        rules = self.venue.market_rules(spec.perp_symbol)
        qty = deleverage_qty_base(
            snapshot,
            self.bracket_table,
            target_distance=2 * spec.risk.min_liquidation_distance,
            target_margin_ratio=spec.collateral.target_margin_ratio,
        )
        qty = min(rules.round_amount_up(qty), abs(position.signed_qty_base))
        if qty <= 0:
            return self._refuse(now, f"{why}; nothing to deleverage")
        sign = 1 if position.signed_qty_base > 0 else -1
        legs = [
            LegPlan(
                leg=Leg.PERP,
                symbol=spec.perp_symbol,
                signed_qty_base=qty if sign < 0 else -qty,
                reduce_only=True,
            ),
            LegPlan(leg=Leg.SPOT, symbol=spec.spot_symbol, signed_qty_base=-qty if sign < 0 else qty),
        ]
        self.log.write(now, "margin.deleverage", level="warning", qty_base=str(qty), reason=why)
        report = self._record_and_execute(
            now,
            kind="margin",
            mode="deleverage",
            target=(0.0, 0.0),
            reason=why,
            memory_json=self.journal.last_strategy_memory_json() or "[]",
            legs=legs,
        )
        self._move_proceeds(now, report.decision_no, why)
        return CycleResult(cycle=self.cycle_no, ts_ms=now, action="margin", reason=why, report=report)

    def _move_proceeds(self, now: int, decision_no: int, why: str) -> None:
        """Move a deleverage's spot sale proceeds to the futures wallet, once per decision (deterministic id)."""
        transfer_id = f"ph{self.spec.hedge_id}p{decision_no}"
        if any(t["transfer_id"] == transfer_id for t in self.journal.transfers()):
            return
        proceeds = self._spot_proceeds(decision_no)
        if proceeds > 0:  # the coins sold pay for the short's margin (the backtest's sell_spot policy)
            self._transfer(
                now,
                proceeds,
                f"{why}; moving the spot sale proceeds to the futures wallet",
                purpose="proceeds",
                transfer_id=transfer_id,
            )

    def _spot_proceeds(self, decision_no: int) -> Decimal:
        cash = Decimal(0)
        for order in self.journal.orders(decision_no):
            if order.leg is Leg.SPOT and order.average_price_usd is not None:
                signed = order.filled_qty_base if order.side == "sell" else -order.filled_qty_base
                cash += signed * order.average_price_usd - order.fee_usd
        return cash.quantize(Decimal("0.01"), rounding=ROUND_DOWN)

    def _transfer(
        self, now: int, amount: Decimal, why: str, *, purpose: str = "reserve", transfer_id: str | None = None
    ) -> CycleResult:
        # deterministic and never reused: a sequence number (an abandoned intent keeps its number)
        transfer_id = transfer_id or f"ph{self.spec.hedge_id}t{len(self.journal.transfers()) + 1}"
        self.journal.record_transfer_intent(
            transfer_id=transfer_id,
            amount_usd=amount,
            to_futures=True,
            reason=why,
            ts_ms=now,
            purpose=purpose,
        )
        try:
            self.venue.transfer_margin(amount, to_futures=True, transfer_id=transfer_id)
        except VenueUnavailable:
            raise
        except VenueError as e:
            self.journal.set_transfer_status(transfer_id, "failed")
            return self._refuse(now, f"{why}; margin top-up of {amount} USD failed: {e}")
        self.journal.set_transfer_status(transfer_id, "done")
        self.log.write(
            now, "margin.top_up", level="warning", transfer_id=transfer_id, amount_usd=str(amount), reason=why
        )
        return CycleResult(
            cycle=self.cycle_no, ts_ms=now, action="margin", reason=f"{why}; topped up {amount} USD"
        )

    def _kill(self, now: int, snapshot: Snapshot, reason: str) -> None:
        """Flatten the perp (reduce-only market order), record, and stop with KeeperHalted."""
        self.log.write(
            now, "kill_switch", level="halt", reason=reason, perp_qty_base=str(snapshot.perp_qty_base)
        )
        if snapshot.perp_qty_base != 0:
            legs = [
                LegPlan(
                    leg=Leg.PERP,
                    symbol=self.spec.perp_symbol,
                    signed_qty_base=-snapshot.perp_qty_base,
                    reduce_only=True,
                )
            ]
            self._record_and_execute(
                now,
                kind="kill",
                mode="flat-perp",
                target=(float("nan"), 0.0),
                reason=reason,
                memory_json=self.journal.last_strategy_memory_json() or "[]",
                legs=legs,
            )
        self._halt(now, reason)

    def _halt(self, now: int, reason: str) -> None:
        self.journal.set_meta("halted", reason)
        self.journal.record_event(now, "halt", {"reason": reason})
        self.log.write(now, "keeper.halted", level="halt", reason=reason)
        raise KeeperHalted(reason)

    def _refuse(self, now: int, reason: str, *, stale: bool = False) -> CycleResult:
        self.log.refuse(now, "cycle.refused", reason)
        if stale:
            self.stale_cycles += 1
            if self.stale_cycles >= self.spec.risk.kill_after_stale_cycles:
                why = f"{self.stale_cycles} consecutive cycles without usable data ({reason})"
                try:
                    snapshot = take_snapshot(self.venue, self.spec.spot_symbol, self.spec.perp_symbol)
                except VenueUnavailable:
                    self._halt(now, why + "; could not flatten the perp: the venue is unreachable")
                self._kill(now, snapshot, why)
        return CycleResult(cycle=self.cycle_no, ts_ms=now, action="refuse", reason=reason)

    # -- strategy --------------------------------------------------------------------------------

    def _decide_and_act(self, now: int, snapshot: Snapshot, reading: Any, base_qty: Decimal) -> CycleResult:
        spec = self.spec
        if base_qty <= 0:  # the strategy's fractions are of Q: there is no hedge left to size them against
            self._halt(
                now,
                f"deleveraging sold the whole hedge (base quantity {base_qty}): nothing left to keep; the "
                "journal keeps its history for perphedge status; start a new hedge (new journal_path) to deploy again",
            )
        q = float(base_qty)
        spot_fraction = float(snapshot.spot_base) / q
        perp_fraction = float(snapshot.perp_qty_base) / q
        state = HedgeState(
            spot_fraction=spot_fraction,
            perp_fraction=perp_fraction,
            mode=mode_of(spot_fraction, perp_fraction),
            margin_ratio=reading.margin_ratio,
            liquidation_distance=reading.liquidation_distance,
        )
        try:
            view = self._market_view(now, snapshot)
        except DataError as e:
            return self._refuse(now, f"market data unusable for a decision: {e}")
        memory = self._memory()
        target, new_memory = self.strategy.decide(view, state, memory)
        memory_json = _memory_to_json(new_memory)
        spot_rules = self.venue.market_rules(spec.spot_symbol)
        perp_rules = self.venue.market_rules(spec.perp_symbol)
        orders = orders_for(target, state, q, min_qty_base=spec.risk.min_rebalance_fraction * q)
        spot_delta = spot_rules.round_amount(_without_float_noise(orders.spot_delta_base))
        perp_delta = perp_rules.round_amount(_without_float_noise(orders.perp_delta_base))
        decision_no = self.journal.next_decision_no()
        fields: dict[str, Any] = {  # log fields (KeeperLog.write **fields); no "level" key among them
            "decision_no": decision_no,
            "mode": target.mode.value,
            "target_spot_fraction": target.spot_fraction,
            "target_perp_fraction": target.perp_fraction,
            "strategy_reason": target.reason,
            "spot_fraction": spot_fraction,
            "perp_fraction": perp_fraction,
        }
        if spot_delta == 0 and perp_delta == 0:
            self._record(
                now,
                decision_no,
                "strategy",
                target.mode.value,
                (target.spot_fraction, target.perp_fraction),
                target.reason,
                memory_json,
                [],
                status="hold",
            )
            self.log.write(now, "decision.hold", **fields)
            return CycleResult(cycle=self.cycle_no, ts_ms=now, action="hold", reason=target.reason)
        refusals = [
            r
            for r in (
                spot_rules.check_tradeable(spot_delta, snapshot.quote.spot_price_usd) if spot_delta else None,
                perp_rules.check_tradeable(perp_delta, snapshot.quote.perp_price_usd) if perp_delta else None,
            )
            if r
        ]
        if refusals:
            reason = "; ".join(refusals) + ": refusing the whole adjustment (both legs or neither)"
            self._record(
                now,
                decision_no,
                "strategy",
                target.mode.value,
                (target.spot_fraction, target.perp_fraction),
                reason,
                memory_json,
                [],
                status="refused",
            )
            self.log.refuse(now, "decision.refused", reason, **fields)
            return CycleResult(cycle=self.cycle_no, ts_ms=now, action="refuse", reason=reason)
        shortfall = self._initial_margin_shortfall(snapshot, perp_delta)
        if shortfall > 0:
            reason = (
                f"not enough margin to trade: the perp after this trade needs {shortfall} USD more initial "
                f"margin at {spec.leverage:g}x than the futures wallet holds"
            )
            if self._reserve_left(snapshot) >= shortfall:
                self._transfer(now, shortfall, reason + "; topping up from the reserve first")
            else:
                self._record(
                    now,
                    decision_no,
                    "strategy",
                    target.mode.value,
                    (target.spot_fraction, target.perp_fraction),
                    reason,
                    memory_json,
                    [],
                    status="refused",
                )
                self.log.refuse(
                    now, "decision.refused", reason + "; add margin or raise reserve_usd", **fields
                )
                return CycleResult(cycle=self.cycle_no, ts_ms=now, action="refuse", reason=reason)
        spot_leg = LegPlan(leg=Leg.SPOT, symbol=spec.spot_symbol, signed_qty_base=spot_delta)
        reduces_perp = (
            perp_delta != 0
            and snapshot.perp_qty_base != 0
            and (perp_delta > 0) != (snapshot.perp_qty_base > 0)
            and abs(perp_delta) <= abs(snapshot.perp_qty_base)
        )
        perp_leg = LegPlan(
            leg=Leg.PERP, symbol=spec.perp_symbol, signed_qty_base=perp_delta, reduce_only=reduces_perp
        )
        # the risk-reducing leg goes first when the perp shrinks; otherwise spot first
        legs = [perp_leg, spot_leg] if reduces_perp else [spot_leg, perp_leg]
        self.log.write(
            now, "decision.trade", spot_delta_base=str(spot_delta), perp_delta_base=str(perp_delta), **fields
        )
        report = self._record_and_execute(
            now,
            kind="strategy",
            mode=target.mode.value,
            target=(target.spot_fraction, target.perp_fraction),
            reason=target.reason,
            memory_json=memory_json,
            legs=legs,
            decision_no=decision_no,
        )
        return CycleResult(
            cycle=self.cycle_no, ts_ms=now, action="trade", reason=target.reason, report=report
        )

    def _initial_margin_shortfall(self, snapshot: Snapshot, perp_delta: Decimal) -> Decimal:
        """Return the USD missing for the initial margin of the perp after a trade (0 if it shrinks or fits).

        Initial margin = notional / leverage (Binance "Leverage and Margin", exchange-mechanics.md §2),
        against the margin balance (wallet + unrealised PnL), with 1 % headroom for fees and price moves.
        """
        held = snapshot.perp_qty_base
        after = held + perp_delta
        if abs(after) <= abs(held):
            return Decimal(0)
        upnl = Decimal(0) if snapshot.position is None else snapshot.position.unrealized_pnl_usd
        required = (
            abs(after) * snapshot.quote.mark_price_usd / to_decimal(self.spec.leverage) * Decimal("1.01")
        )
        missing = required - (snapshot.balances.futures_wallet_usd + upnl)
        return max(missing, Decimal(0)).quantize(Decimal("0.01"), rounding=ROUND_UP)

    def _reserve_left(self, snapshot: Snapshot) -> Decimal:
        if self.spec.collateral.policy != "reserve":
            return Decimal(0)
        used = sum(
            (
                Decimal(t["amount_usd"])
                for t in self.journal.transfers()
                if t["purpose"] == "reserve" and t["status"] in ("done", "unknown")
            ),
            Decimal(0),
        )
        return max(
            min(to_decimal(self.spec.collateral.reserve_usd) - used, snapshot.balances.spot_usd), Decimal(0)
        )

    def _record(
        self,
        now: int,
        decision_no: int,
        kind: str,
        mode: str,
        target: tuple[float, float],
        reason: str,
        memory_json: str,
        legs: list[LegPlan],
        *,
        status: str,
    ) -> None:
        self.journal.record_decision(
            DecisionRecord(
                decision_no=decision_no,
                ts_ms=now,
                kind=kind,
                mode=mode,
                target_spot_fraction=repr(target[0]),
                target_perp_fraction=repr(target[1]),
                reason=reason,
                memory_json=memory_json,
                plan=tuple(lp.to_json() for lp in legs),
                status=status,
            )
        )

    def _record_and_execute(
        self,
        now: int,
        *,
        kind: str,
        mode: str,
        target: tuple[float, float],
        reason: str,
        memory_json: str,
        legs: list[LegPlan],
        decision_no: int | None = None,
    ) -> ExecutionReport:
        decision_no = decision_no or self.journal.next_decision_no()
        self._record(now, decision_no, kind, mode, target, reason, memory_json, legs, status="executing")
        report = self.executor.execute(decision_no, legs)
        self._count_failures(now, report)
        return report

    def _count_failures(self, now: int, report: ExecutionReport) -> None:
        """Halt after MAX_FAILED_EXECUTIONS consecutive executions that were refused or unwound (no fee burning)."""
        if report.outcome == "pending":
            return
        failed = int(self.journal.get_meta("failed_executions") or "0")
        failed = failed + 1 if report.outcome in ("refused", "unwound") else 0
        self.journal.set_meta("failed_executions", str(failed))
        if failed >= MAX_FAILED_EXECUTIONS:
            self._halt(
                now,
                f"{failed} consecutive executions failed (last: decision {report.decision_no}, "
                f"{'; '.join(report.notes) or report.outcome}); fix the cause, then --clear-halt",
            )

    def _memory(self) -> StrategyMemory:
        stored = self.journal.last_strategy_memory_json()
        if stored is None:
            return self.strategy.initial_memory()
        return _memory_from_json(stored)

    def _market_view(self, now: int, snapshot: Snapshot) -> MarketView:
        spec = self.spec
        rates = self.venue.fetch_funding_rates(spec.perp_symbol, now - FUNDING_LOOKBACK_MS)
        settle = np.array([r.settle_ts_ms for r in rates], dtype=np.int64)
        rate_values = np.array([r.rate_per_interval for r in rates], dtype=float)
        intervals = infer_interval_hours(settle) if settle.size >= 2 else np.full(settle.size, 8.0)
        closes = self.venue.fetch_spot_closes(spec.spot_symbol, CLOSES_LOOKBACK_BARS)
        quote = snapshot.quote
        return MarketView(
            ts_ms=now,
            spot_price_usd=float(quote.spot_price_usd),
            perp_price_usd=float(quote.perp_price_usd),
            mark_price_usd=float(quote.mark_price_usd),
            funding_settle_ts_ms=settle,
            funding_rates=rate_values,
            funding_interval_hours=intervals,
            close_prices=np.array([c for _, c in closes], dtype=float),
            predicted_funding_rate=quote.funding_rate_per_interval,
        )


def _without_float_noise(qty_base: float) -> Decimal:
    """Return a float quantity as a Decimal cut to 1e-12 coins, before truncating to the exchange step.

    ``orders_for`` works in float fractions of Q: (1 − 0.37/0.47) × 0.47 is 0.09999999999999998, which
    truncated to a 0.00001 step would trade one step less than meant (a 0.001 perp step: 0.099 for 0.1).
    """
    return to_decimal(qty_base).quantize(Decimal("1e-12"))


def _memory_to_json(memory: StrategyMemory) -> str:
    return json.dumps([[k, v] for k, v in memory.values], default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"strategy memory value {value!r} cannot be journalled")


def _memory_from_json(text: str) -> StrategyMemory:
    def tuples(value: Any) -> Any:
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value

    return StrategyMemory(values=tuple((k, tuples(v)) for k, v in json.loads(text)))
