"""Risk controls of the keeper: stale data, kill switch conditions, margin and liquidation distance.

Pure functions over a venue snapshot; the loop acts on their answers. Definitions:

- margin ratio = maintenance margin / margin balance (Binance; 1.0 = liquidation), margin balance =
  futures wallet + unrealised PnL (``mechanics.margin.margin_ratio``);
- liquidation distance = (liquidation price − mark) / mark (``mechanics.liquidation.liquidation_distance``);
  for a short it is positive: the price may rise that much before liquidation;
- the top-up that restores a target margin ratio: ``MM / target − margin balance`` (solving the
  ratio's definition for the wallet);
- the top-up that puts the liquidation price at a target distance: the wallet balance from
  ``mechanics.liquidation.wallet_balance_for_liquidation_price_linear`` minus the wallet now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal

from perphedge.keeper.reconcile import Snapshot
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.liquidation import (
    liquidation_distance,
    liquidation_price_linear,
    wallet_balance_for_liquidation_price_linear,
)
from perphedge.mechanics.margin import maintenance_margin_usd, margin_ratio
from perphedge.units import MS_PER_SECOND
from perphedge.venues.port import PerpPosition, to_decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskReading:
    """The risk figures of a snapshot (None where there is no perp position)."""

    margin_ratio: float | None
    liquidation_distance: float | None
    equity_usd: Decimal
    price_age_s: float


def read_risk(snapshot: Snapshot, now_ms: int) -> RiskReading:
    """Return margin ratio, liquidation distance, equity and price age of a snapshot."""
    position = snapshot.position
    ratio = distance = None
    if position is not None and position.maintenance_margin_usd is not None:
        balance = snapshot.balances.futures_wallet_usd + position.unrealized_pnl_usd
        ratio = margin_ratio(float(position.maintenance_margin_usd), float(balance))
    if position is not None and position.liquidation_price_usd is not None:
        distance = liquidation_distance(float(position.liquidation_price_usd), float(position.mark_price_usd))
    return RiskReading(
        margin_ratio=ratio,
        liquidation_distance=distance,
        equity_usd=snapshot.equity_usd,
        price_age_s=(now_ms - snapshot.quote.ts_ms) / MS_PER_SECOND,
    )


def account_settings_mismatch(
    position: PerpPosition | None, *, leverage: float, margin_mode: str
) -> str | None:
    """Return a one-line reason when the venue's position runs at another leverage or margin mode than the spec.

    The keeper does not change these on the exchange (no ``set_leverage`` / ``set_margin_mode``
    calls); it sizes initial margin with ``hedge.leverage`` and moves top-ups into the cross wallet,
    which do not reach an isolated position. Fields the venue does not report (None; Binance's
    positionRisk v3 gives no leverage, Bybit's position list no margin mode) cannot be checked.
    """
    if position is None:
        return None
    wrong = []
    if position.margin_mode is not None and position.margin_mode != margin_mode:
        wrong.append(f"margin mode {position.margin_mode} (hedge.margin_mode is {margin_mode})")
    if position.leverage is not None and not math.isclose(float(position.leverage), leverage, rel_tol=1e-9):
        wrong.append(f"leverage {float(position.leverage):g}x (hedge.leverage is {leverage:g})")
    if not wrong:
        return None
    return (
        f"the exchange runs {position.symbol} at "
        + " and ".join(wrong)
        + "; set it on the exchange to match "
        "the spec (or change the spec), then run perphedge keep --clear-halt"
    )


def stale_reason(reading: RiskReading, max_price_age_s: float) -> str | None:
    """Return a one-line reason when prices are too old to act on."""
    if reading.price_age_s > max_price_age_s:
        return (
            f"prices are {reading.price_age_s:.0f} s old, more than max_price_age_s {max_price_age_s:g} s: "
            "not acting on stale data"
        )
    return None


def max_loss_reason(
    equity_usd: Decimal, start_equity_usd: Decimal, net_deposits_usd: Decimal, max_loss_usd: float
) -> str | None:
    """Return the kill-switch reason when equity fell more than ``max_loss_usd`` since the start."""
    if not math.isfinite(max_loss_usd):
        return None
    loss = start_equity_usd + net_deposits_usd - equity_usd
    if loss > to_decimal(max_loss_usd):
        return (
            f"loss since start is {loss:.2f} USD, above max_loss_usd {max_loss_usd:g}: kill switch (the loss "
            "counts from the first start: raise risk.max_loss_usd before --clear-halt, or it fires again)"
        )
    return None


def is_distance_breached(distance: float | None, perp_qty_sign: int, min_distance: float) -> bool:
    """True when the liquidation price is closer than ``min_distance`` on the adverse side."""
    if distance is None:
        return False
    adverse = distance if perp_qty_sign < 0 else -distance  # a short is liquidated above, a long below
    return adverse < min_distance


def top_up_for_margin_ratio_usd(snapshot: Snapshot, target_margin_ratio: float) -> Decimal:
    """Return the USD to add to the futures wallet so that MM / margin balance = target (0 if already below)."""
    position = snapshot.position
    if position is None or position.maintenance_margin_usd is None:
        return Decimal(0)
    balance = snapshot.balances.futures_wallet_usd + position.unrealized_pnl_usd
    needed = position.maintenance_margin_usd / to_decimal(target_margin_ratio) - balance
    return max(needed, Decimal(0)).quantize(Decimal("0.01"), rounding=ROUND_UP)


def top_up_for_liquidation_distance_usd(
    snapshot: Snapshot, table: BracketTable, target_distance: float
) -> Decimal:
    """Return the USD to add so the liquidation price sits ``target_distance`` from the mark (0 if it does)."""
    position = snapshot.position
    if position is None or position.signed_qty_base == 0:
        return Decimal(0)
    side = 1 if position.signed_qty_base > 0 else -1
    mark = float(position.mark_price_usd)
    target_price = mark * (1 - target_distance) if side > 0 else mark * (1 + target_distance)
    wallet_needed = wallet_balance_for_liquidation_price_linear(
        side=side,
        qty_base=float(abs(position.signed_qty_base)),
        entry_price=float(position.entry_price_usd),
        liquidation_price=target_price,
        table=table,
    )
    needed = to_decimal(wallet_needed) - snapshot.balances.futures_wallet_usd
    return max(needed, Decimal(0)).quantize(Decimal("0.01"), rounding=ROUND_UP)


def deleverage_qty_base(
    snapshot: Snapshot, table: BracketTable | None, *, target_distance: float, target_margin_ratio: float
) -> Decimal:
    """Return how many coins to buy back on the perp (and sell on spot) to restore both targets.

    Closing ``x`` of a position at the mark realises ``x × (mark − entry) × side`` into the wallet (the
    margin balance is unchanged apart from fees), and shrinks the maintenance margin and moves the
    liquidation price away. The smallest ``x`` restoring the liquidation distance (Binance formula,
    ``mechanics.liquidation.liquidation_price_linear``) and the margin ratio is found by bisection.
    Without a bracket table the margin ratio alone is used: MM scales with size in a bracket, so
    ``x = q × (1 − target / current)``.
    """
    position = snapshot.position
    if position is None or position.signed_qty_base == 0:
        return Decimal(0)
    q = float(abs(position.signed_qty_base))
    side = 1 if position.signed_qty_base > 0 else -1
    mark, entry = float(position.mark_price_usd), float(position.entry_price_usd)
    wallet = float(snapshot.balances.futures_wallet_usd)
    balance = wallet + float(position.unrealized_pnl_usd)
    if table is None:
        if position.maintenance_margin_usd is None or balance <= 0:
            return position.signed_qty_base.copy_abs()
        current = float(position.maintenance_margin_usd) / balance
        fraction = max(0.0, 1.0 - target_margin_ratio / current) if current > 0 else 0.0
        return to_decimal(q * fraction)

    def safe(remaining: float) -> bool:
        if remaining <= 0:
            return True
        new_wallet = wallet + (q - remaining) * (mark - entry) * side
        new_balance = new_wallet + remaining * (mark - entry) * side
        if new_balance <= 0:
            return False
        ratio = maintenance_margin_usd(remaining * mark, table) / new_balance
        lp = liquidation_price_linear(
            side=side, qty_base=remaining, entry_price=entry, wallet_balance_usd=new_wallet, table=table
        )
        dist = liquidation_distance(lp, mark)
        dist_ok = dist is None or (dist if side < 0 else -dist) >= target_distance
        return dist_ok and ratio <= target_margin_ratio

    if safe(q):
        return Decimal(0)
    low, high = 0.0, q  # the largest safe remaining size lies in [low, high): 0 is safe, q is not
    for _ in range(60):
        mid = (low + high) / 2
        if safe(mid):
            low = mid
        else:
            high = mid
    return to_decimal(q - low)
