"""Resample market bars to a coarser interval (1h -> 4h / 6h / 12h / 1d), without inventing bars.

Bars are UTC-anchored: a 6h bar opens at 00:00, 06:00, 12:00 or 18:00 UTC and aggregates the
finer bars that open inside it: ``open`` = first open, ``high`` = max, ``low`` = min,
``close`` = last close, ``volume`` = sum (pandas ``resample(..., origin="epoch")``).

* A window with **no** fine bar gives no coarse bar: it stays a gap, handled by the gap policy
  (``gaps="raise" | "fill" | "keep"`` of :meth:`DataStore.market`).
* A window with **some** fine bars missing (an exchange outage: Binance publishes no candle for
  those hours) gives a bar built from the bars that exist, which is what trading happened in
  that window; it is **flagged** (:attr:`Resampled.incomplete`) and reported, never filled.
* Windows cut by the ends of the input (the first bar opens mid-window, or the last window is
  still forming) are dropped: their bar would differ from the exchange's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .frames import OHLCV, DataError, interval_seconds

DAY = 86400


@dataclass
class Resampled:
    """A resampled market frame and the bars built from incomplete windows."""

    frame: pd.DataFrame
    source_interval: str
    interval: str
    incomplete: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([], tz="UTC"))
    dropped_edges: int = 0


def can_resample(fine: str, coarse: str) -> bool:
    """True when ``coarse`` is a whole multiple of ``fine`` and divides the day (or is whole days)."""
    f, c = interval_seconds(fine), interval_seconds(coarse)
    if c <= f or c % f:
        return False
    return DAY % c == 0 or c % DAY == 0


def resample_market(market: pd.DataFrame, source_interval: str, interval: str) -> Resampled:
    """Aggregate a validated market frame at ``source_interval`` into ``interval`` bars.

    ``interval`` must be a multiple of ``source_interval`` that divides the day (or a whole
    number of days). Raises :class:`DataError` otherwise.
    """
    if interval == source_interval:
        return Resampled(market, source_interval, interval)
    if not can_resample(source_interval, interval):
        raise DataError(None, f"cannot resample {source_interval} bars to {interval}: the target must be a multiple of "
                              f"{source_interval} that divides the day (e.g. 1h -> 4h, 6h, 12h, 1d)")
    step = pd.Timedelta(seconds=interval_seconds(interval))
    per_bar = interval_seconds(interval) // interval_seconds(source_interval)
    if market.empty:
        return Resampled(market.copy(), source_interval, interval)
    grouped = market.resample(step, origin="epoch", label="left", closed="left")
    out = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    counts = grouped["close"].count()
    out = out[counts > 0]
    counts = counts[counts > 0]
    fine = pd.Timedelta(seconds=interval_seconds(source_interval))
    first, last = market.index[0], market.index[-1]
    cut = (out.index < first) | (out.index + step - fine > last)  # windows the input's ends cut
    out, counts = out[~cut], counts[~cut]
    incomplete = out.index[(counts < per_bar).to_numpy()]
    out = out[OHLCV].astype("float64")
    out.index = pd.DatetimeIndex(out.index, name="time")
    return Resampled(out, source_interval, interval, pd.DatetimeIndex(incomplete, name="time"), int(np.sum(cut)))


__all__ = ["Resampled", "can_resample", "resample_market"]
