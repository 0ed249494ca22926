"""Point in time: when a metric value becomes known, and on which bar it may first be used.

A metric value stamped ``s`` covers the period ``[s, s + period)`` (a daily on-chain value
stamped day D covers day D), so it exists only once that period has closed, and a source
publishes it ``delay`` later: it is **known at** ``s + period + delay``.

A bar stamped ``t`` (its open time) is decided at its close ``t + bar``. The value may be used
by that decision iff ``s + period + delay <= t + bar``. :func:`as_known` re-stamps every value
at the first bar open ``t`` where that holds, so that :func:`cryptorl.data.frames.align_metrics`
("latest value stamped at or before ``t``") can never hand a bar a value it could not have had.

:func:`cryptorl.data.load_data` applies it to every metric from the store or files (not to the
demo market's metrics, which are generated as known at the close of their own bar). Defaults:
``period`` is one day for a metric whose stamps all fall on midnight UTC, else the bar interval;
``delay`` is :data:`DEFAULT_DELAY` (conservative: Coin Metrics publishes a day's network data in
the first hours of the next day).
"""

from __future__ import annotations

import pandas as pd

from .frames import interval_timedelta

DEFAULT_DELAY = pd.Timedelta(hours=6)
"""Publication delay assumed for a metric after its period closes (configurable per call)."""


def metric_period(stamps: pd.DatetimeIndex, bar_interval: str) -> pd.Timedelta:
    """The period a metric's values cover: one day when every stamp is at midnight UTC (a daily
    series, also one sampled every few days), else the bar interval."""
    bar = interval_timedelta(bar_interval)
    if len(stamps) and (stamps == stamps.normalize()).all():
        return max(pd.Timedelta(days=1), bar)
    return bar


def known_at(stamps: pd.DatetimeIndex, period: pd.Timedelta, delay: pd.Timedelta) -> pd.DatetimeIndex:
    """When values stamped ``stamps`` become known."""
    return stamps + period + delay


def as_known(
    metrics: pd.DataFrame,
    bar_interval: str,
    *,
    delay: pd.Timedelta | str | None = None,
    period: pd.Timedelta | str | None = None,
) -> pd.DataFrame:
    """Re-stamp each value at the first bar (open time, on the ``bar_interval`` grid from the epoch)
    whose close comes at or after the value is known. Metrics with different periods are
    re-stamped each by its own; a value re-stamped onto the same bar as a later one of the same
    metric is superseded by it."""
    if metrics.empty or metrics.shape[1] == 0:
        return metrics
    delay = DEFAULT_DELAY if delay is None else pd.Timedelta(delay)
    if delay < pd.Timedelta(0):
        raise ValueError(f"the publication delay must not be negative, got {delay}")
    bar = interval_timedelta(bar_interval)
    columns = {}
    for name in metrics.columns:
        s = metrics[name].dropna()
        p = metric_period(s.index, bar_interval) if period is None else pd.Timedelta(period)
        usable = known_at(s.index, p, delay) - bar  # first bar open whose close is at or after known time
        step = bar.value
        ns = usable.asi8
        ceil = -(-ns // step) * step  # onto the bar grid (UTC, anchored at the epoch), rounding up
        idx = pd.DatetimeIndex(ceil.astype("datetime64[ns]"), tz="UTC", name="time") if len(ns) else \
            pd.DatetimeIndex([], tz="UTC", name="time")
        col = pd.Series(s.to_numpy(), index=idx)
        columns[name] = col[~col.index.duplicated(keep="last")]
    out = pd.concat(columns, axis=1, sort=True) if columns else metrics.iloc[:0]
    out.index = pd.DatetimeIndex(out.index, name="time")
    out.columns = [str(c) for c in out.columns]
    return out.astype("float64")


__all__ = ["DEFAULT_DELAY", "as_known", "known_at", "metric_period"]
