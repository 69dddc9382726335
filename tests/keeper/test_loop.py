"""The keeper loop on replayed real history: funding read back (also while down), kill switch, stale data, secrets."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from perphedge.errors import KeeperHalted
from perphedge.keeper.log import KeeperLog
from tests.keeper.kit import close, make_keeper, make_spec

PERP = "BTC/USDT:USDT"


def test_funding_paid_while_the_keeper_was_down_is_recorded_once_and_matches_the_model(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    keeper.run(3)
    close(keeper)
    venue.advance(9)  # three days of settlements while no keeper runs
    keeper2, venue2 = make_keeper(spec)
    keeper2.run(2)
    rows = keeper2.journal.funding_rows()
    paid = venue2.fetch_funding_history(PERP, 0)
    assert [r["settle_ts_ms"] for r in rows] == [p.settle_ts_ms for p in paid]
    assert len(rows) >= 10 and len({r["settle_ts_ms"] for r in rows}) == len(rows)
    # the model (−qty × mark × rate from the journal's own position) agrees with what was paid, to the cent
    for row in rows:
        assert abs(Decimal(row["amount_usd"]) - Decimal(row["model_amount_usd"])) <= Decimal("0.01")
    # independently: a short of Q receives Q × mark × rate (Binance funding FAQ)
    q = Decimal(keeper2.journal.get_meta("base_qty"))
    first = venue2.fetch_funding_rates(PERP, rows[0]["settle_ts_ms"])[0]
    expected = q * Decimal(repr(first.mark_price_usd)) * Decimal(repr(first.rate_per_interval))
    assert abs(Decimal(rows[0]["amount_usd"]) - expected) < Decimal("0.0001")
    keeper2.run(1)
    assert len(keeper2.journal.funding_rows()) == len(venue2.fetch_funding_history(PERP, 0))
    close(keeper2)


def test_max_loss_kill_switch_flattens_the_perp_and_halts(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, risk={"max_loss_usd": 1.0})  # opening fees alone (~30 USD) exceed it
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    assert venue.fetch_perp_position(PERP) is not None
    keeper.clock.wait_next_cycle()
    with pytest.raises(KeeperHalted, match="max_loss_usd"):
        keeper.cycle()
    assert venue.fetch_perp_position(PERP) is None
    kill = [d for d in keeper.journal.decisions() if d.kind == "kill"]
    assert len(kill) == 1 and kill[0].status == "done"
    assert keeper.journal.get_meta("halted")
    close(keeper)


class _LateClock:
    """The replay clock seen from a process whose prices stopped updating: now is a day after the data."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def now_ms(self) -> int:
        return self.inner.now_ms() + 86_400_000 * 2

    def wait_next_cycle(self) -> None:
        pass

    def is_exhausted(self) -> bool:
        return False


def test_stale_prices_refuse_to_act_then_trigger_the_kill_switch(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, risk={"kill_after_stale_cycles": 3})
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    orders_before = len(venue._s.orders)
    keeper.clock = _LateClock(keeper.clock)
    first, second = keeper.cycle(), keeper.cycle()
    assert first.action == second.action == "refuse" and "stale" in first.reason
    assert len(venue._s.orders) == orders_before  # no action on stale data
    with pytest.raises(KeeperHalted, match="consecutive cycles"):
        keeper.cycle()
    assert venue.fetch_perp_position(PERP) is None
    close(keeper)


def test_fifty_cycle_replay_is_neutral_and_attribution_adds_up(tmp_path: Path) -> None:
    from perphedge.keeper.status import hedge_status

    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    results = keeper.run(50)
    assert len(results) == 50 and [r.action for r in results].count("trade") == 1
    status = hedge_status(spec, venue, keeper.journal, venue.now_ms())
    assert Decimal(status["net_exposure_base"]) == 0
    pnl = {k: Decimal(v) for k, v in status["pnl"].items()}
    assert abs(pnl["other_usd"]) < Decimal("0.000001")
    assert pnl["funding_usd"] > 0 and pnl["funding_usd"] == pnl["funding_model_usd"]
    assert (
        pnl["spot_pnl_usd"] + pnl["perp_pnl_usd"] + pnl["funding_usd"] + pnl["fees_usd"] + pnl["other_usd"]
        == pnl["total_usd"]
    )
    # a structured, timestamped log line for every decision (50) and every order sent and settled (2 + 2)
    lines = _log(spec)
    assert all({"ts", "ts_ms", "level", "event"} <= set(line) for line in lines)
    decided = [ln for ln in lines if ln["event"] in ("decision.hold", "decision.trade", "decision.refused")]
    assert [ln["decision_no"] for ln in decided] == list(range(1, 51))
    assert sum(ln["event"] == "order.submit" for ln in lines) == 2
    assert sum(ln["event"] == "order.final" for ln in lines) == 2
    close(keeper)


def test_log_lines_redact_secrets(tmp_path: Path) -> None:
    log = KeeperLog(tmp_path / "log.jsonl", secrets=("s3cr3t-value",))
    line = log.write(1_700_000_000_000, "venue.error", level="warning", reason="auth failed for s3cr3t-value")
    log.close()
    assert "s3cr3t-value" not in (tmp_path / "log.jsonl").read_text()
    assert line["ts"] == "2023-11-14T22:13:20Z" and line["reason"] == "auth failed for ***"


def _log(spec) -> list[dict]:
    import json

    return [json.loads(line) for line in Path(spec.keeper.log_path).read_text().splitlines()]


def test_a_trade_outside_the_keeper_is_logged_adopted_and_traded_back_to_target(tmp_path: Path) -> None:
    from perphedge.venues.port import ClientOrderId, Leg, OrderRequest, OrderSide

    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    q = Decimal(keeper.journal.get_meta("base_qty"))
    # the user sells 0.1 BTC of the spot leg by hand on the exchange
    venue.create_order(
        OrderRequest(
            client_order_id=ClientOrderId("manual1"),
            leg=Leg.SPOT,
            symbol=spec.spot_symbol,
            side=OrderSide.SELL,
            qty_base=Decimal("0.1"),
        )
    )
    keeper.clock.wait_next_cycle()
    result = keeper.cycle()
    difference = [ln for ln in _log(spec) if ln["event"] == "reconcile.difference"]
    assert len(difference) == 1 and difference[0]["level"] == "warning"
    assert Decimal(difference[0]["spot_journal"]) == q and Decimal(
        difference[0]["spot_venue"]
    ) == q - Decimal("0.1")
    assert keeper.journal.events("reconcile.difference")  # journalled too
    # the venue is the truth: the strategy saw spot 0.1 short of target and bought it back (spot only)
    assert result.action == "trade" and result.report.planned_base == {"spot": "0.10000"}
    assert venue.fetch_balances("", "").spot_base == q and keeper.journal.book() == (q, -q)
    close(keeper)


def test_funding_that_differs_from_the_model_is_logged_as_a_mismatch(tmp_path: Path) -> None:
    from perphedge.keeper.reconcile import reconcile_funding

    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    q = Decimal(keeper.journal.get_meta("base_qty"))
    # the journal believes the short is half its real size (as after an unrecorded trade): the model
    # it computes from its own position must disagree with what the exchange actually paid
    keeper.journal.set_book(spot_base=q, perp_qty=-q / 2, ts_ms=venue.now_ms(), kind="test", detail={})
    venue.advance(3)  # one day: three 8-hourly settlements paid to the full short
    check = reconcile_funding(
        venue,
        keeper.journal,
        keeper.log,
        perp_symbol=spec.perp_symbol,
        start_ts_ms=0,
        now_ms=venue.now_ms(),
    )
    assert check.new_payments == 3 and check.mismatches == 3
    lines = [ln for ln in _log(spec) if ln["event"] == "funding.mismatch"]
    assert len(lines) == 3
    for line in lines:  # received is twice the model (model for −Q/2, paid on −Q)
        assert abs(Decimal(line["received_usd"]) - 2 * Decimal(line["model_usd"])) < Decimal("0.00000002")
    close(keeper)


def test_funding_paid_before_a_liquidation_is_modelled_with_the_position_held_then(tmp_path: Path) -> None:
    from perphedge.venues.paper import Fault, FaultKind

    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    q = Decimal(keeper.journal.get_meta("base_qty"))
    venue.advance(2)  # two settlements paid to the short while the keeper sleeps
    position = venue.fetch_perp_position(spec.perp_symbol)
    # then a gap past the liquidation price: the short is gone when the keeper wakes up
    venue.inject(
        Fault(
            kind=FaultKind.PRICE_GAP,
            price_factor=float(position.liquidation_price_usd / position.mark_price_usd) * 1.01,
        )
    )
    assert venue.fetch_perp_position(spec.perp_symbol) is None
    with pytest.raises(KeeperHalted, match="gone at the venue"):
        keeper.cycle()
    rows = keeper.journal.funding_rows()
    assert len(rows) == 2
    for row in rows:  # the model is for the −Q short held at the settlement, not the 0 adopted afterwards
        assert row["model_amount_usd"] == row["amount_usd"] and Decimal(row["amount_usd"]) != 0
    assert not [ln for ln in _log(spec) if ln["event"] == "funding.mismatch"]
    assert keeper.journal.book() == (q, Decimal(0))
    close(keeper)


def test_a_liquidation_is_attributed_to_the_perp_and_only_its_cost_beyond_the_mark_to_other(
    tmp_path: Path,
) -> None:
    from perphedge.keeper.status import hedge_status
    from perphedge.venues.paper import Fault, FaultKind

    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    position = venue.fetch_perp_position(PERP)
    wallet_before = venue.fetch_balances("", "").futures_wallet_usd
    venue.inject(  # a gap 1 % past the liquidation price: the short is closed at its liquidation price
        Fault(
            kind=FaultKind.PRICE_GAP,
            price_factor=float(position.liquidation_price_usd / position.mark_price_usd) * 1.01,
        )
    )
    with pytest.raises(KeeperHalted):
        keeper.cycle()
    (liquidation,) = venue.liquidations
    qty, price, fee = (Decimal(liquidation[k]) for k in ("qty_base", "price_usd", "fee_usd"))
    mark = venue.fetch_quote("", "").mark_price_usd
    wallet_after = venue.fetch_balances("", "").futures_wallet_usd
    # the wallet after the close at the LP and the fee (floored at 0: the insurance fund takes the rest)
    assert wallet_after == max(wallet_before + qty * (price - position.entry_price_usd) - fee, Decimal(0))
    pnl = {k: Decimal(v) for k, v in hedge_status(spec, venue, keeper.journal, venue.now_ms())["pnl"].items()}
    # the perp's loss up to the mark at which the keeper found it gone is perp PnL (it was all in other_usd);
    # other_usd is what the journal cannot see: the clearance fee and the close at the LP instead of the mark
    assert pnl["other_usd"] == wallet_after - (wallet_before + qty * (mark - position.entry_price_usd))
    assert pnl["perp_pnl_usd"] < -abs(pnl["other_usd"])
    assert (
        sum(pnl[k] for k in ("spot_pnl_usd", "perp_pnl_usd", "funding_usd", "fees_usd", "other_usd"))
        == (pnl["total_usd"])
    )
    close(keeper)


def test_funding_paid_on_a_fill_recovered_after_a_restart_is_modelled_on_the_filled_position(
    tmp_path: Path,
) -> None:
    from perphedge.venues.paper import Fault, FaultKind, SimulatedCrash
    from perphedge.venues.port import Leg

    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    venue.inject(Fault(kind=FaultKind.CRASH_AFTER_SUBMIT, leg=Leg.PERP))
    with pytest.raises(SimulatedCrash):  # the short is open at the venue, its fill not journalled
        keeper.cycle()
    close(keeper)
    filled_at = venue.now_ms()
    venue.advance(3)  # down for a day: three settlements paid to the short
    keeper2, _ = make_keeper(spec)
    keeper2.cycle()
    (perp_fill,) = [f for f in keeper2.journal.fills() if f["leg"] == "perp"]
    assert perp_fill["ts_ms"] == filled_at  # when the venue filled it, not when the restart found it
    rows = keeper2.journal.funding_rows()
    assert len(rows) == 3
    for row in rows:  # each modelled on the short held then (it was modelled on 0 before the restart)
        assert row["model_amount_usd"] == row["amount_usd"] and Decimal(row["amount_usd"]) != 0
    assert not [ln for ln in _log(spec) if ln["event"] == "funding.mismatch"]
    close(keeper2)


def test_status_after_a_crash_counts_the_fill_the_journal_has_not_recorded_yet(tmp_path: Path) -> None:
    from perphedge.keeper.status import hedge_status
    from perphedge.venues.paper import Fault, FaultKind, SimulatedCrash
    from perphedge.venues.port import Leg

    spec = make_spec(tmp_path)
    keeper, venue = make_keeper(spec)
    venue.inject(Fault(kind=FaultKind.CRASH_AFTER_SUBMIT, leg=Leg.PERP))
    with pytest.raises(SimulatedCrash):  # the short is open at the venue, its fill not journalled
        keeper.cycle()
    status = hedge_status(spec, venue, keeper.journal, venue.now_ms())
    pnl = {k: Decimal(v) for k, v in status["pnl"].items()}
    # the venue's short is valued with its own fill (perp PnL was −Q × mark, other_usd +Q × mark: ~10,000)
    assert pnl["other_usd"] == 0
    perp_fee = Decimal(venue._s.orders["phbtcdemod1pm0"]["fee_usd"])
    spot_fee = Decimal(venue._s.orders["phbtcdemod1sm0"]["fee_usd"])
    assert pnl["fees_usd"] == -(perp_fee + spot_fee)
    assert keeper.journal.pending_orders()  # status only reads: the next keep journals the fill
    close(keeper)
