"""The inverse (COIN-M) simulation: the spot coins sit in the futures wallet as collateral and the perp
is shorted in whole contracts of ``contract_size_usd`` for their USD value.

The per-bar semantics are in ``engine/loop.py`` (module docstring) and docs/engine.md ("Inverse
(COIN-M) hedge").
"""

from __future__ import annotations

import math

from perphedge.data.schema import MarketData
from perphedge.engine.accounts import BracketSchedule, apply_inverse_fill
from perphedge.engine.common import (
    BracketCursor,
    Decisions,
    MarketArrays,
    book_spot_fill,
    build_result,
    liquidation_fill_price,
    loop_series,
    new_columns,
    ts_of,
)
from perphedge.engine.config import BacktestConfig
from perphedge.engine.ledger import LedgerBuilder
from perphedge.engine.orders import LegOrders
from perphedge.engine.results import BacktestEvent, BacktestResult
from perphedge.errors import ConfigError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.funding import funding_cashflow_inverse_coin
from perphedge.mechanics.liquidation import liquidation_price_inverse
from perphedge.strategies.base import Strategy, TargetHedge


def check_inverse_config(
    strategy: Strategy, config: BacktestConfig, brackets: BracketSchedule | None
) -> None:
    """Refuse what the coin-margined hedge cannot do.

    Raises:
        ConfigError: no COIN-M ``brackets``; a collateral policy, withdraw or reinvest option; reverse carry.
    """
    if brackets is None:
        from perphedge.data.brackets import bundled_coinm_symbols

        raise ConfigError(
            "contract='inverse' needs the COIN-M maintenance brackets in coin notional; pass "
            "brackets=BracketSchedule.single(perphedge.data.brackets.bundled_coinm_bracket_table(symbol)) "
            f"(bundled: {', '.join(bundled_coinm_symbols())}), or for another coin "
            "BracketSchedule.single(BracketTable.single(symbol, mmr, maintenance_amount_coin)) with the exchange's "
            "COIN-M MMR",
            key_path="contract",
        )
    unsupported = [
        name
        for name, on in (
            (f"collateral_policy={config.collateral_policy!r}", config.collateral_policy != "none"),
            ("withdraw_excess", config.withdraw_excess),
            ("reinvest_funding", config.reinvest_funding),
        )
        if on
    ]
    if unsupported:
        verb = "does" if len(unsupported) == 1 else "do"
        raise ConfigError(
            f"with contract='inverse' the coins are the collateral (1x), so {', '.join(unsupported)} {verb} not apply; "
            "they were set: remove them or use contract='linear'",
            key_path="collateral_policy",
        )
    if getattr(strategy, "negative_mode", None) == "reverse":
        raise ConfigError(
            "reverse carry (negative_mode='reverse') sells borrowed coins, which the coin-margined hedge "
            "cannot post as collateral; use negative_mode='unhedge' or contract='linear'",
            key_path="negative_mode",
        )


def _settle_asset(ccxt_symbol: str) -> tuple[str, str]:
    base = ccxt_symbol.split("/", 1)[0]
    settle = ccxt_symbol.split(":", 1)[1] if ":" in ccxt_symbol else ""
    return base, settle


def _liquidation_price(
    contracts: float, size: float, entry: float, wallet_coin: float, table: BracketTable
) -> float | None:
    """Binance's COIN-M liquidation price of the position (``mechanics.liquidation``), None if there is none."""
    return liquidation_price_inverse(
        side=1 if contracts > 0 else -1,
        contracts=abs(contracts),
        contract_size_usd=size,
        entry_price=entry,
        wallet_balance_coin=wallet_coin,
        table=table,
    )


def _perp_fraction_to_fill(orders: LegOrders, target: TargetHedge | None) -> float | None:
    """Return the perp fraction to fill at the next open (sized in whole contracts then), None if the perp
    leg does not trade."""
    return target.perp_fraction if target is not None and orders.perp_delta_base != 0.0 else None


def simulate_inverse(
    market: MarketData,
    a: MarketArrays,
    strategy: Strategy,
    config: BacktestConfig,
    schedule: BracketSchedule,
) -> BacktestResult:
    """Simulate the coin-margined hedge: the spot coins sit in the futures wallet as collateral and the
    perp is shorted in whole contracts of ``contract_size_usd`` for their USD value.

    Coin amounts (wallet, PnL, funding, fees) are valued in USD at the spot price; the unrealised PnL is
    computed at the mark (Binance COIN-M: PnL = contracts × size × side × (1/entry − 1/mark)). Funding
    is ``−contracts × size / mark × rate`` coins (``mechanics.funding.funding_cashflow_inverse_coin``).
    Liquidation: ``mechanics.liquidation.liquidation_price_inverse`` with the whole wallet (the coins are
    the collateral); a short of the coins' own value has no liquidation price on a rise.
    """
    i0, i1 = a.i0, a.i1
    n_win = i1 - i0
    size = config.resolved_contract_size_usd(market.symbol)
    s = loop_series(a, schedule)
    so, sc, po, pc, mk = s.spot_open, s.spot_close, s.perp_open, s.perp_close, s.mark
    adv_open, adv_hi, adv_lo, known_at_close, table_list = (
        s.adverse_open,
        s.adverse_high,
        s.adverse_low,
        s.known_at_close,
        s.table_of_bar,
    )
    f_ts_list, f_rate, f_mark, f_bar, f_gap = (
        s.funding_ts_ms,
        s.funding_rate,
        s.funding_mark,
        s.funding_bar,
        s.funding_in_gap,
    )
    open_ms_list, close_ms_list = s.open_ms, s.close_ms
    fee_spot, fee_perp, slip = config.fee_spot, config.fee_perp, config.slippage_bps
    ledger = LedgerBuilder()
    events: list[BacktestEvent] = []

    table_index = table_list[0]
    brackets_now = BracketCursor(schedule.tables[table_index])

    t0 = open_ms_list[i0]
    reserve = config.reserve_usd
    other_coin = 0.0  # realised PnL + funding − perp fees, in coins, in the futures wallet
    extra_collateral_coins = 0.0  # coins posted beyond the hedged ones (``collateral``): never hedged
    if config.spot_qty_base is not None:
        base_qty = config.spot_qty_base
        spot_qty = base_qty
        extra_collateral_coins = float(config.collateral)  # type: ignore[arg-type]
        other_coin = extra_collateral_coins  # extra coins posted
        cash = reserve
        initial_equity = (spot_qty + other_coin) * so[i0] + reserve
    else:
        cash = config.capital_usd + reserve
        initial_equity = cash
        base_qty = config.capital_usd / (so[i0] * (1.0 + slip / 10_000.0) * (1.0 + fee_spot))
        spot_qty = 0.0
    contracts = 0.0
    entry = 0.0

    columns = new_columns(n_win)
    spot_val_arr, perp_val_arr, cash_arr, net_arr, netpct_arr, hr_arr, mr_arr, ld_arr, cumf_arr = columns[:9]
    spot_pnl_bar, perp_pnl_bar = columns[9:]

    decisions = Decisions(strategy, a, events, refuse_short_spot=True)
    decides_on = decisions.decides_on
    trades = liquidations = 0
    cum_funding = 0.0
    frozen = False
    lp: float | None = None
    lp_dirty = True
    value_px = so[i0]  # the price coins are valued at (spot), as of the last mark
    upnl_mark = po[i0]  # the mark the unrealised PnL was last computed at
    pend_spot = 0.0
    pend_perp_fraction: float | None = None

    def upnl(mark: float) -> float:
        return contracts * size * (1.0 / entry - 1.0 / mark) if contracts else 0.0

    # The perp leg's fraction is the one last filled (a short of the coins' USD value at fill time stays
    # "−1" while held: re-sizing it to each new price would trade every bar). Whole contracts only.
    held_perp_fraction = 0.0

    orders = decisions.decide(
        i0,
        t0,
        s.known_at_start,
        so[i0],
        po[i0],
        po[i0],
        spot_qty / base_qty,
        held_perp_fraction,
        math.nan,
        math.nan,
        base_qty,
        True,
    )
    if orders is not None:
        pend_spot = orders.spot_delta_base
        pend_perp_fraction = _perp_fraction_to_fill(orders, decisions.last_target)
    holdings_changed = orders is None
    fp = s.first_settlement
    nf = len(f_ts_list)

    def book_funding(fp: int, fallback_mark: float, note: str) -> float:
        nonlocal other_coin, cum_funding, lp_dirty
        mark = f_mark[fp] if f_mark[fp] > 0 else fallback_mark
        coin = funding_cashflow_inverse_coin(contracts, size, mark, f_rate[fp])
        other_coin += coin
        amount = coin * value_px
        cum_funding += amount
        ledger.add(f_ts_list[fp], "funding", "perp", "funding", amount, contracts * size / mark, mark, note)
        lp_dirty = True
        return amount

    for w in range(n_win):
        i = i0 + w
        bar_open_ms = open_ms_list[i]
        if table_list[w] != table_index:
            table_index = table_list[w]
            brackets_now = BracketCursor(schedule.tables[table_index])
            lp_dirty = True
        while fp < nf and f_bar[fp] == i and f_gap[fp]:
            if contracts:
                book_funding(fp, f_mark[fp], f"rate {f_rate[fp]:.8f} (settled during a gap in the bars)")
            fp += 1
        # 1. fills at the open
        if pend_spot != 0.0 or pend_perp_fraction is not None:
            coins = spot_qty + other_coin
            spot_pnl_bar[w] += coins * (so[i] - value_px)
            perp_pnl_bar[w] += upnl(po[i]) * so[i] - upnl(upnl_mark) * value_px
            value_px, upnl_mark = so[i], po[i]
            if pend_spot != 0.0:
                note = (
                    "buy" if pend_spot > 0 else "sell"
                ) + " (coins held in the futures wallet as collateral)"
                cash -= book_spot_fill(ledger, bar_open_ms, pend_spot, so[i], fee_spot, slip, note)
                spot_qty += pend_spot
                trades += 1
                lp_dirty = True
            if pend_perp_fraction is not None:
                # the fraction applies to the coins the hedge holds now (their value at this open, the
                # open position's PnL included), not to the coins it started with: closing a short after
                # a rise realises its loss in coins, so fewer are left to hedge (extra collateral coins
                # posted by the user stay unhedged, as at the start)
                hedge_coins = spot_qty + other_coin + upnl(po[i]) - extra_collateral_coins
                target_contracts = float(round(pend_perp_fraction * hedge_coins * po[i] / size))
                delta = target_contracts - contracts
                held_perp_fraction = pend_perp_fraction
                if delta != 0.0:
                    fill_px = po[i] * (1.0 + (slip / 10_000.0 if delta > 0 else -slip / 10_000.0))
                    fee_coin = abs(delta) * size / fill_px * fee_perp
                    slip_coin = abs(delta) * size * abs(1.0 / po[i] - 1.0 / fill_px)
                    position = apply_inverse_fill(contracts, entry, delta, po[i], size)
                    contracts, entry = position.contracts, position.entry_price_usd
                    other_coin += position.realized_pnl_coin - fee_coin - slip_coin
                    ledger.fill(
                        bar_open_ms,
                        "perp",
                        trade_qty_base=delta * size / po[i],
                        trade_price_usd=po[i],
                        trade_note=f"{'buy' if delta > 0 else 'sell'} {abs(delta):.0f} contracts of {size:g} USD",
                        fee_usd=fee_coin * value_px,
                        slippage_usd=slip_coin * value_px,  # 0 exactly when slip_coin is (value_px > 0)
                        fill_qty_base=delta * size / po[i],
                        fill_price_usd=fill_px,
                    )
                    trades += 1
                    lp_dirty = True
            pend_spot = 0.0
            pend_perp_fraction = None
        # 2. liquidation
        if contracts:
            if lp_dirty:
                lp = _liquidation_price(contracts, size, entry, spot_qty + other_coin, brackets_now.table)
                lp_dirty = False
            if lp is not None and (
                (contracts < 0 and adv_hi[i] >= lp) or (contracts > 0 and adv_lo[i] <= lp)
            ):
                liq_px = liquidation_fill_price(1 if contracts > 0 else -1, lp, adv_open[i])
                past_at_open = (
                    f" (the bar opened beyond its liquidation price {lp:,.2f}: closed at the open)"
                    if liq_px != lp
                    else ""
                )
                perp_pnl_bar[w] += upnl(liq_px) * value_px - upnl(upnl_mark) * value_px
                upnl_mark = liq_px
                realized = upnl(liq_px)
                notional_coin = abs(contracts) * size / liq_px
                coins = spot_qty + other_coin + realized
                clearance = min(config.clearance_fee * notional_coin, max(coins, 0.0))
                ledger.add(
                    close_ms_list[i],
                    "liquidation",
                    "perp",
                    "liquidation",
                    -clearance * value_px,
                    -contracts * size / liq_px,
                    liq_px,
                    f"clearance fee {config.clearance_fee:.2%} of {notional_coin:.6g} coins (capped at the margin left)",
                )
                events.append(
                    BacktestEvent(
                        ts=ts_of(close_ms_list[i]),
                        kind="liquidation",
                        detail=(
                            f"{'short' if contracts < 0 else 'long'} {abs(contracts):.0f} contracts liquidated at "
                            f"{liq_px:,.2f} during the bar opening {ts_of(bar_open_ms):%Y-%m-%d %H:%M} UTC{past_at_open}; the coins "
                            "left in the wallet are held unhedged and trading stops"
                        ),
                    )
                )
                liquidations += 1
                spot_qty, other_coin = coins - clearance, 0.0  # what is left is plain coins
                contracts, entry, lp = 0.0, 0.0, None
                held_perp_fraction = 0.0
                frozen = True
        # 3. funding
        while fp < nf and f_bar[fp] == i:
            if contracts:
                book_funding(fp, pc[i], f"rate {f_rate[fp]:.8f}")
            fp += 1
        # 4. close
        spot_px, mark_px, close_ms = sc[i], mk[i], close_ms_list[i]
        coins = spot_qty + other_coin
        spot_pnl_bar[w] += coins * (spot_px - value_px)
        perp_pnl_bar[w] += upnl(mark_px) * spot_px - upnl(upnl_mark) * value_px
        value_px, upnl_mark = spot_px, mark_px
        unrealized = upnl(mark_px)
        margin_ratio = math.nan
        if contracts:
            maintenance = brackets_now.maintenance_margin(abs(contracts) * size / mark_px)
            balance = coins + unrealized
            margin_ratio = maintenance / balance if balance > 0 else math.inf
            if lp_dirty:
                lp = _liquidation_price(contracts, size, entry, coins, brackets_now.table)
                lp_dirty = False
            if lp is not None:
                ld_arr[w] = (lp - mark_px) / mark_px
        spot_val_arr[w] = spot_qty * spot_px
        perp_val_arr[w] = (other_coin + unrealized) * spot_px
        cash_arr[w] = cash
        # coin delta of the account: d(equity in USD)/d(price) = coins + upnl + contracts × size / mark
        net = coins + unrealized + contracts * size / mark_px
        net_arr[w] = net
        netpct_arr[w] = net / base_qty
        account_coins = coins + unrealized
        hr_arr[w] = abs(contracts) * size / (account_coins * spot_px) if account_coins > 0 else 0.0
        mr_arr[w] = margin_ratio
        cumf_arr[w] = cum_funding
        if not frozen and w + 1 < n_win:
            k = known_at_close[i]
            if (
                decides_on == "bar"
                or holdings_changed
                or (decides_on == "settlement" and k != decisions.known_settlements)
            ):
                orders = decisions.decide(
                    i + 1,
                    close_ms,
                    k,
                    spot_px,
                    pc[i],
                    mark_px,
                    spot_qty / base_qty,
                    held_perp_fraction,
                    margin_ratio,
                    ld_arr[w],
                    base_qty,
                    holdings_changed,
                )
                if orders is not None:
                    pend_spot = orders.spot_delta_base
                    pend_perp_fraction = _perp_fraction_to_fill(orders, decisions.last_target)
                    holdings_changed = False

    base, settle = _settle_asset(market.ccxt_symbol)
    data_note = f"prices and funding of {market.ccxt_symbol}"
    if settle and settle != base:
        data_note += (
            f": a {settle}-margined contract used as a stand-in for the coin-margined one (same underlying; "
            "their basis and funding differ): fetch the inverse perpetual's history for a faithful run"
        )
    return build_result(
        market=market,
        a=a,
        strategy=strategy,
        config=config,
        schedule=schedule,
        base_qty=base_qty,
        initial_equity=initial_equity,
        columns=columns,
        ledger=ledger,
        decisions=decisions,
        trades=trades,
        liquidations=liquidations,
        extra_settings={
            "contract_size_usd": size,
            "inverse_data": data_note,
            "effective_leverage": "1x or less: the coins are the collateral; the leverage setting is not used",
        },
    )
