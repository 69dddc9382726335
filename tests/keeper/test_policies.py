"""Collateral policies when the price runs toward liquidation, and transfers interrupted by a crash."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from perphedge.errors import ConfigError, KeeperHalted
from perphedge.keeper.reconcile import resolve_pending_transfers
from perphedge.venues.paper import Fault, FaultKind
from tests.keeper.kit import close, make_keeper, make_spec

PERP = "BTC/USDT:USDT"


def _open_then_gap(tmp_path: Path, **sections):
    spec = make_spec(tmp_path, **sections)
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    position = venue.fetch_perp_position(PERP)
    venue.inject(
        Fault(
            kind=FaultKind.PRICE_GAP,
            price_factor=float(position.liquidation_price_usd / position.mark_price_usd) * 0.92,
        )
    )
    return keeper, venue


def test_policy_none_only_alarms_and_says_why(tmp_path: Path) -> None:
    keeper, venue = _open_then_gap(tmp_path, collateral={"policy": "none"})
    orders, wallet = len(venue._s.orders), venue.fetch_balances("", "").futures_wallet_usd
    result = keeper.cycle()
    assert result.action == "refuse" and "policy is 'none'" in result.reason
    assert len(venue._s.orders) == orders and venue.fetch_balances("", "").futures_wallet_usd == wallet
    close(keeper)


def test_policy_sell_spot_shrinks_both_legs_equally_and_stays_neutral(tmp_path: Path) -> None:
    keeper, venue = _open_then_gap(tmp_path, collateral={"policy": "sell_spot"})
    before = venue.fetch_perp_position(PERP)
    result = keeper.cycle()
    assert result.action == "margin" and result.report.outcome == "complete"
    after = venue.fetch_perp_position(PERP)
    spot = venue.fetch_balances("", "").spot_base
    assert abs(after.signed_qty_base) < abs(before.signed_qty_base)
    assert spot + after.signed_qty_base == 0  # still neutral
    assert after.liquidation_price_usd > before.liquidation_price_usd
    close(keeper)


def test_reserve_is_bounded_then_the_keeper_deleverages_and_moves_the_proceeds(tmp_path: Path) -> None:
    keeper, venue = _open_then_gap(tmp_path, collateral={"policy": "reserve", "reserve_usd": 100.0})
    before = venue.fetch_perp_position(PERP)
    # the 100 USD reserve covers only part of the top-up: it is moved, and the rest is deleveraged in the
    # same cycle (it used to wait a whole cycle, exposed, before deleveraging)
    second = keeper.cycle()
    reserve = [
        Decimal(t["amount_usd"]) for t in keeper.journal.transfers("done") if t["purpose"] == "reserve"
    ]
    assert reserve == [Decimal(100)]
    assert second.action == "margin" and "used up" in second.reason and "deleveraging" in second.reason
    assert second.report.outcome == "complete"
    after = venue.fetch_perp_position(PERP)
    assert abs(after.signed_qty_base) < abs(before.signed_qty_base)
    assert venue.fetch_balances("", "").spot_base + after.signed_qty_base == 0
    proceeds = [t for t in keeper.journal.transfers("done") if t["purpose"] == "proceeds"]
    assert len(proceeds) == 1 and Decimal(proceeds[0]["amount_usd"]) > 0
    # the hedge's base quantity shrank by what was sold, so the strategy does not buy it back
    assert keeper._base_qty(None, 0) == venue.fetch_balances("", "").spot_base
    keeper.cycle()  # the reserve stays bounded: no further reserve transfer
    assert [t for t in keeper.journal.transfers() if t["purpose"] == "reserve"] == [
        t for t in keeper.journal.transfers("done") if t["purpose"] == "reserve"
    ]
    assert (
        sum(Decimal(t["amount_usd"]) for t in keeper.journal.transfers() if t["purpose"] == "reserve") == 100
    )
    close(keeper)


def test_transfer_sent_but_not_recorded_is_settled_from_the_venue_on_restart(tmp_path: Path) -> None:
    keeper, venue = make_keeper(make_spec(tmp_path))
    keeper.cycle()
    # a crash between sending the transfer and recording it: intent in the journal, done at the venue
    keeper.journal.record_transfer_intent(
        transfer_id="phbtcdemot1",
        amount_usd=Decimal(50),
        to_futures=True,
        reason="test",
        ts_ms=venue.now_ms(),
    )
    venue.transfer_margin(Decimal(50), to_futures=True, transfer_id="phbtcdemot1")
    keeper.journal.record_transfer_intent(
        transfer_id="phbtcdemot2",
        amount_usd=Decimal(70),
        to_futures=True,
        reason="never sent",
        ts_ms=venue.now_ms(),
    )
    assert resolve_pending_transfers(venue, keeper.journal, keeper.log, venue.now_ms()) == 2
    assert {t["transfer_id"]: t["status"] for t in keeper.journal.transfers()} == {
        "phbtcdemot1": "done",
        "phbtcdemot2": "abandoned",
    }
    close(keeper)


def test_liquidation_distance_alone_alarms_and_tops_up(tmp_path: Path) -> None:
    import json

    # the margin-ratio trigger is out of reach (0.99): only the distance rule can fire
    spec = make_spec(tmp_path, collateral={"trigger_margin_ratio": 0.99})
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    position = venue.fetch_perp_position(PERP)
    # a price gap that leaves the liquidation price 10 % above the mark (minimum distance is 15 %)
    venue.inject(
        Fault(
            kind=FaultKind.PRICE_GAP,
            price_factor=float(position.liquidation_price_usd / position.mark_price_usd) / 1.10,
        )
    )
    result = keeper.cycle()
    assert result.action == "margin" and result.reason.startswith("liquidation distance 0.1")
    alarm = [
        json.loads(line) for line in spec.keeper.log_path.read_text().splitlines() if '"risk.alarm"' in line
    ]
    assert len(alarm) == 1 and alarm[0]["level"] == "alarm" and alarm[0]["margin_ratio"] < 0.99
    after = venue.fetch_perp_position(PERP)
    assert (after.liquidation_price_usd - after.mark_price_usd) / after.mark_price_usd >= Decimal("0.15")
    close(keeper)


def test_a_reserve_too_small_for_the_top_up_is_moved_and_the_rest_deleveraged_in_the_same_cycle(
    tmp_path: Path,
) -> None:
    # the spot wallet keeps only a few dollars after buying the spot leg, so the reserve (5000 USD on
    # paper) is dust in practice; found on the DOGE replay of January 2021, where the keeper moved
    # 0.0087 USD, called it done, and left the short 11 % from liquidation for the next 8 hours
    keeper, venue = _open_then_gap(
        tmp_path, paper={"spot_usd": 20030.0}, collateral={"policy": "reserve", "reserve_usd": 5000.0}
    )
    left = venue.fetch_balances("", "").spot_usd
    assert 0 < left < 50
    before = venue.fetch_perp_position(PERP)
    result = keeper.cycle()
    assert result.action == "margin" and "deleveraging for the rest" in result.reason
    assert result.report is not None and result.report.outcome == "complete"
    reserve = [
        Decimal(t["amount_usd"]) for t in keeper.journal.transfers("done") if t["purpose"] == "reserve"
    ]
    assert reserve == [left]  # the reserve's rest was used, never more
    after = venue.fetch_perp_position(PERP)
    assert abs(after.signed_qty_base) < abs(before.signed_qty_base)
    assert venue.fetch_balances("", "").spot_base + after.signed_qty_base == 0  # still neutral
    distance = (after.liquidation_price_usd - after.mark_price_usd) / after.mark_price_usd
    assert distance >= Decimal("0.15")
    close(keeper)


def test_a_distance_alarm_without_a_bracket_table_sends_no_zero_transfer(tmp_path: Path) -> None:
    # live keepers have no bracket table: the top-up is sized by the margin ratio alone, which is 0
    # when only the liquidation distance is breached; a 0 USD transfer used to be sent (the paper
    # exchange raised InputError out of the cycle, an exchange would reject it every cycle)
    spec = make_spec(tmp_path, collateral={"trigger_margin_ratio": 0.99})
    keeper, venue = make_keeper(spec)
    keeper.bracket_table = None
    keeper.cycle()
    position = venue.fetch_perp_position(PERP)
    venue.inject(
        Fault(
            kind=FaultKind.PRICE_GAP,
            price_factor=float(position.liquidation_price_usd / position.mark_price_usd) / 1.10,
        )
    )
    result = keeper.cycle()
    assert result.action in ("margin", "refuse") and result.reason.startswith("liquidation distance 0.1")
    assert all(Decimal(t["amount_usd"]) > 0 for t in keeper.journal.transfers())
    close(keeper)


def test_a_deleverage_that_closes_the_whole_hedge_halts_with_the_reason(tmp_path: Path) -> None:
    # a 0.004 BTC hedge whose deleverage rounds up to the whole position: the base quantity becomes 0,
    # and the next cycle divided by it (ZeroDivisionError on every restart)
    spec = make_spec(
        tmp_path,
        hedge={"capital_usd": 300.0},
        paper={"spot_usd": 250.0, "futures_usd": 120.0},
        collateral={"policy": "sell_spot"},
    )
    keeper, venue = make_keeper(spec)
    keeper.cycle()
    position = venue.fetch_perp_position(PERP)
    assert position.signed_qty_base == Decimal("-0.004")
    venue.inject(  # 0.1 % short of the liquidation price
        Fault(
            kind=FaultKind.PRICE_GAP,
            price_factor=float(position.liquidation_price_usd / position.mark_price_usd) * 0.999,
        )
    )
    result = keeper.cycle()
    assert result.action == "margin" and venue.fetch_perp_position(PERP) is None
    assert keeper._base_qty(None, 0) == 0
    keeper.clock.wait_next_cycle()
    with pytest.raises(KeeperHalted, match="nothing left to keep"):
        keeper.cycle()
    assert "nothing left to keep" in keeper.journal.get_meta("halted")
    close(keeper)


def test_a_capital_below_one_perp_step_is_refused_with_the_fix(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, hedge={"capital_usd": 50.0})  # 33 USD of BTC: less than 0.001 BTC
    keeper, venue = make_keeper(spec)
    with pytest.raises(ConfigError, match="hedge.capital_usd") as caught:
        keeper.cycle()
    assert "0.001" in str(caught.value) and "raise" in str(caught.value)
    assert keeper.journal.get_meta("base_qty") is None and not venue._s.orders
    close(keeper)
