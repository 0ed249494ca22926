"""The one interface every alternative (non-RL) portfolio agent follows, and its helpers.

An agent is fitted on a training range and then gives portfolio weights for each decision
time in a range: a DataFrame indexed by bar closes, columns ``["cash", *assets]``, rows on the
simplex (long-only unless the agent is declared ``long_short``). Row ``t`` uses data up to
``t`` only; the backtest engine (:func:`cryptorl.portfolio.backtest.backtest`) applies it to the
return from ``t`` to ``t+1``.

Helpers here are shared by the allocators and the forecasters:

* :func:`check_markets` — one common index for all assets, cut at ``end``, clear errors;
* :func:`decision_times` — the decision times in ``[start, end]``;
* :func:`validate_weights` — simplex, long-only, no NaN, right columns;
* :func:`hold_targets` — turn sparse rebalance targets into a daily frame that holds (drifts
  with prices) between rebalances, so no trade happens on the other bars;
* :func:`drawdown_overlay` — the diffusion-transformer paper's maximum-drawdown risk overlay (move to cash).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Self

import numpy as np
import pandas as pd

from cryptorl.data.frames import OHLCV, DataError, to_utc_timestamp
from cryptorl.portfolio.backtest import check_weights
from cryptorl.portfolio.baselines import hold_targets as hold_targets  # the agents share it

Markets = Mapping[str, pd.DataFrame]
MetricsMap = Mapping[str, pd.DataFrame] | None


class PortfolioAgent(ABC):
    """Fit on a training range, then give weights ``["cash", *assets]`` per decision time."""

    name: str = "agent"
    long_short: bool = False

    assets: list[str]
    fit_end: pd.Timestamp | None = None

    @abstractmethod
    def fit(self, market: Markets, metrics: MetricsMap = None, *, end=None) -> Self:
        """Train on rows with time <= ``end`` (all rows when ``None``)."""

    @abstractmethod
    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        """Weights for each decision time in ``[start, end]``; row t uses data up to t only."""

    def _check_fitted(self) -> None:
        if getattr(self, "assets", None) is None or self.fit_end is None:
            raise RuntimeError(f"agent '{self.name}' is not fitted: call fit(market, end=...) first")

    def _check_assets(self, market: Markets) -> None:
        missing = [a for a in self.assets if a not in market]
        if missing:
            raise ValueError(f"agent '{self.name}' was fitted on {self.assets}; market lacks {missing}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_markets(market: Markets, end=None, *, min_rows: int = 2) -> tuple[list[str], pd.DataFrame]:
    """Validate a dict of market frames and return ``(assets, closes)`` up to ``end``.

    Every asset must have OHLCV columns and the same index (use the common range of your
    data before calling an agent). ``closes`` has one column per asset.
    """
    if not isinstance(market, Mapping) or len(market) == 0:
        raise ValueError("market must be a non-empty dict {asset: market frame}")
    end_ts = to_utc_timestamp(end)
    assets = [str(a) for a in market]
    first = assets[0]
    ref = market[first].index
    closes = {}
    for a in assets:
        df = market[a]
        if not isinstance(df, pd.DataFrame):
            raise DataError(a, f"market data must be a DataFrame, got {type(df).__name__}")
        missing = [c for c in OHLCV if c not in df.columns]
        if missing:
            raise DataError(a, f"market data lacks column(s) {missing}")
        if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
            raise DataError(a, "market index must be a UTC DatetimeIndex")
        if not df.index.equals(ref):
            diff = df.index.symmetric_difference(ref)
            where = str(diff[0]) if len(diff) else None
            raise DataError(a, f"market index differs from {first}'s (align all assets to one common range)", where)
        c = df["close"].to_numpy(dtype=float)
        if not np.isfinite(c).all() or (c <= 0).any():
            i = int(np.flatnonzero(~np.isfinite(c) | (c <= 0))[0])
            raise DataError(a, "close must be finite and positive", str(df.index[i]))
        closes[a] = df["close"]
    out = pd.DataFrame(closes, index=ref).astype("float64")
    if end_ts is not None:
        out = out.loc[:end_ts]
    if len(out) < min_rows:
        raise ValueError(f"need at least {min_rows} bars up to {end_ts}, got {len(out)}")
    return assets, out


def cut(market: Markets, metrics: MetricsMap, end) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame] | None]:
    """The market (and metrics) frames with rows after ``end`` dropped."""
    end_ts = to_utc_timestamp(end)
    if end_ts is None:
        return dict(market), (dict(metrics) if metrics is not None else None)
    m = {a: df.loc[:end_ts] for a, df in market.items()}
    x = {a: df.loc[:end_ts] for a, df in metrics.items()} if metrics is not None else None
    return m, x


def decision_times(index: pd.DatetimeIndex, start=None, end=None) -> pd.DatetimeIndex:
    """Times of ``index`` in ``[start, end]``; a clear error when there are none."""
    s, e = to_utc_timestamp(start), to_utc_timestamp(end)
    mask = np.ones(len(index), dtype=bool)
    if s is not None:
        mask &= index >= s
    if e is not None:
        mask &= index <= e
    out = index[mask]
    if len(out) == 0:
        raise ValueError(f"no bars between start={s} and end={e} (data covers {index[0]} .. {index[-1]})")
    return out


def weights_frame(index: pd.DatetimeIndex, assets: list[str], values: np.ndarray | None = None) -> pd.DataFrame:
    """A weights frame ``["cash", *assets]``; ``values=None`` gives all cash."""
    cols = ["cash", *assets]
    if values is None:
        values = np.zeros((len(index), len(cols)))
        values[:, 0] = 1.0
    out = pd.DataFrame(np.asarray(values, dtype="float64"), index=index, columns=cols)
    out.index.name = "time"
    return out


def risky_to_row(risky: np.ndarray) -> np.ndarray:
    """Risky weights (sum <= 1, >= 0) -> a simplex row ``[cash, *risky]`` (tiny negatives clipped)."""
    w = np.clip(np.asarray(risky, dtype=float), 0.0, None)
    s = w.sum()
    if s > 1.0:
        w = w / s
        s = 1.0
    return np.concatenate([[1.0 - s], w])


def validate_weights(weights: pd.DataFrame, assets: list[str], *, long_short: bool = False) -> pd.DataFrame:
    """An agent's weights frame checked by the backtest engine's own rules
    (:func:`cryptorl.portfolio.backtest.check_weights`: sorted unique times, finite, rows on the
    simplex), with the columns exactly ``["cash", *assets]``; a ``long_short`` agent may go negative.
    Returns the frame as float64; raises ``ValueError`` naming the time and column.
    """
    cols = ["cash", *assets]
    if list(weights.columns) != cols:
        raise ValueError(f"weights columns must be {cols}, got {list(weights.columns)}")
    if long_short:
        v = weights.to_numpy(float)
        if not (np.isfinite(v).all() and np.allclose(v.sum(axis=1), 1.0, atol=1e-9)):
            raise ValueError("long-short weights must be finite and sum to 1 on every row")
        return weights.astype("float64")
    return check_weights(weights, what="weights")


def drawdown_overlay(
    weights: pd.DataFrame, closes: pd.DataFrame, *, limit: float = 0.10, cooldown: int = 20
) -> pd.DataFrame:
    """The diffusion-transformer paper's maximum-drawdown target as a risk overlay: move to cash when it is hit.

    The overlay follows the value of the overlaid portfolio (gross of fees, from the weights
    and close-to-close price relatives up to t). When its drawdown from the running peak
    reaches ``limit`` at time t, the rows from t on are all cash for ``cooldown`` bars; then
    the peak is reset to the current value and the strategy's own weights resume.
    """
    if not 0 < limit < 1:
        raise ValueError(f"drawdown limit must be in (0, 1), got {limit}")
    assets = list(weights.columns[1:])
    rel = (closes[assets] / closes[assets].shift(1)).reindex(weights.index).to_numpy()
    w_in = weights.to_numpy(dtype=float)
    out = w_in.copy()
    value, peak, cash_left = 1.0, 1.0, 0
    for i in range(len(weights)):
        if i > 0:
            y = np.concatenate([[1.0], rel[i]])
            value *= float(out[i - 1] @ y)
            peak = max(peak, value)
        if cash_left == 0 and value / peak - 1.0 <= -limit:
            cash_left = cooldown
        if cash_left > 0:
            out[i] = 0.0
            out[i, 0] = 1.0
            cash_left -= 1
            if cash_left == 0:
                peak = value
    return pd.DataFrame(out, index=weights.index, columns=weights.columns)
