"""Import a user's own CSV or Parquet files as ``MarketData``, validate them, store them for offline use.

Input (one file each, CSV or Parquet):
- funding: a timestamp column (the settlement time) and a rate column (``funding_rate``), optionally
  a mark-price column; rates as fractions (0.0001 = 0.01 %) or, with ``rate_unit="percent"``, percent;
- spot and perp prices: a timestamp column (the bar OPEN time) and open/high/low/close, optionally volume.

Timestamps are ISO 8601 text, datetime columns, or epoch numbers (milliseconds, or seconds with
``epoch_unit="s"``). Text or datetimes without a timezone are refused unless ``assume_utc`` says they
are UTC or ``timezone`` names their zone (IANA, e.g. ``Europe/Berlin``; daylight-saving times that are
ambiguous or do not exist are errors, not guesses); explicit offsets are converted to UTC and win over
``timezone``; epoch numbers are UTC by definition. Nothing is sorted, de-duplicated, filled or clipped:
problems raise ``DataError`` naming the file, the row's time and the fix. The only trimming is the
opt-in ``trim_to_overlap``: bars where only one of spot/perp exists at the start or end.

Stored layout (``<data_dir>/import/<exchange>/<SYMBOL>/<timeframe>/``): ``bars-<digest>.parquet``,
``funding-<digest>.parquet`` and ``meta.json`` naming them. ``meta.json`` is written last with
``os.replace``, so a reader sees either the previous complete set or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perphedge.data.bundled import (
    BAR_TS_COLUMN,
    SETTLE_TS_COLUMN,
    ccxt_perp_symbol,
    read_frame,
    to_bundled_symbol,
)
from perphedge.data.cache import write_bytes_atomic
from perphedge.data.schema import (
    BAR_COLUMNS,
    FUNDING_COLUMNS,
    TIMEFRAME_MS,
    DatasetInfo,
    MarketData,
    time_index,
)
from perphedge.data.validate import validate_market
from perphedge.errors import DataError, InputError
from perphedge.mechanics.funding import (
    SETTLEMENT_JITTER_TOLERANCE_MS,
    STANDARD_INTERVALS_HOURS,
    infer_interval_hours,
)
from perphedge.units import MS_PER_HOUR, percent_to_fraction

IMPORT_DIR_NAME = "import"
META_NAME = "meta.json"
RATE_UNITS: tuple[str, ...] = ("fraction", "percent")
EPOCH_UNITS: tuple[str, ...] = ("ms", "s")
# epoch values of 2009-01-01 … 2100-01-01, to tell a wrong epoch unit from a right one
_EPOCH_MS_RANGE = (1_230_768_000_000, 4_102_444_800_000)
# names that are safe as one directory level (no empty name, no '..', no '/')
_EXCHANGE_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")
_SYMBOL_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnNames:
    """Names of the columns to read; the defaults are the documented ones."""

    timestamp: str = "timestamp"
    funding_rate: str = "funding_rate"
    mark_price: str | None = None
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str | None = "volume"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRequest:
    """What to import: the three files, the names they go under and how to read them."""

    exchange: str
    symbol: str
    timeframe: str
    funding_path: Path
    spot_path: Path
    perp_path: Path
    columns: ColumnNames = field(default_factory=ColumnNames)
    rate_unit: str = "fraction"
    assume_utc: bool = False
    timezone: str | None = None  # IANA zone of naive timestamps; assume_utc is timezone="UTC"
    epoch_unit: str = "ms"
    trim_to_overlap: bool = False

    def naive_timezone(self) -> str | None:
        """Return the zone naive timestamps are read in (None: refuse them).

        Raises:
            InputError: if ``timezone`` is not a known IANA zone, or contradicts ``assume_utc``.
        """
        if self.timezone is None:
            return "UTC" if self.assume_utc else None
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as e:
            raise InputError(
                f"timezone {self.timezone!r} is not an IANA time zone name; use e.g. UTC, Europe/Berlin, Asia/Tokyo"
            ) from e
        if self.assume_utc and self.timezone != "UTC":
            raise InputError(
                f"--assume-utc and --timezone {self.timezone} contradict each other; give only one of them"
            )
        return self.timezone


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """The imported data, where it was stored, and the validation warnings."""

    market: MarketData
    stored_dir: Path
    warnings: tuple[str, ...]


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file.

    Raises:
        InputError: if the file does not exist or has another extension.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file {str(path)!r} does not exist")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        kind = "Parquet"
    elif name.endswith((".csv", ".csv.gz")):
        kind = "CSV"
    else:
        raise InputError(
            f"file {str(path)!r} is neither CSV (.csv, .csv.gz) nor Parquet (.parquet, .pq); convert it"
        )
    try:
        frame = pd.read_parquet(path) if kind == "Parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError as e:
        raise DataError("the file is empty; export the data again", where=str(path)) from e
    except (OSError, ValueError, UnicodeError, pd.errors.ParserError) as e:
        # pyarrow's ArrowInvalid is a ValueError; the reason is kept on one line
        reason = " ".join(str(e).split())
        raise DataError(
            f"could not be read as {kind} ({reason}); check that it is a "
            f"{'UTF-8 CSV' if kind == 'CSV' else kind} file and not truncated",
            where=str(path),
        ) from e
    if frame.empty:
        raise DataError(
            f"the file has no data rows (columns: {', '.join(map(str, frame.columns)) or 'none'}); "
            "export the data again",
            where=str(path),
        )
    return frame


def _column(frame: pd.DataFrame, name: str, path: Path) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    if frame.index.name == name:
        return frame.index.to_series(index=pd.RangeIndex(len(frame)))
    raise DataError(
        f"there is no column {name!r}; the columns are {', '.join(map(str, frame.columns))}; "
        "name the right one with the --…-column options",
        where=str(path),
    )


def parse_timestamps(
    values: pd.Series, *, path: Path, assume_utc: bool, epoch_unit: str, timezone: str | None = None
) -> pd.DatetimeIndex:
    """Return tz-aware UTC times from ISO text, datetimes or epoch numbers; never guess a timezone.

    Naive text or datetimes are read in ``timezone`` (an IANA name) or, with ``assume_utc``, in UTC;
    otherwise they are refused.

    Raises:
        DataError: on unparseable values, naive times without ``assume_utc``/``timezone``, local times
            that daylight saving makes ambiguous or non-existent, or epoch numbers outside 2009…2100 in
            the given unit (the message suggests the other unit).
    """
    if epoch_unit not in EPOCH_UNITS:
        raise InputError(f"epoch unit {epoch_unit!r} is not one of {', '.join(EPOCH_UNITS)}")
    if values.isna().any():
        row = int(np.argmax(values.isna().to_numpy()))
        raise DataError(f"the timestamp in row {row + 1} is empty", where=str(path))
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float)
        if np.any(numbers != np.floor(numbers)):
            raise DataError("epoch timestamps must be whole numbers of ms (or s)", where=str(path))
        as_ms = numbers * (1000.0 if epoch_unit == "s" else 1.0)
        low, high = _EPOCH_MS_RANGE
        outside = (as_ms < low) | (as_ms > high)
        if outside.any():
            other = "s" if epoch_unit == "ms" else "ms"
            raise DataError(
                f"epoch timestamp {int(numbers[np.argmax(outside)])} is not a date between 2009 and 2100 in {epoch_unit}; "
                f"if the file counts in {'seconds' if other == 's' else 'milliseconds'}, pass --epoch-unit {other}",
                where=str(path),
            )
        return pd.DatetimeIndex(as_ms.astype(np.int64).astype("datetime64[ms]")).tz_localize("UTC")
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.DatetimeIndex(values)
    else:
        try:
            stamps = pd.DatetimeIndex(pd.to_datetime(values.astype(str), format="ISO8601"))
        except (ValueError, TypeError) as e:
            if "mixed timezones" in str(e).lower() or "tz-naive and tz-aware" in str(e).lower():
                raise DataError(
                    "timestamps mix values with and without a timezone; give all of them in UTC",
                    where=str(path),
                ) from e
            try:  # mixed explicit offsets: convert each to UTC
                stamps = pd.DatetimeIndex(pd.to_datetime(values.astype(str), format="ISO8601", utc=True))
                if not values.astype(str).str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).all():
                    raise DataError(
                        "timestamps mix values with and without a timezone; give all of them in UTC",
                        where=str(path),
                    ) from e
            except (ValueError, TypeError) as e2:
                # pandas appends lines of advice about its own arguments: keep its first sentence
                first_reason = (
                    str(e2).split(". You might")[0].splitlines()[0] if str(e2) else type(e2).__name__
                )
                raise DataError(
                    f"timestamps are not ISO 8601 dates or epoch numbers ({first_reason}); write them as "
                    "2024-01-01T08:00Z or as epoch ms/s in every row",
                    where=str(path),
                ) from e2
    if stamps.tz is None:
        zone = timezone if timezone is not None else ("UTC" if assume_utc else None)
        if zone is None:
            raise DataError(
                f"timestamps such as {stamps[0].isoformat()} have no timezone; if they are UTC pass --assume-utc, "
                "if they are local times name the zone (--timezone Europe/Berlin), or write them with their "
                "offset (e.g. 2024-01-01T08:00+02:00)",
                where=str(path),
            )
        local = stamps.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        unclear = np.asarray(local.isna())
        if unclear.any():
            row = int(np.argmax(unclear))
            raise DataError(
                f"the local time {stamps[row].isoformat()} (row {row + 1}) is ambiguous or does not exist in {zone} "
                f"(a daylight-saving change; {int(unclear.sum())} such row(s)); write the timestamps in UTC or "
                "with their offset",
                where=str(path),
            )
        stamps = local
    return stamps.tz_convert("UTC").as_unit("ms")


def _check_order(index: pd.DatetimeIndex, path: Path) -> None:
    ts = index.asi8
    step = np.diff(ts)
    if np.any(step == 0):
        i = int(np.argmax(step == 0)) + 1
        raise DataError(
            f"duplicate timestamp {index[i].isoformat()} (rows {i} and {i + 1}); remove the duplicate rows",
            where=str(path),
        )
    if np.any(step < 0):
        i = int(np.argmax(step < 0)) + 1
        raise DataError(
            f"timestamps are not increasing: row {i + 1} ({index[i].isoformat()}) comes after row {i} "
            f"({index[i - 1].isoformat()}); sort the file by time",
            where=str(path),
        )


def _numbers(series: pd.Series, name: str, path: Path) -> np.ndarray:
    try:
        return pd.to_numeric(series, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as e:
        raise DataError(f"column {name!r} holds values that are not numbers ({e})", where=str(path)) from e


def read_price_file(path: Path, prefix: str, request: ImportRequest) -> pd.DataFrame:
    """Return ``<prefix>_open/high/low/close/volume_base`` on a UTC index from a user's price file."""
    frame = read_table(path)
    cols = request.columns
    index = parse_timestamps(
        _column(frame, cols.timestamp, path),
        path=path,
        assume_utc=request.assume_utc,
        epoch_unit=request.epoch_unit,
        timezone=request.naive_timezone(),
    )
    _check_order(index, path)
    out = pd.DataFrame(index=pd.DatetimeIndex(index, name="ts"))
    for field_name, column in (
        ("open", cols.open),
        ("high", cols.high),
        ("low", cols.low),
        ("close", cols.close),
    ):
        out[f"{prefix}_{field_name}"] = _numbers(_column(frame, column, path), column, path)
    if cols.volume is not None and cols.volume in frame.columns:
        out[f"{prefix}_volume_base"] = _numbers(frame[cols.volume], cols.volume, path)
    else:
        out[f"{prefix}_volume_base"] = np.nan
    return out


def _check_timeframe_matches(index: pd.Index, timeframe: str, path: Path) -> None:
    """Refuse bars of which no two are one ``timeframe`` apart: the files hold another bar length.

    Gaps are the validator's warnings; a file in which every bar is a gap is a wrong --timeframe.
    """
    ts = pd.DatetimeIndex(index).as_unit("ms").asi8
    if ts.size < 2:
        return
    closest_ms = int(np.diff(ts).min())
    if closest_ms > TIMEFRAME_MS[timeframe]:
        fitting = [name for name, ms in TIMEFRAME_MS.items() if ms == closest_ms]
        fix = (
            f"pass --timeframe {fitting[0]}"
            if fitting
            else "pass the bar length of the file with --timeframe"
        )
        raise DataError(
            f"no two bars are {timeframe} apart (the closest are {closest_ms / MS_PER_HOUR:g} h apart), so the "
            f"file does not hold {timeframe} bars; {fix}",
            where=str(path),
        )


def _spacing_problem(index: pd.DatetimeIndex) -> str | None:
    """Describe, with times and row numbers, the first settlement spacing that is no funding interval.

    The rule is ``infer_interval_hours``'s (whole hours within the ms jitter, one of the standard
    intervals); this only words its failure for a user's file.
    """
    ts = index.as_unit("ms").asi8
    if ts.size < 2:
        return None
    spacing = np.diff(ts)
    hours = np.rint(spacing / MS_PER_HOUR)
    bad = (np.abs(spacing - hours * MS_PER_HOUR) > SETTLEMENT_JITTER_TOLERANCE_MS) | ~np.isin(
        hours, STANDARD_INTERVALS_HOURS
    )
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    gap_h = spacing[i] / MS_PER_HOUR
    allowed = ", ".join(f"{h:g}" for h in STANDARD_INTERVALS_HOURS)
    what = (
        "a gap: settlements are missing between them (or the times are shifted: check the timezone)"
        if gap_h > max(STANDARD_INTERVALS_HOURS)
        else "not a funding interval"
    )
    more = f" ({int(bad.sum())} such spacings in all)" if bad.sum() > 1 else ""
    return (
        f"settlements {index[i].isoformat()} (row {i + 1}) and {index[i + 1].isoformat()} (row {i + 2}) are "
        f"{gap_h:g} h apart, which is {what}{more}; intervals are {allowed} h. Add the missing settlements "
        "from the exchange (perphedge data fetch); nothing is filled in"
    )


def read_funding_file(request: ImportRequest) -> pd.DataFrame:
    """Return the funding settlements (``FUNDING_COLUMNS``) of a user's funding file.

    Raises:
        DataError: on unparseable, unsorted or duplicate times, non-numeric rates, or gaps between
            settlements (from ``infer_interval_hours``).
    """
    if request.rate_unit not in RATE_UNITS:
        raise InputError(f"rate unit {request.rate_unit!r} is not one of {', '.join(RATE_UNITS)}")
    path = request.funding_path
    frame = read_table(path)
    cols = request.columns
    index = parse_timestamps(
        _column(frame, cols.timestamp, path),
        path=path,
        assume_utc=request.assume_utc,
        epoch_unit=request.epoch_unit,
        timezone=request.naive_timezone(),
    )
    _check_order(index, path)
    rates = _numbers(_column(frame, cols.funding_rate, path), cols.funding_rate, path)
    if request.rate_unit == "percent":
        rates = percent_to_fraction(rates)
    try:
        hours = infer_interval_hours(index.asi8)
    except DataError as e:
        raise DataError(_spacing_problem(index) or str(e), where=str(path)) from e
    marks = (
        _numbers(_column(frame, cols.mark_price, path), cols.mark_price, path)
        if cols.mark_price is not None
        else np.full(len(index), np.nan)
    )
    return pd.DataFrame(
        {"rate_per_interval": rates, "interval_hours": hours, "mark_price": marks},
        index=pd.DatetimeIndex(index, name="ts"),
    )[list(FUNDING_COLUMNS)]


def _check_same_bar_times(
    index: pd.DatetimeIndex, in_spot: np.ndarray, in_perp: np.ndarray, request: ImportRequest
) -> None:
    """Raise when, inside their common period, one price file has a bar time the other lacks."""
    problems = []
    for have, lack, missing in (
        (request.perp_path, request.spot_path, ~in_spot),
        (request.spot_path, request.perp_path, ~in_perp),
    ):
        if missing.any():
            where = index[missing]
            shown = ", ".join(ts.isoformat() for ts in where[:5])
            more = f" and {len(where) - 5} more" if len(where) > 5 else ""
            problems.append(f"{lack} has no bar at {shown}{more} where {have} has one")
    if problems:
        raise DataError(
            "spot and perp are misaligned: "
            + "; ".join(problems)
            + ". Both files need the same bar open times: add the missing bars (from the exchange) or remove "
            "the extra ones in both files; nothing is filled in"
        )


def build_imported_market(request: ImportRequest) -> tuple[MarketData, list[str]]:
    """Read and join the three files into ``MarketData``; return it with notes on any opt-in trimming.

    Raises:
        InputError: on an unknown timeframe. DataError: on any problem in the files.
    """
    if request.timeframe not in TIMEFRAME_MS:
        raise InputError(f"timeframe {request.timeframe!r} is not one of {', '.join(TIMEFRAME_MS)}")
    check_dataset_names(request.exchange, request.symbol)
    spot = read_price_file(request.spot_path, "spot", request)
    perp = read_price_file(request.perp_path, "perp", request)
    for path, frame in ((request.spot_path, spot), (request.perp_path, perp)):
        _check_timeframe_matches(frame.index, request.timeframe, path)
    funding = read_funding_file(request)
    bars = spot.join(perp, how="outer")
    notes: list[str] = []
    # which bar times each file has a row for (a NaN price in a row is the validator's business)
    in_spot, in_perp = bars.index.isin(spot.index), bars.index.isin(perp.index)
    both = in_spot & in_perp
    if not both.any():
        raise DataError(
            f"the spot file ({request.spot_path}) and the perp file ({request.perp_path}) share no bar time; "
            "they must cover the same period on the same bar grid"
        )
    first, last = int(np.argmax(both)), len(both) - 1 - int(np.argmax(both[::-1]))
    if (first > 0 or last < len(both) - 1) and request.trim_to_overlap:
        notes.append(
            f"trimmed {first} bar(s) before {bars.index[first].isoformat()} and {len(both) - 1 - last} bar(s) after "
            f"{bars.index[last].isoformat()} where only one of spot/perp exists (--trim-to-overlap)"
        )
        bars = bars.iloc[first : last + 1]
    elif first > 0 or last < len(both) - 1:
        raise DataError(
            f"spot and perp cover different periods: both exist only from {bars.index[first].isoformat()} to "
            f"{bars.index[last].isoformat()} ({first} bar(s) before and {len(both) - 1 - last} after have one leg only); "
            "cut the files to the common period or pass --trim-to-overlap"
        )
    _check_same_bar_times(
        time_index(bars, "the joined spot and perp bars")[first : last + 1],
        in_spot[first : last + 1],
        in_perp[first : last + 1],
        request,
    )
    for col in BAR_COLUMNS:
        if col not in bars.columns:
            bars[col] = np.nan
    bars = bars[list(BAR_COLUMNS)]
    symbol = to_bundled_symbol(request.symbol)
    try:
        ccxt_symbol = ccxt_perp_symbol(symbol)
    except InputError:
        ccxt_symbol = request.symbol
    market = MarketData(
        exchange=request.exchange.lower(),
        symbol=symbol,
        ccxt_symbol=ccxt_symbol,
        timeframe=request.timeframe,
        bars=bars,
        funding=funding,
        source="import",
        notes=tuple(notes),
    )
    return market, notes


def check_dataset_names(exchange: str, symbol: str) -> None:
    """Refuse an exchange or symbol that cannot name a data set directory.

    Both become path components under ``<data_dir>/import``: an empty name would store the data one
    level up, and ``..`` or ``/`` would write outside the data directory.

    Raises:
        InputError: naming the bad value and the characters allowed.
    """
    if not _EXCHANGE_NAME.fullmatch(exchange.lower()):
        raise InputError(
            f"--exchange was {exchange!r}; give an exchange id of letters, digits and '_' such as binance, "
            "bybit or okx"
        )
    if not _SYMBOL_NAME.fullmatch(to_bundled_symbol(symbol)):
        raise InputError(
            f"--symbol was {symbol!r}; give a symbol of letters and digits such as BTCUSDT (BTC/USDT and "
            "BTC/USDT:USDT are accepted too)"
        )


def imported_dir(data_dir: Path, exchange: str, symbol: str, timeframe: str) -> Path:
    """Return the directory an imported data set is stored in."""
    check_dataset_names(exchange, symbol)
    return Path(data_dir) / IMPORT_DIR_NAME / exchange.lower() / to_bundled_symbol(symbol) / timeframe


def _frame_bytes(frame: pd.DataFrame, ts_column: str) -> bytes:
    out = frame.copy()
    out.insert(0, ts_column, pd.DatetimeIndex(frame.index).as_unit("ms").asi8)
    buffer = io.BytesIO()
    out.reset_index(drop=True).to_parquet(buffer, compression="zstd", index=False)
    return buffer.getvalue()



def store_imported(market: MarketData, data_dir: Path, *, provenance: dict[str, str]) -> Path:
    """Write ``market`` under ``<data_dir>/import/…`` atomically; return its directory.

    The Parquet files carry a content digest in their name; ``meta.json`` naming them is replaced last.
    Files of the previous version are removed after the switch.
    """
    target = imported_dir(data_dir, market.exchange, market.symbol, market.timeframe)
    target.mkdir(parents=True, exist_ok=True)
    bars_bytes = _frame_bytes(market.bars, BAR_TS_COLUMN)
    funding_bytes = _frame_bytes(market.funding, SETTLE_TS_COLUMN)
    names = {
        "bars": f"bars-{hashlib.sha256(bars_bytes).hexdigest()[:16]}.parquet",
        "funding": f"funding-{hashlib.sha256(funding_bytes).hexdigest()[:16]}.parquet",
    }
    write_bytes_atomic(bars_bytes, target / names["bars"])
    write_bytes_atomic(funding_bytes, target / names["funding"])
    meta = {
        "format": 1,
        "exchange": market.exchange,
        "symbol": market.symbol,
        "ccxt_symbol": market.ccxt_symbol,
        "timeframe": market.timeframe,
        "files": names,
        "first_bar_ts_ms": int(market.bars.index[0].value // 1_000_000),
        "last_bar_ts_ms": int(market.bars.index[-1].value // 1_000_000),
        "bars": len(market.bars),
        "funding_settlements": len(market.funding),
        "notes": list(market.notes),
        "provenance": provenance,
    }
    write_bytes_atomic((json.dumps(meta, indent=1, sort_keys=True) + "\n").encode(), target / META_NAME)
    for stale in target.glob("*.parquet"):
        if stale.name not in names.values():
            stale.unlink()
    return target


def import_market(request: ImportRequest, data_dir: Path) -> ImportResult:
    """Read, validate and store a user's data set; return it with the validation warnings.

    Raises:
        DataError: listing every problem (``perphedge.data.validate``); nothing is stored then.
    """
    market, _ = build_imported_market(request)
    warnings = validate_market(market)
    try:
        stored = store_imported(
            market,
            data_dir,
            provenance={
                "funding": str(request.funding_path),
                "spot": str(request.spot_path),
                "perp": str(request.perp_path),
                "rate_unit": request.rate_unit,
                "assume_utc": str(request.assume_utc),
                "timezone": str(request.naive_timezone()),
            },
        )
    except OSError as e:
        raise InputError(
            f"could not store the data set under {str(data_dir)!r} ({e.strerror or e}: {e.filename or data_dir}); "
            "give a writable directory with --data-dir or $PERPHEDGE_DATA_DIR"
        ) from e
    return ImportResult(market=market, stored_dir=stored, warnings=tuple(warnings))


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(
            f"the imported data's meta.json is not valid JSON ({e}); import the files again", where=str(path)
        ) from e


def _damaged(target: Path, error: Exception) -> DataError:
    # a meta.json without its keys, or a Parquet file it names that is missing or garbled
    reason = " ".join(str(error).split()) or type(error).__name__
    return DataError(
        f"the imported data set is damaged ({type(error).__name__}: {reason}); import the files again with "
        "perphedge data import (or delete this directory)",
        where=str(target),
    )


def load_imported(exchange: str, symbol: str, timeframe: str, data_dir: Path) -> MarketData | None:
    """Return the imported data set, or None when nothing was imported under these names."""
    try:
        target = imported_dir(data_dir, exchange, symbol, timeframe)
    except InputError:  # a name no import could have been stored under (empty, '..'): nothing there
        return None
    meta = _read_meta(target / META_NAME)
    if meta is None:
        return None
    try:
        return MarketData(
            exchange=meta["exchange"],
            symbol=meta["symbol"],
            ccxt_symbol=meta["ccxt_symbol"],
            timeframe=meta["timeframe"],
            bars=read_frame(target / meta["files"]["bars"], BAR_TS_COLUMN),
            funding=read_frame(target / meta["files"]["funding"], SETTLE_TS_COLUMN),
            source=f"import:{target}",
            notes=tuple(meta.get("notes", ())),
        )
    except InputError:
        raise
    except (KeyError, TypeError, AttributeError, OSError, ValueError) as e:  # pyarrow's errors are these
        raise _damaged(target, e) from e


def list_imported(data_dir: Path) -> list[DatasetInfo]:
    """Return one ``DatasetInfo`` per imported data set under ``data_dir``."""
    root = Path(data_dir) / IMPORT_DIR_NAME
    out: list[DatasetInfo] = []
    for meta_path in sorted(root.glob(f"*/*/*/{META_NAME}")):
        meta = _read_meta(meta_path)
        if meta is None:
            continue
        try:
            info = DatasetInfo(
                exchange=meta["exchange"],
                symbol=meta["symbol"],
                timeframe=meta["timeframe"],
                first_bar=pd.Timestamp(meta["first_bar_ts_ms"], unit="ms", tz="UTC"),
                last_bar=pd.Timestamp(meta["last_bar_ts_ms"], unit="ms", tz="UTC"),
                bars=int(meta["bars"]),
                funding_settlements=int(meta["funding_settlements"]),
                source=f"import:{meta_path.parent}",
            )
        except InputError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise _damaged(meta_path.parent, e) from e
        out.append(info)
    return out
