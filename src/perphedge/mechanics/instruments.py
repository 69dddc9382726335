"""Instruments: a spot market and a perpetual contract, linear (USDⓈ-M) or inverse (COIN-M).

- Linear perpetual: quantity in coins, PnL, margin and funding in the quote (USDT, treated as USD).
- Inverse perpetual: quantity in contracts of a fixed USD size (Binance COIN-M: BTC 100 USD, most other
  coins 10 USD); PnL, margin and funding are paid in the coin.

Source: Binance COIN-M contract specifications,
https://www.binance.com/en/support/faq/a4470430e3164c13932be8967961aede ("BTC contracts are 100 USD,
altcoin contracts 10 USD"); dev.binance.vision thread 11463 (1,000 USD of BTCUSD = 10 contracts,
1,000 USD of ETHUSD = 100 contracts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from perphedge.errors import InputError, UnknownSymbolError
from perphedge.units import require_positive

QUOTE_ASSETS: tuple[str, ...] = ("USDT", "USDC", "BUSD", "FDUSD", "USD")
"""Quote/settle assets recognised when splitting an exchange id such as ``BTCUSDT``; longest first matters."""

BTC_CONTRACT_SIZE_USD = 100.0
ALTCOIN_CONTRACT_SIZE_USD = 10.0


class ContractKind(StrEnum):
    """How a perpetual is margined and settled."""

    LINEAR = "linear"  # USDⓈ-M: qty in coins, PnL in USD(T)
    INVERSE = "inverse"  # COIN-M: qty in contracts of contract_size_usd, PnL in coins


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotMarket:
    """A spot market: coins of ``base`` priced in ``quote`` (USDT treated as USD)."""

    symbol: str
    base: str
    quote: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PerpContract:
    """A perpetual contract. ``contract_size_usd`` is set for inverse contracts only (USD per contract)."""

    symbol: str
    base: str
    kind: ContractKind
    contract_size_usd: float | None = None

    def __post_init__(self) -> None:
        if self.kind is ContractKind.INVERSE:
            if self.contract_size_usd is None:
                raise InputError(
                    f"inverse contract {self.symbol!r} needs contract_size_usd (Binance: 100 for BTC, 10 otherwise)"
                )
            require_positive("contract_size_usd", self.contract_size_usd)
        elif self.contract_size_usd is not None:
            raise InputError(
                f"linear contract {self.symbol!r} has no USD contract size; it was {self.contract_size_usd!r}; "
                "leave it unset (linear quantities are in coins)"
            )

    def notional_coin(self, contracts: float, price: float) -> float:
        """Return an inverse position's notional in coins: ``contracts × contract_size_usd / price``."""
        if self.contract_size_usd is None:
            raise InputError(f"{self.symbol!r} is linear; its notional is qty × price in USD, not in coins")
        return contracts * self.contract_size_usd / price


def default_contract_size_usd(base: str) -> float:
    """Return Binance COIN-M's usual contract size: 100 USD for BTC, 10 USD for other coins."""
    return BTC_CONTRACT_SIZE_USD if base.upper() == "BTC" else ALTCOIN_CONTRACT_SIZE_USD


def split_exchange_id(symbol: str) -> tuple[str, str]:
    """Return ``(base, quote)`` of an exchange id such as ``BTCUSDT`` or ``ETHUSD_PERP``.

    Raises:
        UnknownSymbolError: if the id does not end in a known quote asset.
    """
    core = symbol.upper().split("_", 1)[0]
    for quote in QUOTE_ASSETS:
        if core.endswith(quote) and len(core) > len(quote):
            return core[: -len(quote)], quote
    raise UnknownSymbolError(
        symbol, hint=f"an exchange id is the coin followed by one of {', '.join(QUOTE_ASSETS)} (e.g. BTCUSDT)"
    )


_CCXT_SYMBOL = re.compile(r"([A-Z0-9]+)/([A-Z0-9]+)(?::([A-Z0-9]+)(?:-(\d{6}))?)?")


def binance_id_from_ccxt(symbol: str) -> str:
    """Map a ccxt symbol to Binance's id: ``BTC/USDT:USDT`` → ``BTCUSDT``; dated ``…-241227`` → ``BTCUSDT_241227``.

    An id that is already exchange-style (``BTCUSDT``) is returned upper-cased.
    """
    text = symbol.strip().upper()
    match = _CCXT_SYMBOL.fullmatch(text)
    if match is None:
        return text
    base, quote, _settle, expiry = match.groups()
    return f"{base}{quote}" + (f"_{expiry}" if expiry else "")
