"""The two SQLite stores of the Data Feed Unit: one for prices, one for metrics.

``DataStore(root)`` keeps ``root/prices.sqlite`` (OHLCV bars) and ``root/metrics.sqlite``
(on-chain / social series, the metrics the source refused, and a fetch log). Default root: the
``CRYPTORL_DATA`` environment variable, else ``./data``.

Guarantees
    * **Validated first.** Every frame goes through :func:`validate_market` /
      :func:`validate_metrics` (and a check that it sits on the grid already stored) before
      anything is written: bad input raises one :class:`DataError` and writes nothing.
    * **Idempotent upserts.** Keys are ``(asset, interval, time)`` and
      ``(asset, interval, metric, time)``; ``INSERT ... ON CONFLICT DO UPDATE`` rewrites a row only
      when its values or source differ. Upserting the same frame twice changes nothing (the
      second call returns 0).
    * **Transactional.** Each upsert is one ``BEGIN IMMEDIATE ... COMMIT`` transaction in WAL mode:
      a crash loses at most the batch in flight and never corrupts what was committed; a failure
      in the middle of a batch rolls the whole batch back.
    * **Gaps allowed on insert, reported.** Missing bars are logged on insert and listed by
      :meth:`DataStore.gaps`; :meth:`DataStore.market` refuses to return a gappy range unless
      told how (``gaps="fill"`` or ``gaps="keep"``).

Times are stored as integer UTC epoch seconds (the bar's open time); NaN metric values are not
stored (NaN means "no observation" and never erases a stored value).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Self

import numpy as np
import pandas as pd

from cryptorl._sqlite import connect, transaction

from .frames import (
    OHLCV,
    DataError,
    Gap,
    GapError,
    fill_gaps,
    find_gaps,
    interval_seconds,
    to_utc_timestamp,
    validate_market,
    validate_metrics,
)

log = logging.getLogger(__name__)

ROOT_ENV = "CRYPTORL_DATA"

_PRICES_SCHEMA = """
CREATE TABLE IF NOT EXISTS prices (
    asset TEXT NOT NULL, interval TEXT NOT NULL, time INTEGER NOT NULL,
    open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
    volume REAL NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (asset, interval, time)
) WITHOUT ROWID;
"""
_METRICS_SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics (
    asset TEXT NOT NULL, interval TEXT NOT NULL, metric TEXT NOT NULL, time INTEGER NOT NULL,
    value REAL NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (asset, interval, metric, time)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refused (
    asset TEXT NOT NULL, interval TEXT NOT NULL, metric TEXT NOT NULL,
    reason TEXT NOT NULL, source TEXT NOT NULL, time TEXT NOT NULL,
    PRIMARY KEY (asset, interval, metric)
);
CREATE TABLE IF NOT EXISTS labels (
    asset TEXT NOT NULL, metric TEXT NOT NULL, original TEXT NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (asset, metric)
);
"""
_FETCH_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS fetch_log (
    asset TEXT NOT NULL, interval TEXT NOT NULL, source TEXT NOT NULL, series TEXT NOT NULL,
    covered_from INTEGER NOT NULL, covered_to INTEGER NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY (asset, interval, source, series, covered_from)
);
"""

_UPSERT_PRICES = """
INSERT INTO prices (asset, interval, time, open, high, low, close, volume, source)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (asset, interval, time) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, source = excluded.source
WHERE prices.open IS NOT excluded.open OR prices.high IS NOT excluded.high
   OR prices.low IS NOT excluded.low OR prices.close IS NOT excluded.close
   OR prices.volume IS NOT excluded.volume OR prices.source IS NOT excluded.source
"""
_UPSERT_METRICS = """
INSERT INTO metrics (asset, interval, metric, time, value, source) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (asset, interval, metric, time) DO UPDATE SET value = excluded.value, source = excluded.source
WHERE metrics.value IS NOT excluded.value OR metrics.source IS NOT excluded.source
"""
_UPSERT_LOG = """
INSERT INTO fetch_log (asset, interval, source, series, covered_from, covered_to, updated)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (asset, interval, source, series, covered_from) DO UPDATE SET
    covered_to = max(fetch_log.covered_to, excluded.covered_to), updated = excluded.updated
"""

Covered = tuple[str, pd.Timestamp, pd.Timestamp]
"""``(series, covered_from, covered_to)``: the source was asked for this span and all it returned is stored."""

GapPolicy = Literal["raise", "fill", "keep"]


def default_root() -> Path:
    """``$CRYPTORL_DATA`` if set, else ``./data``."""
    return Path(os.environ.get(ROOT_ENV) or "data")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _asset(asset: str) -> str:
    if not isinstance(asset, str) or not asset.strip():
        raise DataError(None, f"asset must be a non-empty ticker such as 'BTC', got {asset!r}")
    return asset.strip().upper()


def _interval(interval: str) -> str:
    interval_seconds(interval)  # raises ValueError with a clear message
    return interval.strip()


def _source(source: str) -> str:
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source must be a non-empty string naming where the data came from, got {source!r}")
    return source.strip()


def _epoch(ts: pd.Timestamp | str | None, default: int) -> int:
    t = to_utc_timestamp(ts)
    return default if t is None else int(t.value // 1_000_000_000)


def _times(index: pd.DatetimeIndex) -> np.ndarray:
    return (index.as_unit("ns").asi8 // 1_000_000_000).astype(np.int64)


def _index(seconds: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(seconds, dtype=np.int64), unit="s", utc=True), name="time").as_unit("ns")


def _span(asset: str, interval: str, start, end) -> str:
    s = to_utc_timestamp(start)
    e = to_utc_timestamp(end)
    if s is not None and e is not None and e < s:
        raise DataError(asset, f"empty range: end {e} is before start {s}")
    return f"{s if s is not None else '-inf'} .. {e if e is not None else '+inf'}"


class DataStore:
    """Prices and metrics in two SQLite files under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.prices_path = self.root / "prices.sqlite"
        self.metrics_path = self.root / "metrics.sqlite"
        self._prices = self._connect(self.prices_path, _PRICES_SCHEMA + _FETCH_LOG_SCHEMA)
        self._metrics = self._connect(self.metrics_path, _METRICS_SCHEMA + _FETCH_LOG_SCHEMA)

    # ----------------------------------------------------------------- plumbing
    @staticmethod
    def _connect(path: Path, schema: str) -> sqlite3.Connection:
        return connect(path, synchronous="FULL", rows=False, timeout=60, schema=schema)

    _transaction = staticmethod(transaction)

    def close(self) -> None:
        """Close both database connections."""
        self._prices.close()
        self._metrics.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DataStore({str(self.root)!r})"

    def _db(self, kind: str) -> sqlite3.Connection:
        if kind == "prices":
            return self._prices
        if kind == "metrics":
            return self._metrics
        raise ValueError(f"kind must be 'prices' or 'metrics', got {kind!r}")

    def _check_grid(self, conn: sqlite3.Connection, table: str, asset: str, interval: str, times: np.ndarray, kind: str) -> None:
        """New rows must sit on the grid of the rows already stored (e.g. daily bars at 00:00 UTC)."""
        row = conn.execute(f"SELECT time FROM {table} WHERE asset = ? AND interval = ? LIMIT 1", (asset, interval)).fetchone()
        if row is None or len(times) == 0:
            return
        off = (times - row[0]) % interval_seconds(interval) != 0
        if off.any():
            t = _index(times[off][:1])[0]
            raise DataError(
                asset, f"{kind} is off the {interval} grid already stored (stored bars start at {_index([row[0]])[0]:%H:%M:%S})", str(t)
            )

    @staticmethod
    def _other_sources(
        conn: sqlite3.Connection, table: str, asset: str, interval: str, source: str, metric: str | None = None
    ) -> list[str]:
        sql = f"SELECT DISTINCT source FROM {table} WHERE asset = ? AND interval = ? AND source != ?"
        args = [asset, interval, source]
        if metric is not None:
            sql, args = sql + " AND metric = ?", args + [metric]
        return [r[0] for r in conn.execute(sql + " LIMIT 3", args)]

    def sources(self, kind: str, asset: str, interval: str, *, exclude: str | None = None,
                metric: str | None = None) -> list[str]:
        """The sources stored for ``asset`` at ``interval`` (``kind`` ``"prices"`` or ``"metrics"``; one
        ``metric`` only if given), except ``exclude``."""
        table = "prices" if self._db(kind) is self._prices else "metrics"
        sql, args = f"SELECT DISTINCT source FROM {table} WHERE asset = ? AND interval = ?", [_asset(asset), _interval(interval)]
        if exclude is not None:
            sql, args = sql + " AND source != ?", args + [exclude]
        if metric is not None:
            sql, args = sql + " AND metric = ?", args + [metric]
        return sorted(r[0] for r in self._db(kind).execute(sql, args))

    def _log_coverage(self, conn: sqlite3.Connection, asset: str, interval: str, source: str, covered: Covered) -> None:
        series, c_from, c_to = covered
        a, b = _epoch(c_from, 0), _epoch(c_to, 0)
        if b < a:
            raise ValueError(f"coverage ends ({c_to}) before it starts ({c_from})")
        conn.execute(_UPSERT_LOG, (asset, interval, source, str(series), a, b, _now_iso()))

    # ----------------------------------------------------------------- prices
    def upsert_market(
        self,
        asset: str,
        interval: str,
        df: pd.DataFrame,
        source: str,
        *,
        covered: Covered | None = None,
        replace: bool = False,
    ) -> int:
        """Validate and upsert a market frame in one transaction; return the rows inserted or changed.

        Gaps are allowed (and logged); anything else wrong raises :class:`DataError` before any
        write. One series holds one source: data from another source for the same asset and
        interval is refused unless ``replace=True`` (which drops the other source's bars in the
        same transaction). ``covered`` also records how far a download has got.
        """
        asset, interval, source = _asset(asset), _interval(interval), _source(source)
        clean = validate_market(df, asset, interval, allow_gaps=True)
        times = _times(clean.index)
        others = self._other_sources(self._prices, "prices", asset, interval, source)
        if others and not replace:
            raise DataError(asset, f"the store already holds {interval} bars from {others}, not {source!r}; "
                                   "use another store or replace=True (--replace)", f"store {self.root}")
        if not (others and replace):
            self._check_grid(self._prices, "prices", asset, interval, times, "market data")
        gaps = find_gaps(clean.index, interval)
        if gaps:
            log.warning("[%s] %s market data has %d gap(s), first: %s", asset, interval, len(gaps), gaps[0])
        values = clean.to_numpy()
        n = len(times)
        rows = zip([asset] * n, [interval] * n, times.tolist(), *values.T.tolist(), [source] * n)
        with self._transaction(self._prices) as conn:
            before = conn.total_changes
            if others and replace:
                conn.execute("DELETE FROM prices WHERE asset = ? AND interval = ? AND source != ?", (asset, interval, source))
            conn.executemany(_UPSERT_PRICES, rows)
            changed = conn.total_changes - before
            if covered is not None:
                self._log_coverage(conn, asset, interval, source, covered)
        return changed

    def market(
        self,
        asset: str,
        interval: str,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        *,
        gaps: GapPolicy = "raise",
    ) -> pd.DataFrame:
        """The stored market frame for ``asset`` at ``interval`` with ``start <= time <= end``.

        An empty range raises :class:`DataError`. A range with missing bars raises too unless
        ``gaps="fill"`` (flat zero-volume bars, see :func:`fill_gaps`) or ``gaps="keep"``
        (return the bars as stored, not regular).
        """
        asset, interval = _asset(asset), _interval(interval)
        gaps = "raise" if gaps == "error" else gaps
        if gaps not in ("raise", "fill", "keep"):
            raise ValueError(f"gaps must be 'raise' (or 'error'), 'fill' or 'keep', got {gaps!r}")
        span = _span(asset, interval, start, end)
        rows = self._prices.execute(
            "SELECT time, open, high, low, close, volume FROM prices"
            " WHERE asset = ? AND interval = ? AND time >= ? AND time <= ? ORDER BY time",
            (asset, interval, _epoch(start, -(2**62)), _epoch(end, 2**62)),
        ).fetchall()
        if not rows:
            stored = self.time_range(asset, interval)
            have = f"stored: {stored[0]} .. {stored[1]}" if stored else "nothing stored for it"
            raise DataError(asset, f"no {interval} market data in {span} ({have})", f"store {self.root}")
        arr = np.asarray(rows, dtype=np.float64)
        out = pd.DataFrame(arr[:, 1:], index=_index(arr[:, 0].astype(np.int64)), columns=OHLCV)
        found = find_gaps(out.index, interval)
        if found and gaps == "raise":
            raise GapError(asset, interval, found, f"store {self.root}")
        if found and gaps == "fill":
            out = fill_gaps(out, interval)
        if not found or gaps == "fill":  # regular: say so, like the demo frames do
            out.index = pd.DatetimeIndex(out.index, freq=pd.Timedelta(seconds=interval_seconds(interval)), name="time")
        return out

    def last_time(self, asset: str, interval: str) -> pd.Timestamp | None:
        """Time of the last stored bar, or None."""
        row = self._prices.execute(
            "SELECT max(time) FROM prices WHERE asset = ? AND interval = ?", (_asset(asset), _interval(interval))
        ).fetchone()
        return None if row[0] is None else _index([row[0]])[0]

    def time_range(self, asset: str, interval: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """``(first, last)`` stored bar times, or None."""
        row = self._prices.execute(
            "SELECT min(time), max(time) FROM prices WHERE asset = ? AND interval = ?", (_asset(asset), _interval(interval))
        ).fetchone()
        return None if row[0] is None else (_index([row[0]])[0], _index([row[1]])[0])

    def count(self, asset: str, interval: str, start=None, end=None) -> int:
        """Number of stored bars in ``[start, end]``."""
        return self._prices.execute(
            "SELECT count(*) FROM prices WHERE asset = ? AND interval = ? AND time >= ? AND time <= ?",
            (_asset(asset), _interval(interval), _epoch(start, -(2**62)), _epoch(end, 2**62)),
        ).fetchone()[0]

    def gaps(self, asset: str, interval: str, start=None, end=None) -> list[Gap]:
        """Missing bars between stored bars in ``[start, end]``."""
        rows = self._prices.execute(
            "SELECT time FROM prices WHERE asset = ? AND interval = ? AND time >= ? AND time <= ? ORDER BY time",
            (_asset(asset), _interval(interval), _epoch(start, -(2**62)), _epoch(end, 2**62)),
        ).fetchall()
        return find_gaps(_index(np.array([r[0] for r in rows], dtype=np.int64)), interval)

    def assets(self) -> list[str]:
        """Every asset with stored prices or metrics."""
        a = {r[0] for r in self._prices.execute("SELECT DISTINCT asset FROM prices")}
        a |= {r[0] for r in self._metrics.execute("SELECT DISTINCT asset FROM metrics")}
        return sorted(a)

    def intervals(self, asset: str) -> list[str]:
        """Intervals with stored prices or metrics for ``asset``."""
        a = _asset(asset)
        found = {r[0] for r in self._prices.execute("SELECT DISTINCT interval FROM prices WHERE asset = ?", (a,))}
        found |= {r[0] for r in self._metrics.execute("SELECT DISTINCT interval FROM metrics WHERE asset = ?", (a,))}
        return sorted(found, key=interval_seconds)

    # ----------------------------------------------------------------- metrics
    def upsert_metrics(
        self,
        asset: str,
        interval: str,
        df: pd.DataFrame,
        source: str,
        *,
        covered: Covered | None = None,
        replace: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> int:
        """Validate and upsert a metrics frame (one column per metric) in one transaction.

        Gaps are allowed; NaN values are skipped. Returns the values inserted or changed. A
        metric stored from another source is refused unless ``replace=True``. ``labels`` maps a
        stored metric name to its name at the source (``adr_act_cnt`` -> ``AdrActCnt``), kept in
        the ``labels`` table (see :meth:`metric_labels`).
        """
        asset, interval, source = _asset(asset), _interval(interval), _source(source)
        clean = validate_metrics(df, asset, interval, allow_gaps=True)
        bad = [c for c in clean.columns if not c.strip()]
        if bad:
            raise DataError(asset, "a metric column has an empty name")
        times = _times(clean.index)
        clash = {}
        for name in clean.columns:
            others = self._other_sources(self._metrics, "metrics", asset, interval, source, name)
            if others:
                clash[name] = others
        if clash and not replace:
            name, others = next(iter(clash.items()))
            raise DataError(asset, f"metric {name!r} at {interval} is already stored from {others}, not {source!r}; "
                                   "use another store or replace=True (--replace)", f"store {self.root}")
        self._check_grid(self._metrics, "metrics", asset, interval, times, "metrics")
        values = clean.to_numpy()
        r, c = np.nonzero(~np.isnan(values))
        names = np.asarray(clean.columns, dtype=object)
        n = len(r)
        rows = zip([asset] * n, [interval] * n, names[c].tolist(), times[r].tolist(), values[r, c].tolist(), [source] * n)
        with self._transaction(self._metrics) as conn:
            before = conn.total_changes
            for name in clash:
                conn.execute("DELETE FROM metrics WHERE asset = ? AND interval = ? AND metric = ? AND source != ?",
                             (asset, interval, name, source))
            conn.executemany(_UPSERT_METRICS, rows)
            changed = conn.total_changes - before
            if labels:
                conn.executemany(
                    "INSERT INTO labels (asset, metric, original, source) VALUES (?, ?, ?, ?) ON CONFLICT (asset, metric)"
                    " DO UPDATE SET original = excluded.original, source = excluded.source",
                    [(asset, str(k), str(v), source) for k, v in labels.items() if k in clean.columns])
            if covered is not None:
                self._log_coverage(conn, asset, interval, source, covered)
        return changed

    def metric_names(self, asset: str, interval: str) -> list[str]:
        """Names of the metrics stored for ``asset`` at ``interval``."""
        rows = self._metrics.execute(
            "SELECT DISTINCT metric FROM metrics WHERE asset = ? AND interval = ? ORDER BY metric",
            (_asset(asset), _interval(interval)),
        )
        return [r[0] for r in rows]

    def metrics(
        self,
        asset: str,
        interval: str,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        names: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The stored metrics frame (one float64 column per metric, NaN where a metric has no value).

        ``names`` picks metrics (in that order); a name never stored for the asset raises
        :class:`DataError`. No metrics in the range gives a frame with no rows.
        """
        asset, interval = _asset(asset), _interval(interval)
        _span(asset, interval, start, end)
        stored = self.metric_names(asset, interval)
        if names is not None:
            names = [str(n) for n in names]
            unknown = sorted(set(names) - set(stored))
            if unknown:
                raise DataError(asset, f"metric(s) {unknown} not stored at {interval}", f"store {self.root}")
        wanted = list(names) if names is not None else stored
        lo, hi = _epoch(start, -(2**62)), _epoch(end, 2**62)
        columns: dict[str, pd.Series] = {}
        for name in wanted:  # one primary-key range scan per metric
            rows = self._metrics.execute(
                "SELECT time, value FROM metrics WHERE asset = ? AND interval = ? AND metric = ? AND time >= ? AND time <= ?"
                " ORDER BY time",
                (asset, interval, name, lo, hi),
            ).fetchall()
            arr = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
            columns[name] = pd.Series(arr[:, 1], index=arr[:, 0].astype(np.int64), dtype="float64")
        if not columns or all(c.empty for c in columns.values()):
            out = pd.DataFrame({c: pd.Series(dtype="float64") for c in (names or [])})
            out.index = pd.DatetimeIndex([], tz="UTC", name="time").as_unit("ns")
            return out
        wide = pd.concat(columns, axis=1, sort=True)
        wide.index = _index(wide.index.to_numpy())
        wide.columns = [str(c) for c in wide.columns]
        return wide.astype("float64")

    def metric_labels(self, asset: str) -> dict[str, str]:
        """Stored metric name -> its name in the file or API it came from (where one was recorded)."""
        rows = self._metrics.execute("SELECT metric, original FROM labels WHERE asset = ? ORDER BY metric", (_asset(asset),))
        return dict(rows.fetchall())

    def metric_sources(self, asset: str, interval: str) -> dict[str, set[str]]:
        """Metric name -> the sources its stored values came from."""
        rows = self._metrics.execute(
            "SELECT DISTINCT metric, source FROM metrics WHERE asset = ? AND interval = ?", (_asset(asset), _interval(interval))
        )
        out: dict[str, set[str]] = {}
        for metric, source in rows:
            out.setdefault(metric, set()).add(source)
        return out

    def metrics_last_time(self, asset: str, interval: str, metric: str) -> pd.Timestamp | None:
        """Time of the last stored value of one metric, or None."""
        row = self._metrics.execute(
            "SELECT max(time) FROM metrics WHERE asset = ? AND interval = ? AND metric = ?",
            (_asset(asset), _interval(interval), metric),
        ).fetchone()
        return None if row[0] is None else _index([row[0]])[0]

    # ----------------------------------------------------------------- refused metrics
    def record_refused(self, asset: str, interval: str, metric: str, reason: str, source: str) -> None:
        """Remember that ``source`` refused ``metric`` for ``asset`` (e.g. not in the subscription plan)."""
        with self._transaction(self._metrics) as conn:
            conn.execute(
                "INSERT INTO refused (asset, interval, metric, reason, source, time) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (asset, interval, metric) DO UPDATE SET reason = excluded.reason,"
                " source = excluded.source, time = excluded.time",
                (_asset(asset), _interval(interval), metric, reason, _source(source), _now_iso()),
            )

    def clear_refused(self, asset: str, interval: str, metric: str) -> None:
        """Forget a refusal (the metric was fetched after all)."""
        with self._transaction(self._metrics) as conn:
            conn.execute(
                "DELETE FROM refused WHERE asset = ? AND interval = ? AND metric = ?", (_asset(asset), _interval(interval), metric)
            )

    def refused(self, asset: str | None = None, interval: str | None = None) -> pd.DataFrame:
        """Refused metrics: columns asset, interval, metric, reason, source, time (when recorded)."""
        sql, args = "SELECT asset, interval, metric, reason, source, time FROM refused WHERE 1 = 1", []
        if asset is not None:
            sql, args = sql + " AND asset = ?", args + [_asset(asset)]
        if interval is not None:
            sql, args = sql + " AND interval = ?", args + [_interval(interval)]
        rows = self._metrics.execute(sql + " ORDER BY asset, interval, metric", args).fetchall()
        return pd.DataFrame(rows, columns=["asset", "interval", "metric", "reason", "source", "time"])

    # ----------------------------------------------------------------- fetch log (resume)
    def record_coverage(
        self, kind: str, asset: str, interval: str, source: str, series: str, covered_from, covered_to
    ) -> None:
        """Log that ``source`` was asked for ``[covered_from, covered_to]`` of ``series`` (used when a
        page brought no rows; pages with rows log it through ``upsert_*(..., covered=...)``)."""
        with self._transaction(self._db(kind)) as conn:
            self._log_coverage(conn, _asset(asset), _interval(interval), _source(source), (series, covered_from, covered_to))

    def covered_until(
        self, kind: str, asset: str, interval: str, source: str, series: str, start
    ) -> pd.Timestamp | None:
        """How far a download of ``series`` that began at or before ``start`` has got without a hole
        (None: nothing logged reaches ``start``). A resumed download continues after it."""
        s = _epoch(start, 0)
        step = interval_seconds(_interval(interval))
        rows = self._db(kind).execute(
            "SELECT covered_from, covered_to FROM fetch_log WHERE asset = ? AND interval = ? AND source = ? AND series = ?"
            " ORDER BY covered_from",
            (_asset(asset), interval, _source(source), str(series)),
        ).fetchall()
        reach = None  # follow overlapping or adjacent spans from `start` on
        for c_from, c_to in rows:
            limit = s if reach is None else reach + step
            if c_from > limit:
                break
            if c_to >= (s - step if reach is None else reach):
                reach = c_to if reach is None else max(reach, c_to)
        return None if reach is None else _index([reach])[0]

    def fetch_log(self, kind: str = "prices") -> pd.DataFrame:
        """The fetch log of one store: what each source was asked for and how far it got."""
        rows = self._db(kind).execute(
            "SELECT asset, interval, source, series, covered_from, covered_to, updated FROM fetch_log ORDER BY 1, 2, 3, 4, 5"
        ).fetchall()
        df = pd.DataFrame(rows, columns=["asset", "interval", "source", "series", "covered_from", "covered_to", "updated"])
        for c in ("covered_from", "covered_to"):
            df[c] = pd.to_datetime(df[c], unit="s", utc=True)
        return df

    # ----------------------------------------------------------------- summary
    def summary(self, asset: str, interval: str, start=None, end=None) -> dict:
        """Rows, first/last bar, gaps, metric count and refused metrics for one asset and interval."""
        asset, interval = _asset(asset), _interval(interval)
        lo, hi = _epoch(start, -(2**62)), _epoch(end, 2**62)
        first, last = self._prices.execute(
            "SELECT min(time), max(time) FROM prices WHERE asset = ? AND interval = ? AND time >= ? AND time <= ?",
            (asset, interval, lo, hi),
        ).fetchone()
        n_metrics, n_values, m_first, m_last = self._metrics.execute(
            "SELECT count(DISTINCT metric), count(*), min(time), max(time) FROM metrics "
            "WHERE asset = ? AND interval = ? AND time >= ? AND time <= ?",
            (asset, interval, lo, hi),
        ).fetchone()
        return {
            "asset": asset,
            "interval": interval,
            "rows": self.count(asset, interval, start, end),
            "first": None if first is None else _index([first])[0],
            "last": None if last is None else _index([last])[0],
            "gaps": self.gaps(asset, interval, start, end),
            "metrics": n_metrics,
            "metric_values": n_values,
            "metrics_first": None if m_first is None else _index([m_first])[0],
            "metrics_last": None if m_last is None else _index([m_last])[0],
            "refused": self.refused(asset, interval)["metric"].tolist(),
        }
