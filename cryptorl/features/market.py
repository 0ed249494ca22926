"""Market features: a Crypto Module's optional extra observation rows (``CMConfig.features``).

Each is computed from the market frame alone, with trailing windows: row t uses bars <= t only.
Names are ``KIND_H`` (``ret_20``: the log return over the last 20 bars); the kinds are those of
:data:`MARKET_FEATURES`, and :func:`register_market_feature` adds one. The environments read them
through :mod:`envs.features`, which re-exports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class MarketFeature:
    """A kind of market feature: ``compute(market, h)`` is the per-bar series of ``KIND_h``, using
    bars <= t only at row t (NaN until its window is full)."""

    kind: str
    description: str
    compute: Callable[[pd.DataFrame, int], pd.Series]


# kind -> MarketFeature; names are KIND_H (e.g. ret_20). Add one with register_market_feature.
MARKET_FEATURES: dict[str, MarketFeature] = {}


def register_market_feature(
    kind: str, description: str, compute: Callable[[pd.DataFrame, int], pd.Series], *, replace: bool = False
) -> MarketFeature:
    """Make ``KIND_H`` a market feature ``CMConfig.features`` and ``--features`` accept.

    ``compute(market, h)`` returns a series on ``market.index`` whose row t uses bars <= t only.
    """
    if not kind.isalpha() or not kind.islower():
        raise ValueError(f"a market feature kind is lower-case letters, such as 'ret', got {kind!r}")
    if kind in MARKET_FEATURES and not replace:
        raise ValueError(f"a market feature kind {kind!r} is registered already (replace=True to replace it)")
    MARKET_FEATURES[kind] = feature = MarketFeature(kind, description, compute)
    return feature


def _close(market: pd.DataFrame) -> pd.Series:
    return market["close"].astype("float64")


register_market_feature(
    "ret",
    "log return over the last H bars: log(close_t / close_(t-H))",
    lambda m, h: np.log(_close(m) / _close(m).shift(h)),
)
register_market_feature(
    "vol",
    "realised volatility: standard deviation of the last H bar log returns",
    lambda m, h: np.log(_close(m)).diff().rolling(h, min_periods=h).std(),
)
register_market_feature(
    "dd",
    "distance from the recent high: log(close_t / max(high over the last H bars))",
    lambda m, h: np.log(_close(m) / m["high"].astype("float64").rolling(h, min_periods=h).max()),
)
register_market_feature(
    "sma",
    "distance from the moving average: log(close_t / mean(close over the last H bars))",
    lambda m, h: np.log(_close(m) / _close(m).rolling(h, min_periods=h).mean()),
)


def parse_market_feature(name: str) -> tuple[str, int]:
    """``"ret_20"`` -> ``("ret", 20)``; a ValueError names the valid kinds for anything else."""
    kind, _, horizon = str(name).partition("_")
    if kind not in MARKET_FEATURES or not horizon.isdigit() or int(horizon) < 2:
        kinds = ", ".join(f"{k}_H" for k in MARKET_FEATURES)
        raise ValueError(f"unknown market feature {name!r}: use {kinds} with a horizon H >= 2 bars")
    return kind, int(horizon)


def market_features(market: pd.DataFrame, names: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Per-bar features computed from the market frame alone, one column per name.

    Row t uses bars <= t only (trailing windows); the first rows of a feature are NaN until its
    window is full (the observation's warm-up). Names are ``KIND_H`` with the kinds of
    :data:`MARKET_FEATURES`, e.g. ``["ret_5", "ret_20", "vol_20", "dd_60", "sma_20"]``.
    """
    out = {}
    for name in names:
        kind, h = parse_market_feature(name)
        out[name] = MARKET_FEATURES[kind].compute(market, h)
    return pd.DataFrame(out, index=market.index, columns=list(names))
