"""The data contracts: market and metrics frames, intervals, and validation.

Market frame
    pandas DataFrame, ``DatetimeIndex`` in UTC named ``time``, sorted, unique, regular at one
    interval; float64 columns ``open, high, low, close, volume``.
Metrics frame
    Same index rules; one float64 column per metric, named as the source names it; NaN allowed.

Every way into the project (exchange, Santiment, files, demo) goes through
:func:`validate_market` / :func:`validate_metrics`, which either return a clean frame or raise
one :class:`DataError` naming the asset, the problem and where it is.

Documented repairs (the only ones made):

* exact duplicate rows (same timestamp, same values) are dropped;
* a naive index is read as UTC; an index in another time zone is converted to UTC (also when
  rows carry different zones); an index mixing zoned and naive timestamps is an error.

Everything else (conflicting duplicates, unsorted rows, NaN or infinite prices, non-positive prices,
high < low, missing columns, gaps when ``allow_gaps=False``) is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

OHLCV = ["open", "high", "low", "close", "volume"]

OUTLIER_Z = 30.0
"""Default robust z-score above which a bar's return is reported as suspicious."""

_INTERVAL_RE = re.compile(r"^(\d+)([mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class DataError(ValueError):
    """Bad input data. The message names the asset, the problem and where it is."""

    def __init__(self, asset: str | None, problem: str, where: str | None = None):
        self.asset, self.problem, self.where = asset, problem, where
        parts = [f"[{asset}]" if asset else "[data]", problem]
        if where:
            parts.append(f"(at {where})")
        super().__init__(" ".join(parts))


class GapError(DataError):
    """A range with missing bars asked for under the strict gap policy; ``gaps`` lists them."""

    def __init__(self, asset: str | None, interval: str, gaps: list[Gap], where: str | None = None):
        self.interval, self.gaps = interval, gaps
        more = f" and {len(gaps) - 1} more" if len(gaps) > 1 else ""
        self.found = f"[{asset}] {interval} market data has gaps: {gaps[0]}{more}"
        super().__init__(
            asset,
            f"{interval} market data has gaps: {gaps[0]}{more}; ask for gaps='fill' (flat zero-volume bars) "
            "or gaps='keep', or load a range without them",
            where,
        )


def interval_seconds(interval: str) -> int:
    """Length of an interval such as ``"1m"``, ``"6h"``, ``"1d"``, ``"1w"`` in seconds."""
    m = _INTERVAL_RE.match(str(interval).strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(
            f"unknown interval {interval!r}: use a number and a unit among m, h, d, w (e.g. '6h', '1d')"
        )
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def interval_timedelta(interval: str) -> pd.Timedelta:
    """The interval as a pandas Timedelta."""
    return pd.Timedelta(seconds=interval_seconds(interval))


def periods_per_year(interval: str) -> float:
    """Bars per year for a market that trades around the clock (365 days)."""
    return 365 * 86400 / interval_seconds(interval)


def to_utc_timestamp(value: str | pd.Timestamp | None) -> pd.Timestamp | None:
    """Parse a date or timestamp as UTC (naive values are taken as UTC)."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def when(t: pd.Timestamp) -> str:
    """A bar time for people: ``2021-03-05`` for a whole UTC day, else ``2021-03-05 06:00`` (UTC)."""
    t = pd.Timestamp(t)
    return f"{t:%Y-%m-%d}" if t == t.normalize() else f"{t:%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class Gap:
    """A stretch of missing bars: the last bar before it, the first after it, bars missing."""

    after: pd.Timestamp
    before: pd.Timestamp
    missing: int

    def __str__(self) -> str:
        return f"{self.missing} bar(s) missing between {when(self.after)} and {when(self.before)}"


def find_gaps(index: pd.DatetimeIndex, interval: str) -> list[Gap]:
    """Gaps in a sorted, unique index at the given interval."""
    if len(index) < 2:
        return []
    step = interval_timedelta(interval)
    diffs = index[1:] - index[:-1]
    gaps = []
    for i in np.flatnonzero(diffs > step):
        gaps.append(Gap(index[i], index[i + 1], int(diffs[i] / step) - 1))
    return gaps


def _is_zoned(value: object) -> bool:
    try:
        return pd.Timestamp(value).tzinfo is not None
    except (ValueError, TypeError):
        return False


def _parse_times(values: pd.Index, asset: str | None, kind: str) -> pd.DatetimeIndex:
    """Parse strings or datetimes; zoned values are converted to UTC, a zoned/naive mix is refused."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601"))
    except (ValueError, TypeError) as exc:
        text = str(exc)
    if "Mixed timezones" in text or "Tz-aware" in text:
        zoned = np.array([_is_zoned(v) for v in values])
        if not zoned.all():
            naive_row, zoned_row = int(np.flatnonzero(~zoned)[0]), int(np.flatnonzero(zoned)[0])
            raise DataError(
                asset,
                f"{kind} mixes time zones: some timestamps carry a zone and some do not",
                f"row {naive_row} ({values[naive_row]}) has none, row {zoned_row} ({values[zoned_row]}) has one",
            )
        return pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601"))
    try:  # not ISO 8601: let pandas infer one format (e.g. "01/02/2020")
        return pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError):
        parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
        bad = np.flatnonzero(parsed.isna() & ~pd.isna(values))
        row = int(bad[0]) if len(bad) else 0
        raise DataError(asset, f"{kind} index value {values[row]!r} is not a timestamp", f"row {row}") from None


def _utc_index(df: pd.DataFrame, asset: str | None, kind: str) -> pd.DatetimeIndex:
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex):
        idx = _parse_times(idx, asset, kind)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    else:
        idx = idx.tz_convert("UTC")
    if idx.hasnans:
        pos = int(np.flatnonzero(idx.isna())[0])
        raise DataError(asset, f"{kind} has a missing timestamp", f"row {pos}")
    return idx.as_unit("ns").rename("time")


def _order_and_dedupe(df: pd.DataFrame, asset: str | None, kind: str) -> pd.DataFrame:
    idx = df.index
    dup = idx.duplicated(keep=False)
    if dup.any():
        dupes = df[dup]
        exact = dupes.reset_index().duplicated(keep=False)
        if not exact.all():
            first = dupes.index[~exact.to_numpy()][0]
            raise DataError(asset, f"{kind} has conflicting rows for one timestamp", when(first))
        df = df[~idx.duplicated(keep="first")]
        idx = df.index
    if not idx.is_monotonic_increasing:
        pos = int(np.flatnonzero(idx[1:] < idx[:-1])[0]) + 1
        raise DataError(
            asset, f"{kind} timestamps are not sorted", f"row {pos}: {when(idx[pos])} after {when(idx[pos - 1])}"
        )
    return df


def _check_interval(df: pd.DataFrame, asset: str | None, interval: str | None, allow_gaps: bool, kind: str) -> None:
    if interval is None or len(df) < 2:
        return
    step = interval_timedelta(interval)
    diffs = df.index[1:] - df.index[:-1]
    off = diffs % step != pd.Timedelta(0)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise DataError(asset, f"{kind} is not on the {interval} grid", f"{when(df.index[i])} -> {when(df.index[i + 1])}")
    if not allow_gaps:
        gaps = find_gaps(df.index, interval)
        if gaps:
            more = f" and {len(gaps) - 1} more gap(s)" if len(gaps) > 1 else ""
            raise DataError(asset, f"{kind} has gaps: {gaps[0]}{more}")


def validate_market(
    df: pd.DataFrame,
    asset: str | None = None,
    interval: str | None = None,
    *,
    allow_gaps: bool = False,
    allow_empty: bool = False,
    outliers: str = "ignore",
    outlier_z: float = OUTLIER_Z,
) -> pd.DataFrame:
    """Return a clean market frame or raise :class:`DataError`.

    ``interval`` (e.g. ``"1d"``) checks that bars sit on that grid; gaps are an error unless
    ``allow_gaps``. Prices must be finite and positive. Zero volume is allowed (some sources
    report it); negative volume is not. ``outliers="warn"`` or ``"error"`` also checks the close
    returns with :func:`check_outliers` (robust z-score above ``outlier_z``).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(asset, f"market data must be a pandas DataFrame, got {type(df).__name__}")
    cols = {str(c).lower().strip(): c for c in df.columns}
    missing = [c for c in OHLCV if c not in cols]
    if missing:
        raise DataError(asset, f"market data lacks column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        if allow_empty:
            out = pd.DataFrame({c: pd.Series(dtype="float64") for c in OHLCV})
            out.index = pd.DatetimeIndex([], tz="UTC", name="time")
            return out
        raise DataError(asset, "market data is empty for the requested range")
    out = df[[cols[c] for c in OHLCV]].copy()
    out.columns = OHLCV
    for c in OHLCV:
        if out[c].dtype == np.float64:
            continue
        try:
            out[c] = pd.to_numeric(out[c], errors="raise").astype("float64")
        except (ValueError, TypeError):
            bad = pd.to_numeric(out[c], errors="coerce").isna() & out[c].notna()
            where = out.index[bad.to_numpy()][0] if bad.any() else None
            raise DataError(asset, f"column '{c}' has a value that is not a number", when(where) if where is not None else None) from None
    out.index = _utc_index(out, asset, "market data")
    out = _order_and_dedupe(out, asset, "market data")
    values = out.to_numpy()
    nan_rows = np.isnan(values).any(axis=1)
    if nan_rows.any():
        t = out.index[np.flatnonzero(nan_rows)[0]]
        cols_nan = [c for c in OHLCV if np.isnan(out.at[t, c])]
        raise DataError(asset, f"NaN in {cols_nan} ({int(nan_rows.sum())} row(s) in all)", when(t))
    inf_rows = np.isinf(values).any(axis=1)
    if inf_rows.any():
        t = out.index[np.flatnonzero(inf_rows)[0]]
        cols_inf = [c for c in OHLCV if np.isinf(out.at[t, c])]
        raise DataError(asset, f"infinite value in {cols_inf} ({int(inf_rows.sum())} row(s) in all)", when(t))
    prices = values[:, :4]
    if (prices <= 0).any():
        t = out.index[np.flatnonzero((prices <= 0).any(axis=1))[0]]
        raise DataError(asset, "non-positive price", when(t))
    if (values[:, 4] < 0).any():
        raise DataError(asset, "negative volume", when(out.index[np.flatnonzero(values[:, 4] < 0)[0]]))
    o, h, l, c = prices.T
    bad = (h < l) | (h < np.maximum(o, c) * (1 - 1e-9)) | (l > np.minimum(o, c) * (1 + 1e-9))
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise DataError(
            asset,
            f"inconsistent bar: high={h[i]} low={l[i]} open={o[i]} close={c[i]} (high must be >= open, close, low)",
            when(out.index[i]),
        )
    _check_interval(out, asset, interval, allow_gaps, "market data")
    if outliers != "ignore":
        check_outliers(out, asset, z=outlier_z, action=outliers)
    return out


class OutlierWarning(UserWarning):
    """A bar whose return is far outside the series' usual range (see :func:`check_outliers`)."""


def outlier_bars(market: pd.DataFrame, z: float = OUTLIER_Z) -> pd.DataFrame:
    """Bars whose close-to-close log return has a robust z-score above ``z``.

    The score of a return r is ``|r - median| / (1.4826 * MAD)`` over the whole frame (the median
    absolute deviation, scaled to a normal standard deviation): one bad print (a close x1000) stands
    out however wild the rest of the series is, while the heavy tails of crypto returns rarely reach
    the default 30 (a close x3 scores about 30 on daily bars, x1000 about 190). Returns the bars in
    time order with columns ``ret`` (the simple return into the bar) and ``z``.
    """
    close = market["close"].to_numpy(dtype="float64")
    if len(close) < 3:
        return pd.DataFrame(columns=["ret", "z"], index=market.index[:0])
    ret = np.diff(np.log(close))
    med = np.median(ret)
    mad = 1.4826 * np.median(np.abs(ret - med))
    if not mad > 0:
        return pd.DataFrame(columns=["ret", "z"], index=market.index[:0])
    score = np.abs(ret - med) / mad
    hit = np.flatnonzero(score > z)
    out = pd.DataFrame({"ret": np.expm1(ret[hit]), "z": score[hit]}, index=market.index[1:][hit])
    return out


def check_outliers(market: pd.DataFrame, asset: str | None = None, *, z: float = OUTLIER_Z,
                   action: str = "warn") -> pd.DataFrame:
    """Warn (:class:`OutlierWarning`) or raise :class:`DataError` (``action="error"``) naming the first
    bar whose robust z-score exceeds ``z`` (a bad print and the move back count as two); returns the bars."""
    if action not in ("warn", "error", "ignore"):
        raise ValueError(f"outlier action must be 'warn', 'error' or 'ignore', got {action!r}")
    found = outlier_bars(market, z)
    if len(found) and action != "ignore":
        t, row = found.index[0], found.iloc[0]
        more = f" and {len(found) - 1} more bar(s)" if len(found) > 1 else ""
        problem = (f"suspicious close: a {row['ret']:+.1%} move from the bar before, robust z-score {row['z']:.0f} "
                   f"> {z:g}{more}")
        if action == "error":
            raise DataError(asset, problem + "; fix the data or raise the threshold", when(t))
        import warnings

        warning = OutlierWarning(str(DataError(asset, problem, when(t))))
        warning.bars = len(found)  # how many bars were flagged (the message names the first)
        warnings.warn(warning, stacklevel=3)
    return found


def warn_outliers(market: pd.DataFrame, asset: str | None = None, start=None, end=None, *,
                  z: float = OUTLIER_Z) -> int:
    """One :class:`OutlierWarning` when bars flagged by :func:`outlier_bars` (the check the file
    importers run) lie in ``[start, end]`` (default: the whole frame), the range a command is about
    to train or backtest on; returns how many lie there."""
    found = outlier_bars(market, z)
    lo, hi = to_utc_timestamp(start), to_utc_timestamp(end)
    if lo is not None:
        found = found[found.index >= lo]
    if hi is not None:
        found = found[found.index <= hi]
    if len(found):
        import warnings

        t, row = found.index[0], found.iloc[0]
        used = market.index[(market.index >= (lo if lo is not None else market.index[0]))
                            & (market.index <= (hi if hi is not None else market.index[-1]))]
        warning = OutlierWarning(
            f"[{asset or 'data'}] {len(found)} suspicious bar(s) in the range used ({when(used[0])} .. "
            f"{when(used[-1])}), the first at {when(t)}: a {row['ret']:+.1%} move from the bar before (robust z-score {row['z']:.0f} > "
            f"{z:g}); they are used as they are: fix the data or choose a range without them")
        warning.bars = len(found)
        warnings.warn(warning, stacklevel=2)
    return len(found)


def validate_metrics(
    df: pd.DataFrame,
    asset: str | None = None,
    interval: str | None = None,
    *,
    allow_gaps: bool = True,
) -> pd.DataFrame:
    """Return a clean metrics frame (float64 columns, UTC index) or raise :class:`DataError`.

    NaN is allowed inside a metric (not every metric exists for every time); infinite values
    are not. Gaps in the index are allowed by default: metrics are aligned to the market frame
    later (see :func:`align_metrics`).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(asset, f"metrics must be a pandas DataFrame, got {type(df).__name__}")
    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    if len(set(out.columns)) != len(out.columns):
        dup = [c for c in out.columns if list(out.columns).count(c) > 1][0]
        raise DataError(asset, f"metric '{dup}' appears twice")
    for c in out.columns:
        if out[c].dtype == np.float64:
            continue
        try:
            out[c] = pd.to_numeric(out[c], errors="raise").astype("float64")
        except (ValueError, TypeError):
            bad = pd.to_numeric(out[c], errors="coerce").isna() & out[c].notna()
            where = when(out.index[bad.to_numpy()][0]) if bad.any() else None
            raise DataError(asset, f"metric '{c}' has a value that is not a number", where) from None
    out.index = _utc_index(out, asset, "metrics")
    out = _order_and_dedupe(out, asset, "metrics")
    vals = out.to_numpy()
    if vals.size and np.isinf(vals).any():
        r, c = np.argwhere(np.isinf(vals))[0]
        raise DataError(asset, f"metric '{out.columns[c]}' is infinite", when(out.index[r]))
    _check_interval(out, asset, interval, allow_gaps, "metrics")
    return out


def align_metrics(metrics: pd.DataFrame, index: pd.DatetimeIndex, ffill_limit: int | None = None) -> pd.DataFrame:
    """Put a metrics frame on a market index without looking ahead.

    Each market time gets, per metric, the latest non-NaN value stamped at or before it. With
    ``ffill_limit`` a value is carried at most that many bars past the first market bar at or
    after its time stamp (``None``: no limit); older values become NaN. Observations stamped
    between two bars (another grid) count from the next bar.
    """
    out: dict[str, np.ndarray] = {}
    rows = np.arange(len(index))
    for name in metrics.columns:
        s = metrics[name].dropna()
        pos = s.index.searchsorted(index, side="right") - 1  # last observation at or before t
        known = pos >= 0
        safe = np.clip(pos, 0, None)
        vals = np.where(known, s.to_numpy()[safe] if len(s) else np.nan, np.nan)
        if ffill_limit is not None and len(s):
            first_bar = index.searchsorted(s.index[safe], side="left")
            vals = np.where(known & (rows - first_bar <= ffill_limit), vals, np.nan)
        out[str(name)] = vals.astype("float64")
    frame = pd.DataFrame(out, index=index)
    frame.index.name = "time"
    return frame


def fill_gaps(market: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Fill missing bars of a market frame with flat bars (open = high = low = close = the last close,
    volume 0), the usual repair for an exchange outage. Use only when you chose to: it invents bars."""
    if len(market) < 2:
        return market
    grid = pd.date_range(market.index[0], market.index[-1], freq=interval_timedelta(interval), name="time")
    out = market.reindex(grid)
    missing = out["close"].isna().to_numpy()
    if not missing.any():
        return market
    close = out["close"].ffill()
    out = out.assign(
        open=out["open"].fillna(close),
        high=out["high"].fillna(close),
        low=out["low"].fillna(close),
        close=close,
        volume=out["volume"].fillna(0.0),
    )
    return out
