"""Builders for keeper tests: a spec from examples/hedge.toml with overrides, a paper venue and a keeper."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from perphedge.keeper.clock import ReplayClock
from perphedge.keeper.journal import Journal
from perphedge.keeper.log import KeeperLog
from perphedge.keeper.loop import Keeper
from perphedge.keeper.spec import HedgeSpec, parse_spec
from perphedge.keeper.wiring import build_keeper, build_paper_venue
from perphedge.venues.paper import PaperVenue

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hedge.toml"


def example_raw() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def make_spec(tmp_path: Path, **sections: dict[str, Any]) -> HedgeSpec:
    raw = copy.deepcopy(example_raw())
    raw["keeper"] = {"journal_path": str(tmp_path / "j.sqlite"), "log_path": str(tmp_path / "log.jsonl")}
    raw["risk"]["leg_timeout_s"] = 0
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_spec(raw, base_dir=tmp_path)


def make_keeper(spec: HedgeSpec, venue: PaperVenue | None = None) -> tuple[Keeper, PaperVenue]:
    venue = venue or build_paper_venue(spec)
    keeper = build_keeper(
        spec,
        venue=venue,
        clock=ReplayClock(venue),
        journal=Journal.open(spec.keeper.journal_path),
        log=KeeperLog(spec.keeper.log_path),
        sleep=lambda s: None,
    )
    return keeper, venue


def close(keeper: Keeper) -> None:
    keeper.journal.close()
    keeper.log.close()
