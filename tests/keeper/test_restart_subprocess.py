"""Kill a real keeper process mid-cycle (right after a leg was submitted) and restart it: nothing lost or duplicated."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from perphedge.keeper.journal import Journal
from perphedge.keeper.spec import load_spec
from perphedge.keeper.wiring import build_paper_venue
from perphedge.venues.paper import Fault, FaultKind
from perphedge.venues.port import Leg
from tests.keeper.kit import EXAMPLE

PERPHEDGE = Path(sys.executable).parent / "perphedge"
CRASH_EXIT_CODE = 86


def write_spec(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text()
    text = text.replace('journal_path = "../.perphedge/btcdemo.journal.sqlite"', 'journal_path = "j.sqlite"')
    text = text.replace('log_path = "../.perphedge/btcdemo.log.jsonl"', 'log_path = "log.jsonl"')
    text = text.replace("leg_timeout_s = 5 ", "leg_timeout_s = 0 ")
    path = tmp_path / "hedge.toml"
    path.write_text(text)
    return path


def _keep(config: Path, cycles: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PERPHEDGE), "keep", "--config", str(config), "--cycles", str(cycles)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("leg", [Leg.SPOT, Leg.PERP])
def test_killed_after_a_leg_is_submitted_restarts_and_completes_once(tmp_path: Path, leg: Leg) -> None:
    # Arrange: a paper exchange armed to kill the process (os._exit) right after the `leg` order is accepted
    config = write_spec(tmp_path)
    spec = load_spec(config)
    build_paper_venue(spec).inject(Fault(kind=FaultKind.CRASH_AFTER_SUBMIT, leg=leg))

    # Act: the first process dies mid-cycle; the second restarts, reconciles and carries on
    first = _keep(config, 3)
    assert first.returncode == CRASH_EXIT_CODE, first.stderr
    second = _keep(config, 3)
    assert second.returncode == 0, second.stderr

    # Assert: exactly one order per leg at the exchange, the hedge is complete, the journal agrees
    venue = build_paper_venue(spec)
    orders = sorted(venue._s.orders)
    assert orders == ["phbtcdemod1pm0", "phbtcdemod1sm0"]
    journal = Journal.open(spec.keeper.journal_path)
    q = Decimal(journal.get_meta("base_qty"))
    assert venue.fetch_balances("", "").spot_base == q
    assert venue.fetch_perp_position(spec.perp_symbol).signed_qty_base == -q
    assert journal.book() == (q, -q)
    assert sorted(o.client_order_id for o in journal.orders()) == orders
    assert len(journal.fills()) == 2
    assert journal.unfinished_decision() is None
    # funding: each settlement once, equal to what the exchange paid
    paid = venue.fetch_funding_history(spec.perp_symbol, 0)
    assert [r["settle_ts_ms"] for r in journal.funding_rows()] == [p.settle_ts_ms for p in paid]
    recovered = [e for e in journal.events() if e["kind"] in ("reconcile.difference",)]
    assert (
        recovered == []
    )  # the restart repaired the journal from the order look-up, not by adopting a difference
    journal.close()
