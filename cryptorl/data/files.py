"""Import a folder of CSV / Parquet files into the stores.

Recognised layouts (the formats of ``../shared/data``):

* **Generic OHLCV**, with a header: a time column (``datetime``, ``date``, ``time``, ``timestamp``,
  ``open_time``, or the first column) and ``open, high, low, close, volume``; extra columns are
  ignored. File name ``<TICKER>-USD_<interval>.csv``, ``<TICKER>USDT_<interval>.csv``,
  ``<TICKER>_<interval>.parquet``, ... gives the asset and the interval.
* **Binance klines**: the twelve kline fields, with a header (as above) or without one (Binance's
  public dumps: open time in epoch ms, or us since 2025).
* **Metric series**: two columns ``date,value`` without a header, one file per metric; the file
  name (without extension) is the metric and the folder names the asset (its first token:
  ``btc_blockchain_com`` -> ``BTC``) unless ``asset=`` says otherwise. A header-ful CSV or Parquet
  file that is not OHLCV is read as a wide metrics frame (a time column + one column per metric).

Everything found is parsed and validated first (one :class:`DataError` naming the file and the
problem, nothing written), then each file is upserted in its own transaction. Metric series
keep their own dates (e.g. every three days); they are stored at ``metrics_interval`` (default:
``interval`` if given, else ``1d``) with gaps allowed. Zero volumes are kept as they are.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .frames import (
    OHLCV,
    OUTLIER_Z,
    DataError,
    Gap,
    check_outliers,
    find_gaps,
    interval_seconds,
    to_utc_timestamp,
    validate_market,
    validate_metrics,
)
from .onchain import _CM_PREFIX, asset_from_names, read_metrics_table, sniff_text
from .resample import can_resample, resample_market
from .store import DataStore

MAX_INPUT_ENV = "CRYPTORL_MAX_INPUT_MB"
DEFAULT_MAX_INPUT_MB = 512
CSV_SUFFIXES = {".csv", ".txt", ".zip"}  # .zip: Binance's public kline dumps (one CSV inside)
PARQUET_SUFFIXES = {".parquet", ".pq"}
FEATHER_SUFFIXES = {".feather", ".ftr"}  # freqtrade's default data format
JSON_SUFFIXES = {".json"}  # freqtrade's JSON layout: [[open_time_ms, open, high, low, close, volume], ...]
TIME_COLUMNS = ("datetime", "date", "time", "timestamp", "open_time", "opentime", "open time")
BINANCE_KLINE_FIELDS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_asset_volume",
    "num_trades", "taker_buy_base_vol", "taker_buy_quote_vol", "ignore",
]

_NAME_RE = re.compile(
    r"^(?P<base>[A-Za-z0-9]+?)"
    r"(?:[-_ ]?(?i:(?P<quote>USDT|USDC|BUSD|TUSD|FDUSD|USD|EUR|GBP|BTC|ETH)))?"
    r"(?:[-_. ](?P<interval>\d+[mhdw]))?$"
)
# Binance public dumps: BTCUSDT-1h-2024-01.zip (monthly) or BTCUSDT-1h-2024-01-15.zip (daily)
_DUMP_RE = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)-(?P<interval>\d+[mhdw])-\d{4}-\d{2}(?:-\d{2})?$")


@dataclass
class ImportedFile:
    """One file read by :func:`import_path`."""

    path: Path
    kind: str  # "market" or "metrics"
    layout: str  # "ohlcv", "binance-klines", "metric-series", "metrics-table"
    asset: str
    interval: str
    frame: pd.DataFrame = field(repr=False)
    written: int = 0
    gaps: list[Gap] = field(default_factory=list)
    resampled_from: str | None = None  # the file's own interval when it was resampled on import
    incomplete: pd.DatetimeIndex | None = None  # resampled bars built from incomplete windows
    originals: dict[str, str] = field(default_factory=dict)  # metric -> its name in the file
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it was not imported
    paths: list[Path] = field(default_factory=list)  # every file merged into this one (Binance dumps)
    sha256: str = ""  # of the file's content (of the files' hashes for merged dumps)
    replaced: list[str] = field(default_factory=list)  # sources this file replaced in the store

    @property
    def source(self) -> str:
        """The source tag stored with the rows: the file name and its content hash, so a changed file
        with the same name is another source (a conflict that needs ``replace=True``)."""
        return f"file:{self.path.name}#sha256:{self.sha256[:16]}"

    @property
    def rows(self) -> int:
        return len(self.frame)


def max_input_bytes() -> int:
    """The largest input file read: ``$CRYPTORL_MAX_INPUT_MB`` megabytes (default 512)."""
    text = os.environ.get(MAX_INPUT_ENV, "").strip()
    try:
        mb = float(text) if text else DEFAULT_MAX_INPUT_MB
    except ValueError:
        raise DataError(None, f"${MAX_INPUT_ENV}={text!r} is not a number of megabytes") from None
    return int(mb * 2**20)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_name(stem: str) -> tuple[str, str | None, str | None] | None:
    """``"BTC-USD_1d"`` -> ``("BTC", "USD", "1d")``; ``"BTCUSDT_1d"`` -> ``("BTC", "USDT", "1d")``; None if no match."""
    dump = _DUMP_RE.match(stem.strip())
    if dump:
        named = parse_name(dump.group("symbol"))
        return (named[0], named[1], dump.group("interval")) if named else None
    m = _NAME_RE.match(stem.strip())
    if not m:
        return None
    quote = m.group("quote")
    return m.group("base").upper(), quote.upper() if quote else None, m.group("interval")


def folder_asset(folder: Path) -> str:
    """The asset a folder of metric series names: its first alphanumeric token, upper-cased."""
    token = re.split(r"[^A-Za-z0-9]+", folder.name.strip())[0]
    return token.upper()


def infer_interval(index: pd.DatetimeIndex) -> str | None:
    """The most common spacing of an index as an interval string (``"1d"``, ``"1h"``, ...)."""
    if len(index) < 2:
        return None
    seconds = int(pd.Series(np.diff(index.asi8)).mode().iloc[0] // 10**9)
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds > 0:
            return f"{seconds // size}{unit}"
    return None


def _has_header(first_row: Iterable) -> bool:
    """A first row with a cell that is neither a number nor a date is a header."""
    for cell in first_row:
        text = str(cell).strip()
        try:
            float(text)
            continue
        except ValueError:
            pass
        try:
            pd.Timestamp(text)
            continue
        except (ValueError, TypeError):
            return True
    return False


def _epoch_index(values: pd.Series) -> pd.DatetimeIndex:
    v = pd.to_numeric(values, errors="raise").astype("int64")
    unit = "us" if v.abs().max() > 10**14 else "ms"  # Binance dumps switched to microseconds in 2025
    return pd.DatetimeIndex(pd.to_datetime(v, unit=unit, utc=True), name="time")


def _with_time_index(df: pd.DataFrame) -> pd.DataFrame:
    if isinstance(df.index, pd.DatetimeIndex):
        return df
    cols = {str(c).strip().lower(): c for c in df.columns}
    name = next((cols[c] for c in TIME_COLUMNS if c in cols), df.columns[0])
    times = df[name]
    out = df.drop(columns=[name])
    if isinstance(times.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(times):
        out.index = pd.DatetimeIndex(times, name="time")  # Feather / Parquet timestamps: already parsed
    elif pd.api.types.is_numeric_dtype(times) and not pd.api.types.is_bool_dtype(times):
        out.index = _epoch_index(times)
    else:
        out.index = pd.Index(times.astype(str).str.strip().to_numpy(), name="time")
    return out


def _read_table(path: Path) -> tuple[pd.DataFrame, str]:
    """Read one file into a frame indexed by time; return it and its layout name."""
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        import json

        rows = json.loads(path.read_text())
        if not (isinstance(rows, list) and rows and all(isinstance(r, list) and len(r) == 6 for r in rows[:5])):
            raise DataError(None, "unrecognised JSON layout (expected freqtrade's [[open_time_ms, open, high, low, "
                                  "close, volume], ...])", str(path))
        df = pd.DataFrame(rows, columns=["time", *OHLCV])
        return _with_time_index(df), "freqtrade"
    if suffix in PARQUET_SUFFIXES or suffix in FEATHER_SUFFIXES:
        df = pd.read_parquet(path) if suffix in PARQUET_SUFFIXES else pd.read_feather(path)
        df.columns = [str(c).strip() for c in df.columns]
        lower = {c.lower() for c in df.columns}
        layout = ("freqtrade" if suffix in FEATHER_SUFFIXES else "ohlcv") if set(OHLCV) <= lower else "metrics-table"
        return (_with_time_index(df) if layout != "metrics-table" else df), layout
    if suffix != ".zip":
        encoding, sep = sniff_text(path)
        if encoding != "utf-8-sig" or sep != ",":  # UTF-16 / tab-separated chart exports: metrics tables
            df = pd.read_csv(path, encoding=encoding, sep=sep)
            return df, "metrics-table"
    head = pd.read_csv(path, header=None, nrows=1, dtype=str)
    if head.empty:
        raise DataError(None, "file is empty", str(path))
    if _has_header(head.iloc[0].tolist()):
        df = pd.read_csv(path, skipinitialspace=True, encoding="utf-8-sig", dtype=str)
        if df.shape[1] == 1:
            raise DataError(None, f"only one column ({df.columns[0]!r}): columns must be separated by commas", str(path))
        df.columns = [str(c).strip() for c in df.columns]
        lower = [c.lower() for c in df.columns]
        if set(OHLCV) <= set(lower):
            layout = "binance-klines" if "close_time" in lower and len(lower) == 12 else "ohlcv"
            return _with_time_index(pd.read_csv(path, skipinitialspace=True, encoding="utf-8-sig")), layout
        return df, "metrics-table"
    df = pd.read_csv(path, header=None, skipinitialspace=True)
    if df.shape[1] == 2:
        df.columns = ["time", path.stem]
        return _with_time_index(df), "metric-series"
    if df.shape[1] == 12:
        df.columns = BINANCE_KLINE_FIELDS
        return _with_time_index(df), "binance-klines"
    if df.shape[1] == 6:
        df.columns = ["time", *OHLCV]
        return _with_time_index(df), "ohlcv"
    raise DataError(None, f"unrecognised CSV layout: no header and {df.shape[1]} columns "
                          "(expected 2 for a metric series, 6 for OHLCV or 12 for Binance klines)", str(path))


def _locate(err: DataError, path: Path, asset: str | None = None) -> DataError:
    """The same error, naming the asset (if it did not) and the file."""
    where = err.where if err.where and str(path) in err.where else f"{path}" + (f", {err.where}" if err.where else "")
    return DataError(err.asset or asset, err.problem, where)


def read_file(
    path: str | Path,
    *,
    asset: str | None = None,
    interval: str | None = None,
    metrics_interval: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    allow_non_daily: bool = False,
    outliers: str = "warn",
    outlier_z: float = OUTLIER_Z,
) -> ImportedFile:
    """Read and validate one file (nothing is stored). Raises :class:`DataError` naming the file.

    ``include`` / ``exclude`` / ``allow_non_daily`` choose the columns of a metrics table (see
    :func:`cryptorl.data.onchain.read_metrics_table`). Files larger than :func:`max_input_bytes`
    are refused before they are read. Market files are checked for suspicious returns
    (:func:`~cryptorl.data.frames.check_outliers`): ``outliers`` is ``"warn"``, ``"error"`` or ``"ignore"``."""
    path = Path(path)
    named = parse_name(path.stem)
    guess = asset or (named[0] if named else None)
    try:
        size, limit = path.stat().st_size, max_input_bytes()
    except OSError as exc:
        raise DataError(guess, f"cannot read file ({_short(exc)})", str(path)) from None
    if size > limit:
        raise DataError(guess, f"file is {size / 2**20:,.0f} MB, over the {limit / 2**20:,.0f} MB input limit; split it "
                               f"or raise ${MAX_INPUT_ENV}", str(path))
    try:
        frame, layout = _read_table(path)
    except DataError as err:
        raise _locate(err, path, guess) from None
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(guess, f"cannot read file ({_short(exc)})", str(path)) from None
    originals: dict[str, str] = {}
    skipped: dict[str, str] = {}
    if layout == "metric-series":
        who = asset or folder_asset(path.parent)
        iv = metrics_interval or interval or "1d"
        kind = "metrics"
    else:
        # a name with a quote currency (BTC-USD, ETHUSDT) promises prices: hold it to OHLCV columns
        kind = "market" if layout in ("ohlcv", "binance-klines", "freqtrade") or (named and named[1]) else "metrics"
        who = asset or (named[0] if named else None)
        if kind == "metrics":
            table = read_metrics_table(frame, path=path, asset=asset, include=include, exclude=exclude,
                                       allow_non_daily=allow_non_daily)
            frame, originals, skipped = table.frame, table.originals, table.skipped
            who = asset or table.asset or who or folder_asset(path.parent)
        if who is None:
            raise DataError(None, "cannot tell the asset from the file name; pass asset=", str(path))
        iv = (named[2] if named and named[2] else None) or (interval if kind == "market" else (metrics_interval or interval))
    try:
        if kind == "market":
            if iv is None:
                probe = validate_market(frame, who, None)
                iv = infer_interval(probe.index)
                if iv is None:
                    raise DataError(who, "cannot tell the bar interval; put it in the file name (BTC_1d.csv) or pass interval=")
            clean = validate_market(frame, who, iv, allow_gaps=True)
            check_outliers(clean, who, z=outlier_z, action=outliers)
        else:
            iv = iv or "1d"
            clean = validate_metrics(frame, who, iv, allow_gaps=True)
    except DataError as err:
        raise _locate(err, path) from None
    except ValueError as exc:  # a bad interval string
        raise DataError(who, str(exc), str(path)) from None
    gaps = find_gaps(clean.index, iv) if kind == "market" else []
    return ImportedFile(path, kind, layout, who.upper(), iv, clean, gaps=gaps, originals=originals, skipped=skipped,
                        paths=[path], sha256=file_sha256(path))


def resample_file(item: ImportedFile, interval: str) -> ImportedFile:
    """A market file read at its own interval, resampled to ``interval`` (see :mod:`cryptorl.data.resample`)."""
    try:
        res = resample_market(item.frame, item.interval, interval)
    except DataError as err:
        raise DataError(item.asset, err.problem, str(item.path)) from None
    return ImportedFile(item.path, "market", item.layout, item.asset, interval, res.frame,
                        gaps=find_gaps(res.frame.index, interval), resampled_from=item.interval,
                        incomplete=res.incomplete, paths=item.paths, sha256=item.sha256)


def _merge(items: list[ImportedFile]) -> ImportedFile:
    """Binance dumps of one symbol and interval (one file a month or a day) as one file."""
    first = items[0]
    frame = pd.concat([i.frame for i in items]).sort_index()
    try:
        clean = validate_market(frame, first.asset, first.interval, allow_gaps=True)
    except DataError as err:
        raise DataError(first.asset, err.problem, f"{first.path.parent}, {err.where}" if err.where else str(first.path.parent)) from None
    digest = hashlib.sha256("".join(sorted(i.sha256 for i in items)).encode()).hexdigest()
    return ImportedFile(first.path, "market", first.layout, first.asset, first.interval, clean,
                        gaps=find_gaps(clean.index, first.interval), paths=[p for i in items for p in i.paths],
                        sha256=digest)


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def find_files(root: str | Path) -> list[Path]:
    """CSV and Parquet files under ``root`` (a file or a folder, searched recursively), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(None, "no such file or folder", str(root))
    suffixes = CSV_SUFFIXES | PARQUET_SUFFIXES | FEATHER_SUFFIXES | JSON_SUFFIXES
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))


def _maybe_for(path: Path, keep: set[str]) -> bool:
    """Whether a file may hold data of one of the ``keep`` assets (judging by its and its folder's names)."""
    named = parse_name(path.stem)
    mentioned = asset_from_names(path.stem, path.parent.name)
    if {named[0] if named else None, mentioned, folder_asset(path.parent)} & keep:
        return True
    if path.suffix.lower() not in CSV_SUFFIXES:
        return False
    return (named is None and mentioned is None) or bool(set(_prefix_assets(path)) & keep)  # "BTC / ..." columns


def _prefix_assets(path: Path) -> list[str]:
    """The assets a CSV file's ``BTC / Tx Cnt`` column names name (Coin Metrics wide exports)."""
    try:
        columns = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError):
        return []
    return sorted({m.group("asset").upper() for c in columns if (m := _CM_PREFIX.match(str(c)))})


def _pick_by_interval(paths: list[Path], interval: str) -> list[Path]:
    """Among files whose names carry an interval, per asset: those at ``interval``, else those at the
    coarsest interval that can be resampled to it (1h and 4h files for 12h: the 4h ones)."""
    by_asset: dict[str | None, list[tuple[Path, str]]] = {}
    out = []
    for path in paths:
        named = parse_name(path.stem)
        if not (named and named[2]):
            out.append(path)
            continue
        by_asset.setdefault(named[0], []).append((path, named[2]))
    for files in by_asset.values():
        exact = [p for p, iv in files if iv == interval]
        finer = [(p, iv) for p, iv in files if iv != interval and can_resample(iv, interval)]
        if exact:
            out += exact
        elif finer:
            coarsest = max(interval_seconds(iv) for _, iv in finer)
            out += [p for p, iv in finer if interval_seconds(iv) == coarsest]
    return sorted(out)


def read_path(
    root: str | Path,
    *,
    asset: str | None = None,
    assets: Iterable[str] | None = None,
    interval: str | None = None,
    metrics_interval: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    allow_non_daily: bool = False,
    progress: bool = False,
    start=None,
    end=None,
    outliers: str = "warn",
    required: bool = False,
) -> list[ImportedFile]:
    """Read and validate every file under ``root`` (nothing is stored).

    ``required=True`` raises :class:`DataError` when nothing is left to import, saying why for
    each file read (another asset, no rows, ``include`` naming none of the columns, ``exclude``
    naming all, no column a daily observation).

    ``start`` / ``end`` keep only the rows in ``[start, end]`` (bar open times, UTC); ``outliers``
    as in :func:`read_file`.

    ``asset`` names the asset of every file (else file and folder names do); ``assets`` keeps
    only those assets; ``interval`` keeps only market files at that interval, or, where an asset
    has none, resamples its files of the coarsest finer interval that divides it (1h -> 6h; see
    :mod:`cryptorl.data.resample`); files whose name carries no interval are read at it. Binance
    dumps of one symbol (``BTCUSDT-1h-2024-01.zip``, ``...-02.zip``) are merged; two other market
    files for one asset and interval are an error. ``include`` / ``exclude`` / ``allow_non_daily``
    choose the columns of metrics tables.
    """
    if interval is not None:
        interval_seconds(interval)
    lo, hi = to_utc_timestamp(start), to_utc_timestamp(end)
    keep = {a.strip().upper() for a in assets} if assets is not None else None
    paths = find_files(root)
    if keep is not None and asset is None:  # cheap filter on the names before parsing the files
        paths = [p for p in paths if _maybe_for(p, keep)]
    if interval is not None:
        paths = _pick_by_interval(paths, interval)
    out: list[ImportedFile] = []
    left: list[str] = []  # why a file read gave nothing (for the error when nothing is left)
    for path in tqdm(paths, desc="reading files", unit="file", disable=not progress, leave=False):
        named = parse_name(path.stem)
        own = named[2] if named and named[2] else interval
        item = read_file(path, asset=asset, interval=own, metrics_interval=metrics_interval,
                         include=include, exclude=exclude, allow_non_daily=allow_non_daily, outliers=outliers)
        if keep is not None and item.asset not in keep:
            left.append(f"{item.path.name} holds {item.asset} data")
            continue
        if item.kind == "metrics" and not item.frame.shape[1]:
            left.append(_why_no_metrics(item, include, exclude))
            continue  # every column skipped (reported by read_file's caller through skipped)
        if interval is not None and item.kind == "market" and item.interval != interval \
                and not can_resample(item.interval, interval):
            continue
        out.append(item)
    groups: dict[tuple[str, str], list[ImportedFile]] = {}
    for item in out:
        if item.kind == "market":
            groups.setdefault((item.asset, item.interval), []).append(item)
    merged: list[ImportedFile] = [i for i in out if i.kind != "market"]
    for (who, iv), items in groups.items():
        if len(items) > 1:
            if not all(_DUMP_RE.match(i.path.stem) for i in items):
                raise DataError(who, f"two files give {iv} market data: {items[0].path} and {items[1].path}; "
                                     "import one of them (point at a sub-folder or a single file)")
            items = [_merge(items)]
        item = items[0]
        if interval is not None and item.interval != interval:
            item = resample_file(item, interval)
        merged.append(item)
    if lo is not None or hi is not None:
        for item in merged:
            t = item.frame.index
            inside = (t >= lo if lo is not None else True) & (t <= hi if hi is not None else True)
            item.frame = item.frame[inside]
            item.gaps = find_gaps(item.frame.index, item.interval) if item.kind == "market" else []
    if required and not merged:
        who = ", ".join(sorted(keep)) if keep else asset
        if not left:
            raise DataError(who, f"no {interval + ' ' if interval else ''}files for {who or 'any asset'} under {root}")
        more = f" (and {len(left) - 3} more files)" if len(left) > 3 else ""
        raise DataError(who, f"nothing to import from {root}: {'; '.join(left[:3])}{more}")
    return merged


def _why_no_metrics(item: ImportedFile, include: Iterable[str] | None, exclude: Iterable[str] | None) -> str:
    """Why a metrics file gave no column: no rows, include naming none of its columns, exclude
    naming all of them, or no column a daily observation."""
    name = item.path.name
    columns = [c for c in item.skipped] + list(item.originals.values())
    if item.layout == "metrics-table" and not columns:  # include/exclude chose none: see what the file has
        table = read_metrics_table(_read_table(item.path)[0], path=item.path, asset=item.asset)
        if table.frame.empty and set(table.skipped.values()) <= {"empty"}:
            return f"{name} has a header but no rows"
        has = list(table.originals.values()) + [c for c in table.skipped if table.skipped[c] != "empty"]
        shown = ", ".join(has[:8]) + (f" and {len(has) - 8} more" if len(has) > 8 else "")
        if include is not None and has:
            return f"include ({', '.join(include)}) names none of the columns of {name} ({shown})"
        if exclude is not None and table.originals:
            return f"exclude ({', '.join(exclude)}) leaves out every metric column of {name} ({shown})"
    if item.frame.empty and set(item.skipped.values()) <= {"empty"}:
        return f"{name} has a header but no rows"
    reasons = "; ".join(f"{c} ({why})" for c, why in list(item.skipped.items())[:3])
    more = f" and {len(item.skipped) - 3} more" if len(item.skipped) > 3 else ""
    return (
        f"no column of {name} is a daily observation: {reasons}{more}; to import one anyway, name it "
        "with --include and add --allow-non-daily"
    )


def import_path(
    root: str | Path,
    store: DataStore,
    *,
    asset: str | None = None,
    assets: Iterable[str] | None = None,
    interval: str | None = None,
    metrics_interval: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    allow_non_daily: bool = False,
    source: str | None = None,
    progress: bool = False,
    replace: bool = False,
    start=None,
    end=None,
    outliers: str = "warn",
) -> list[ImportedFile]:
    """Read and validate every file under ``root`` (see :func:`read_path`), then upsert each one
    (one transaction per file, source ``file:<name>#sha256:<content hash>``). Returns the files with
    the rows each wrote (0 on a re-import). A file whose content changed since it was imported is
    another source: refused (nothing written) unless ``replace=True``, which replaces the series;
    ``ImportedFile.replaced`` names the sources replaced."""
    items = read_path(root, asset=asset, assets=assets, interval=interval, metrics_interval=metrics_interval,
                      include=include, exclude=exclude, allow_non_daily=allow_non_daily, progress=progress,
                      start=start, end=end, outliers=outliers)
    return store_files(items, store, source=source, progress=progress, replace=replace)


def store_files(items: list[ImportedFile], store: DataStore, *, source: str | None = None, progress: bool = False,
                replace: bool = False) -> list[ImportedFile]:
    """Upsert files read by :func:`read_path` (see :func:`import_path`); every conflict with stored
    sources is found before the first write."""
    for item in items:
        src = source or item.source
        if item.kind == "market":
            item.replaced = store.sources("prices", item.asset, item.interval, exclude=src)
        else:
            item.replaced = sorted({s for m in item.frame.columns
                                    for s in store.sources("metrics", item.asset, item.interval, exclude=src, metric=m)})
        if item.replaced and not replace:
            raise DataError(item.asset, f"{item.interval} {item.kind} from {item.path.name} would replace data stored "
                                        f"from {item.replaced[0]!r} (a different file or source); use --replace "
                                        "(replace=True) or another store", f"store {store.root}")
    for item in tqdm(items, desc="importing", unit="file", disable=not progress, leave=False):
        src = source or item.source
        if item.kind == "market":
            item.written = store.upsert_market(item.asset, item.interval, item.frame, src, replace=replace)
        else:
            item.written = store.upsert_metrics(item.asset, item.interval, item.frame, src, replace=replace,
                                                labels=item.originals)
    return items


__all__ = [
    "ImportedFile",
    "find_files",
    "folder_asset",
    "import_path",
    "infer_interval",
    "parse_name",
    "read_file",
    "read_path",
    "resample_file",
    "store_files",
]
