"""Property: whatever each leg's fault, a hedge never ends unbalanced beyond the bound, duplicated, or unjournalled."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perphedge.errors import KeeperHalted
from perphedge.venues.paper import Fault, FaultKind, SimulatedCrash
from perphedge.venues.port import Leg
from tests.keeper.kit import close, make_keeper, make_spec

leg_fault = st.one_of(
    st.none(),
    st.builds(lambda: (FaultKind.REJECT, 0.5)),
    st.builds(lambda: (FaultKind.TIMEOUT_AFTER_SUBMIT, 0.5)),
    st.builds(lambda: (FaultKind.CRASH_AFTER_SUBMIT, 0.5)),
    st.tuples(st.just(FaultKind.PARTIAL_FILL), st.floats(min_value=0.05, max_value=0.95)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spot_fault=leg_fault, perp_fault=leg_fault, outage=st.integers(min_value=0, max_value=3))
def test_any_leg_outcome_ends_balanced_and_consistent(spot_fault, perp_fault, outage) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(Path(tmp))
        keeper, venue = make_keeper(spec)
        for leg, fault in ((Leg.SPOT, spot_fault), (Leg.PERP, perp_fault)):
            if fault is not None:
                venue.inject(Fault(kind=fault[0], leg=leg, fill_fraction=fault[1]))
        if outage:
            venue.inject(Fault(kind=FaultKind.UNAVAILABLE, times=outage))
        for _ in range(6):
            try:
                keeper.cycle()
            except SimulatedCrash:
                close(keeper)
                keeper, venue = make_keeper(spec)  # restart: new process, same journal and exchange
            except KeeperHalted:
                break
            q = Decimal(keeper.journal.get_meta("base_qty") or "0")
            # read the exchange's state directly: the test must not consume the injected outage
            spot, perp = Decimal(venue._s.spot_base), Decimal(venue._s.perp_qty)
            if keeper.journal.book() is not None and keeper.journal.unfinished_decision() is None:
                # the two legs never differ by more than the imbalance bound (plus one lot of rounding)
                assert abs(spot + perp) <= Decimal(repr(spec.risk.max_imbalance_fraction)) * q + Decimal(
                    "0.001"
                )
                # the journal's memory equals the exchange's truth
                assert keeper.journal.book() == (spot, perp)
        # no order was sent twice: every venue order is journalled under its own client id, once
        journal_ids = [o.client_order_id for o in keeper.journal.orders()]
        assert len(journal_ids) == len(set(journal_ids))
        assert set(venue._s.orders) <= set(journal_ids)
        fills = keeper.journal.fills()
        assert len({(f["client_order_id"], f["cum_filled_qty_base"]) for f in fills}) == len(fills)
        close(keeper)
