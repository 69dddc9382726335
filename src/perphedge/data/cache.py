"""The local cache of downloaded market data: Parquet files under a data directory, written atomically.

Layout (one directory per exchange and market)::

    <data_dir>/<exchange>/<MARKET_ID>/
        funding.parquet          settle_ts_ms (int64, UTC ms), rate_per_interval, mark_price (NaN if unknown)
        perp_<tf>.parquet        bar_open_ts_ms (int64, UTC ms), open, high, low, close, volume
        spot_<tf>.parquet        the same, for the matching spot market
        mark_<tf>.parquet        the same, for the perp's mark price (volume as the exchange gives it)
        leverage_tiers.json      ccxt's unified leverage tiers, when they could be had
        meta.json                symbols, and per data set the earliest start fully downloaded

``<data_dir>`` is ``$PERPHEDGE_DATA_DIR`` when set, else the platform's user cache directory
(``platformdirs.user_cache_dir("perphedge")``, e.g. ``~/.cache/perphedge`` on Linux).
``<MARKET_ID>`` is the exchange's market id (``BTCUSDT``, ``BTC-USDT-SWAP``) with any character other
than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``.

Every write is atomic: the whole file is written to a temporary file in the same directory, flushed
and fsynced, then renamed over the old one with ``os.replace`` (atomic on POSIX and Windows). New
rows are merged with the old ones in memory first, so a crash at any point leaves either the old or
the new file, never a half-merged one. Bars are labelled by their open time; see
:mod:`perphedge.data.schema` for how bars and funding settlements line up.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perphedge.data.schema import BAR_COLUMNS, TIMEFRAME_MS, DatasetInfo, MarketData, utc_index_from_ms
from perphedge.errors import DataError, UnknownSymbolError
from perphedge.mechanics.funding import SETTLEMENT_JITTER_TOLERANCE_MS, infer_interval_hours

DATA_DIR_ENV = "PERPHEDGE_DATA_DIR"
META_NAME = "meta.json"
FUNDING_NAME = "funding.parquet"
LEVERAGE_TIERS_NAME = "leverage_tiers.json"
BAR_TS_COLUMN = "bar_open_ts_ms"
SETTLE_TS_COLUMN = "settle_ts_ms"
OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
FUNDING_FILE_COLUMNS: tuple[str, ...] = ("rate_per_interval", "mark_price")
BAR_KINDS: tuple[str, ...] = ("perp", "spot", "mark")
META_FORMAT = 1

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def default_data_dir() -> Path:
    """Return ``$PERPHEDGE_DATA_DIR`` when set, else the platform user cache dir for perphedge.

    This is the one environment read outside ``cli/``, on purpose: callers that pass no data
    directory (the backtest command, library users) find the same data as ``perphedge data …``,
    whose ``--data-dir`` option reads the same variable. Pass a directory to ignore it.
    """
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("perphedge", appauthor=False))


def resolve_data_dir(data_dir: Path | str | None) -> Path:
    """Return ``data_dir`` as a Path, or :func:`default_data_dir` when it is None."""
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def market_dir_name(market_id: str) -> str:
    """Return the file-system-safe directory name of an exchange market id."""
    return _UNSAFE.sub("_", market_id)


def market_cache_dir(data_dir: Path, exchange_id: str, market_id: str) -> Path:
    """Return ``<data_dir>/<exchange>/<MARKET_ID>``."""
    return data_dir / exchange_id / market_dir_name(market_id)


def bars_file_name(kind: str, timeframe: str) -> str:
    """Return the file name of a bar data set: ``perp_1h.parquet``, ``spot_1h.parquet``, ``mark_1h.parquet``."""
    if kind not in BAR_KINDS:
        raise ValueError(f"bar kind must be one of {BAR_KINDS}; it was {kind!r}")
    return f"{kind}_{timeframe}.parquet"


# --- atomic writes ---------------------------------------------------------------------------------


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(tmp)`` on a temp file in the same folder, fsync, rename, fsync the folder.

    A crash at any point leaves either the old file or the new one, never a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; os.replace is atomic there anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (without its index) to ``path`` as zstd Parquet, atomically."""
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False, compression="zstd"))


def write_json_atomic(payload: Any, path: Path) -> None:
    """Write ``payload`` as indented JSON to ``path``, atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    write_atomic(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def write_bytes_atomic(payload: bytes, path: Path) -> None:
    """Write ``payload`` to ``path``, atomically."""
    write_atomic(path, lambda tmp: tmp.write_bytes(payload))


# --- rows in, frames out ---------------------------------------------------------------------------


def ohlcv_frame(rows: list[list[float]]) -> pd.DataFrame:
    """Return ccxt OHLCV rows ``[ts, o, h, l, c, v]`` as a cache frame (``bar_open_ts_ms`` + OHLCV)."""
    frame = pd.DataFrame(
        {
            BAR_TS_COLUMN: np.array([int(r[0]) for r in rows], dtype=np.int64),
            **{
                name: np.array([np.nan if r[i + 1] is None else float(r[i + 1]) for r in rows], dtype=float)
                for i, name in enumerate(OHLCV_COLUMNS)
            },
        }
    )
    return frame


def funding_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Return ccxt funding-rate-history structures as a cache frame.

    ``rate_per_interval`` is ccxt's ``fundingRate`` (a fraction); ``mark_price`` is the raw record's
    ``markPrice`` when the exchange gives one (Binance ``GET /fapi/v1/fundingRate``), else NaN.

    Raises:
        DataError: for a record without a timestamp or rate (never filled in).
    """
    stamps: list[int] = []
    rates: list[float] = []
    marks: list[float] = []
    for row in rows:
        ts, rate = row.get("timestamp"), row.get("fundingRate")
        if ts is None or rate is None:
            raise DataError(
                f"a funding record has no timestamp or rate (timestamp was {ts!r}, fundingRate was {rate!r}); "
                "the exchange answer is incomplete: retry the download",
                where=str(row.get("symbol")),
            )
        stamps.append(int(ts))
        rates.append(float(rate))
        mark = (row.get("info") or {}).get("markPrice")
        marks.append(float(mark) if mark not in (None, "") else np.nan)
    return pd.DataFrame(
        {
            SETTLE_TS_COLUMN: np.array(stamps, dtype=np.int64),
            "rate_per_interval": np.array(rates, dtype=float),
            "mark_price": np.array(marks, dtype=float),
        }
    )


def merge_frames(old: pd.DataFrame | None, new: pd.DataFrame, ts_column: str) -> pd.DataFrame:
    """Return old and new rows together, one per timestamp (new rows win), sorted ascending."""
    combined = new if old is None or old.empty else pd.concat([old, new], ignore_index=True)
    combined = combined.drop_duplicates(subset=ts_column, keep="last")
    return combined.sort_values(ts_column, kind="stable").reset_index(drop=True)


def read_table(path: Path, ts_column: str) -> pd.DataFrame | None:
    """Return a cached Parquet file as a frame, or None when it does not exist.

    Raises:
        DataError: when the file cannot be read (say which, and to delete it and fetch again).
    """
    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types for a damaged file
        raise DataError(
            f"the cached file cannot be read ({type(e).__name__}: {e}); delete it and run perphedge data fetch again",
            where=str(path),
        ) from e
    if ts_column not in frame.columns:
        raise DataError(
            f"the cached file has no {ts_column!r} column (columns were {list(frame.columns)}); delete it "
            "and run perphedge data fetch again",
            where=str(path),
        )
    return frame


def read_meta(directory: Path) -> dict[str, Any] | None:
    """Return a market directory's meta.json, or None when there is none."""
    path = directory / META_NAME
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise DataError(
            f"the cache's meta.json cannot be read ({e}); delete the directory and fetch again",
            where=str(path),
        ) from e
    if not isinstance(meta, dict):
        raise DataError(
            f"the cache's meta.json holds a {type(meta).__name__}, not an object; delete the directory and "
            "fetch again",
            where=str(path),
        )
    return meta


# --- listing and loading ---------------------------------------------------------------------------


def _market_dirs(data_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    found: list[tuple[Path, dict[str, Any]]] = []
    if not data_dir.is_dir():
        return found
    for exchange_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for market in sorted(p for p in exchange_dir.iterdir() if p.is_dir()):
            meta = read_meta(market)
            if meta is not None:
                found.append((market, meta))
    return found



def list_cached(data_dir: Path | None = None) -> list[DatasetInfo]:
    """Return one entry per cached (exchange, market, timeframe) that has perp bars.

    ``symbol`` is the exchange's market id (``BTCUSDT``), first/last bar the perp bars' open times,
    ``source`` is ``cache:<market directory>``.
    """
    infos: list[DatasetInfo] = []
    for market, meta in _market_dirs(resolve_data_dir(data_dir)):
        funding = read_table(market / FUNDING_NAME, SETTLE_TS_COLUMN)
        settlements = 0 if funding is None else len(funding)
        for path in sorted(market.glob("perp_*.parquet")):
            timeframe = path.stem.removeprefix("perp_")
            try:
                bars = pd.read_parquet(path, columns=[BAR_TS_COLUMN])[BAR_TS_COLUMN].to_numpy()
            except Exception as e:  # pyarrow raises several unrelated types for a damaged file
                raise DataError(
                    f"the cached file cannot be read ({type(e).__name__}: {e}); delete it and run perphedge "
                    "data fetch again",
                    where=str(path),
                ) from e
            infos.append(
                DatasetInfo(
                    exchange=str(meta.get("exchange", market.parent.name)),
                    symbol=str(meta.get("market_id", market.name)),
                    timeframe=timeframe,
                    first_bar=pd.Timestamp(int(bars.min()), unit="ms", tz="UTC") if bars.size else None,
                    last_bar=pd.Timestamp(int(bars.max()), unit="ms", tz="UTC") if bars.size else None,
                    bars=int(bars.size),
                    funding_settlements=settlements,
                    source=f"cache:{market}",
                )
            )
    return infos


def _normalise(symbol: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", symbol.upper())


def find_market_dir(exchange: str, symbol: str, data_dir: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Return the cache directory and meta of a market given as unified symbol or market id.

    Raises:
        UnknownSymbolError: when nothing is cached for it (the message says how to fetch it).
    """
    root = resolve_data_dir(data_dir)
    candidates = [(d, m) for d, m in _market_dirs(root) if d.parent.name == exchange]
    for directory, meta in candidates:
        if symbol in (meta.get("ccxt_symbol"), meta.get("market_id"), directory.name):
            return directory, meta
    wanted = _normalise(symbol)
    for directory, meta in candidates:
        if wanted == _normalise(str(meta.get("market_id", ""))):
            return directory, meta
    raise UnknownSymbolError(
        symbol,
        known=[str(m.get("ccxt_symbol")) for _, m in candidates],
        hint=(
            f"nothing cached for it on {exchange} under {root}; download it with: perphedge data fetch "
            f"--exchange {exchange} --symbol {symbol} --since 2024-01-01"
        ),
    )


def load_cached(exchange: str, symbol: str, timeframe: str, data_dir: Path | None = None) -> MarketData:
    """Return the cached history of one market as canonical :class:`MarketData` (``source="cache"``).

    ``bars`` holds every bar open time of the perp or spot file (outer join: a bar one leg lacks has
    NaN in that leg's columns and a note, never a filled value); ``mark_close`` (and mark open/high/low)
    come from the mark-price bars when cached. ``funding`` holds the settlements as events with
    ``interval_hours`` inferred from their spacing (:func:`perphedge.mechanics.funding.infer_interval_hours`)
    and ``mark_price`` from the exchange's record, else the close of the mark bar that ends at the
    settlement (the funding settled at S belongs to the end of the bar that opened before S).

    Raises:
        UnknownSymbolError: when the market or this timeframe is not cached (says how to fetch it).
        DataError: when a cached file is unreadable, or the funding has a gap that is not a funding interval.
    """
    directory, meta = find_market_dir(exchange, symbol, data_dir)
    if timeframe not in TIMEFRAME_MS:
        raise UnknownSymbolError(
            f"{symbol} {timeframe}", hint=f"timeframe must be one of {', '.join(TIMEFRAME_MS)}"
        )
    perp = read_table(directory / bars_file_name("perp", timeframe), BAR_TS_COLUMN)
    if perp is None:
        cached = sorted(p.stem.removeprefix("perp_") for p in directory.glob("perp_*.parquet"))
        raise UnknownSymbolError(
            f"{symbol} {timeframe}",
            hint=(
                f"{exchange} {symbol} is cached for timeframes {cached or 'none'}; download {timeframe} with: "
                f"perphedge data fetch --exchange {exchange} --symbol {meta.get('ccxt_symbol', symbol)} "
                f"--timeframe {timeframe} --since 2024-01-01"
            ),
        )
    spot = read_table(directory / bars_file_name("spot", timeframe), BAR_TS_COLUMN)
    mark = read_table(directory / bars_file_name("mark", timeframe), BAR_TS_COLUMN)
    notes: list[str] = []

    perp_bars = perp.set_index(BAR_TS_COLUMN)
    spot_bars = spot.set_index(BAR_TS_COLUMN) if spot is not None else None
    legs: dict[str, pd.DataFrame | None] = {"perp": perp_bars, "spot": spot_bars}
    if spot is None:
        notes.append(f"no spot bars cached for {timeframe}: spot columns are NaN")
    index = perp_bars.index
    if spot_bars is not None:
        index = index.union(spot_bars.index)
    bars = pd.DataFrame(index=index)
    for leg in ("spot", "perp"):
        frame = legs[leg]
        for col in ("open", "high", "low", "close"):
            bars[f"{leg}_{col}"] = frame[col].reindex(index) if frame is not None else np.nan
        bars[f"{leg}_volume_base"] = frame["volume"].reindex(index) if frame is not None else np.nan
        if frame is not None:
            missing = int(bars[f"{leg}_close"].isna().sum())
            if missing:
                notes.append(f"{missing} bars have no {leg} price (the exchange returned none for them)")
    if mark is not None:
        mark_by_ts = mark.set_index(BAR_TS_COLUMN)
        for col in ("open", "high", "low", "close"):
            bars[f"mark_{col}"] = mark_by_ts[col].reindex(index)
    else:
        bars["mark_close"] = np.nan
        notes.append("no mark-price bars cached: mark_close is NaN")
    columns = list(BAR_COLUMNS) + [c for c in ("mark_open", "mark_high", "mark_low") if c in bars.columns]
    bars = bars[columns].astype(float)
    bars.index = utc_index_from_ms(bars.index.to_numpy(dtype=np.int64))

    funding = _funding_events(directory, mark, timeframe, notes)
    return MarketData(
        exchange=exchange,
        symbol=str(meta.get("market_id", directory.name)),
        ccxt_symbol=str(meta.get("ccxt_symbol", symbol)),
        timeframe=timeframe,
        bars=bars,
        funding=funding,
        source="cache",
        notes=tuple(notes),
    )


def _funding_events(
    directory: Path, mark: pd.DataFrame | None, timeframe: str, notes: list[str]
) -> pd.DataFrame:
    raw = read_table(directory / FUNDING_NAME, SETTLE_TS_COLUMN)
    if raw is None or raw.empty:
        notes.append("no funding settlements cached")
        return pd.DataFrame(
            {"rate_per_interval": [], "interval_hours": [], "mark_price": []},
            index=utc_index_from_ms(np.array([], dtype=np.int64)),
            dtype=float,
        )
    settle_ts = raw[SETTLE_TS_COLUMN].to_numpy(dtype=np.int64)
    if settle_ts.size >= 2:
        interval_hours = infer_interval_hours(settle_ts)
    else:
        interval_hours = np.full(settle_ts.size, np.nan)
        notes.append("only one funding settlement cached: its interval cannot be inferred (NaN)")
    mark_price = raw["mark_price"].to_numpy(dtype=float).copy()
    if mark is not None and np.isnan(mark_price).any():
        mark_price = _fill_mark_from_bars(settle_ts, mark_price, mark, TIMEFRAME_MS[timeframe])
    return pd.DataFrame(
        {
            "rate_per_interval": raw["rate_per_interval"].to_numpy(dtype=float),
            "interval_hours": interval_hours.astype(float),
            "mark_price": mark_price,
        },
        index=utc_index_from_ms(settle_ts),
    )


def _fill_mark_from_bars(
    settle_ts: np.ndarray, mark_price: np.ndarray, mark: pd.DataFrame, timeframe_ms: int
) -> np.ndarray:
    """Take the close of the mark bar ending at each settlement (within the settlement jitter)."""
    close_by_open = mark.set_index(BAR_TS_COLUMN)["close"]
    boundary = np.rint(settle_ts / timeframe_ms).astype(np.int64) * timeframe_ms
    on_grid = np.abs(settle_ts - boundary) <= SETTLEMENT_JITTER_TOLERANCE_MS
    closes = close_by_open.reindex(boundary - timeframe_ms).to_numpy(dtype=float)
    out = mark_price.copy()
    use = np.isnan(out) & on_grid & ~np.isnan(closes)
    out[use] = closes[use]
    return out
