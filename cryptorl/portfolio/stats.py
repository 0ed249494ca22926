"""Is a strategy better than a baseline, or lucky? Statistics over windows and daily returns.

* :func:`probabilistic_sharpe_ratio` (Bailey & López de Prado 2012, "The Sharpe ratio efficient
  frontier"): the probability that the true Sharpe ratio exceeds ``sr_benchmark`` given the
  estimate ``SR``, ``T`` returns, their skewness ``g3`` and (non-excess) kurtosis ``g4``::

      PSR = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))

  with per-period (not annualised) Sharpe ratios.
* :func:`deflated_sharpe_ratio` (Bailey & López de Prado 2014, "The deflated Sharpe ratio"): PSR
  against the Sharpe ratio that the best of ``N`` unskilled trials reaches by luck,
  :func:`expected_max_sharpe`::

      SR* = sqrt(V) ((1 - e) Phi^-1(1 - 1/N) + e Phi^-1(1 - 1/(N exp(1))))

  where ``V`` is the variance of the trials' Sharpe ratios and ``e`` the Euler-Mascheroni
  constant. With one trial ``SR* = 0`` and DSR is PSR against 0. When the trials' Sharpe ratios
  are not all known, ``V`` defaults to the sampling variance of a Sharpe estimate under the null,
  ``1 / (T - 1)``.
* :func:`probability_of_backtest_overfitting` (Bailey, Borwein, López de Prado & Zhu 2015, "The
  probability of backtest overfitting"): combinatorially symmetric cross-validation over a
  (periods x configurations) performance matrix. The rows are cut into ``S`` blocks; for every
  choice of ``S/2`` blocks as in-sample, the configuration best in sample is ranked out of sample
  (the other blocks), ``w = rank / (N + 1)``, logit ``l = ln(w / (1 - w))``. PBO is the share of
  choices with ``l <= 0``: the in-sample winner is at or below the median out of sample.
* :func:`paired_windows`: the share of windows a strategy wins and the Wilcoxon signed-rank
  p-value (``scipy.stats.wilcoxon``) of its paired per-window scores against a baseline's.
* :func:`bootstrap_difference`: a stationary block bootstrap (Politis & Romano 1994, ``arch``'s
  ``StationaryBootstrap``) of paired daily returns: the difference of the Sortino (or Sharpe)
  ratios, a two-sided p-value for "no difference" (the bootstrap differences centred on the
  observed one, Hall & Wilson 1991) and a percentile confidence interval. Pairs are resampled
  together, so the correlation between the two series is kept. Its standard error ``se`` gives
  the scoreboard's power: :meth:`BootstrapResult.detectable`, the true difference that a two-sided
  test at level ``alpha`` finds with probability ``power``, ``(z_(1 - alpha/2) + z_power) se``
  (2.80 se at 0.05 and 0.8): a smaller edge is there or not, the data cannot say.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from cryptorl.portfolio.reliability import wilcoxon_p

EULER_GAMMA = 0.5772156649015329


def _array(returns) -> np.ndarray:
    r = np.asarray(returns, dtype="float64")
    r = r[np.isfinite(r)]
    if len(r) < 3:
        raise ValueError(f"need at least three returns, got {len(r)}")
    return r


def _sharpe_rows(r: np.ndarray) -> np.ndarray:
    sd = r.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, r.mean(axis=-1) / np.where(sd > 0, sd, 1.0), 0.0)


def _sortino_rows(r: np.ndarray) -> np.ndarray:
    down = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2, axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(down > 0, r.mean(axis=-1) / np.where(down > 0, down, 1.0), 0.0)


def sharpe_ratio(returns) -> float:
    """Per-period Sharpe ratio ``mean / std`` (ddof 1, risk-free 0); 0 when the returns never vary."""
    return float(_sharpe_rows(_array(returns)))


def sortino_ratio(returns) -> float:
    """Per-period Sortino ratio ``mean / sqrt(mean(min(r, 0)^2))`` (target 0, as
    :func:`cryptorl.portfolio.metrics.performance` before annualising); 0 with no downside."""
    return float(_sortino_rows(_array(returns)))


def probabilistic_sharpe_ratio(returns, sr_benchmark: float = 0.0) -> float:
    """PSR: probability that the true per-period Sharpe ratio exceeds ``sr_benchmark`` (module notes)."""
    r = _array(returns)
    sr = sharpe_ratio(r)
    if r.std(ddof=1) == 0:
        return 0.5 if sr_benchmark == 0 else float(sr > sr_benchmark)
    g3 = float(stats.skew(r))
    g4 = float(stats.kurtosis(r, fisher=False))
    denom = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2
    z = (sr - sr_benchmark) * np.sqrt(len(r) - 1) / np.sqrt(max(denom, 1e-12))
    return float(stats.norm.cdf(z))


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """The expected maximum of ``n_trials`` per-period Sharpe estimates with true Sharpe 0 and
    variance ``var_sharpe`` (Bailey & López de Prado 2014, eq. of ``SR*``); 0 for one trial."""
    n = int(n_trials)
    if n < 1:
        raise ValueError(f"the number of trials must be at least 1, got {n_trials}")
    if n == 1:
        return 0.0
    g = EULER_GAMMA
    z = (1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * np.e))
    return float(np.sqrt(var_sharpe) * z)


def deflated_sharpe_ratio(returns, n_trials: int, var_sharpe: float | None = None) -> float:
    """DSR: PSR against :func:`expected_max_sharpe` of ``n_trials`` (module notes).

    ``var_sharpe``: variance of the per-period Sharpe ratios of the trials; default ``1 / (T - 1)``.
    """
    r = _array(returns)
    var = 1.0 / (len(r) - 1) if var_sharpe is None else float(var_sharpe)
    return probabilistic_sharpe_ratio(r, expected_max_sharpe(n_trials, var))


@dataclass(frozen=True)
class PBOResult:
    """:func:`probability_of_backtest_overfitting`'s answer."""

    pbo: float
    logits: np.ndarray  # one per combination of in-sample blocks
    n_blocks: int
    n_configs: int


def probability_of_backtest_overfitting(performance, n_blocks: int | None = None) -> PBOResult:
    """PBO by combinatorially symmetric cross-validation (module notes).

    ``performance``: (periods x configurations), e.g. each window's Sortino ratio per
    configuration (rows in time order); a configuration's score on a set of rows is their mean.
    ``n_blocks``: an even number of row blocks ``S`` (default: the largest even number up to
    ``min(periods, 16)``); there are ``C(S, S/2)`` combinations.
    """
    m = np.asarray(performance, dtype="float64")
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError("PBO needs a (periods x configurations) matrix with at least two configurations")
    t, n = m.shape
    s = min(t, 16) // 2 * 2 if n_blocks is None else int(n_blocks)
    if s < 2 or s % 2 or s > t:
        raise ValueError(f"PBO needs an even number of blocks between 2 and the {t} periods, got {s}")
    if not np.isfinite(m).all():
        raise ValueError("the performance matrix has a missing or infinite value")
    blocks = np.array_split(np.arange(t), s)
    sums = np.stack([m[b].sum(axis=0) for b in blocks])  # (S, N)
    counts = np.array([len(b) for b in blocks], dtype="float64")
    mask = np.array([[i in c for i in range(s)] for c in itertools.combinations(range(s), s // 2)], dtype="float64")
    is_score = (mask @ sums) / (mask @ counts)[:, None]  # (C, N): mean over the in-sample rows
    oos = ((1 - mask) @ sums) / ((1 - mask) @ counts)[:, None]
    best = np.argmax(is_score, axis=1)
    oos_best = oos[np.arange(len(oos)), best][:, None]
    rank = (oos < oos_best).sum(axis=1) + ((oos == oos_best).sum(axis=1) + 1) / 2  # 1 worst .. N best, ties averaged
    w = rank / (n + 1)
    logits = np.log(w / (1 - w))
    return PBOResult(float(np.mean(logits <= 0)), logits, s, n)


def paired_windows(scores: pd.Series, baseline: pd.Series) -> tuple[float, float]:
    """``(share of windows where scores > baseline, two-sided Wilcoxon signed-rank p)`` over the
    windows both have (1.0 when they never differ)."""
    both = pd.concat([scores, baseline], axis=1, join="inner").dropna()
    if both.empty:
        return float("nan"), float("nan")
    won = float((both.iloc[:, 0] > both.iloc[:, 1]).mean())
    return won, wilcoxon_p(both.iloc[:, 0], both.iloc[:, 1])


@dataclass(frozen=True)
class BootstrapResult:
    """:func:`bootstrap_difference`'s answer (per-period ratios, not annualised)."""

    difference: float
    p_value: float
    ci_low: float
    ci_high: float
    se: float  # the bootstrap standard error of the difference

    def detectable(self, alpha: float = 0.05, power: float = 0.8) -> float:
        """The smallest true difference a two-sided test at ``alpha`` detects with probability
        ``power`` (normal approximation): ``(z_(1 - alpha/2) + z_power) * se``."""
        return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * self.se)


_RATIOS = {"sortino": _sortino_rows, "sharpe": _sharpe_rows}


def bootstrap_difference(
    returns: pd.Series | np.ndarray,
    baseline: pd.Series | np.ndarray,
    *,
    statistics: Sequence[str] = ("sortino", "sharpe"),
    block: float = 20.0,
    reps: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, BootstrapResult]:
    """Stationary block bootstrap of ``ratio(returns) - ratio(baseline)`` on paired returns, for each
    ratio of ``statistics`` (``"sortino"``, ``"sharpe"``) on the same resamples.

    ``block``: mean block length in bars (keeps volatility clusters and autocorrelation). Series
    are paired on their common index.
    """
    from arch.bootstrap import StationaryBootstrap

    unknown = set(statistics) - set(_RATIOS)
    if unknown:
        raise ValueError(f"statistics must be among {sorted(_RATIOS)}, got {sorted(unknown)}")
    if isinstance(returns, pd.Series) and isinstance(baseline, pd.Series):
        both = pd.concat([returns, baseline], axis=1, join="inner").dropna()
        a, b = both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()
    else:
        a, b = np.asarray(returns, dtype="float64"), np.asarray(baseline, dtype="float64")
        if a.shape != b.shape:
            raise ValueError(f"paired returns need the same length, got {a.shape} and {b.shape}")
    if len(a) < 3:
        raise ValueError(f"the bootstrap needs at least three paired returns, got {len(a)}")
    bs = StationaryBootstrap(block, a, seed=np.random.default_rng(seed))
    idx = np.array([bs.index for _ in bs.bootstrap(int(reps))])  # (reps, T): both series resampled together
    out = {}
    for name in statistics:
        ratio = _RATIOS[name]
        observed = float(ratio(a) - ratio(b))
        draws = ratio(a[idx]) - ratio(b[idx])
        p = float((np.sum(np.abs(draws - observed) >= abs(observed)) + 1) / (reps + 1))
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
        out[name] = BootstrapResult(observed, p, float(lo), float(hi), float(draws.std(ddof=1)))
    return out


def trials_sharpe_variance(sharpes: Sequence[float]) -> float | None:
    """The variance (ddof 1) of the trials' per-period Sharpe ratios, None with fewer than two."""
    s = np.asarray([x for x in sharpes if np.isfinite(x)], dtype="float64")
    return float(s.var(ddof=1)) if len(s) >= 2 else None


__all__ = [
    "BootstrapResult",
    "PBOResult",
    "bootstrap_difference",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "paired_windows",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "sharpe_ratio",
    "sortino_ratio",
    "trials_sharpe_variance",
]
