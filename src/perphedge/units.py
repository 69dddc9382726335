"""Units and time helpers shared by every layer. Pure: no I/O, no clock.

Conventions used across perphedge:
- Rates are decimal fractions per funding interval (0.0001 = 0.01 %), never percent.
- Timestamps are UTC epoch milliseconds (``*_ts_ms``, ccxt's unit) or tz-aware UTC pandas indexes.
- USDT is treated as USD (1 USDT = 1 USD); every ``*_usd`` amount is really in the quote stablecoin.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, overload

from perphedge.errors import InputError

if TYPE_CHECKING:  # for annotations only: importing numpy here would slow `perphedge --help`
    import numpy as np

MS_PER_SECOND = 1_000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR
HOURS_PER_YEAR = 24 * 365  # the exchanges' convention for annualising funding (Binance FAQ, §8)
DAYS_PER_YEAR = 365


def ts_ms_to_datetime(ts_ms: int) -> datetime:
    """Return the tz-aware UTC datetime of an epoch-millisecond timestamp."""
    return datetime.fromtimestamp(ts_ms / MS_PER_SECOND, tz=UTC)


def datetime_to_ts_ms(moment: datetime) -> int:
    """Return epoch milliseconds of a tz-aware datetime.

    Raises:
        InputError: if ``moment`` is naive (we never guess a timezone).
    """
    if moment.tzinfo is None:
        raise InputError(
            f"timestamp {moment.isoformat()} has no timezone; give it in UTC (e.g. '2024-01-01T00:00Z')"
        )
    return int(round(moment.timestamp() * MS_PER_SECOND))


def parse_utc(text: str) -> datetime:
    """Parse an ISO date or datetime given on the command line as UTC.

    A bare date or a datetime without offset is read as UTC (that is what the CLI documents);
    an explicit offset is honoured and converted to UTC.

    Raises:
        InputError: if the text is not an ISO date/datetime.
    """
    cleaned = text.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError as e:
        raise InputError(f"date {text!r} is not an ISO date such as 2024-01-01 or 2024-01-01T08:00Z") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def require_finite(name: str, value: float) -> float:
    """Return ``value`` if it is a finite number, else raise an InputError naming ``name``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number; it was {value!r}")
    return float(value)


def require_positive(name: str, value: float) -> float:
    """Return ``value`` if it is finite and > 0, else raise an InputError naming ``name``."""
    value = require_finite(name, value)
    if value <= 0:
        raise InputError(f"{name} must be greater than 0; it was {value!r}")
    return value


def require_non_negative(name: str, value: float) -> float:
    """Return ``value`` if it is finite and >= 0, else raise an InputError naming ``name``."""
    value = require_finite(name, value)
    if value < 0:
        raise InputError(f"{name} must not be negative; it was {value!r}")
    return value


def require_fraction(name: str, value: float, *, low: float = 0.0, high: float = 1.0) -> float:
    """Return ``value`` if it lies in [low, high]; the message hints at a percent mistake."""
    value = require_finite(name, value)
    if not low <= value <= high:
        hint = ""
        if high <= 1.0 and low <= value / 100 <= high:
            hint = f" (it looks like a percent: use {value / 100:g} for {value:g} %)"
        raise InputError(f"{name} must be a fraction between {low:g} and {high:g}; it was {value!r}{hint}")
    return value


@overload
def percent_to_fraction(value_percent: float) -> float: ...
@overload
def percent_to_fraction(value_percent: np.ndarray) -> np.ndarray: ...
def percent_to_fraction(value_percent: float | np.ndarray) -> float | np.ndarray:
    """Convert a percent (0.01 meaning 0.01 %) to a fraction (0.0001), elementwise for an array."""
    return value_percent / 100.0
