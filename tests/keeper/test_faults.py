"""Fault injection against the paper exchange: every outcome of each leg ends complete or unwound, never duplicated."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from perphedge.errors import KeeperHalted
from perphedge.keeper.two_leg import client_order_id
from perphedge.venues.paper import Fault, FaultKind, SimulatedCrash
from perphedge.venues.port import CLIENT_ORDER_ID_MAX_LEN, Leg
from tests.keeper.kit import close, make_keeper, make_spec

PERP = "BTC/USDT:USDT"


def _venue_orders(venue) -> list[dict]:
    return list(venue._s.orders.values())


def _log_lines(spec) -> list[dict]:
    return [json.loads(line) for line in Path(spec.keeper.log_path).read_text().splitlines()]


def test_client_order_ids_are_deterministic_short_and_alphanumeric() -> None:
    cid = client_order_id("abcdefghijkl", 12_345_678, Leg.PERP, "complete", 1)
    assert cid == "phabcdefghijkld12345678pc1"
    assert cid == client_order_id("abcdefghijkl", 12_345_678, Leg.PERP, "complete", 1)
    assert cid.isalnum() and len(cid) <= CLIENT_ORDER_ID_MAX_LEN
    assert client_order_id("h", 1, Leg.SPOT) != client_order_id("h", 1, Leg.PERP)


def test_clean_open_places_exactly_two_orders_and_is_neutral(tmp_path: Path) -> None:
    keeper, venue = make_keeper(make_spec(tmp_path))
    result = keeper.cycle()
    assert result.action == "trade" and result.report.outcome == "complete"
    q = Decimal(keeper.journal.get_meta("base_qty"))
    assert venue.fetch_balances("", "").spot_base == q
    assert venue.fetch_perp_position(PERP).signed_qty_base == -q
    assert [o["client_order_id"] for o in _venue_orders(venue)] == ["phbtcdemod1sm0", "phbtcdemod1pm0"]
    close(keeper)


def test_second_leg_rejected_unwinds_the_first(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    venue.inject(Fault(kind=FaultKind.REJECT, leg=Leg.PERP))
    result = keeper.cycle()
    assert result.report.outcome == "unwound"
    assert venue.fetch_balances("", "").spot_base == 0 and venue.fetch_perp_position(PERP) is None
    assert [o["client_order_id"] for o in _venue_orders(venue)] == ["phbtcdemod1sm0", "phbtcdemod1su0"]
    assert keeper.journal.book() == (Decimal(0), Decimal(0))
    finished = [ln for ln in _log_lines(spec) if ln["event"] == "execution.finished"][-1]
    assert finished["level"] == "alarm" and "perp leg failed" in finished["notes"][0]
    assert keeper.journal.decisions()[-1].status == "done"
    close(keeper)


def test_first_leg_rejected_refuses_with_a_one_line_reason_and_trades_nothing(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    venue.inject(Fault(kind=FaultKind.REJECT, leg=Leg.SPOT))
    assert keeper.cycle().report.outcome == "refused"
    assert _venue_orders(venue) == []
    refusal = [ln for ln in _log_lines(spec) if ln["level"] == "refuse"][-1]
    assert "rejected" in refusal["reason"] and "\n" not in refusal["reason"]
    close(keeper)


def test_timeout_after_submit_finds_the_filled_order_instead_of_resending(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    venue.inject(Fault(kind=FaultKind.TIMEOUT_AFTER_SUBMIT, leg=Leg.PERP))
    assert keeper.cycle().report.outcome == "complete"
    assert len(_venue_orders(venue)) == 2  # no duplicate perp order
    q = Decimal(keeper.journal.get_meta("base_qty"))
    assert venue.fetch_perp_position(PERP).signed_qty_base == -q
    events = [ln["event"] for ln in _log_lines(spec)]
    assert "order.outcome_unknown" in events and "order.resubmit" not in events
    close(keeper)


def test_partial_fill_is_cancelled_then_completed(tmp_path: Path) -> None:
    keeper, venue = make_keeper(make_spec(tmp_path))
    venue.inject(Fault(kind=FaultKind.PARTIAL_FILL, leg=Leg.PERP, fill_fraction=0.4))
    report = keeper.cycle().report
    assert report.outcome == "complete"
    q = Decimal(keeper.journal.get_meta("base_qty"))
    orders = {o["client_order_id"]: o for o in _venue_orders(venue)}
    assert orders["phbtcdemod1pm0"]["state"] == "canceled"
    assert (
        Decimal(orders["phbtcdemod1pm0"]["filled_qty_base"])
        + Decimal(orders["phbtcdemod1pc1"]["filled_qty_base"])
        == q
    )
    assert venue.fetch_perp_position(PERP).signed_qty_base == -q
    close(keeper)


def test_exchange_unavailable_refuses_the_cycle_then_recovers(tmp_path: Path) -> None:
    keeper, venue = make_keeper(make_spec(tmp_path))
    venue.inject(Fault(kind=FaultKind.UNAVAILABLE, times=2))
    results = [keeper.cycle() for _ in range(3)]
    assert [r.action for r in results] == ["refuse", "refuse", "trade"]
    assert "unavailable" in results[0].reason and results[2].report.outcome == "complete"
    assert len(_venue_orders(venue)) == 2
    close(keeper)


def test_unknown_outcome_stays_pending_and_the_next_cycle_resumes_without_duplicates(tmp_path: Path) -> None:
    keeper, venue = make_keeper(make_spec(tmp_path))
    venue.inject(Fault(kind=FaultKind.TIMEOUT_AFTER_SUBMIT, leg=Leg.SPOT))
    # the 8 calls before the spot order's look-up succeed; then 5 look-ups fail (lookup_attempts)
    venue.inject(Fault(kind=FaultKind.UNAVAILABLE, times=5, skip_calls=8))
    first = keeper.cycle()
    assert first.report.outcome == "pending" and keeper.journal.unfinished_decision() is not None
    second = keeper.cycle()
    assert keeper.journal.unfinished_decision() is None
    assert [o["client_order_id"] for o in _venue_orders(venue)] == ["phbtcdemod1sm0", "phbtcdemod1pm0"]
    q = Decimal(keeper.journal.get_meta("base_qty"))
    assert (
        venue.fetch_balances("", "").spot_base == q and venue.fetch_perp_position(PERP).signed_qty_base == -q
    )
    assert second.action in ("hold", "trade")
    close(keeper)


def test_crash_after_first_leg_restart_completes_without_duplicates(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    venue.inject(Fault(kind=FaultKind.CRASH_AFTER_SUBMIT, leg=Leg.SPOT))
    with pytest.raises(SimulatedCrash):
        keeper.cycle()
    close(keeper)
    # a new process: new journal connection, the paper exchange reloaded from its state file
    keeper2, venue2 = make_keeper(spec)
    keeper2.cycle()
    q = Decimal(keeper2.journal.get_meta("base_qty"))
    assert [o["client_order_id"] for o in _venue_orders(venue2)] == ["phbtcdemod1sm0", "phbtcdemod1pm0"]
    assert (
        venue2.fetch_balances("", "").spot_base == q
        and venue2.fetch_perp_position(PERP).signed_qty_base == -q
    )
    assert keeper2.journal.book() == (q, -q)
    assert len(keeper2.journal.fills()) == 2
    close(keeper2)


def test_price_gap_toward_liquidation_alarms_and_tops_up_margin(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    lp = venue.fetch_perp_position(PERP).liquidation_price_usd
    mark = venue.fetch_perp_position(PERP).mark_price_usd
    venue.inject(
        Fault(kind=FaultKind.PRICE_GAP, price_factor=float(lp / mark) * 0.92)
    )  # 8 % below liquidation
    wallet_before = venue.fetch_balances("", "").futures_wallet_usd
    result = keeper.cycle()
    assert result.action == "margin"
    transfers = keeper.journal.transfers("done")
    assert len(transfers) == 1 and Decimal(transfers[0]["amount_usd"]) > 0
    assert venue.fetch_balances("", "").futures_wallet_usd == wallet_before + Decimal(
        transfers[0]["amount_usd"]
    )
    position = venue.fetch_perp_position(PERP)
    assert position.liquidation_price_usd > lp  # more margin moved the liquidation price away
    assert any(ln["level"] == "alarm" and ln["event"] == "risk.alarm" for ln in _log_lines(spec))
    close(keeper)


def test_price_gap_through_liquidation_halts_with_the_reason(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    lp = venue.fetch_perp_position(PERP).liquidation_price_usd
    mark = venue.fetch_perp_position(PERP).mark_price_usd
    venue.inject(Fault(kind=FaultKind.PRICE_GAP, price_factor=float(lp / mark) * 1.05))
    assert venue.liquidations and venue.fetch_perp_position(PERP) is None
    with pytest.raises(KeeperHalted, match="gone at the venue"):
        keeper.cycle()
    assert "gone at the venue" in keeper.journal.get_meta("halted")
    assert keeper.journal.events("reconcile.difference")
    close(keeper)
    keeper2, _ = make_keeper(spec)
    with pytest.raises(KeeperHalted, match="halted earlier"):
        keeper2.run(1)
    close(keeper2)


def test_below_exchange_minimum_refuses_both_legs(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, hedge={"capital_usd": 150}, paper={"min_notional_usd": 100.0})
    keeper, venue = make_keeper(spec)
    result = keeper.cycle()
    assert result.action == "refuse" and "below the minimum" in result.reason
    assert _venue_orders(venue) == []
    close(keeper)


def test_restart_mid_rebalance_finishes_the_same_rebalance_once(tmp_path: Path) -> None:
    # Arrange: an open hedge; the price runs toward liquidation so the keeper deleverages (a two-leg rebalance)
    spec = make_spec(tmp_path, collateral={"policy": "sell_spot"})
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    position = venue.fetch_perp_position(PERP)
    venue.inject(
        Fault(
            kind=FaultKind.PRICE_GAP,
            price_factor=float(position.liquidation_price_usd / position.mark_price_usd) * 0.92,
        )
    )
    venue.inject(Fault(kind=FaultKind.CRASH_AFTER_SUBMIT, leg=Leg.PERP))
    # Act: the process dies right after the rebalance's perp leg is accepted, then a new one starts
    with pytest.raises(SimulatedCrash):
        keeper.cycle()
    close(keeper)
    keeper2, venue2 = make_keeper(spec)
    keeper2.cycle()
    # Assert: the rebalance finished once: buy-back and spot sale of the same size, no duplicate orders
    orders = {o["client_order_id"]: o for o in _venue_orders(venue2)}
    assert sorted(orders) == ["phbtcdemod1pm0", "phbtcdemod1sm0", "phbtcdemod2pm0", "phbtcdemod2sm0"]
    assert orders["phbtcdemod2pm0"]["filled_qty_base"] == orders["phbtcdemod2sm0"]["filled_qty_base"]
    spot = venue2.fetch_balances("", "").spot_base
    assert spot + venue2.fetch_perp_position(PERP).signed_qty_base == 0
    assert keeper2.journal.book() == (spot, -spot)
    assert keeper2.journal.decisions()[1].kind == "margin" and keeper2.journal.decisions()[1].status == "done"
    # the sale proceeds were still moved to the futures wallet, once, after the restart
    assert [t["transfer_id"] for t in keeper2.journal.transfers("done")] == ["phbtcdemop2"]
    close(keeper2)


def test_a_partly_filled_leg_is_waited_for_at_most_leg_timeout_then_cancelled_and_completed(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path, risk={"leg_timeout_s": 5.0})
    keeper, venue = make_keeper(spec)
    clock = {"t": 0.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # simulated time: the test does not wait
        slept.append(seconds)
        clock["t"] += seconds

    keeper.executor.sleep, keeper.executor.monotonic = sleep, lambda: clock["t"]
    venue.inject(Fault(kind=FaultKind.PARTIAL_FILL, leg=Leg.PERP, fill_fraction=0.3))
    report = keeper.cycle().report
    # bounded: polled until the 5 s leg timeout, not longer (one poll interval of slack), then acted
    assert 5.0 <= sum(slept) <= 5.0 + keeper.executor.limits.poll_interval_s
    orders = {o["client_order_id"]: o for o in _venue_orders(venue)}
    assert orders["phbtcdemod1pm0"]["state"] == "canceled" and "phbtcdemod1pc1" in orders
    assert report.outcome == "complete"
    events = [ln["event"] for ln in _log_lines(spec)]
    assert events.index("order.cancel") < [i for i, e in enumerate(events) if e == "order.submit"][-1]
    close(keeper)


def test_an_order_listed_late_after_a_timeout_is_found_not_sent_twice(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    # the perp order fills, the call times out, and the first look-up does not list it yet
    venue.inject(Fault(kind=FaultKind.TIMEOUT_AFTER_SUBMIT, leg=Leg.PERP))
    venue.inject(Fault(kind=FaultKind.LATE_VISIBLE, leg=Leg.PERP, times=1))
    assert keeper.cycle().report.outcome == "complete"
    events = [ln["event"] for ln in _log_lines(spec)]
    assert "order.resubmit" not in events  # "no such order" once is not enough to send again
    q = Decimal(keeper.journal.get_meta("base_qty"))
    assert len(_venue_orders(venue)) == 2 and venue.fetch_perp_position(PERP).signed_qty_base == -q
    close(keeper)


def test_a_resend_rejected_as_duplicate_finds_the_original_order(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    # not listed for two look-ups: the keeper re-sends; the venue rejects the duplicate client id
    venue.inject(Fault(kind=FaultKind.TIMEOUT_AFTER_SUBMIT, leg=Leg.SPOT))
    venue.inject(Fault(kind=FaultKind.LATE_VISIBLE, leg=Leg.SPOT, times=2))
    assert keeper.cycle().report.outcome == "complete"
    events = [ln["event"] for ln in _log_lines(spec)]
    assert "order.resubmit" in events and "order.found_late" in events
    q = Decimal(keeper.journal.get_meta("base_qty"))
    assert [o["client_order_id"] for o in _venue_orders(venue)] == ["phbtcdemod1sm0", "phbtcdemod1pm0"]
    assert keeper.journal.order("phbtcdemod1sm0").state == "closed"  # journalled as filled, not rejected
    assert keeper.journal.book() == (q, -q) and len(keeper.journal.fills()) == 2
    close(keeper)
