"""The one exception hierarchy of perphedge.

    PerphedgeError
    ├── InputError            bad input from the user; never retried (CLI exit code 2)
    │   ├── DataError         market data that fails validation (unsorted, gaps, NaN, percent-vs-fraction…)
    │   ├── ConfigError       a hedge spec / TOML file that is incomplete or out of range
    │   └── UnknownSymbolError  a symbol we have no data, market or bracket table for
    ├── VenueError            the exchange said no or could not be reached (CLI exit code 3)
    │   ├── VenueUnavailable  retryable: network error, timeout, maintenance, rate limit
    │   ├── OrderRejected     not retryable: the exchange refused the order
    │   └── InsufficientFunds not retryable: not enough balance or margin
    ├── MarginError           a position cannot be opened or kept with the given margin (exit code 4)
    └── KeeperHalted          the keeper stopped on purpose (kill switch, imbalance it could not fix) (exit 5)

Every message says what is wrong, the value that was seen ("was", not "got") and how to fix it.
Errors carry their data as attributes so callers can act on them without parsing text.
"""

from __future__ import annotations


class PerphedgeError(Exception):
    """Base class of every error perphedge raises on purpose."""

    exit_code: int = 1


class InputError(PerphedgeError, ValueError):
    """Input that cannot be used as given; the message says how to fix it."""

    exit_code = 2


class DataError(InputError):
    """Market data that fails validation.

    ``where`` names the file, column or timestamp at fault, when known.
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message if where is None else f"{where}: {message}")
        self.where = where


class ConfigError(InputError):
    """A configuration (hedge spec, TOML) that is incomplete, unknown or out of range.

    ``key_path`` is the dotted path of the offending key, e.g. ``"risk.max_loss_usd"``.
    """

    def __init__(self, message: str, *, key_path: str | None = None) -> None:
        super().__init__(message if key_path is None else f"{key_path}: {message}")
        self.key_path = key_path


class UnknownSymbolError(InputError, KeyError):
    """A symbol we have no data, market or bracket table for."""

    def __init__(self, symbol: str, *, known: list[str] | None = None, hint: str | None = None) -> None:
        msg = f"unknown symbol {symbol!r}"
        if known:
            msg += f"; known symbols are {', '.join(sorted(known))}"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)
        self.symbol = symbol
        self.known = known or []

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0])


class VenueError(PerphedgeError):
    """The exchange refused a request or could not be reached."""

    exit_code = 3

    def __init__(self, message: str, *, exchange: str | None = None) -> None:
        super().__init__(message if exchange is None else f"{exchange}: {message}")
        self.exchange = exchange


class VenueUnavailable(VenueError):
    """Retryable: network error, timeout, exchange maintenance or rate limit."""


class OrderRejected(VenueError):
    """Not retryable: the exchange refused the order (size, precision, reduce-only, …)."""


class InsufficientFunds(VenueError):
    """Not retryable: not enough balance or margin for the request."""


class MarginError(PerphedgeError):
    """A position that cannot be opened or kept with the margin given."""

    exit_code = 4


class KeeperHalted(PerphedgeError):
    """The keeper stopped on purpose; ``reason`` is the one-line explanation."""

    exit_code = 5

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
