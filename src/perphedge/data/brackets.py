"""The bundled Binance USDⓈ-M bracket (leverage-tier) snapshots, and "the table in force at date D".

Files: ``perphedge/resources/brackets/binance-usdm-<YYYY-MM-DD>.json.gz``, one per snapshot date,
``{binance_id: [[floor_usd, cap_usd, mmr, maintenance_amount_usd, max_leverage], …]}``. The numbers are
Binance's published brackets (``GET /fapi/v1/leverageBracket``) as dumped by freqtrade
(GPL-3.0, see ``resources/brackets/README.md`` and ``LICENSE-freqtrade-GPL3.txt``).

A snapshot dated D is taken to be in force from D until the next snapshot. Before the first
snapshot nothing is known: asking for such a date raises unless ``allow_earlier=True`` (then the
earliest snapshot is used, and the caller says so).
"""

from __future__ import annotations

import datetime
import difflib
import gzip
import json
from functools import lru_cache
from importlib import resources

from perphedge.errors import DataError, UnknownSymbolError
from perphedge.mechanics.brackets import BracketTable
from perphedge.mechanics.instruments import binance_id_from_ccxt

_PACKAGE = "perphedge"
_FOLDER = "resources/brackets"
_PREFIX = "binance-usdm-"
_SUFFIX = ".json.gz"


@lru_cache(maxsize=1)
def bundled_snapshot_dates() -> list[datetime.date]:
    """Return the dates of the bundled snapshots, oldest first."""
    folder = resources.files(_PACKAGE).joinpath(_FOLDER)
    dates = [
        datetime.date.fromisoformat(entry.name[len(_PREFIX) : -len(_SUFFIX)])
        for entry in folder.iterdir()
        if entry.name.startswith(_PREFIX) and entry.name.endswith(_SUFFIX)
    ]
    if not dates:
        raise DataError("no bracket snapshots are bundled; the package is incomplete, reinstall perphedge")
    return sorted(dates)


@lru_cache(maxsize=8)
def _snapshot_rows(snapshot: datetime.date) -> dict[str, list[list[float]]]:
    entry = resources.files(_PACKAGE).joinpath(_FOLDER).joinpath(f"{_PREFIX}{snapshot.isoformat()}{_SUFFIX}")
    return json.loads(gzip.decompress(entry.read_bytes()))


def snapshot_in_force(at: datetime.date | None = None, *, allow_earlier: bool = False) -> datetime.date:
    """Return the date of the snapshot in force at ``at`` (the newest when ``at`` is None).

    Raises:
        DataError: ``at`` is before the first snapshot and ``allow_earlier`` is False.
    """
    dates = bundled_snapshot_dates()
    if at is None:
        return dates[-1]
    if isinstance(at, datetime.datetime):
        at = at.date()
    earlier = [d for d in dates if d <= at]
    if earlier:
        return earlier[-1]
    if allow_earlier:
        return dates[0]
    raise DataError(
        f"no bundled bracket snapshot is in force at {at.isoformat()}: the earliest is {dates[0].isoformat()}; "
        "use a date on or after it (in the library: allow_earlier=True uses it anyway; brackets change over "
        "time), or give the MMR yourself (--mmr)"
    )


def bundled_symbols(at: datetime.date | None = None) -> list[str]:
    """Return the Binance ids with a bracket table in the snapshot in force at ``at``."""
    return sorted(_snapshot_rows(snapshot_in_force(at)))


def bundled_bracket_table(
    symbol: str, at: datetime.date | None = None, *, allow_earlier: bool = False
) -> BracketTable:
    """Return the Binance USDⓈ-M bracket table of ``symbol`` in force at ``at`` (newest by default).

    ``symbol`` is a Binance id (``BTCUSDT``) or a ccxt symbol (``BTC/USDT:USDT``).

    Raises:
        UnknownSymbolError: the snapshot has no table for the symbol (close matches are listed).
        DataError: ``at`` is before the first snapshot (see ``snapshot_in_force``).
    """
    snapshot = snapshot_in_force(at, allow_earlier=allow_earlier)
    return _table(binance_id_from_ccxt(symbol), snapshot)


@lru_cache(maxsize=512)
def _table(binance_id: str, snapshot: datetime.date) -> BracketTable:
    rows = _snapshot_rows(snapshot)
    if binance_id not in rows:
        close = difflib.get_close_matches(binance_id, list(rows), n=5, cutoff=0.6)
        others = [d.isoformat() for d in bundled_snapshot_dates() if binance_id in _snapshot_rows(d)]
        hint = f"the Binance USDⓈ-M bracket snapshot of {snapshot.isoformat()} has no such symbol"
        if close:
            hint += f"; did you mean {', '.join(close)}?"
        if others:
            hint += f"; snapshots that have it: {', '.join(others)}"
        hint += "; or give the MMR yourself (--mmr, --maintenance-amount)"
        raise UnknownSymbolError(binance_id, hint=hint)
    return BracketTable.from_rows(binance_id, rows[binance_id])


_COINM_FILE = "binance-coinm.json"


@lru_cache(maxsize=1)
def _coinm_rows() -> dict[str, list[list[float | None]]]:
    entry = resources.files(_PACKAGE).joinpath(_FOLDER).joinpath(_COINM_FILE)
    doc = json.loads(entry.read_text())
    return {key: value for key, value in doc.items() if not key.startswith("_") and key != "columns"}


def bundled_coinm_symbols() -> list[str]:
    """Return the COIN-M ids with a bundled bracket table (``BTCUSD``)."""
    return sorted(_coinm_rows())


def bundled_coinm_bracket_table(symbol: str) -> BracketTable:
    """Return the bundled Binance COIN-M bracket table, in COIN notional (floors, caps and cum in coins).

    ``symbol`` may be ``BTCUSD``, ``BTCUSD_PERP``, ``BTC/USD:BTC`` or the USDⓈ-M id of the same coin
    (``BTCUSDT``/``BTC/USDT:USDT``: the inverse hedge of that coin). See resources/brackets/README.md.

    Raises:
        UnknownSymbolError: no COIN-M table is bundled for the coin (give --mmr instead).
    """
    coin = symbol.split("/")[0].upper()
    for suffix in ("USD_PERP", "USDT", "USD"):
        if coin.endswith(suffix) and len(coin) > len(suffix):
            coin = coin[: -len(suffix)]
            break
    key = f"{coin}USD"
    rows = _coinm_rows()
    if key not in rows:
        raise UnknownSymbolError(
            key,
            known=list(rows),
            hint="only these COIN-M bracket tables are bundled; give the MMR yourself (--mmr, --maintenance-amount in coins)",
        )
    return BracketTable.from_rows(key, [_coinm_row(key, row) for row in rows[key]])


def _coinm_row(key: str, row: list[float | None]) -> list[float]:
    """Return a bundled COIN-M row with its open cap (null, the last bracket's) read as +inf.

    Raises:
        DataError: a cell other than the cap is null (the bundled file is damaged).
    """
    cells: list[float] = []
    for column, value in enumerate(row):
        if value is None:
            if column != 1:
                raise DataError(
                    f"column {column} of the bracket row {row!r} was null; only the cap (column 1) may be "
                    "null; the bundled file is damaged, reinstall perphedge",
                    where=f"{_COINM_FILE} {key}",
                )
            value = float("inf")
        cells.append(value)
    return cells
