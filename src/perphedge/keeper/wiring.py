"""Composition root of the keeper: build the paper venue, the fill model, the strategy and the Keeper from a spec.

The CLI calls these; tests call them too, so what is tested is what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from perphedge.engine import fills
from perphedge.errors import ConfigError
from perphedge.keeper.clock import Clock, LivePaperClock, ReplayClock
from perphedge.keeper.journal import Journal
from perphedge.keeper.log import KeeperLog
from perphedge.keeper.loop import Keeper
from perphedge.keeper.spec import HedgeSpec
from perphedge.mechanics.brackets import BracketTable
from perphedge.strategies.registry import build_strategy
from perphedge.units import parse_utc, ts_ms_to_datetime
from perphedge.venues.paper import PaperAccount, PaperVenue, ReplayFeed
from perphedge.venues.port import Leg, MarketRules, OrderSide, TradingVenue, to_decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestFillModel:
    """The backtest's fill model (``engine.fills.fill_price``) in Decimal for the paper venue.

    fill = reference × (1 ± slippage_bps / 10 000) against the taker; fee = |qty| × fill × fee rate.
    """

    fee_spot: float
    fee_perp: float
    slippage_bps: float

    def fill_price_usd(self, *, leg: Leg, side: OrderSide, reference_price_usd: Decimal) -> Decimal:
        signed = 1.0 if side is OrderSide.BUY else -1.0
        price = fills.fill_price(float(reference_price_usd), signed, self.slippage_bps)
        return to_decimal(price).quantize(Decimal("0.00000001"))

    def fee_usd(self, *, leg: Leg, notional_usd: Decimal) -> Decimal:
        rate = self.fee_spot if leg is Leg.SPOT else self.fee_perp
        return (notional_usd * to_decimal(rate)).quantize(Decimal("0.00000001"))


def paper_state_path(spec: HedgeSpec) -> Path:
    return spec.paper.state_path or spec.keeper.journal_path.with_suffix(".paper.json")


def live_bracket_table(spec: HedgeSpec) -> BracketTable | None:
    """Return the maintenance-margin brackets a live keeper sizes its fixes with, when we have them.

    Binance USDⓈ-M: the newest bundled snapshot of the perp (``perphedge.data.brackets``); brackets change
    over time, so the keeper's sizing is an estimate next to the exchange's own margin figures. Other
    exchanges: None — the keeper still alarms on the liquidation distance the exchange reports.
    """
    from perphedge.data.brackets import bundled_bracket_table
    from perphedge.errors import UnknownSymbolError

    if spec.exchange != "binance":
        return None
    try:
        return bundled_bracket_table(spec.perp_symbol)
    except UnknownSymbolError:
        return None


def bracket_table_for(spec: HedgeSpec) -> BracketTable:
    from perphedge.data.brackets import bundled_bracket_table

    return bundled_bracket_table(spec.paper.data_symbol)


def build_paper_venue(
    spec: HedgeSpec, *, crash_hook: Callable[[], None] | None = None, exchange: Any = None
) -> PaperVenue:
    """Return the paper venue of a spec: replaying bundled ``paper.data_symbol`` history, or on live public prices.

    ``exchange``: a ccxt exchange object for ``paper.prices = "live"`` (default: a public one, no keys).
    The paper exchange models one-way cross margin only: ``hedge.margin_mode = "isolated"`` is refused.
    """
    if spec.margin_mode != "cross":
        raise ConfigError(
            f"the paper exchange models cross margin only; it was {spec.margin_mode!r}: set "
            'margin_mode = "cross" to paper-trade this hedge (isolated margin is for --live only)',
            key_path="hedge.margin_mode",
        )
    if spec.paper.prices == "live":
        return _build_live_paper_venue(spec, crash_hook=crash_hook, exchange=exchange)
    from perphedge.data.bundled import load_bundled

    market = load_bundled(spec.paper.data_symbol, spec.paper.timeframe)
    feed = ReplayFeed.from_frames(
        symbol=market.symbol, timeframe_ms=market.timeframe_ms, bars=market.bars, funding=market.funding
    )
    start_cursor = 0
    if spec.paper.start is not None:
        start_ms = int(parse_utc(spec.paper.start).timestamp() * 1000)
        start_cursor = feed.start_position(start_ms)
        if start_cursor >= feed.bar_count - 1:
            raise ConfigError(
                f"it was {spec.paper.start!r}, at or after the last bar of the bundled {market.symbol} "
                f"{spec.paper.timeframe} history (it opens {ts_ms_to_datetime(int(feed.bar_open_ts_ms[-1])).isoformat()}); "
                "choose an earlier start",
                key_path="paper.start",
            )
    p = spec.paper
    rules = [
        MarketRules(
            symbol=spec.spot_symbol,
            amount_step_base=to_decimal(p.spot_amount_step),
            min_amount_base=to_decimal(p.spot_amount_step),
            min_notional_usd=to_decimal(p.min_notional_usd),
        ),
        MarketRules(
            symbol=spec.perp_symbol,
            amount_step_base=to_decimal(p.perp_amount_step),
            min_amount_base=to_decimal(p.perp_amount_step),
            min_notional_usd=to_decimal(p.min_notional_usd),
        ),
    ]
    return PaperVenue(
        feed=feed,
        state_path=paper_state_path(spec),
        spot_symbol=spec.spot_symbol,
        perp_symbol=spec.perp_symbol,
        bracket_table=bracket_table_for(spec),
        rules=rules,
        account=PaperAccount(
            spot_base=to_decimal(p.spot_base),
            spot_usd=to_decimal(p.spot_usd),
            futures_usd=to_decimal(p.futures_usd),
        ),
        start_cursor=start_cursor,
        fill_model=BacktestFillModel(fee_spot=p.fee_spot, fee_perp=p.fee_perp, slippage_bps=p.slippage_bps),
        leverage=spec.leverage,
        crash_hook=crash_hook,
    )


def _build_live_paper_venue(
    spec: HedgeSpec, *, crash_hook: Callable[[], None] | None, exchange: Any
) -> PaperVenue:
    from perphedge.venues.ccxt_common import call_with_retries, create_exchange
    from perphedge.venues.ccxt_trading import LivePublicFeed, market_rules_from_ccxt

    if exchange is None:
        exchange = create_exchange(spec.exchange)
        call_with_retries(exchange.load_markets, exchange_id=spec.exchange, action="load markets")
    feed = LivePublicFeed(exchange, spot_symbol=spec.spot_symbol, perp_symbol=spec.perp_symbol)
    p = spec.paper
    return PaperVenue(
        feed=feed,
        state_path=paper_state_path(spec),
        spot_symbol=spec.spot_symbol,
        perp_symbol=spec.perp_symbol,
        bracket_table=bracket_table_for(spec),
        rules=[
            market_rules_from_ccxt(exchange, spec.spot_symbol),
            market_rules_from_ccxt(exchange, spec.perp_symbol),
        ],
        account=PaperAccount(
            spot_base=to_decimal(p.spot_base),
            spot_usd=to_decimal(p.spot_usd),
            futures_usd=to_decimal(p.futures_usd),
        ),
        fill_model=BacktestFillModel(fee_spot=p.fee_spot, fee_perp=p.fee_perp, slippage_bps=p.slippage_bps),
        leverage=spec.leverage,
        crash_hook=crash_hook,
    )


def build_keeper(
    spec: HedgeSpec,
    *,
    venue: TradingVenue,
    clock: Clock | None = None,
    log: KeeperLog | None = None,
    journal: Journal | None = None,
    bracket_table: BracketTable | None = None,
    speed: float | None = None,
    sleep: Callable[[float], None] | None = None,
    secrets: tuple[str, ...] = (),
) -> Keeper:
    """Return a Keeper for ``spec`` on ``venue`` (a ReplayClock for a PaperVenue unless a clock is given)."""
    # only a given sleep is passed on, so each callee keeps its own default (time.sleep)
    sleep_kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    if clock is None:
        if not isinstance(venue, PaperVenue):
            raise ConfigError(
                "a live venue needs a wall clock; pass clock=WallClock(spec.keeper.cycle_seconds)"
            )
        if venue.feed.last_position() is None:  # paper on live prices: real time
            clock = LivePaperClock(venue, spec.keeper.cycle_seconds, **sleep_kwargs)
        else:
            clock = ReplayClock(venue, speed=speed)
    return Keeper(
        spec=spec,
        venue=venue,
        journal=journal or Journal.open(spec.keeper.journal_path),
        log=log or KeeperLog(spec.keeper.log_path, secrets=secrets),
        clock=clock,
        strategy=build_strategy(spec.strategy, **spec.strategy_options_dict),
        bracket_table=bracket_table
        if bracket_table is not None
        else (venue.bracket_table if isinstance(venue, PaperVenue) else None),
        **sleep_kwargs,
    )
