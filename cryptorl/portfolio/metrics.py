"""Performance metrics of a value path: the paper's ARR, DRR and Sortino ratio, and the usual rest.

Conventions (also in ``docs/portfolio.md``):

* ``values`` is the portfolio value at each bar, the first entry the starting value; the bar
  returns are ``values.pct_change()`` from the second bar on.
* **ARR** (accumulated rate of return, the paper's): ``V_end / V_0 - 1``, the total return over
  the range (not annualised).
* **DRR** (daily rate of return, the paper's): the mean of daily simple returns. Intervals of a
  day or shorter are first resampled to daily closes (the last value of each UTC day; bars are
  labelled by their open time, so the 18:00 6-hour bar closes the day); the first day's return
  is measured from ``V_0``. For intervals longer than a day there are no daily closes: DRR is
  then the mean bar return times ``1 day / interval``.
* Annualisation: ``periods_per_year(interval)`` bars per 365-day year (crypto trades every day):
  365 for ``1d``, 1460 for ``6h``.
* **Sortino** (Sortino & Price 1994): target return 0, ``mean(r) / sqrt(mean(min(r, 0)^2))``
  times ``sqrt(periods_per_year)`` on bar returns. **Sharpe**: risk-free rate 0,
  ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``. **AnnVol**: ``std(r, ddof=1) *
  sqrt(periods_per_year)``.
* **MaxDrawdown**: the worst fall from a running peak, as a negative fraction (``-0.6`` = -60 %).
* **Calmar**: compound annual growth rate (over ``len(r) / periods_per_year`` years) divided by
  ``|MaxDrawdown|``; NaN when there is no drawdown.
* **CVaR95**: historical expected shortfall of bar returns, minus the mean of the worst
  ``int((n - 1) * 0.05) + 1`` returns: the mean loss of the worst 5 % of bars, a positive number
  for a loss (the convention of every table in the package, reliability analysis included).
* **WinRate**: bars with a positive return over bars with a non-zero return (bars spent flat in
  cash do not count); NaN when every return is zero.
* **Turnover**: the fraction of the portfolio traded per year, ``sum(turnover) / years``, where a
  bar's turnover is ``sum_i |w_i - w'_i|`` over the risky assets (the quantity the fee is charged
  on); NaN when no turnover series is given.

Sortino, Sharpe, AnnVol, MaxDrawdown, Calmar and CVaR95 are computed by empyrical-reloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cryptorl.data.frames import interval_seconds, periods_per_year

METRIC_KEYS = (
    "ARR",
    "DRR",
    "Sortino",
    "Sharpe",
    "AnnVol",
    "MaxDrawdown",
    "Calmar",
    "CVaR95",
    "WinRate",
    "Turnover",
)

_DAY = 86400


def _check_values(values: pd.Series) -> pd.Series:
    if not isinstance(values, pd.Series):
        raise ValueError(f"values must be a pandas Series, got {type(values).__name__}")
    if not isinstance(values.index, pd.DatetimeIndex):
        raise ValueError("values must have a DatetimeIndex")
    if len(values) < 2:
        raise ValueError(f"values need at least two points to have a return, got {len(values)}")
    arr = values.to_numpy(dtype="float64")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"values must be positive and finite; got {arr[i]} at {values.index[i]}")
    if not values.index.is_monotonic_increasing or values.index.has_duplicates:
        raise ValueError("values index must be sorted and unique")
    return values.astype("float64")


def bar_returns(values: pd.Series) -> pd.Series:
    """Simple returns from one bar to the next (first bar dropped)."""
    return values.pct_change().iloc[1:]


def daily_returns(values: pd.Series, interval: str) -> pd.Series:
    """Daily simple returns of a value path at ``interval`` (a day or shorter).

    Values are resampled to the last value of each UTC day; the first day's return is measured
    from the starting value ``values.iloc[0]`` (dropped when the start is that day's close).
    """
    values = _check_values(values)
    if interval_seconds(interval) > _DAY:
        raise ValueError(f"daily returns need an interval of a day or shorter, got {interval!r}")
    closes = values.resample("1D").last().dropna()
    prev = closes.shift(1)
    prev.iloc[0] = values.iloc[0]
    out = closes / prev - 1.0
    if values.index[1].floor("1D") > values.index[0].floor("1D"):
        out = out.iloc[1:]  # the start is its day's close: that day has no return
    return out


def drr(values: pd.Series, interval: str) -> float:
    """The paper's daily rate of return (see the module notes for the conventions)."""
    secs = interval_seconds(interval)
    if secs <= _DAY:
        return float(daily_returns(values, interval).mean())
    return float(bar_returns(_check_values(values)).mean() * _DAY / secs)


def performance(
    values: pd.Series, interval: str, turnover: pd.Series | None = None, keys: Sequence[str] = METRIC_KEYS
) -> dict[str, float]:
    """The metrics ``keys`` (every one by default, :data:`METRIC_KEYS`) of a value path, as
    fractions, not percent."""
    import empyrical  # imported here: it pulls in scipy.stats (about 1.5 s)

    unknown = [k for k in keys if k not in METRIC_KEYS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: choose among {', '.join(METRIC_KEYS)}")
    values = _check_values(values)
    ppy = periods_per_year(interval)
    r = bar_returns(values).to_numpy()
    nonzero = int(np.count_nonzero(r))
    flat = len(r) and not np.any(r)
    # A flat path (all cash): no return and no risk. Ratios are 0 by convention rather than
    # NaN, so that staying out of a falling market does not rank below losing money in it.
    ratio = (lambda f: 0.0) if flat else (lambda f: f())
    metric = {
        "ARR": lambda: values.iloc[-1] / values.iloc[0] - 1.0,
        "DRR": lambda: drr(values, interval),
        "Sortino": lambda: ratio(lambda: empyrical.sortino_ratio(r, required_return=0.0, annualization=ppy)),
        "Sharpe": lambda: ratio(lambda: empyrical.sharpe_ratio(r, risk_free=0.0, annualization=ppy)),
        "AnnVol": lambda: empyrical.annual_volatility(r, annualization=ppy),
        "MaxDrawdown": lambda: empyrical.max_drawdown(r),
        "Calmar": lambda: ratio(lambda: empyrical.calmar_ratio(r, annualization=ppy)),
        "CVaR95": lambda: -empyrical.conditional_value_at_risk(r, cutoff=0.05),
        "WinRate": lambda: np.count_nonzero(r > 0) / nonzero if nonzero else float("nan"),
        "Turnover": lambda: _turnover(turnover, len(r) / ppy),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        return {k: float(metric[k]()) for k in keys}


def _turnover(turnover: pd.Series | None, years: float) -> float:
    if turnover is None:
        return float("nan")
    t = np.asarray(turnover, dtype="float64")
    if np.isnan(t).any() or (t < 0).any():
        raise ValueError("turnover must be non-negative numbers")
    return float(t.sum() / years)
