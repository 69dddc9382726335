"""The linear (USDⓈ-M) simulation: spot coins in the spot wallet, USDT collateral in the futures wallet,
the perp shorted in coins. Also runs the buy-and-hold benchmark (``all_spot=True``).

The per-bar semantics are in ``engine/loop.py`` (module docstring) and docs/engine.md.
"""

from __future__ import annotations

import math

from perphedge.data.schema import MarketData
from perphedge.engine.accounts import BracketSchedule, apply_perp_fill, split_capital
from perphedge.engine.common import (
    BracketCursor,
    Decisions,
    MarketArrays,
    book_spot_fill,
    borrow_rates_per_bar,
    build_result,
    liquidation_fill_price,
    loop_series,
    new_columns,
    ts_of,
)
from perphedge.engine.config import BacktestConfig
from perphedge.engine.fills import execute
from perphedge.engine.ledger import LedgerBuilder
from perphedge.engine.results import BacktestEvent, BacktestResult
from perphedge.errors import ConfigError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.liquidation import liquidation_price_linear
from perphedge.strategies.base import Strategy
from perphedge.units import MS_PER_DAY

WITHDRAW_MIN_FRACTION_OF_IM = 0.01
"""``withdraw_excess`` moves margin above what it keeps (the initial margin, and with a collateral policy at
least the margin at ``target_margin_ratio``) only when it exceeds 1 % of the initial margin (no dust rows)."""


def _liquidation_price(perp_qty: float, entry: float, wallet: float, table: BracketTable) -> float | None:
    """Binance's isolated liquidation price of the position (``mechanics.liquidation``), None if there is none."""
    return liquidation_price_linear(
        side=1 if perp_qty > 0 else -1,
        qty_base=abs(perp_qty),
        entry_price=entry,
        wallet_balance_usd=wallet,
        table=table,
    )


def _book_funding(
    ledger: LedgerBuilder, ts_ms: int, perp_qty: float, mark: float, rate: float, note: str
) -> float:
    """Book one settlement on the position: ``−qty × mark × rate`` USD (+ = received); return it."""
    cash_flow = -perp_qty * mark * rate
    ledger.add(ts_ms, "funding", "perp", "funding", cash_flow, perp_qty, mark, note)
    return cash_flow


def simulate_linear(
    market: MarketData,
    a: MarketArrays,
    strategy: Strategy,
    config: BacktestConfig,
    schedule: BracketSchedule,
    *,
    all_spot: bool,
) -> BacktestResult:
    """Simulate the USDⓈ-M hedge (or, with ``all_spot``, the unhedged benchmark) over the window of ``a``."""
    i0, i1 = a.i0, a.i1
    n_win = i1 - i0
    s = loop_series(a, schedule)
    so, sc, po, pc, mk = s.spot_open, s.spot_close, s.perp_open, s.perp_close, s.mark
    adv_open, adv_hi, adv_lo, known_at_close, table_list = (
        s.adverse_open,
        s.adverse_high,
        s.adverse_low,
        s.known_at_close,
        s.table_of_bar,
    )
    f_ts, f_rate, f_mark, f_bar, f_gap = (
        s.funding_ts_ms,
        s.funding_rate,
        s.funding_mark,
        s.funding_bar,
        s.funding_in_gap,
    )
    open_ms_list, close_ms_list = s.open_ms, s.close_ms
    bar_days = (a.close_ts[0] - a.open_ts[0]) / MS_PER_DAY

    fee_spot, fee_perp, slip = config.fee_spot, config.fee_perp, config.slippage_bps
    leverage = config.leverage
    cross = config.margin_mode == "cross"
    borrow_rates = borrow_rates_per_bar(config, a.open_ts[i0:i1], market.symbol)
    policy = config.collateral_policy
    ledger = LedgerBuilder()
    events: list[BacktestEvent] = []

    # --- bracket tables per bar (resolved before the loop) ---
    table_index = table_list[0]
    brackets_now = BracketCursor(schedule.tables[table_index])

    # --- starting balances ---
    t0 = open_ms_list[i0]
    reserve = config.reserve_usd
    spot_qty = 0.0
    perp_qty = 0.0
    entry = 0.0
    if config.spot_qty_base is not None and not all_spot:
        # coins already held; the collateral (and any reserve) arrive as USD in the spot wallet
        base_qty = config.spot_qty_base
        spot_qty = base_qty
        collateral = float(config.collateral)  # type: ignore[arg-type]
        initial_equity = base_qty * so[i0] + collateral + reserve
        cash = collateral + reserve
    else:
        capital = config.capital_usd
        if all_spot and config.spot_qty_base is not None:
            capital = config.spot_qty_base * so[i0] + float(config.collateral)  # type: ignore[arg-type]
        initial_equity = capital + reserve
        cash = initial_equity
        if all_spot:
            # the benchmark holds the whole capital and any reserve as spot (no perp needs a reserve)
            spot_budget, collateral = capital + reserve, 0.0
        else:
            split = split_capital(capital, leverage)
            spot_budget, collateral = split.spot_budget_usd, split.collateral_usd
        # the spot budget pays for the coins, the entry slippage and the entry fee
        base_qty = spot_budget / (so[i0] * (1.0 + slip / 10_000.0) * (1.0 + fee_spot))
    wallet_deposit = collateral + (reserve if cross and not all_spot else 0.0)
    wallet = 0.0
    if wallet_deposit > 0:
        cash -= wallet_deposit
        wallet = wallet_deposit
        ledger.transfer(t0, "spot", "perp", wallet_deposit, "spot wallet → futures wallet (collateral)")
    reserve_left = reserve if (policy == "reserve" and not cross) else 0.0
    # --- leverage allowed by the bracket of the starting notional ---
    if not all_spot:
        start_notional = base_qty * po[i0]
        allowed = schedule.tables[table_index].for_notional(start_notional).max_leverage
        if leverage > allowed:
            raise ConfigError(
                f"leverage was {leverage:g} but {market.symbol} allows at most {allowed:g}x for a notional of "
                f"{start_notional:,.2f} (bracket table in force at {ts_of(t0).date()}); lower --leverage",
                key_path="leverage",
            )

    # --- per-bar output arrays ---
    columns = new_columns(n_win)
    spot_val_arr, perp_val_arr, cash_arr, net_arr, netpct_arr, hr_arr, mr_arr, ld_arr, cumf_arr = columns[:9]
    spot_pnl_bar, perp_pnl_bar = columns[9:]

    decisions = Decisions(strategy, a, events)
    decides_on = decisions.decides_on
    trades = 0
    liquidations = 0
    cum_funding = 0.0
    frozen = False
    lp: float | None = None
    lp_dirty = True
    last_spot_px = so[i0]
    last_perp_px = po[i0]
    pend_spot = 0.0
    pend_perp = 0.0
    pend_shrink_value = 0.0  # sell_spot policy: value of spot sold to move into the futures wallet

    # first decision at the first bar's open
    orders = decisions.decide(
        i0,
        t0,
        s.known_at_start,
        so[i0],
        po[i0],
        po[i0],
        spot_qty / base_qty,
        perp_qty / base_qty,
        math.nan,
        math.nan,
        base_qty,
        True,
    )
    if orders is not None:
        pend_spot, pend_perp = orders.spot_delta_base, orders.perp_delta_base
    holdings_changed = orders is None

    fp = s.first_settlement
    nf = len(f_ts)

    for w in range(n_win):
        i = i0 + w
        bar_open_ms = open_ms_list[i]
        if table_list[w] != table_index:
            table_index = table_list[w]
            brackets_now = BracketCursor(schedule.tables[table_index])
            lp_dirty = True
        # 0. settlements that fell in a gap of missing bars before this bar: paid on the position then
        while fp < nf and f_bar[fp] == i and f_gap[fp]:
            if perp_qty != 0.0:
                note = f"rate {f_rate[fp]:.8f} (settled during a gap in the bars)"
                cash_flow = _book_funding(ledger, f_ts[fp], perp_qty, f_mark[fp], f_rate[fp], note)
                wallet += cash_flow
                cum_funding += cash_flow
                lp_dirty = True
            fp += 1
        # 1. fills at the open
        if pend_spot != 0.0 or pend_perp != 0.0:
            spot_pnl_bar[w] += spot_qty * (so[i] - last_spot_px)
            perp_pnl_bar[w] += perp_qty * (po[i] - last_perp_px)
            last_spot_px = so[i]
            last_perp_px = po[i]
            if pend_spot != 0.0:
                side = "buy" if pend_spot > 0 else "sell"
                cash -= book_spot_fill(ledger, bar_open_ms, pend_spot, so[i], fee_spot, slip, side)
                spot_qty += pend_spot
                trades += 1
            if pend_perp != 0.0:
                f = execute(pend_perp, po[i], fee_rate=fee_perp, slippage_bps=slip)
                qty_before = perp_qty
                position = apply_perp_fill(perp_qty, entry, pend_perp, po[i])
                wallet += position.realized_pnl_usd - f.slippage_usd - f.fee_usd
                perp_qty, entry = position.qty_base, position.entry_price_usd
                ledger.fill(
                    bar_open_ms,
                    "perp",
                    trade_qty_base=pend_perp,
                    trade_price_usd=po[i],
                    trade_note="buy" if pend_perp > 0 else "sell",
                    fee_usd=f.fee_usd,
                    slippage_usd=f.slippage_usd,
                    fill_qty_base=pend_perp,
                    fill_price_usd=f.fill_price_usd,
                )
                trades += 1
                lp_dirty = True
                if perp_qty != 0.0 and abs(perp_qty) > abs(qty_before):
                    # an increase needs its initial margin from the available balance (Binance: IM = notional / L)
                    added_margin = (
                        (abs(perp_qty) - abs(qty_before) if perp_qty * qty_before > 0 else abs(perp_qty))
                        * po[i]
                        / leverage
                    )
                    kept_margin = abs(qty_before) * po[i] / leverage if perp_qty * qty_before > 0 else 0.0
                    # checked before this fill's fee and slippage are taken, as the exchange checks the order
                    available = wallet + f.fee_usd + f.slippage_usd + perp_qty * (po[i] - entry) - kept_margin
                    if added_margin > available * (1.0 + 1e-9):
                        events.append(
                            BacktestEvent(
                                ts=ts_of(bar_open_ms),
                                kind="margin_call",
                                detail=(
                                    f"the order needed {added_margin:,.2f} USD initial margin at {leverage:g}x but only "
                                    f"{available:,.2f} USD was available; it was filled anyway (the engine does not "
                                    "refuse orders): add collateral or lower the leverage"
                                ),
                            )
                        )
            if pend_shrink_value > 0.0:
                amount = min(pend_shrink_value, max(cash, 0.0))
                if amount > 0.0:
                    cash -= amount
                    wallet += amount
                    ledger.transfer(bar_open_ms, "spot", "perp", amount, "spot sale → futures wallet")
                    lp_dirty = True
                pend_shrink_value = 0.0
            pend_spot = pend_perp = 0.0

        # 2. liquidation on the bar's adverse extreme
        if perp_qty != 0.0:
            if lp_dirty:
                lp = _liquidation_price(perp_qty, entry, wallet, brackets_now.table)
                lp_dirty = False
            if lp is not None and ((perp_qty < 0 and adv_hi[i] >= lp) or (perp_qty > 0 and adv_lo[i] <= lp)):
                liq_price = liquidation_fill_price(1 if perp_qty > 0 else -1, lp, adv_open[i])
                past_at_open = (
                    f" (the bar opened beyond its liquidation price {lp:,.2f}: closed at the open)"
                    if liq_price != lp
                    else ""
                )
                perp_pnl_bar[w] += perp_qty * (liq_price - last_perp_px)
                last_perp_px = liq_price
                wallet += perp_qty * (liq_price - entry)
                notional = abs(perp_qty) * liq_price
                clearance = min(config.clearance_fee * notional, max(wallet, 0.0))
                wallet -= clearance
                # booked at the bar's close: the time within the bar is unknown, and the equity series is at closes
                ledger.add(
                    close_ms_list[i],
                    "liquidation",
                    "perp",
                    "liquidation",
                    -clearance,
                    -perp_qty,
                    liq_price,
                    f"clearance fee {config.clearance_fee:.2%} of {notional:,.2f} (capped at the margin left)",
                )
                events.append(
                    BacktestEvent(
                        ts=ts_of(close_ms_list[i]),
                        kind="liquidation",
                        detail=(
                            f"{'short' if perp_qty < 0 else 'long'} {abs(perp_qty):.6g} liquidated at {liq_price:,.2f} during the bar "
                            f"opening {ts_of(bar_open_ms):%Y-%m-%d %H:%M} UTC{past_at_open} "
                            f"(bar {'high' if perp_qty < 0 else 'low'} {adv_hi[i] if perp_qty < 0 else adv_lo[i]:,.2f}); "
                            f"clearance fee {clearance:,.2f} USD; the spot is left unhedged and trading stops"
                        ),
                    )
                )
                liquidations += 1
                perp_qty = 0.0
                entry = 0.0
                lp = None
                frozen = True

        # 3. funding settlements paid in this bar
        settled_this_bar = 0.0
        while fp < nf and f_bar[fp] == i:
            if perp_qty != 0.0:
                mark = f_mark[fp] if f_mark[fp] > 0 else pc[i]  # NaN > 0 is False
                cash_flow = _book_funding(
                    ledger, f_ts[fp], perp_qty, mark, f_rate[fp], f"rate {f_rate[fp]:.8f}"
                )
                wallet += cash_flow
                cum_funding += cash_flow
                settled_this_bar += cash_flow
                lp_dirty = True
            fp += 1

        # 4. close: borrow interest, marks, policies, decision, records
        spot_px = sc[i]
        mark_px = mk[i]
        close_ms = close_ms_list[i]
        if spot_qty < 0.0:
            interest = -spot_qty * spot_px * borrow_rates[w] * bar_days
            cash -= interest
            ledger.add(
                close_ms, "borrow", "borrow", "borrow", -interest, spot_qty, spot_px, "margin borrow interest"
            )
        spot_pnl_bar[w] += spot_qty * (spot_px - last_spot_px)
        perp_pnl_bar[w] += perp_qty * (mark_px - last_perp_px)
        last_spot_px = spot_px
        last_perp_px = mark_px

        margin_ratio = math.nan
        if perp_qty != 0.0:
            notional = abs(perp_qty) * mark_px
            maintenance = brackets_now.maintenance_margin(notional)
            balance = wallet + perp_qty * (mark_px - entry)
            margin_ratio = maintenance / balance if balance > 0 else math.inf
            if not frozen and margin_ratio > config.trigger_margin_ratio:
                if policy == "reserve" and reserve_left > 0.0:
                    add = min(
                        maintenance / config.target_margin_ratio - balance, reserve_left, max(cash, 0.0)
                    )
                    if add > 0.0:
                        cash -= add
                        wallet += add
                        reserve_left -= add
                        ledger.transfer(close_ms, "reserve", "perp", add, "reserve → futures wallet (top-up)")
                        events.append(
                            BacktestEvent(
                                ts=ts_of(close_ms),
                                kind="top_up",
                                detail=f"margin ratio {margin_ratio:.1%} > {config.trigger_margin_ratio:.0%}: "
                                f"moved {add:,.2f} USD from the reserve ({reserve_left:,.2f} left)",
                            )
                        )
                        lp_dirty = True
                        balance += add
                        margin_ratio = maintenance / balance
                elif policy == "sell_spot" and spot_qty < 0.0 and perp_qty > 0.0:
                    # reverse carry: the long perp loses as the price falls while the short spot gains in the
                    # spot wallet; its free cash (beyond what buying the borrowed coins back costs) moves first,
                    # and both legs shrink alike only if it does not restore the target ratio
                    free_cash = cash + spot_qty * spot_px
                    add = min(maintenance / config.target_margin_ratio - balance, max(free_cash, 0.0))
                    if add > 0.0:
                        cash -= add
                        wallet += add
                        balance += add
                        ledger.transfer(
                            close_ms, "spot", "perp", add, "free spot cash → futures wallet (top-up)"
                        )
                        events.append(
                            BacktestEvent(
                                ts=ts_of(close_ms),
                                kind="top_up",
                                detail=f"margin ratio {margin_ratio:.1%} > {config.trigger_margin_ratio:.0%}: "
                                f"moved {add:,.2f} USD of free spot-wallet cash (beyond the borrowed coins' value) "
                                "into the futures wallet",
                            )
                        )
                        lp_dirty = True
                        margin_ratio = maintenance / balance
                    if margin_ratio > config.target_margin_ratio * (1.0 + 1e-9):
                        # buying back borrowed coins frees no cash: only the smaller maintenance margin helps
                        keep = (config.target_margin_ratio * balance + brackets_now.cum) / (
                            notional * brackets_now.mmr
                        )
                        keep = min(max(keep, 0.0), 1.0)
                        if 0.0 < keep < 1.0:
                            base_qty *= keep
                            holdings_changed = True
                            events.append(
                                BacktestEvent(
                                    ts=ts_of(close_ms),
                                    kind="reduce",
                                    detail=f"margin ratio {margin_ratio:.1%} > {config.trigger_margin_ratio:.0%} with no "
                                    f"free spot-wallet cash left: shrink both legs to {keep:.2%}",
                                )
                            )
                elif policy == "sell_spot" and spot_qty > 0.0:
                    target_ratio = config.target_margin_ratio
                    a_mm = notional * brackets_now.mmr
                    b_spot = spot_qty * spot_px
                    keep = (target_ratio * (balance + b_spot) + brackets_now.cum) / (
                        a_mm + target_ratio * b_spot
                    )
                    keep = min(max(keep, 0.0), 1.0)
                    if 0.0 < keep < 1.0:  # 0 would leave no base quantity: then liquidation decides
                        base_qty *= keep
                        pend_shrink_value = (1.0 - keep) * spot_qty * spot_px * (1.0 - fee_spot)
                        holdings_changed = True
                        events.append(
                            BacktestEvent(
                                ts=ts_of(close_ms),
                                kind="reduce",
                                detail=f"margin ratio {margin_ratio:.1%} > {config.trigger_margin_ratio:.0%}: "
                                f"shrink both legs to {keep:.2%} and move the spot sale into the futures wallet",
                            )
                        )
            if (
                not frozen
                and config.reinvest_funding
                and settled_this_bar > 0.0
                and spot_qty > 0.0
                and perp_qty < 0.0
            ):
                amount = min(settled_this_bar * leverage / (1.0 + leverage), wallet)
                if amount > 0.0:
                    wallet -= amount
                    cash += amount
                    base_qty += amount / (spot_px * (1.0 + slip / 10_000.0) * (1.0 + fee_spot))
                    holdings_changed = True
                    ledger.transfer(close_ms, "perp", "spot", amount, "reinvest funding")
                    balance -= amount
                    lp_dirty = True
            if not frozen and config.withdraw_excess and not holdings_changed:
                initial_margin = notional / leverage
                # keep at least the initial margin and, with a collateral policy, the margin that holds the
                # ratio at its target: withdrawing below the trigger's margin made sell_spot sell at the next
                # close, and the sale moved into the wallet was withdrawn again, until no coin was left
                keep_margin = initial_margin
                if policy != "none":
                    keep_margin = max(keep_margin, maintenance / config.target_margin_ratio)
                excess = min(balance - keep_margin, wallet)
                if excess > WITHDRAW_MIN_FRACTION_OF_IM * initial_margin:
                    wallet -= excess
                    cash += excess
                    balance -= excess
                    margin_ratio = maintenance / balance if balance > 0 else math.inf
                    ledger.transfer(close_ms, "perp", "spot", excess, "withdraw excess margin")
                    lp_dirty = True

        spot_value = spot_qty * spot_px
        spot_val_arr[w] = spot_value
        perp_val_arr[w] = wallet + perp_qty * (mark_px - entry)
        cash_arr[w] = cash
        net_arr[w] = spot_qty + perp_qty
        netpct_arr[w] = (spot_qty + perp_qty) / base_qty
        hr_arr[w] = abs(perp_qty) * pc[i] / abs(spot_value) if spot_value != 0.0 else 0.0
        mr_arr[w] = margin_ratio
        if perp_qty != 0.0:
            if lp_dirty:
                lp = _liquidation_price(perp_qty, entry, wallet, brackets_now.table)
                lp_dirty = False
            if lp is not None:
                ld_arr[w] = (lp - mark_px) / mark_px
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
                    perp_qty / base_qty,
                    margin_ratio,
                    ld_arr[w],
                    base_qty,
                    holdings_changed,
                )
                if orders is not None:
                    pend_spot, pend_perp = orders.spot_delta_base, orders.perp_delta_base
                    holdings_changed = False

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
        extra_settings={},
    )
