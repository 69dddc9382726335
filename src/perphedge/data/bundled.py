"""The real market history bundled with perphedge: load it offline, list it, (re)build it.

What is bundled (``perphedge/resources/market/``, see its README.md for the source and licence):
Binance USDⓈ-M 8-hour bars (spot and perp) and funding settlements for 15 symbols, 2020-01 … 2026-02,
the spot-only MATICUSDT history (the coin was renamed POL in 2024-09), and hourly BTC, ETH and SOL bars
(spot, perp, mark price) with their funding settlements. Downloaded from Binance's public API by
github.com/PietroC21/Crypto-PerpetualFutures (MIT).

Files (Parquet, zstd; timestamps are int64 UTC epoch milliseconds; prices and rates float64):
- ``binance/<timeframe>/<SYMBOL>.bars.parquet``: ``bar_open_ts_ms`` plus the ``BAR_COLUMNS`` of
  ``perphedge.data.schema``;
- ``binance/<timeframe>/<SYMBOL>.funding.parquet``: ``settle_ts_ms`` (Binance ``fundingTime``, with
  its real millisecond jitter) plus the ``FUNDING_COLUMNS``;
- ``binance/8h/MATICUSDT.spot.parquet``: spot bars only (no perp, no funding);
- ``manifest.json``: one entry per data set (range, counts, notes) so listing reads no Parquet.

Alignment (``perphedge.data.schema``): a bar is labelled by its open time and covers
[open, open + timeframe); the funding settled at S belongs to the **end** of the bar that opened
before S. The bundled bars run from the first bar where both spot and perp trade to the bar that
ends at the last known settlement, and the funding holds the settlements in
(first bar open, last bar open + timeframe]: every bar has its settlements, none is guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perphedge.data.schema import (
    BAR_COLUMNS,
    FUNDING_COLUMNS,
    TIMEFRAME_MS,
    DatasetInfo,
    MarketData,
    time_index,
    utc_index_from_ms,
)
from perphedge.errors import DataError, InputError, UnknownSymbolError
from perphedge.mechanics.funding import infer_interval_hours
from perphedge.units import MS_PER_HOUR

BUNDLED_EXCHANGE = "binance"
BUNDLED_TIMEFRAMES: tuple[str, ...] = ("8h", "1h")
MANIFEST_NAME = "manifest.json"
BAR_TS_COLUMN = "bar_open_ts_ms"
SETTLE_TS_COLUMN = "settle_ts_ms"


def market_dir() -> Path:
    """Return the directory of the bundled market data inside the installed package."""
    return Path(__file__).resolve().parent.parent / "resources" / "market"


def to_bundled_symbol(symbol: str) -> str:
    """Return the exchange-native id for a symbol given as ``BTCUSDT``, ``btcusdt``, ``BTC/USDT`` or ``BTC/USDT:USDT``."""
    cleaned = symbol.strip().upper()
    if ":" in cleaned:
        cleaned = cleaned.split(":", 1)[0]
    return cleaned.replace("/", "").replace("-", "")


def ccxt_perp_symbol(symbol: str) -> str:
    """Return ccxt's unified linear-perp symbol for an exchange id: ``BTCUSDT`` → ``BTC/USDT:USDT``."""
    for quote in ("USDT", "USDC", "BUSD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            base = symbol[: -len(quote)]
            return f"{base}/{quote}:{quote}"
    raise InputError(f"symbol {symbol!r} does not end in a known quote currency (USDT, USDC, BUSD)")


@cache
def _manifest() -> dict[str, Any]:
    path = market_dir() / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise DataError(
            f"the bundled market data is missing ({path} does not exist); reinstall perphedge",
            where=str(path),
        ) from e


def _datasets(timeframe: str) -> dict[str, dict[str, Any]]:
    if timeframe not in BUNDLED_TIMEFRAMES:
        raise InputError(
            f"timeframe {timeframe!r} is not bundled; bundled timeframes are {', '.join(BUNDLED_TIMEFRAMES)} "
            "(download others with perphedge data fetch --timeframe …)"
        )
    return _manifest()["datasets"][timeframe]


def bundled_symbols(timeframe: str = "8h") -> list[str]:
    """Return the symbols with bundled spot, perp and funding history for ``timeframe``, sorted.

    Spot-only histories (MATICUSDT) are not included: they cannot form a hedge.
    """
    return sorted(sym for sym, entry in _datasets(timeframe).items() if entry["kind"] == "hedge")


def list_bundled() -> list[DatasetInfo]:
    """Return one ``DatasetInfo`` per bundled hedge data set (every timeframe), from the manifest."""
    out: list[DatasetInfo] = []
    for timeframe in BUNDLED_TIMEFRAMES:
        for symbol in bundled_symbols(timeframe):
            entry = _datasets(timeframe)[symbol]
            out.append(
                DatasetInfo(
                    exchange=BUNDLED_EXCHANGE,
                    symbol=symbol,
                    timeframe=timeframe,
                    first_bar=pd.Timestamp(entry["first_bar_ts_ms"], unit="ms", tz="UTC"),
                    last_bar=pd.Timestamp(entry["last_bar_ts_ms"], unit="ms", tz="UTC"),
                    bars=int(entry["bars"]),
                    funding_settlements=int(entry["funding_settlements"]),
                    source="bundled",
                )
            )
    return out



def read_frame(path: Path, ts_column: str) -> pd.DataFrame:
    """Read a Parquet file whose ``ts_column`` holds UTC epoch ms into a frame on a UTC index ``ts``."""
    frame = pd.read_parquet(path)
    ts_ms = frame.pop(ts_column).to_numpy(dtype=np.int64)
    frame.index = utc_index_from_ms(ts_ms)
    return frame


def load_bundled(symbol: str = "BTCUSDT", timeframe: str = "8h") -> MarketData:
    """Return the bundled bars and funding settlements of ``symbol`` (e.g. ``BTCUSDT``) at ``timeframe``.

    Loads in a few milliseconds (see docs/benchmarks.md). Bars are labelled by open time; the funding
    settled at S belongs to the end of the bar that opened before S (module docstring).

    Raises:
        UnknownSymbolError: if the symbol is not bundled at that timeframe (the message lists those that are).
        InputError: if the timeframe is not bundled.
        DataError: if the symbol has spot history only (MATICUSDT).
    """
    datasets = _datasets(timeframe)
    key = to_bundled_symbol(symbol)
    entry = datasets.get(key)
    if entry is None:
        raise UnknownSymbolError(
            symbol,
            known=bundled_symbols(timeframe),
            hint=f"those are bundled at {timeframe}; download others with perphedge data fetch",
        )
    if entry["kind"] != "hedge":
        raise DataError(
            f"{key} is bundled as spot history only (no perpetual or funding): {entry['notes'][0]}",
            where=key,
        )
    base = market_dir() / BUNDLED_EXCHANGE / timeframe
    bars = read_frame(base / f"{key}.bars.parquet", BAR_TS_COLUMN)
    funding = read_frame(base / f"{key}.funding.parquet", SETTLE_TS_COLUMN)
    return MarketData(
        exchange=BUNDLED_EXCHANGE,
        symbol=key,
        ccxt_symbol=ccxt_perp_symbol(key),
        timeframe=timeframe,
        bars=bars,
        funding=funding,
        source="bundled",
        notes=tuple(entry["notes"]),
    )


def load_bundled_spot(symbol: str, timeframe: str = "8h") -> pd.DataFrame:
    """Return the spot OHLCV bars (``spot_*`` columns) of a bundled symbol, including spot-only MATICUSDT."""
    datasets = _datasets(timeframe)
    key = to_bundled_symbol(symbol)
    entry = datasets.get(key)
    if entry is None:
        raise UnknownSymbolError(symbol, known=sorted(datasets), hint=f"those are bundled at {timeframe}")
    base = market_dir() / BUNDLED_EXCHANGE / timeframe
    if entry["kind"] == "spot":
        return read_frame(base / f"{key}.spot.parquet", BAR_TS_COLUMN)
    bars = read_frame(base / f"{key}.bars.parquet", BAR_TS_COLUMN)
    return bars[[c for c in bars.columns if c.startswith("spot_")]]


# --- building the bundle from the source files (maintainers only; needs the source data) -----------


@dataclass(frozen=True, slots=True, kw_only=True)
class HourlyFundingEvents:
    """Funding settlements recovered from an hourly file whose rate column is forward-filled."""

    settle_ts_ms: np.ndarray  # int64, the true settlement times (from the 8-hour funding file)
    rate_per_interval: np.ndarray  # float64, read from the hourly forward-filled column
    mark_price: np.ndarray  # float64, hourly mark price at the settlement (NaN when unknown)


def funding_events_from_forward_filled(
    *,
    hour_open_ts_ms: np.ndarray,
    forward_filled_rate: np.ndarray,
    mark_close: np.ndarray,
    settle_ts_ms: np.ndarray,
) -> HourlyFundingEvents:
    """Recover settlement events from an hourly column that forward-fills the settled rate.

    Row t of ``forward_filled_rate`` holds the last rate settled at or before t (source README), so the
    rate settled at S is the value in the row opening at S rounded to the hour. A refresh with an equal
    rate is invisible in such a column, which is why the settlement *times* come from ``settle_ts_ms``
    (the exchange's ``fundingTime`` list) and only the rates are read here. The mark price at S is the
    ``mark_close`` of the hour that ends at S (the bar opened at S − 1 h). Only settlements inside the
    hourly coverage are returned.

    Raises:
        DataError: if a settlement's hour is missing from the hourly rows or its forward-filled value is
            NaN (the rate cannot be recovered without guessing).
    """
    hours = np.asarray(hour_open_ts_ms, dtype=np.int64)
    settle = np.asarray(settle_ts_ms, dtype=np.int64)
    settle_hour = np.rint(settle / MS_PER_HOUR).astype(np.int64) * MS_PER_HOUR
    inside = (settle_hour >= hours[0]) & (settle_hour <= hours[-1])
    settle, settle_hour = settle[inside], settle_hour[inside]
    row = np.searchsorted(hours, settle_hour)
    missing = hours[np.minimum(row, hours.size - 1)] != settle_hour
    if np.any(missing):
        i = int(np.argmax(missing))
        raise DataError(
            f"the hourly rows have no hour opening at the settlement {pd.Timestamp(settle[i], unit='ms', tz='UTC')}; "
            "the rate settled then cannot be recovered from a forward-filled column",
            where="funding",
        )
    rates = np.asarray(forward_filled_rate, dtype=float)[row]
    if np.any(np.isnan(rates)):
        i = int(np.argmax(np.isnan(rates)))
        raise DataError(
            f"the forward-filled funding rate is NaN at the settlement {pd.Timestamp(settle[i], unit='ms', tz='UTC')}; "
            "start the hourly funding after its leading NaN rows",
            where="funding",
        )
    marks = np.full(settle.size, np.nan)
    prev_row = row - 1
    has_prev = (prev_row >= 0) & (hours[np.maximum(prev_row, 0)] == settle_hour - MS_PER_HOUR)
    marks[has_prev] = np.asarray(mark_close, dtype=float)[prev_row[has_prev]]
    return HourlyFundingEvents(settle_ts_ms=settle, rate_per_interval=rates, mark_price=marks)


def _write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from perphedge.data.cache import write_atomic

    table = pa.Table.from_pandas(frame, preserve_index=False)
    write_atomic(
        path,
        lambda tmp: pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=19,  # smallest of the levels tried; read speed is the same (docs/benchmarks.md)
            use_dictionary=False,  # prices rarely repeat: plain + zstd is ~30 % smaller than dictionary pages
        ),
    )


def _source_ohlcv(path: Path, prefix: str) -> pd.DataFrame:
    raw = pd.read_parquet(path)
    ts_ms = time_index(raw, str(path)).as_unit("ms").asi8
    return pd.DataFrame(
        {
            f"{prefix}_open": raw["open"].to_numpy(float),
            f"{prefix}_high": raw["high"].to_numpy(float),
            f"{prefix}_low": raw["low"].to_numpy(float),
            f"{prefix}_close": raw["close"].to_numpy(float),
            f"{prefix}_volume_base": raw["volume"].to_numpy(float),
        },
        index=pd.Index(ts_ms, name=BAR_TS_COLUMN),
    )


def _hourly_source(source_dir: Path, symbol: str) -> pd.DataFrame | None:
    asset = symbol.removesuffix("USDT")
    found = sorted((source_dir / "1h").glob(f"binance_{asset}_*.parquet"))
    if not found:
        return None
    raw = pd.read_parquet(found[0])
    ts_ms = (
        raw["timestamp"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    )  # naive = UTC (source README)
    out = pd.DataFrame(index=pd.Index(ts_ms, name=BAR_TS_COLUMN))
    for leg in ("spot", "perp"):
        for field in ("open", "high", "low", "close"):
            out[f"{leg}_{field}"] = raw[f"{field}_{leg}_binance"].to_numpy(float)
    out["mark_close"] = raw["mark_price_binance"].to_numpy(float)
    out["spot_volume_base"] = raw["volume_spot_binance"].to_numpy(float)
    out["perp_volume_base"] = raw["volume_perp_binance"].to_numpy(float)
    out["funding_forward_filled"] = raw["funding_rate_raw_binance"].to_numpy(float)
    return out


def _describe_gaps(missing_ts_ms: np.ndarray, leg_by_ts: dict[int, str]) -> list[str]:
    """Group missing hours into runs and describe each (start, length, which leg had no data)."""
    notes: list[str] = []
    if missing_ts_ms.size == 0:
        return notes
    starts: list[int] = [0, *(np.flatnonzero(np.diff(missing_ts_ms) != MS_PER_HOUR) + 1).tolist()]
    ends = [*starts[1:], missing_ts_ms.size]
    for a, b in zip(starts, ends, strict=True):
        start = pd.Timestamp(missing_ts_ms[a], unit="ms", tz="UTC")
        legs = sorted({leg_by_ts[int(t)] for t in missing_ts_ms[a:b]})
        notes.append(
            f"{start:%Y-%m-%d %H:%M} UTC: {b - a} h without {'/'.join(legs)} data in the source; bars absent (not filled)"
        )
    return notes


def _build_hedge_set(
    *,
    symbol: str,
    timeframe: str,
    rows: pd.DataFrame,
    funding_all: pd.DataFrame,
    hourly: pd.DataFrame | None,
    out_dir: Path,
) -> dict[str, Any]:
    """Trim ``rows`` to the documented range, check it, attach funding and write both files."""
    tf_ms = TIMEFRAME_MS[timeframe]
    notes: list[str] = []
    settle_all = funding_all.index.to_numpy(np.int64)
    interval_all = infer_interval_hours(settle_all)  # on the full history, before trimming
    last_settle_hour = int(np.rint(settle_all[-1] / MS_PER_HOUR)) * MS_PER_HOUR

    price_cols = [
        c for c in rows.columns if c.startswith(("spot_", "perp_")) and not c.endswith("volume_base")
    ]
    complete = rows[price_cols].notna().all(axis=1).to_numpy()
    ts = rows.index.to_numpy(np.int64)
    first_bar = int(ts[np.argmax(complete)])
    # the last bar is the last complete one whose end is covered by a known settlement
    last_bar = int(ts[complete & (ts + tf_ms <= last_settle_hour)][-1])
    if first_bar > int(ts[0]):
        notes.append(
            f"bars start {pd.Timestamp(first_bar, unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC, the first bar where both spot and perp trade"
        )
    in_range = (ts >= first_bar) & (ts <= last_bar)
    rows = rows[in_range]
    ts = ts[in_range]
    incomplete = ~rows[price_cols].notna().all(axis=1).to_numpy()
    if np.any(incomplete):
        if timeframe != "1h":
            raise DataError(
                f"{symbol} {timeframe}: NaN prices inside the bars at {ts[incomplete][:5]}", where=symbol
            )
        leg_by_ts = {}
        for t, spot_ok, perp_ok in zip(
            ts[incomplete],
            rows["spot_close"].notna().to_numpy()[incomplete],
            rows["perp_close"].notna().to_numpy()[incomplete],
            strict=True,
        ):
            leg_by_ts[int(t)] = "/".join(x for x, ok in (("spot", spot_ok), ("perp", perp_ok)) if not ok)
        notes.extend(_describe_gaps(ts[incomplete], leg_by_ts))
    expected = np.arange(first_bar, last_bar + tf_ms, tf_ms, dtype=np.int64)
    if timeframe != "1h" and not np.array_equal(expected, ts):
        raise DataError(f"{symbol} {timeframe}: the bars are not a gap-free {timeframe} grid", where=symbol)

    # compare on the hour: fundingTime carries ms jitter (16:00:00.001 settles the bar ending 16:00)
    settle_hour_all = np.rint(settle_all / MS_PER_HOUR).astype(np.int64) * MS_PER_HOUR
    keep = (settle_hour_all > first_bar) & (settle_hour_all <= last_bar + tf_ms)
    settle = settle_all[keep]
    interval = interval_all[keep]
    rates = funding_all["rate_per_interval"].to_numpy(float)[keep]
    marks = np.full(settle.size, np.nan)
    if hourly is not None:
        events = funding_events_from_forward_filled(
            hour_open_ts_ms=hourly.index.to_numpy(np.int64),
            forward_filled_rate=hourly["funding_forward_filled"].to_numpy(float),
            mark_close=hourly["mark_close"].to_numpy(float),
            settle_ts_ms=settle,
        )
        if not np.array_equal(events.settle_ts_ms, settle):
            raise DataError(
                f"{symbol}: the hourly file does not cover every settlement of the bundled range",
                where=symbol,
            )
        mismatch = events.rate_per_interval != rates
        if np.any(mismatch):
            i = int(np.argmax(mismatch))
            raise DataError(
                f"{symbol}: the hourly funding at {pd.Timestamp(settle[i], unit='ms', tz='UTC')} was "
                f"{events.rate_per_interval[i]!r}, the 8-hour file says {rates[i]!r}",
                where=symbol,
            )
        if timeframe == "1h":
            rates = events.rate_per_interval
        marks = events.mark_price
        notes.append("mark price from the hourly file (mark at each bar's close and at each settlement)")
    else:
        notes.append("mark price unknown for this symbol (mark_close and funding mark_price are NaN)")

    rows = rows[rows[price_cols].notna().all(axis=1)]
    bars = pd.DataFrame(index=rows.index)
    for col in BAR_COLUMNS:
        bars[col] = rows[col].to_numpy(float) if col in rows.columns else np.nan
    funding = pd.DataFrame(
        {"rate_per_interval": rates, "interval_hours": interval, "mark_price": marks},
        index=pd.Index(settle, name=SETTLE_TS_COLUMN),
    )[list(FUNDING_COLUMNS)]
    changes = np.flatnonzero(interval[1:] != interval[:-1]) + 1
    for at in changes:
        notes.append(
            f"funding interval {interval[at - 1]:g} h → {interval[at]:g} h at "
            f"{pd.Timestamp(settle[at], unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC"
        )
    _write_parquet_atomic(bars.reset_index(), out_dir / f"{symbol}.bars.parquet")
    _write_parquet_atomic(funding.reset_index(), out_dir / f"{symbol}.funding.parquet")
    return {
        "kind": "hedge",
        "first_bar_ts_ms": int(bars.index[0]),
        "last_bar_ts_ms": int(bars.index[-1]),
        "bars": len(bars),
        "funding_settlements": len(funding),
        "notes": notes,
    }


def build_bundle(source_dir: Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Convert the source data (``binance-usdm/`` of the PietroC21 download) into the bundled files.

    ``source_dir`` holds ``8h/{funding,perp,spot}/<SYMBOL>.parquet`` and ``1h/binance_<ASSET>_*.parquet``.
    Writes the Parquet files and ``manifest.json`` under ``out_dir`` (default: the package's
    resources/market) and returns the manifest. Maintainers run it once; users never need it:
    ``python -c "from pathlib import Path; from perphedge.data.bundled import build_bundle; build_bundle(Path('…/binance-usdm'))"``.
    """
    out_dir = market_dir() if out_dir is None else out_dir
    datasets: dict[str, dict[str, Any]] = {"8h": {}, "1h": {}}
    for spot_path in sorted((source_dir / "8h" / "spot").glob("*.parquet")):
        symbol = spot_path.stem
        funding_path = source_dir / "8h" / "funding" / f"{symbol}.parquet"
        spot = _source_ohlcv(spot_path, "spot")
        if not funding_path.exists():
            _write_parquet_atomic(
                spot.reset_index(), out_dir / BUNDLED_EXCHANGE / "8h" / f"{symbol}.spot.parquet"
            )
            datasets["8h"][symbol] = {
                "kind": "spot",
                "first_bar_ts_ms": int(spot.index[0]),
                "last_bar_ts_ms": int(spot.index[-1]),
                "bars": len(spot),
                "funding_settlements": 0,
                "notes": [
                    "spot only: Binance renamed MATIC to POL in 2024-09; the POLUSDT perp continues it"
                ],
            }
            continue
        raw_funding = pd.read_parquet(funding_path)
        funding_all = pd.DataFrame(
            {"rate_per_interval": raw_funding["funding_rate"].to_numpy(float)},
            index=pd.Index(
                time_index(raw_funding, str(funding_path)).as_unit("ms").asi8, name=SETTLE_TS_COLUMN
            ),
        )
        perp = _source_ohlcv(source_dir / "8h" / "perp" / f"{symbol}.parquet", "perp")
        rows = spot.join(perp, how="outer")
        hourly = _hourly_source(source_dir, symbol)
        if hourly is not None:
            # mark at an 8-hour bar's close = the hourly mark close of the bar's last hour
            mark_by_hour = hourly["mark_close"]
            last_hour = rows.index.to_numpy(np.int64) + TIMEFRAME_MS["8h"] - MS_PER_HOUR
            rows["mark_close"] = mark_by_hour.reindex(last_hour).to_numpy(float)
        datasets["8h"][symbol] = _build_hedge_set(
            symbol=symbol,
            timeframe="8h",
            rows=rows,
            funding_all=funding_all,
            hourly=hourly,
            out_dir=out_dir / BUNDLED_EXCHANGE / "8h",
        )
        if hourly is not None:
            datasets["1h"][symbol] = _build_hedge_set(
                symbol=symbol,
                timeframe="1h",
                rows=hourly,
                funding_all=funding_all,
                hourly=hourly,
                out_dir=out_dir / BUNDLED_EXCHANGE / "1h",
            )
    manifest = {
        "format": 1,
        "exchange": BUNDLED_EXCHANGE,
        "source": "github.com/PietroC21/Crypto-PerpetualFutures (MIT), see README.md",
        "datasets": datasets,
    }
    from perphedge.data.cache import write_bytes_atomic

    write_bytes_atomic((json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(), out_dir / MANIFEST_NAME)
    _manifest.cache_clear()
    return manifest
