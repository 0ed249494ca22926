"""Chen & Zheng's (2025) reliability analysis of strategies: four criteria, entropy weights, TOPSIS score.

For each strategy's bar returns (Chen & Zheng 2025, section 3.2 e):

* **Sharpe** — risk-adjusted return, ``mean / std`` (ddof 1), annualised with
  ``periods_per_year(interval)`` (eq. 22; the ranking does not depend on the annualisation);
* **CV** — stability: coefficient of variation of the rolling Sharpe ratio over ``window``
  bars, ``std / |mean|`` (eq. 23; the absolute value keeps a negative mean from looking stable);
* **CVaR95** — risk: ``-E[R | R <= VaR_5%]``, the mean loss of the worst 5 % of bars, positive
  for a loss (eq. 24);
* **p_value** — effectiveness: Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) of the paired
  bar returns against the benchmark (buy-and-hold), two-sided as in the seed; **p_greater** is
  the one-sided p-value for "the strategy's returns are greater" and is the one TOPSIS uses, so
  that a strategy significantly *worse* than the benchmark is not rewarded for it.

Then the entropy weight method (eq. 36-38) weighs the criteria by how much they separate the
strategies, and TOPSIS (eq. 29-35) scores each strategy by its relative closeness to the ideal
solution, in [0, 1], higher is better. Sharpe is a benefit criterion; CV, CVaR95 and p_greater
are costs (the seed's table treats them so). Cost criteria are min-max normalised as
``(max - x) / (max - min)`` for the entropy weights (the seed writes the benefit form only).
A criterion that is NaN for a strategy (e.g. CV of a strategy that never moves) gets the worst
value of that criterion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from cryptorl.data.frames import periods_per_year

CRITERIA = ("Sharpe", "CV", "CVaR95", "p_greater")
BENEFIT = (True, False, False, False)


def sharpe(returns: pd.Series, interval: str) -> float:
    """Annualised Sharpe ratio (risk-free 0); 0 for returns that never vary."""
    r = returns.dropna().to_numpy(dtype=float)
    if len(r) < 2:
        return float("nan")
    sd = r.std(ddof=1)
    return float(r.mean() / sd * np.sqrt(periods_per_year(interval))) if sd > 0 else 0.0


def rolling_sharpe_cv(returns: pd.Series, window: int = 30) -> float:
    """``std / |mean|`` of the rolling (per-bar) Sharpe ratio over ``window`` bars."""
    r = returns.dropna()
    roll = (r.rolling(window).mean() / r.rolling(window).std(ddof=1)).replace([np.inf, -np.inf], np.nan).dropna()
    if len(roll) < 2 or roll.mean() == 0:
        return float("nan")
    return float(roll.std(ddof=1) / abs(roll.mean()))


def cvar(returns: pd.Series, alpha: float = 0.95) -> float:
    """Historical CVaR at ``alpha``: minus the mean return at or below the (1 - alpha) quantile."""
    r = returns.dropna().to_numpy(dtype=float)
    if len(r) == 0:
        return float("nan")
    var = np.quantile(r, 1.0 - alpha)
    return float(-r[r <= var].mean())


def wilcoxon_p(returns: pd.Series, benchmark: pd.Series, alternative: str = "two-sided") -> float:
    """Wilcoxon signed-rank p-value of paired returns vs the benchmark (1.0 when they never differ)."""
    both = pd.concat([returns, benchmark], axis=1, join="inner").dropna()
    diff = both.iloc[:, 0].to_numpy(dtype=float) - both.iloc[:, 1].to_numpy(dtype=float)
    if np.count_nonzero(np.abs(diff) > 1e-15) < 2:
        return 1.0
    return float(stats.wilcoxon(diff, alternative=alternative).pvalue)


def entropy_weights(matrix: np.ndarray, benefit: Sequence[bool]) -> np.ndarray:
    """Entropy weights of the criteria (columns) of a strategies x criteria matrix (eq. 36-38)."""
    x = np.asarray(matrix, dtype=float)
    m, k = x.shape
    if m < 2:
        return np.full(k, 1.0 / k)
    lo, hi = x.min(axis=0), x.max(axis=0)
    ben = np.asarray(benefit)[None, :]
    r = np.where(ben, x - lo, hi - x) / (hi - lo + 1e-10)
    e = np.ones(k)
    for j in range(k):
        s = r[:, j].sum()
        if s > 0:
            p = r[:, j] / s
            nz = p > 0
            e[j] = -np.sum(p[nz] * np.log(p[nz])) / np.log(m)
    d = 1.0 - e
    return d / d.sum() if d.sum() > 0 else np.full(k, 1.0 / k)


def topsis(matrix: np.ndarray, weights: np.ndarray, benefit: Sequence[bool]) -> np.ndarray:
    """TOPSIS relative closeness of each strategy (row) to the ideal solution (eq. 29-35)."""
    x = np.asarray(matrix, dtype=float)
    norm = np.sqrt((x**2).sum(axis=0))
    r = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    v = r * np.asarray(weights, dtype=float)
    ben = np.asarray(benefit)
    best = np.where(ben, v.max(axis=0), v.min(axis=0))
    worst = np.where(ben, v.min(axis=0), v.max(axis=0))
    d_best = np.sqrt(((v - best) ** 2).sum(axis=1))
    d_worst = np.sqrt(((v - worst) ** 2).sum(axis=1))
    total = d_best + d_worst
    return np.divide(d_worst, total, out=np.full(len(x), 0.5), where=total > 0)


def reliability(
    returns: Mapping[str, pd.Series],
    *,
    benchmark: str,
    interval: str,
    window: int = 30,
    alpha: float = 0.95,
) -> pd.DataFrame:
    """The reliability table: one row per strategy, sorted by TOPSIS ``Score`` (best first).

    ``returns``: strategy name -> bar returns (e.g. ``BacktestResult.returns``); ``benchmark``:
    the name of the strategy the Wilcoxon test compares against (buy-and-hold). Columns:
    ``Sharpe, CV, CVaR95, p_value, p_greater``, the entropy weights ``w_<criterion>`` and
    ``Score``.
    """
    if benchmark not in returns:
        raise ValueError(f"benchmark {benchmark!r} is not one of the strategies {list(returns)}")
    if len(returns) < 2:
        raise ValueError("the reliability analysis compares at least two strategies")
    bench = returns[benchmark]
    rows = {}
    for name, r in returns.items():
        rows[name] = {
            "Sharpe": sharpe(r, interval),
            "CV": rolling_sharpe_cv(r, window),
            "CVaR95": cvar(r, alpha),
            "p_value": wilcoxon_p(r, bench, "two-sided"),
            "p_greater": wilcoxon_p(r, bench, "greater"),
        }
    table = pd.DataFrame(rows).T
    crit = table[list(CRITERIA)].copy()
    for c, ben in zip(CRITERIA, BENEFIT):
        col = crit[c]
        worst = col.min() if ben else col.max()
        crit[c] = col.fillna(worst if np.isfinite(worst) else 0.0)
    x = crit.to_numpy(dtype=float)
    w = entropy_weights(x, BENEFIT)
    for c, wj in zip(CRITERIA, w):
        table[f"w_{c}"] = wj
    table["Score"] = topsis(x, w, BENEFIT)
    table.index.name = "strategy"
    return table.sort_values("Score", ascending=False)
