"""Classical allocators of the related papers (the LSTM mean-variance article, Chen & Zheng 2025, Zouaoui & Naas 2025), rebalanced on a rolling estimation window.

Every allocator is long-only and fully invested in the risky assets (cash weight 0), with an
optional per-asset cap ``max_weight``. At each rebalance time t (every ``rebalance`` bars from
the first decision time) it estimates from the simple returns of the last ``window`` bars up to
t and sets target weights; between rebalances the holding drifts with prices (no trading), see
:func:`agents.base.hold_targets`. Decision times with fewer than ``window`` returns of history
hold cash.

The optimisations are skfolio's (``MeanRisk``, ``RiskBudgeting``), solved by CLARABEL via cvxpy:

====================  ==========================================================================
name                  problem
====================  ==========================================================================
``mean_variance``     max  mu'w - lambda w'Sigma w  (the LSTM mean-variance article's utility; skfolio MAXIMIZE_UTILITY)
``max_sharpe``        max  mu'w / sd(w)  (MAXIMIZE_RATIO, STANDARD_DEVIATION)
``min_variance``      min  w'Sigma w
``min_cvar``          min  CVaR_95(w)  (historical, Rockafellar-Uryasev LP)
``max_sortino``       max  mu'w / semi-deviation(w)  (MAXIMIZE_RATIO, SEMI_DEVIATION)
``mean_downside``     MD of Chen & Zheng (2025): min semi-deviation s.t. mu'w >= the 1/N portfolio's mean
``risk_parity``       equal risk contributions to the variance (RiskBudgeting)
``momentum``          DWP of Chen & Zheng (2025) with its momentum rule: w_i ~ max(return over window, 0)
``equal_weight``      1/N, reset every ``rebalance`` bars (the baselines' ``EqualWeight``)
``buy_and_hold``      1/N at the first decision time, never traded again (the baselines' ``EqualWeightBuyAndHold``)
====================  ==========================================================================

The ratio objectives have no solution when no asset has a positive mean in the window; the
allocator then falls back to the minimum of the same risk measure (skfolio ``fallback``) and
counts it in ``fallbacks``.
"""

from __future__ import annotations

import warnings
from typing import Self

import numpy as np
import pandas as pd
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction, RiskBudgeting

from cryptorl.data.frames import to_utc_timestamp
from cryptorl.portfolio.baselines import EqualWeight as _EqualWeight
from cryptorl.portfolio.baselines import EqualWeightBuyAndHold as _EqualWeightBuyAndHold

from .base import Markets, MetricsMap, PortfolioAgent, check_markets, decision_times, hold_targets, weights_frame


class RollingAllocator(PortfolioAgent):
    """Base: estimate on the last ``window`` returns at every ``rebalance``-th bar; hold between."""

    name = "allocator"

    def __init__(self, *, window: int = 90, rebalance: int = 7, max_weight: float | None = None):
        if window < 2:
            raise ValueError(f"window must be >= 2 bars, got {window}")
        if rebalance < 1:
            raise ValueError(f"rebalance must be >= 1 bar, got {rebalance}")
        if max_weight is not None and not 0 < max_weight <= 1:
            raise ValueError(f"max_weight must be in (0, 1], got {max_weight}")
        self.window, self.rebalance, self.max_weight = window, rebalance, max_weight
        self.assets = None
        self.fallbacks = 0

    def fit(self, market: Markets, metrics: MetricsMap = None, *, end=None) -> Self:
        """Nothing to learn beyond the rule; checks the data and the constraints' feasibility."""
        assets, closes = check_markets(market, end)
        if self.max_weight is not None and self.max_weight * len(assets) < 1 - 1e-12:
            raise ValueError(
                f"max_weight={self.max_weight} x {len(assets)} assets < 1: a fully invested long-only "
                "portfolio is impossible (raise max_weight or add assets)"
            )
        self.assets = assets
        self.fit_end = to_utc_timestamp(end) if end is not None else closes.index[-1]
        return self

    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        self._check_fitted()
        self._check_assets(market)
        _, closes = check_markets({a: market[a] for a in self.assets}, end)
        times = decision_times(closes.index, start, end)
        returns = closes.pct_change()
        pos = closes.index.get_indexer(times)
        targets: dict[pd.Timestamp, np.ndarray] = {}
        for k, (t, p) in enumerate(zip(times, pos)):
            if k % self.rebalance or p < self.window:
                continue
            window = returns.iloc[p - self.window + 1 : p + 1]
            w = np.clip(np.asarray(self.allocate(window), dtype=float), 0.0, None)
            targets[t] = np.concatenate([[0.0], w / w.sum()])
        return weights_frame(times, self.assets, hold_targets(targets, closes, times))

    def allocate(self, returns: pd.DataFrame) -> np.ndarray:
        """Risky weights (summing to 1) from a window of simple returns (rows = bars)."""
        raise NotImplementedError

    @property
    def _cap(self) -> float:
        return 1.0 if self.max_weight is None else self.max_weight


class _SkfolioAllocator(RollingAllocator):
    """An allocator whose rule is one skfolio estimator fitted on the return window."""

    def estimator(self, returns: pd.DataFrame):
        raise NotImplementedError

    def allocate(self, returns: pd.DataFrame) -> np.ndarray:
        est = self.estimator(returns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(returns)
        if getattr(est, "fallback_", None) is not None:
            self.fallbacks += 1
        return est.weights_


class MeanVariance(_SkfolioAllocator):
    """The LSTM mean-variance article's mean-variance utility: max mu'w - risk_aversion * w'Sigma w."""

    name = "mean_variance"

    def __init__(self, *, risk_aversion: float = 1.0, **kw):
        super().__init__(**kw)
        self.risk_aversion = risk_aversion

    def estimator(self, returns):
        return MeanRisk(
            objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
            risk_measure=RiskMeasure.VARIANCE,
            risk_aversion=self.risk_aversion,
            max_weights=self._cap,
        )


class _RatioAllocator(_SkfolioAllocator):
    risk_measure = RiskMeasure.STANDARD_DEVIATION

    def estimator(self, returns):
        return MeanRisk(
            objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
            risk_measure=self.risk_measure,
            max_weights=self._cap,
            fallback=MeanRisk(risk_measure=self.risk_measure, max_weights=self._cap),
        )


class MaxSharpe(_RatioAllocator):
    """Maximum Sharpe ratio (tangency portfolio, risk-free rate 0)."""

    name = "max_sharpe"
    risk_measure = RiskMeasure.STANDARD_DEVIATION


class MaxSortino(_RatioAllocator):
    """Maximum Sortino ratio: mean over semi-deviation (Zouaoui & Naas (2025))."""

    name = "max_sortino"
    risk_measure = RiskMeasure.SEMI_DEVIATION


class MinVariance(_SkfolioAllocator):
    """Minimum variance."""

    name = "min_variance"

    def estimator(self, returns):
        return MeanRisk(risk_measure=RiskMeasure.VARIANCE, max_weights=self._cap)


class MinCVaR(_SkfolioAllocator):
    """Minimum historical CVaR at ``beta`` (default 95 %, Zouaoui & Naas (2025))."""

    name = "min_cvar"

    def __init__(self, *, beta: float = 0.95, **kw):
        super().__init__(**kw)
        self.beta = beta

    def estimator(self, returns):
        return MeanRisk(risk_measure=RiskMeasure.CVAR, cvar_beta=self.beta, max_weights=self._cap)


class MeanDownside(_SkfolioAllocator):
    """Chen & Zheng's (2025) MD: minimise downside (semi-) deviation given an expected return.

    The required return is the window's mean return of the 1/N portfolio, which is always
    feasible; so MD is "as much return as 1/N with the least downside deviation".
    """

    name = "mean_downside"

    def estimator(self, returns):
        return MeanRisk(
            risk_measure=RiskMeasure.SEMI_DEVIATION,
            min_return=float(returns.mean().mean()),
            max_weights=self._cap,
            fallback=MeanRisk(risk_measure=RiskMeasure.SEMI_DEVIATION, max_weights=self._cap),
        )


class RiskParity(_SkfolioAllocator):
    """Equal risk contributions to the portfolio variance (skfolio ``RiskBudgeting``)."""

    name = "risk_parity"

    def estimator(self, returns):
        return RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, max_weights=self._cap)


class Momentum(RollingAllocator):
    """Chen & Zheng's (2025) dynamic weighted portfolio (DWP) with its momentum rule.

    "Increase the weight of assets that performed well, decrease the weight of those that
    performed poorly": w_i proportional to max(R_i, 0), R_i the compounded return over the
    window. When no asset has a positive return the portfolio is 1/N (fully invested, as in
    the seed). Weights above ``max_weight`` are capped and the excess is spread over the rest.
    """

    name = "momentum"

    def allocate(self, returns: pd.DataFrame) -> np.ndarray:
        mom = np.clip((1.0 + returns.fillna(0.0)).prod().to_numpy() - 1.0, 0.0, None)
        n = len(mom)
        w = mom / mom.sum() if mom.sum() > 0 else np.full(n, 1.0 / n)
        return _cap_weights(w, self._cap)


class EqualWeight(_EqualWeight):
    """1/N, reset every ``rebalance`` bars (``rebalance=1``: the constant rebalanced portfolio):
    the baseline :class:`cryptorl.portfolio.baselines.EqualWeight` under its catalogue name."""

    name = "equal_weight"
    long_short = False  # as every PortfolioAgent states

    def __init__(self, *, rebalance: int = 7):
        super().__init__(rebalance)


class BuyAndHold(_EqualWeightBuyAndHold):
    """1/N bought at the first decision time, then held: the baseline
    :class:`cryptorl.portfolio.baselines.EqualWeightBuyAndHold` under its catalogue name."""

    name = "buy_and_hold"
    long_short = False


def _cap_weights(w: np.ndarray, cap: float) -> np.ndarray:
    """Cap weights at ``cap`` and spread the excess over the uncapped ones (keeps sum 1)."""
    w = np.asarray(w, dtype=float).copy()
    for _ in range(len(w)):
        over = w > cap + 1e-12
        if not over.any():
            break
        excess = (w[over] - cap).sum()
        w[over] = cap
        free = ~over & (w < cap - 1e-12)
        if not free.any():
            break
        base = w[free] if w[free].sum() > 0 else np.ones(free.sum())
        w[free] += excess * base / base.sum()
    return w


ALLOCATORS: dict[str, type] = {
    cls.name: cls
    for cls in (
        MeanVariance,
        MaxSharpe,
        MinVariance,
        MinCVaR,
        MaxSortino,
        MeanDownside,
        RiskParity,
        Momentum,
        EqualWeight,
        BuyAndHold,
    )
}
