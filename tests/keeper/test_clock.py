"""Replay at any speed: each cycle moves the paper exchange one bar on and sleeps replayed time / speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from perphedge.errors import InputError
from perphedge.keeper.clock import ReplayClock, WallClock
from perphedge.keeper.wiring import build_paper_venue
from tests.keeper.kit import make_spec

EIGHT_HOURS_MS = 8 * 3_600_000


@pytest.mark.parametrize(("speed", "expected_sleep_s"), [(None, []), (3600.0, [8.0]), (28_800.0, [1.0])])
def test_replay_speed_sleeps_replayed_time_over_speed(tmp_path: Path, speed, expected_sleep_s) -> None:
    venue = build_paper_venue(make_spec(tmp_path))
    slept: list[float] = []
    clock = ReplayClock(venue, speed=speed, sleep=slept.append)
    before = clock.now_ms()
    clock.wait_next_cycle()
    assert clock.now_ms() - before == EIGHT_HOURS_MS  # one 8 h bar on
    assert slept == expected_sleep_s  # 'max' does not sleep; 3600 = one replayed hour per wall second


def test_bad_speed_and_wall_clock_cycle(tmp_path: Path) -> None:
    venue = build_paper_venue(make_spec(tmp_path))
    with pytest.raises(InputError, match="speed must be > 0"):
        ReplayClock(venue, speed=0)
    slept: list[float] = []
    wall = WallClock(60.0, sleep=slept.append, time_s=lambda: 1_700_000_000.5)
    wall.wait_next_cycle()
    assert slept == [60.0] and wall.now_ms() == 1_700_000_000_500 and not wall.is_exhausted()
