"""The keeper's clock: the one place that knows what "now" is and how to wait for the next cycle.

``WallClock`` is real time (live or paper on live prices). ``ReplayClock`` is the paper venue's
replay cursor: "now" is the close of the bar being replayed and waiting moves the replay on, at
any speed (``speed`` = replayed time per wall-clock time; ``None`` = as fast as possible).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from perphedge.errors import InputError
from perphedge.units import MS_PER_SECOND
from perphedge.venues.paper import PaperVenue


class Clock(Protocol):
    def now_ms(self) -> int:
        """Return the current time, UTC epoch milliseconds."""
        ...

    def wait_next_cycle(self) -> None:
        """Block until the next keeper cycle is due."""
        ...

    def is_exhausted(self) -> bool:
        """Return True when no further cycle can happen (end of a replay)."""
        ...


class WallClock:
    """Real time; a cycle every ``cycle_seconds``."""

    def __init__(
        self,
        cycle_seconds: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        time_s: Callable[[], float] = time.time,
    ) -> None:
        if cycle_seconds <= 0:
            raise InputError(f"cycle_seconds must be > 0; it was {cycle_seconds}")
        self.cycle_seconds = cycle_seconds
        self._sleep = sleep
        self._time_s = time_s

    def now_ms(self) -> int:
        return int(self._time_s() * MS_PER_SECOND)

    def wait_next_cycle(self) -> None:
        self._sleep(self.cycle_seconds)

    def is_exhausted(self) -> bool:
        return False


class ReplayClock:
    """The paper venue's replay time; each cycle moves it ``bars_per_cycle`` bars on."""

    def __init__(
        self,
        venue: PaperVenue,
        *,
        bars_per_cycle: int = 1,
        speed: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if bars_per_cycle < 1:
            raise InputError(f"bars_per_cycle must be >= 1; it was {bars_per_cycle}")
        if speed is not None and speed <= 0:
            raise InputError(f"speed must be > 0 (replayed seconds per wall second) or 'max'; it was {speed}")
        self.venue = venue
        self.bars_per_cycle = bars_per_cycle
        self.speed = speed
        self._sleep = sleep

    def now_ms(self) -> int:
        return self.venue.now_ms()

    def wait_next_cycle(self) -> None:
        self.venue.advance(self.bars_per_cycle)
        if self.speed is not None:
            replayed_s = self.bars_per_cycle * self.venue.feed.timeframe_ms / MS_PER_SECOND
            self._sleep(replayed_s / self.speed)

    def is_exhausted(self) -> bool:
        return self.venue.is_finished()


class LivePaperClock:
    """Wall time for the paper venue on live public prices: each cycle waits, then takes a new price poll."""

    def __init__(
        self,
        venue: PaperVenue,
        cycle_seconds: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        time_s: Callable[[], float] = time.time,
    ) -> None:
        self._wall = WallClock(cycle_seconds, sleep=sleep, time_s=time_s)
        self.venue = venue

    def now_ms(self) -> int:
        return self._wall.now_ms()

    def wait_next_cycle(self) -> None:
        self._wall.wait_next_cycle()
        self.venue.advance(1)

    def is_exhausted(self) -> bool:
        return False
