"""The one backtest engine: weights over time + prices + costs -> value path.

Accounting (``docs/portfolio.md``; the environments use the same formulas). Weights
``w = (cash, asset_1..asset_k)`` lie on the simplex; ``w'`` are the holdings drifted by prices
since the last trade (start: all cash, value ``initial_value``). The cost rate is
``c = fee + slippage``.

* ``execution="close"``: the decision at bar t trades at bar t's close.
  ``mu_t = 1 - c * sum_risky |w_t - w'_t|``, ``V_{t+1} = V_t * mu_t * (w_t . y_{t+1})`` with
  ``y_{t+1} = close_{t+1} / close_t`` (cash: 1).
* ``execution="next_open"``: the decision at bar t's close trades at bar t+1's open:
  ``V_open = V_t * (w'_t . open_{t+1}/close_t)``, the holdings drift to the open, ``mu`` is taken
  there, then ``V_{t+1} = V_open * mu * (w_t . close_{t+1}/open_{t+1})``.
* The cost paid at a rebalance is ``V_before * (1 - mu)``.

The drifted holdings before a trade depend only on the previous target and the prices, not on the
value, so the whole path is computed with array operations (no loop over time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cryptorl.data.frames import DataError, interval_timedelta, validate_market, when

from .costs import EXECUTIONS, check_execution, cost_rate
from .metrics import METRIC_KEYS, performance

SIMPLEX_TOL = 1e-9


@dataclass(frozen=True)
class BacktestResult:
    """Outcome of :func:`backtest`; every series is indexed by the decision times.

    ``values``: value at each bar's close (the first is ``initial_value``, before any trade).
    ``returns``: bar returns of ``values`` (from the second time on).
    ``weights``: the target weights as given. ``turnover``: ``sum_risky |w_t - w'_t|`` traded
    for the decision at t. ``fees``: money paid (fee + slippage) for that trade. The last
    decision would apply after the range: it is neither traded nor charged (turnover 0).
    """

    values: pd.Series
    returns: pd.Series
    weights: pd.DataFrame
    turnover: pd.Series
    fees: pd.Series
    interval: str
    execution: str = "close"
    fee: float = 0.001
    slippage: float = 0.0
    holdings: pd.DataFrame = field(default=None, repr=False)  # w' before each trade (at the trade)

    def metrics(self, keys: Sequence[str] = METRIC_KEYS) -> dict[str, float]:
        """:func:`cryptorl.portfolio.metrics.performance` of this result (the metrics ``keys``)."""
        return performance(self.values, self.interval, self.turnover, keys)


def simulate(
    weights: np.ndarray,
    close: np.ndarray,
    open_: np.ndarray | None = None,
    *,
    cost: float = 0.001,
    execution: str = "close",
    initial_value: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Array core of :func:`backtest` (no validation).

    ``weights`` (T, k+1) with cash first, ``close`` and ``open_`` (T, k). Returns
    ``(values (T,), turnover (T,), costs (T,), holdings (T, k+1))`` where ``holdings[t]`` are the
    drifted weights met by the trade decided at t (last row: the holdings at the last close).
    """
    n, width = weights.shape
    w = weights[:-1]
    ones = np.ones((n - 1, 1))
    holdings = np.zeros((n, width))
    holdings[0, 0] = 1.0  # all cash at the start
    if execution == "close":
        y = np.hstack([ones, close[1:] / close[:-1]])
        gross = np.einsum("ij,ij->i", w, y)
        holdings[1:] = w * y / gross[:, None]
        pre = holdings[:-1]
        turnover = np.abs(w[:, 1:] - pre[:, 1:]).sum(axis=1)
        mu = 1.0 - cost * turnover
        growth = mu * gross
        before = None
    elif execution == "next_open":
        y_co = np.hstack([ones, open_[1:] / close[:-1]])  # close t -> open t+1
        y_oc = np.hstack([ones, close[1:] / open_[1:]])  # open t+1 -> close t+1
        at_close = np.zeros((n - 1, width))
        at_close[0, 0] = 1.0
        g_oc = np.einsum("ij,ij->i", w, y_oc)
        at_close[1:] = w[:-1] * y_oc[:-1] / g_oc[:-1, None]  # held at close t (bought at open t)
        g_co = np.einsum("ij,ij->i", at_close, y_co)
        holdings[:-1] = at_close * y_co / g_co[:, None]  # drifted to the open where we trade
        holdings[-1] = w[-1] * y_oc[-1] / g_oc[-1]
        turnover = np.abs(w[:, 1:] - holdings[:-1, 1:]).sum(axis=1)
        mu = 1.0 - cost * turnover
        growth = g_co * mu * g_oc
        before = g_co
    else:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    values = np.empty(n)
    values[0] = initial_value
    values[1:] = initial_value * np.cumprod(growth)
    at_trade = values[:-1] if before is None else values[:-1] * before
    costs = np.append(at_trade * (cost * turnover), 0.0)  # = V_before * (1 - mu), without cancellation
    return values, np.append(turnover, 0.0), costs, holdings


def _utc(index: pd.Index) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"weights need a DatetimeIndex of decision times, got {type(index).__name__}")
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def check_weights(weights: pd.DataFrame, interval: str | None = None, *, what: str = "weights") -> pd.DataFrame:
    """Return ``weights`` as float64 with a UTC index, or raise ValueError saying what is wrong.

    Rules: a DataFrame with a ``cash`` column and one column per asset, a sorted unique
    DatetimeIndex (one row per ``interval`` bar when given), no NaN, weights >= 0 summing to 1
    (within 1e-9).
    """
    if not isinstance(weights, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(weights).__name__}")
    cols = [str(c) for c in weights.columns]
    if "cash" not in cols:
        raise ValueError(f"{what} lack a 'cash' column; columns are {cols}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"{what} have a duplicated column: {cols}")
    if weights.empty:
        raise ValueError(f"{what} are empty")
    out = weights.copy()
    out.columns = cols
    out = out[["cash", *[c for c in cols if c != "cash"]]]
    try:
        out = out.astype("float64")
    except (ValueError, TypeError):
        raise ValueError(f"{what} contain a value that is not a number") from None
    out.index = _utc(out.index).rename("time")
    idx = out.index
    if idx.has_duplicates:
        raise ValueError(f"{what} have two rows for {idx[idx.duplicated()][0]}")
    if not idx.is_monotonic_increasing:
        i = int(np.flatnonzero(idx[1:] < idx[:-1])[0]) + 1
        raise ValueError(f"{what} times are not sorted: {idx[i]} after {idx[i - 1]}")
    if interval is not None and len(idx) > 1:
        step = interval_timedelta(interval)
        off = np.flatnonzero((idx[1:] - idx[:-1]) != step)
        if off.size:
            i = int(off[0])
            raise ValueError(f"{what} must have one row per {interval} bar; {idx[i]} is followed by {idx[i + 1]}")
    arr = out.to_numpy()
    nan = np.isnan(arr)
    if nan.any():
        r, c = np.argwhere(nan)[0]
        raise ValueError(f"{what}: NaN weight for '{out.columns[c]}' at {idx[r]} ({int(nan.sum())} NaN in all)")
    if np.isinf(arr).any():
        r, c = np.argwhere(np.isinf(arr))[0]
        raise ValueError(f"{what}: infinite weight for '{out.columns[c]}' at {idx[r]}")
    neg = arr < -SIMPLEX_TOL
    if neg.any():
        r, c = np.argwhere(neg)[0]
        raise ValueError(
            f"{what}: negative weight {arr[r, c]:g} for '{out.columns[c]}' at {idx[r]} (long-only: weights lie on the simplex)"
        )
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > SIMPLEX_TOL
    if off.any():
        r = int(np.flatnonzero(off)[0])
        raise ValueError(f"{what} at {idx[r]} sum to {sums[r]:.12g}, not 1 (cash included): not on the simplex")
    return out


def _bars_read(frame: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """The rows of a market frame that a value path over ``index`` reads (the whole frame where
    they cannot be picked by time before validation): a long history is not validated again
    for every short backtest."""
    if isinstance(frame.index, pd.DatetimeIndex) and frame.index.tz is not None:
        part = frame[(frame.index >= index[0]) & (frame.index <= index[-1])]
        if len(part):
            return part
    return frame


def backtest(
    weights: pd.DataFrame,
    market: Mapping[str, pd.DataFrame],
    *,
    interval: str,
    fee: float = 0.001,
    slippage: float = 0.0,
    execution: str = "close",
    initial_value: float = 1.0,
) -> BacktestResult:
    """Value path of ``weights`` (index: decision times = bar labels, one row per bar; columns
    ``["cash", *assets]``) on ``market`` (asset -> market frame; extra assets are ignored).

    The decision at t applies to the return from t to t+1; the value path runs from the first to
    the last decision time. ``fee`` and ``slippage`` are rates on the traded fraction.
    """
    check_execution(execution)
    cost_rate(fee, slippage)
    if not (np.isfinite(initial_value) and initial_value > 0):
        raise ValueError(f"initial_value must be positive, got {initial_value!r}")
    if not isinstance(market, Mapping):
        raise ValueError(f"market must be a dict asset -> market frame, got {type(market).__name__}")
    w = check_weights(weights, interval)
    if len(w) < 2:
        raise ValueError("weights need at least two decision times (the value moves from one bar to the next)")
    assets = list(w.columns[1:])
    unknown = [a for a in assets if a not in market]
    if unknown:
        raise ValueError(f"weights name asset(s) {unknown} with no market; markets given: {sorted(market)}")
    close = np.empty((len(w), len(assets)))
    open_ = np.empty_like(close)
    for j, asset in enumerate(assets):
        frame = validate_market(_bars_read(market[asset], w.index), asset, interval, allow_gaps=True)
        rows = frame.index.get_indexer(w.index)
        if (rows < 0).any():
            missing = w.index[rows < 0]
            frame = validate_market(market[asset], asset, interval, allow_gaps=True)  # what it covers
            raise DataError(
                asset,
                f"market has no bar for {len(missing)} decision time(s) of the weights "
                f"(market covers {when(frame.index[0])} .. {when(frame.index[-1])})",
                when(missing[0]),
            )
        close[:, j] = frame["close"].to_numpy()[rows]
        open_[:, j] = frame["open"].to_numpy()[rows]
    values, turnover, costs, holdings = simulate(
        w.to_numpy(), close, open_, cost=fee + slippage, execution=execution, initial_value=initial_value
    )
    idx = w.index
    vals = pd.Series(values, index=idx, name="value")
    return BacktestResult(
        values=vals,
        returns=vals.pct_change().iloc[1:].rename("return"),
        weights=w,
        turnover=pd.Series(turnover, index=idx, name="turnover"),
        fees=pd.Series(costs, index=idx, name="fees"),
        interval=interval,
        execution=execution,
        fee=float(fee),
        slippage=float(slippage),
        holdings=pd.DataFrame(holdings, index=idx, columns=w.columns),
    )
