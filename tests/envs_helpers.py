"""Small hand-made markets for the environment tests (no test in this module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptorl.data.frames import interval_timedelta, validate_market


def market_from(close, open_=None, volume=None, start="2024-01-01", interval="1d") -> pd.DataFrame:
    """A valid market frame with the given closes (opens default to the previous close)."""
    close = np.asarray(close, dtype=float)
    if open_ is None:
        open_ = np.r_[close[0], close[:-1]]
    open_ = np.asarray(open_, dtype=float)
    if volume is None:
        volume = np.arange(1, len(close) + 1, dtype=float) * 1000.0
    idx = pd.date_range(start, periods=len(close), freq=interval_timedelta(interval), tz="UTC", name="time")
    df = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": np.asarray(volume, dtype=float),
        },
        index=idx,
    )
    return validate_market(df, "TST", interval)


def random_market(rng: np.random.Generator, n: int, start="2024-01-01") -> pd.DataFrame:
    """A random but consistent OHLCV path of n daily bars."""
    r = rng.uniform(-0.3, 0.3, n)
    close = 100.0 * np.exp(np.cumsum(r))
    gap = rng.uniform(-0.05, 0.05, n)
    open_ = np.r_[close[0] * np.exp(-r[0]), close[:-1] * np.exp(gap[1:])]
    hi = np.maximum(open_, close) * (1 + rng.uniform(0, 0.1, n))
    lo = np.minimum(open_, close) * (1 - rng.uniform(0, 0.1, n))
    vol = rng.uniform(0, 1e6, n)
    idx = pd.date_range(start, periods=n, freq="1D", tz="UTC", name="time")
    df = pd.DataFrame({"open": open_, "high": hi, "low": lo, "close": close, "volume": vol}, index=idx)
    return validate_market(df, "RND", "1d")
