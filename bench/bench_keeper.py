"""Benchmark the hedge keeper on the paper exchange replaying bundled Binance BTCUSDT 8-hour history.

Prints: the `perphedge keep --config examples/hedge.toml --cycles 50` wall time (fresh process),
cycles per second of a long in-process replay (the journal and the paper state grow with it), the
kill-and-restart round trip, and the journal size. Figures go to docs/benchmarks.md ("Hedge keeper").
Run: ``.venv/bin/python bench/bench_keeper.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.keeper.kit import close, make_keeper, make_spec  # noqa: E402
from tests.keeper.test_restart_subprocess import write_spec  # noqa: E402

from perphedge.keeper.spec import load_spec  # noqa: E402
from perphedge.keeper.wiring import build_paper_venue  # noqa: E402
from perphedge.venues.paper import Fault, FaultKind  # noqa: E402
from perphedge.venues.port import Leg  # noqa: E402

PERPHEDGE = Path(sys.executable).parent / "perphedge"


def _run(args: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run([str(PERPHEDGE), *args], capture_output=True, text=True)
    return time.perf_counter() - start, proc.returncode


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = write_spec(Path(tmp))
        seconds, rc = _run(["keep", "--config", str(config), "--cycles", "50"])
        print(f"perphedge keep --cycles 50 (fresh process, paper replay): {seconds:.2f} s wall (exit {rc})")
        seconds, rc = _run(["status", "--config", str(config), "--json"])
        print(f"perphedge status --json (fresh process): {seconds:.2f} s wall (exit {rc})")

    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(Path(tmp), paper={"start": "2022-06-01"})
        keeper, venue = make_keeper(spec)
        for cycles in (100, 1000, 3000):
            done = keeper.cycle_no
            start = time.perf_counter()
            keeper.run(cycles - done)
            elapsed = time.perf_counter() - start
            print(
                f"in-process replay, cycles {done + 1}-{keeper.cycle_no}: {elapsed:.2f} s "
                f"({1000 * elapsed / (keeper.cycle_no - done):.2f} ms per cycle)"
            )
        journal_kb = spec.keeper.journal_path.stat().st_size / 1024
        state_kb = venue.state_path.stat().st_size / 1024
        print(f"after {keeper.cycle_no} cycles: journal {journal_kb:.0f} KiB, paper state {state_kb:.0f} KiB")
        close(keeper)

    with tempfile.TemporaryDirectory() as tmp:
        config = write_spec(Path(tmp))
        build_paper_venue(load_spec(config)).inject(Fault(kind=FaultKind.CRASH_AFTER_SUBMIT, leg=Leg.SPOT))
        crash_s, crash_rc = _run(["keep", "--config", str(config), "--cycles", "3"])
        restart_s, restart_rc = _run(["keep", "--config", str(config), "--cycles", "3"])
        print(
            f"kill after the first leg: {crash_s:.2f} s (exit {crash_rc}); restart + reconcile + complete: "
            f"{restart_s:.2f} s (exit {restart_rc})"
        )


if __name__ == "__main__":
    main()
