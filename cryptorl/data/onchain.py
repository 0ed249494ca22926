"""On-chain and social metric files in the layouts they exist in: one column per metric.

:func:`read_metrics_table` turns a frame read from a file (a time column or index + columns) into
a metrics frame, and says what it did with every column. Layouts handled (see ``docs/data.md``):

* **Coin Metrics wide CSV** (``,BTC / Active Addr Cnt,BTC / Tx Cnt,...``): the asset is the
  ``BTC / `` prefix, the metric the rest (``active_addr_cnt``); other columns of such files
  (Google Trends, stock closes, macro series, ``BTC-USD``) are checked like any other column;
* **Coin Metrics community CSV** (``time,BlkCnt,CapMrktCurUSD,...``, leading spreadsheet index
  columns dropped; ``2.3E+015`` numbers);
* **Coin Metrics chart exports**: UTF-16, tab-separated, quoted (``"Time"``, metric);
* **Etherscan exports**: ``"Date(UTC)"`` as M/D/YYYY, ``UnixTimeStamp`` (dropped), ``Value``;
* **Messari exports**: newest row first (sorted here), many empty cells;
* **Wikipedia page views**: ``Date,<Article>``;
* **two-column series** without a header (``date,value``; blockchain.com).

Metric names are normalised to ``snake_case`` (``CapMrktCurUSD`` -> ``cap_mrkt_cur_usd``,
``"Active Addresses Count"`` -> ``active_addresses_count``); a single-metric file whose column is
generic (``Value``, the asset's name) takes the file's name (``export-TxGrowth`` ->
``tx_growth``). The original names are kept in :attr:`MetricsTable.originals`.

Columns that are not daily observations are **skipped** with the reason
(:attr:`MetricsTable.skipped`): values that repeat day after day (monthly Google Trends, macro
series spread over days), series with trading days only (stock closes), or filled over weekends
(exchange rates), asset prices (``BTC-USD``, ``Close_^GSPC``), spreadsheet index columns, empty
columns. Naming such a column in ``include`` raises :class:`DataError` unless
``allow_non_daily=True`` (an explicit opt-in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .frames import DataError

# ticker <-> common name, for telling the asset of a file from its name or folder
ASSET_NAMES: dict[str, str] = {
    "bitcoin": "BTC", "ethereum": "ETH", "chainlink": "LINK", "litecoin": "LTC", "ripple": "XRP", "xrp": "XRP",
    "bitcoincash": "BCH", "ethereumclassic": "ETC", "dogecoin": "DOGE", "cardano": "ADA", "binancecoin": "BNB",
    "bnb": "BNB", "solana": "SOL", "polkadot": "DOT", "polygon": "MATIC", "avalanche": "AVAX", "tron": "TRX",
    "stellar": "XLM", "uniswap": "UNI", "cosmos": "ATOM",
}
TICKERS = frozenset(ASSET_NAMES.values()) | {"USDT", "USDC", "SHIB", "NEAR", "APT", "ARB", "OP", "TON", "FIL", "ICP"}

GENERIC_COLUMNS = {"value", "values", "count", "total", "amount"}
_UNNAMED = re.compile(r"^(unnamed(: ?\d+(\.\d+)?)?|index|level_\d+)?$", re.IGNORECASE)
_PAIR = re.compile(r"^[A-Z0-9]{2,10}[-/]?(USD|USDT|USDC|EUR)$")
_PRICE_PREFIX = re.compile(r"^(close|open|high|low|adj[ _]?close|price)[_ ]", re.IGNORECASE)
_CM_PREFIX = re.compile(r"^\s*(?P<asset>[A-Za-z0-9]{2,10})\s*/\s*(?P<metric>.+)$")
_TIME_NAMES = ("date(utc)", "time", "date", "datetime", "timestamp", "day")
_EPOCH_NAMES = ("unixtimestamp", "unix", "timestamp_unix", "epoch")


@dataclass
class MetricsTable:
    """A metrics frame read from a file, with what happened to each column."""

    asset: str | None
    frame: pd.DataFrame = field(repr=False)
    originals: dict[str, str] = field(default_factory=dict)  # normalised name -> name in the file
    skipped: dict[str, str] = field(default_factory=dict)  # name in the file -> reason


def normalise(name: str) -> str:
    """``"Active Addr Cnt"`` -> ``active_addr_cnt``; ``CapMrktCurUSD`` -> ``cap_mrkt_cur_usd``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name).strip())
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return re.sub(r"_+", "_", text)


def asset_from_names(*names: str) -> str | None:
    """The asset a file or folder name mentions (``messari_xrp`` -> XRP, ``pageviews-Bitcoin`` -> BTC)."""
    for name in names:
        for token in re.split(r"[^A-Za-z0-9]+", str(name)):
            t = token.strip()
            if not t:
                continue
            if t.upper() in TICKERS:
                return t.upper()
            if t.lower() in ASSET_NAMES:
                return ASSET_NAMES[t.lower()]
    return None


def sniff_text(path: Path) -> tuple[str, str]:
    """``(encoding, separator)`` of a text file: UTF-16 (with its BOM) or UTF-8, tab or comma."""
    raw = path.read_bytes()[:4096]
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding = "utf-16"
        text = raw.decode("utf-16", errors="ignore")
    else:
        encoding = "utf-8-sig"
        text = raw.decode("utf-8", errors="ignore")
    first = text.splitlines()[0] if text else ""
    sep = "\t" if first.count("\t") > first.count(",") else ","
    return encoding, sep


def _time_axis(df: pd.DataFrame) -> tuple[pd.DatetimeIndex, list[str]]:
    """The time index of a raw table, and the columns that are time or index columns (dropped)."""
    cols = list(df.columns)
    lower = {str(c).strip().lower(): c for c in cols}
    drop = [c for c in cols if _UNNAMED.match(str(c).strip()) and pd.api.types.is_integer_dtype(df[c])]
    drop += [lower[n] for n in _EPOCH_NAMES if n in lower]
    name = next((lower[n] for n in _TIME_NAMES if n in lower), None)
    if name is None:
        name = next(c for c in cols if c not in drop)
    drop += [name] + [lower[n] for n in _TIME_NAMES if n in lower and lower[n] != name]
    raw = df[name].astype(str).str.strip()
    if str(name).strip().lower() == "date(utc)":  # Etherscan: M/D/YYYY
        times = pd.to_datetime(raw, format="%m/%d/%Y", errors="coerce")
    else:
        times = pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True)
        if times.isna().mean() > 0.5:  # not ISO: one inferred format
            times = pd.to_datetime(raw, errors="coerce", utc=True)
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(None, f"time value {raw.iloc[row]!r} is not a date", f"row {row}")
    idx = pd.DatetimeIndex(times)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return idx.rename("time"), drop


def _not_daily(s: pd.Series, original: str) -> str | None:
    """Why a column is not a daily observation (None: it is one)."""
    name = str(original).strip()
    if _PAIR.match(name) or _PRICE_PREFIX.match(name):
        return "an asset price, not a network metric"
    v = s.dropna()
    if v.empty:
        return "empty"
    if len(v) < 10:
        return None
    days = v.index.normalize()
    full = pd.date_range(days[0], days[-1], freq="D")
    if len(full) > 3 * len(v):
        spacing = (days[-1] - days[0]).days / max(len(v) - 1, 1)
        if spacing > 7:
            return f"sparse: one value every {spacing:.0f} days"
    daily = pd.Series(v.to_numpy(), index=days)
    daily = daily[~daily.index.duplicated(keep="last")].reindex(full)
    same = (daily == daily.shift(1)) & daily.notna() & daily.shift(1).notna()
    pairs = (daily.notna() & daily.shift(1).notna()).sum()
    if pairs >= 20 and v.nunique() > 1 and same.sum() / pairs >= 0.75:
        # piecewise-constant on calendar boundaries (a month's or a week's value spread over its days);
        # a metric that changes on other days (e.g. mining difficulty, every 2016 blocks) is daily
        changed = daily.index[(~same & daily.notna() & daily.shift(1).notna()).to_numpy()]
        if len(changed) and ((changed.day == 1).mean() >= 0.8 or pd.Series(changed.dayofweek).value_counts(normalize=True).iloc[0] >= 0.8):
            return "values repeat over calendar periods (weekly, monthly or quarterly values spread over the days)"
    weekend = daily.index.dayofweek >= 5
    present = daily.notna().to_numpy()
    if weekend.sum() >= 8 and present[~weekend].mean() >= 0.5 and present[weekend].mean() <= 0.05:
        return "trading days only (no weekend values)"
    sw, sd = same.to_numpy()[weekend], same.to_numpy()[~weekend]
    if weekend.sum() >= 8 and sw.mean() >= 0.9 and sd.mean() < 0.5:
        return "trading days filled over weekends (weekend values repeat Friday's)"
    return None


def _match(names: Iterable[str] | None) -> set[str] | None:
    return None if names is None else {str(n).strip() for n in names} | {normalise(n) for n in names}


def read_metrics_table(
    raw: pd.DataFrame,
    *,
    path: Path | None = None,
    asset: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    allow_non_daily: bool = False,
) -> MetricsTable:
    """A raw table (a time column, or a time index, and one column per metric) as a metrics frame.

    ``include`` keeps only these columns (original or normalised names), ``exclude`` drops
    some; both may name columns that are absent. The asset: ``asset``, else a Coin Metrics
    ``XXX / `` prefix, else the file name, else the folder (None if none tells).
    """
    where = str(path) if path else None
    df = raw.copy()
    df.columns = [str(c).strip() for c in df.columns]
    if isinstance(df.index, pd.DatetimeIndex):
        idx = df.index.tz_localize("UTC") if df.index.tz is None else df.index.tz_convert("UTC")
        drop: list[str] = []
    else:
        df = df.reset_index(drop=not df.index.name) if not isinstance(df.index, pd.RangeIndex) else df
        try:
            idx, drop = _time_axis(df)
        except DataError as err:
            raise DataError(asset, err.problem, f"{where}, {err.where}" if where else err.where) from None
    keep_only, leave_out = _match(include), _match(exclude) or set()
    prefixed = {c: m for c in df.columns if (m := _CM_PREFIX.match(c))}
    if asset is None and prefixed:
        found = sorted({m.group("asset").upper() for m in prefixed.values()})
        asset = found[0] if len(found) == 1 else None
    if asset is None and path is not None:
        asset = asset_from_names(path.stem, path.parent.name)
    several = sorted({m.group("asset").upper() for m in prefixed.values()})
    if asset is None and len(several) > 1:
        example = f"{several[0].lower()}_{path.name}" if path is not None else f"asset={several[0]!r}"
        raise DataError(None, f"the table has columns of several assets ({', '.join(several)}) and neither its "
                              f"name nor its folder's tells which one to import: name it after one (e.g. {example})",
                        where)
    metric_cols = [c for c in df.columns if c not in drop]
    stem = re.sub(r"^(export|chart|data)[-_ ]+", "", path.stem, flags=re.IGNORECASE) if path else ""
    generic = bool(stem) and len(metric_cols) == 1 and (
        normalise(metric_cols[0]).split("_")[0] in GENERIC_COLUMNS or asset_from_names(metric_cols[0]) is not None
        or normalise(metric_cols[0]) in normalise(stem))
    out: dict[str, pd.Series] = {}
    originals: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for col in metric_cols:
        m = prefixed.get(col)
        if m and asset and m.group("asset").upper() != asset.upper():
            skipped[col] = f"another asset ({m.group('asset').upper()})"
            continue
        base = m.group("metric") if m else col
        if generic:  # one generic column ("Value", "Bitcoin"): the file names the metric
            base = stem
        name = normalise(base)
        if keep_only is not None and col not in keep_only and name not in keep_only:
            continue
        if col in leave_out or name in leave_out:
            continue
        values = pd.to_numeric(df[col].astype(str).str.strip().str.replace(",", "", regex=False)
                               .replace({"": None, "nan": None, "NaN": None, "None": None}), errors="coerce")
        bad = values.isna() & df[col].notna() & ~df[col].astype(str).str.strip().isin(["", "nan", "NaN", "None"])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(asset, f"column {col!r} has a value that is not a number ({df[col].iloc[row]!r})",
                            f"{where}, row {row}" if where else f"row {row}")
        series = pd.Series(np.array(values, dtype="float64"), index=idx)
        reason = "a spreadsheet index column" if _UNNAMED.match(col) else _not_daily(series, col)
        if reason is not None:
            if keep_only is not None and reason != "empty" and not allow_non_daily:
                raise DataError(asset, f"column {col!r} is not a daily observation: {reason}; "
                                       "include it only with allow_non_daily=True (--allow-non-daily)", where)
            if keep_only is None or reason == "empty" or not allow_non_daily:
                skipped[col] = reason
                continue
        if name in out:
            raise DataError(asset, f"two columns normalise to the metric name {name!r}: {originals[name]!r} and {col!r}", where)
        out[name], originals[name] = series, col
    frame = pd.DataFrame(out, index=idx) if out else pd.DataFrame(index=idx)
    if len(frame) > 1 and frame.index.is_monotonic_decreasing:  # Messari: newest row first
        frame = frame.iloc[::-1]
    frame = frame.dropna(how="all") if out else frame
    frame.index.name = "time"
    return MetricsTable(asset, frame, originals, skipped)


__all__ = ["ASSET_NAMES", "MetricsTable", "asset_from_names", "normalise", "read_metrics_table", "sniff_text"]
