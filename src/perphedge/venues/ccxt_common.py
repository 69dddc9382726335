"""The ccxt edge shared by history downloads, the scanner and the keeper.

Only ``perphedge.venues`` imports ccxt. This module creates exchange objects, checks their
capabilities, resolves symbols, and translates ccxt's exceptions into perphedge's hierarchy in one
place (``translate_ccxt_errors``), so callers act on *our* classes:

    ccxt.NetworkError (timeouts, maintenance, DDoS protection, rate limit)  → VenueUnavailable (retryable)
    ccxt.InsufficientFunds                                                  → InsufficientFunds
    ccxt.InvalidOrder (size, precision, reduce-only, …)                     → OrderRejected
    ccxt.BadSymbol                                                          → UnknownSymbolError
    ccxt.AuthenticationError / PermissionDenied / AccountSuspended          → VenueError (check API keys)
    ccxt.NotSupported                                                       → VenueError
    any other ccxt.BaseError                                                → VenueError

Reads may be retried with backoff (``call_with_retries``); order placement must never be
blind-retried — the keeper looks the order up by its client order id instead.
API keys are passed in by the caller (the CLI reads them from the environment); they are never
logged and never part of an error message.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import ccxt

from perphedge.errors import (
    ConfigError,
    InsufficientFunds,
    OrderRejected,
    UnknownSymbolError,
    VenueError,
    VenueUnavailable,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """API credentials for one exchange. ``repr`` never shows the secrets."""

    api_key: str
    secret: str
    password: str | None = None

    def __repr__(self) -> str:
        return "Credentials(api_key='***', secret='***')"

    def to_ccxt(self) -> dict[str, str]:
        """Return the ccxt constructor fields."""
        fields = {"apiKey": self.api_key, "secret": self.secret}
        if self.password:
            fields["password"] = self.password
        return fields


def supported_exchanges() -> list[str]:
    """Return the exchange ids ccxt supports."""
    return list(ccxt.exchanges)


def create_exchange(
    exchange_id: str,
    *,
    credentials: Credentials | None = None,
    sandbox: bool = False,
    options: Mapping[str, Any] | None = None,
    async_: bool = False,
    timeout_ms: int = 20_000,
) -> Any:
    """Return a ccxt exchange object with rate limiting on.

    Raises:
        ConfigError: for an exchange id ccxt does not know (the message lists close matches).
    """
    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown exchange {exchange_id!r}{hint}", key_path="exchange")
    if async_:
        import ccxt.async_support as ccxt_async

        cls = getattr(ccxt_async, exchange_id)
    else:
        cls = getattr(ccxt, exchange_id)
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms}
    if credentials is not None:
        config.update(credentials.to_ccxt())
    if options:
        config["options"] = dict(options)
    exchange = cls(config)
    if sandbox:
        exchange.set_sandbox_mode(True)
    return exchange


def require_capabilities(exchange: Any, methods: list[str]) -> None:
    """Raise VenueError naming every unified method in ``methods`` the exchange lacks.

    ``methods`` are ccxt ``has`` keys such as ``"fetchFundingRateHistory"``; checked at start so a
    run refuses clearly instead of failing halfway.
    """
    missing = [m for m in methods if not exchange.has.get(m)]
    if missing:
        raise VenueError(
            f"does not support {', '.join(missing)} through ccxt; choose another exchange",
            exchange=exchange.id,
        )


def resolve_market(exchange: Any, symbol: str) -> dict[str, Any]:
    """Return the loaded ccxt market for a unified symbol (``BTC/USDT:USDT``) or an exchange id (``BTCUSDT``).

    Raises:
        UnknownSymbolError: with close matches among the exchange's symbols.
    """
    markets = exchange.markets or {}
    if symbol in markets:
        return markets[symbol]
    by_id = exchange.markets_by_id or {}
    if symbol in by_id:
        candidates = by_id[symbol]
        # prefer the perpetual when an id is shared by spot and swap markets
        swaps = [m for m in candidates if m.get("swap")]
        return (swaps or candidates)[0]
    close = difflib.get_close_matches(symbol, list(markets), n=5)
    raise UnknownSymbolError(
        symbol,
        hint=(f"close matches on {exchange.id}: {', '.join(close)}" if close else f"not listed on {exchange.id}")
        + "; perpetuals use ccxt's unified form such as BTC/USDT:USDT",
    )


def spot_symbol_for(perp_market: Mapping[str, Any]) -> str:
    """Return the unified spot symbol matching a perpetual market (``BTC/USDT:USDT`` → ``BTC/USDT``)."""
    return f"{perp_market['base']}/{perp_market['quote']}"


@contextmanager
def translate_ccxt_errors(exchange_id: str, action: str) -> Iterator[None]:
    """Translate ccxt exceptions raised inside the block into perphedge errors (see module docstring)."""
    try:
        yield
    except ccxt.InsufficientFunds as e:
        raise InsufficientFunds(f"{action}: insufficient funds ({_short(e)})", exchange=exchange_id) from e
    except ccxt.InvalidOrder as e:
        raise OrderRejected(f"{action}: order rejected ({_short(e)})", exchange=exchange_id) from e
    except ccxt.BadSymbol as e:
        raise UnknownSymbolError(f"{exchange_id}: {action}", hint=_short(e)) from e
    except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended) as e:
        raise VenueError(
            f"{action}: authentication or permission refused ({_short(e)}); check the API key "
            "environment variables and the key's permissions",
            exchange=exchange_id,
        ) from e
    except ccxt.NotSupported as e:
        raise VenueError(f"{action}: not supported ({_short(e)})", exchange=exchange_id) from e
    except ccxt.NetworkError as e:  # RequestTimeout, ExchangeNotAvailable, DDoSProtection, RateLimitExceeded, …
        raise VenueUnavailable(f"{action}: exchange unreachable or busy ({type(e).__name__}: {_short(e)})",
                               exchange=exchange_id) from e
    except ccxt.BaseError as e:
        raise VenueError(f"{action}: {type(e).__name__}: {_short(e)}", exchange=exchange_id) from e


def _short(error: Exception, limit: int = 300) -> str:
    text = str(error).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_with_retries(
    fn: Callable[[], T],
    *,
    exchange_id: str,
    action: str,
    attempts: int = 4,
    base_delay_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call a READ ``fn`` with ccxt errors translated; retry VenueUnavailable with exponential backoff.

    Permanent errors (anything but VenueUnavailable) are raised at once. Never use this for order
    placement: a timed-out order may have been filled.
    """
    for attempt in range(1, attempts + 1):
        try:
            with translate_ccxt_errors(exchange_id, action):
                return fn()
        except VenueUnavailable:
            if attempt == attempts:
                raise
            sleep(base_delay_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    exchange_id: str,
    action: str,
    attempts: int = 4,
    base_delay_s: float = 1.0,
) -> T:
    """Async twin of :func:`call_with_retries` for ``ccxt.async_support`` exchanges."""
    for attempt in range(1, attempts + 1):
        try:
            with translate_ccxt_errors(exchange_id, action):
                return await fn()
        except VenueUnavailable:
            if attempt == attempts:
                raise
            await asyncio.sleep(base_delay_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover
