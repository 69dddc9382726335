"""Maintenance-margin brackets (Binance "leverage brackets", Bybit "risk-limit tiers").

A bracket covers a range of position **notional** ``[floor_usd, cap_usd)`` and sets the
maintenance-margin rate (MMR), the maintenance amount ``cum`` and the maximum leverage allowed for
positions of that size. Maintenance margin = ``notional × MMR − cum``.

The maintenance amount makes the maintenance margin continuous across bracket boundaries:
``cum_n = floor_n × (MMR_n − MMR_{n−1}) + cum_{n−1}``, ``cum_1 = 0``.

Sources (docs/sources.md):
- Binance "Leverage and Margin of USDⓈ-M Futures", https://www.binance.com/en/support/faq/360033162192
  (maintenance amount recurrence; example Level 3 = 250,000 × (1 % − 0.5 %) + 50 = 1,300).
- Binance ``GET /fapi/v1/leverageBracket`` (fields notionalFloor, notionalCap, maintMarginRatio, cum,
  initialLeverage), as returned in ccxt ``fetch_leverage_tiers()[symbol][i]["info"]``.
- Bybit "Margin parameters", https://bybit-tr.com/en-TR/announcement-info/margin-parameters (the same
  recurrence for the maintenance-margin deduction).

Lookup is by **notional**, never by margin (freqtrade passes the stake there, which can select too
low an MMR: exchange-mechanics.md §10.9c). Units: a USDⓈ-M table is in USD(T); a COIN-M table holds
coin notionals and coin maintenance amounts (the ``_usd`` field names then mean "in the margin asset").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from perphedge.errors import DataError, InputError, MarginError
from perphedge.units import require_finite, require_non_negative, require_positive

_CUM_TOLERANCE_RELATIVE = 1e-6
_CUM_TOLERANCE_ABSOLUTE = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginBracket:
    """One bracket: notional range ``[floor_usd, cap_usd)``, MMR (fraction), maintenance amount, max leverage."""

    floor_usd: float
    cap_usd: float
    mmr: float
    maintenance_amount_usd: float
    max_leverage: float

    def __post_init__(self) -> None:
        require_non_negative("bracket floor_usd", self.floor_usd)
        if not (self.cap_usd > self.floor_usd):  # cap may be math.inf
            raise InputError(
                f"bracket cap_usd must be above its floor_usd {self.floor_usd!r}; it was {self.cap_usd!r}"
            )
        if not (math.isfinite(self.mmr) and 0.0 <= self.mmr < 1.0):
            hint = " (it looks like a percent: divide by 100)" if 1.0 <= self.mmr <= 100.0 else ""
            raise InputError(f"bracket mmr must be a fraction in [0, 1); it was {self.mmr!r}{hint}")
        require_finite("bracket maintenance_amount_usd", self.maintenance_amount_usd)
        require_positive("bracket max_leverage", self.max_leverage)


def maintenance_amount_step(
    *, floor_usd: float, mmr: float, previous_mmr: float, previous_amount_usd: float
) -> float:
    """Return ``cum_n = floor_n × (MMR_n − MMR_{n−1}) + cum_{n−1}`` (Binance FAQ 360033162192).

    Example (FAQ): Level 3 = 250,000 × (1 % − 0.5 %) + 50 = 1,300. COIN-M BTCUSD Level 5 =
    50 BTC × (5 % − 2.5 %) + 0.56 = 1.81 BTC (Binance COIN-M liquidation FAQ).
    """
    return floor_usd * (mmr - previous_mmr) + previous_amount_usd


def derive_maintenance_amounts(floors_usd: Sequence[float], mmrs: Sequence[float]) -> tuple[float, ...]:
    """Return the maintenance amount of every bracket from the floors and MMRs, by the recurrence.

    ``cum_1 = 0``; ``cum_n = floor_n × (MMR_n − MMR_{n−1}) + cum_{n−1}`` (Binance FAQ 360033162192,
    Bybit margin parameters). Used when a source (e.g. ccxt's unified Bybit tiers) omits the amount.
    """
    if len(floors_usd) != len(mmrs):
        raise InputError(
            f"floors_usd and mmrs must have the same length; they were {len(floors_usd)} and {len(mmrs)}"
        )
    amounts: list[float] = []
    for i, (floor, mmr) in enumerate(zip(floors_usd, mmrs, strict=True)):
        if i == 0:
            amounts.append(0.0)
        else:
            amounts.append(
                maintenance_amount_step(
                    floor_usd=floor, mmr=mmr, previous_mmr=mmrs[i - 1], previous_amount_usd=amounts[-1]
                )
            )
    return tuple(amounts)


def _number(
    tier: Mapping[str, Any], info: Mapping[str, Any], unified: tuple[str, ...], raw: str
) -> float | None:
    for key in unified:
        value = tier.get(key)
        if value is not None:
            return float(value)
    value = info.get(raw)
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class BracketTable:
    """The brackets of one symbol, ordered by notional, contiguous from 0.

    ``symbol`` is the exchange id (``BTCUSDT``). The last bracket's cap is the largest position the
    exchange allows; ``for_notional`` still answers above it (an open position whose notional grew
    keeps the top bracket's MMR), while ``margin.max_leverage_for_notional`` refuses it.
    """

    symbol: str
    brackets: tuple[MarginBracket, ...]

    def __post_init__(self) -> None:
        if not self.brackets:
            raise InputError(f"bracket table {self.symbol!r} has no brackets; it needs at least one")
        if self.brackets[0].floor_usd != 0.0:
            raise InputError(
                f"bracket table {self.symbol!r} must start at notional 0; "
                f"its first floor was {self.brackets[0].floor_usd!r}"
            )
        for lower, upper in zip(self.brackets, self.brackets[1:], strict=False):
            if upper.floor_usd != lower.cap_usd:
                raise InputError(
                    f"bracket table {self.symbol!r} has a gap or overlap: a bracket ends at "
                    f"{lower.cap_usd!r} but the next starts at {upper.floor_usd!r}"
                )

    @property
    def floors_usd(self) -> tuple[float, ...]:
        """Return the notional floor of every bracket."""
        return tuple(b.floor_usd for b in self.brackets)

    @property
    def max_notional_usd(self) -> float:
        """Return the top bracket's cap: the largest notional the exchange lets a position have."""
        return self.brackets[-1].cap_usd

    def for_notional(self, notional_usd: float) -> MarginBracket:
        """Return the bracket of a position **notional** (the highest bracket with floor ≤ notional).

        Look up by notional = |qty| × mark price, never by margin. Above the top cap the top bracket
        is returned (see the class docstring).
        """
        if not notional_usd >= 0.0:  # also rejects NaN
            require_non_negative("notional_usd", notional_usd)
        for bracket in reversed(self.brackets):  # ≤ 12 brackets: a scan beats building an index
            if bracket.floor_usd <= notional_usd:
                return bracket
        raise AssertionError("unreachable: the first bracket starts at 0")

    @classmethod
    def from_ccxt_tiers(cls, symbol: str, tiers: Sequence[Mapping[str, Any]]) -> BracketTable:
        """Build a table from ccxt ``fetch_leverage_tiers()[symbol]`` (or ``fetch_market_leverage_tiers``).

        Reads the unified fields (``minNotional``/``maxNotional``/``maintenanceMarginRate``/
        ``maxLeverage``; older ccxt: ``notionalFloor``/``notionalCap``/``maintenanceMarginRatio``) and
        falls back to Binance's raw ``info`` (``notionalFloor``, ``notionalCap``, ``maintMarginRatio``,
        ``initialLeverage``). The maintenance amount is Binance's ``info.cum`` when present and is
        checked against the recurrence; otherwise it is derived by the recurrence.

        Raises:
            DataError: a tier lacks a field, or a published ``cum`` disagrees with the recurrence.
        """
        if not tiers:
            raise DataError(f"no leverage tiers for {symbol!r}; the exchange returned an empty list")
        ordered = sorted(
            tiers,
            key=lambda t: (
                _number(t, t.get("info") or {}, ("minNotional", "notionalFloor"), "notionalFloor") or 0.0
            ),
        )
        floors: list[float] = []
        caps: list[float] = []
        mmrs: list[float] = []
        leverages: list[float] = []
        published: list[float | None] = []
        for i, tier in enumerate(ordered):
            info = tier.get("info") or {}
            floor = _number(tier, info, ("minNotional", "notionalFloor"), "notionalFloor")
            cap = _number(tier, info, ("maxNotional", "notionalCap"), "notionalCap")
            mmr = _number(tier, info, ("maintenanceMarginRate", "maintenanceMarginRatio"), "maintMarginRatio")
            leverage = _number(tier, info, ("maxLeverage",), "initialLeverage")
            missing = [
                n
                for n, v in (("floor", floor), ("cap", cap), ("mmr", mmr), ("max leverage", leverage))
                if v is None
            ]
            if missing:
                raise DataError(
                    f"leverage tier {i + 1} of {symbol!r} lacks {', '.join(missing)}; it was {dict(tier)!r}; "
                    "pass the tiers exactly as ccxt returns them"
                )
            floors.append(floor)  # type: ignore[arg-type]
            caps.append(cap)  # type: ignore[arg-type]
            mmrs.append(mmr)  # type: ignore[arg-type]
            leverages.append(leverage)  # type: ignore[arg-type]
            cum = info.get("cum")
            published.append(None if cum is None else float(cum))
        derived = derive_maintenance_amounts(floors, mmrs)
        amounts: list[float] = []
        for i, (pub, der) in enumerate(zip(published, derived, strict=True)):
            if pub is None:
                amounts.append(der)
                continue
            if abs(pub - der) > max(_CUM_TOLERANCE_ABSOLUTE, _CUM_TOLERANCE_RELATIVE * abs(pub)):
                raise DataError(
                    f"leverage tier {i + 1} of {symbol!r} publishes maintenance amount (cum) {pub!r} but the "
                    f"recurrence floor × (MMR_n − MMR_n−1) + cum_n−1 gives {der!r}; the tiers are inconsistent, "
                    "re-fetch them"
                )
            amounts.append(pub)
        brackets = tuple(
            MarginBracket(floor_usd=f, cap_usd=c, mmr=m, maintenance_amount_usd=a, max_leverage=lev)
            for f, c, m, a, lev in zip(floors, caps, mmrs, amounts, leverages, strict=True)
        )
        return cls(symbol=symbol, brackets=brackets)

    @classmethod
    def from_rows(cls, symbol: str, rows: Sequence[Sequence[float]]) -> BracketTable:
        """Build a table from compact rows ``[floor, cap, mmr, cum, max_leverage]`` (the bundled format)."""
        return cls(
            symbol=symbol,
            brackets=tuple(
                MarginBracket(
                    floor_usd=float(r[0]),
                    cap_usd=float(r[1]),
                    mmr=float(r[2]),
                    maintenance_amount_usd=float(r[3]),
                    max_leverage=float(r[4]),
                )
                for r in rows
            ),
        )

    @classmethod
    def single(
        cls, symbol: str, mmr: float, maintenance_amount_usd: float = 0.0, max_leverage: float = 125
    ) -> BracketTable:
        """Return a one-bracket table (notional 0 … ∞) for a user who knows their MMR and maintenance amount.

        This is what ``--mmr`` / ``--maintenance-amount`` build; it never changes bracket with size.
        """
        bracket = MarginBracket(
            floor_usd=0.0,
            cap_usd=math.inf,
            mmr=mmr,
            maintenance_amount_usd=maintenance_amount_usd,
            max_leverage=max_leverage,
        )
        return cls(symbol=symbol, brackets=(bracket,))


def require_notional_allowed(table: BracketTable, notional_usd: float) -> None:
    """Raise MarginError if a new position of ``notional_usd`` exceeds the table's top cap."""
    if notional_usd > table.max_notional_usd:
        raise MarginError(
            f"notional {notional_usd:,.2f} exceeds the largest position {table.symbol} allows "
            f"({table.max_notional_usd:,.2f}); reduce the quantity or hedge ratio"
        )
