"""Is a timing policy skilled, or only exposed? A test against random policies of the same shape.

A policy that holds a coin on 40 % of the bars and trades 12 times will beat buy-and-hold in a
falling market whatever it knows. The fair null is a policy that holds the same exposure and
trades as often, at random times: :func:`same_exposure_paths` draws such paths by shuffling the
policy's own holding periods (runs of a constant position) into a random order, which keeps the
exposure (the time-average position) exactly and the number of trades at most the same (two
shuffled runs of equal position next to each other merge into one).

:func:`skill_test` backtests the policy and ``n`` such paths on the same bars, fee and execution
(:func:`cryptorl.portfolio.backtest.simulate`) and returns the policy's Sortino ratio, the null
Sortinos and the permutation p-value ``(1 + #{null >= policy}) / (n + 1)``. A policy that never
trades has only itself as its null and gets p = 1; a lucky random policy gets a p-value that is
uniform on (0, 1]. :func:`combined_pvalue` pools the p-values of several folds or coins
(Stouffer's method, :func:`scipy.stats.combine_pvalues`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptorl.data.frames import periods_per_year

from .backtest import simulate


def runs(position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The position path as runs: ``(values, lengths)`` of its maximal constant stretches."""
    p = np.asarray(position, dtype="float64")
    if p.ndim != 1 or not len(p):
        raise ValueError("position must be a non-empty 1-D array")
    starts = np.flatnonzero(np.r_[True, np.abs(np.diff(p)) > 1e-12])
    lengths = np.diff(np.r_[starts, len(p)])
    return p[starts], lengths


def same_exposure_paths(position: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random paths (shape ``(n, T)``) holding ``position``'s runs in a random order."""
    values, lengths = runs(position)
    out = np.empty((n, int(lengths.sum())))
    for i in range(n):
        order = rng.permutation(len(values))
        out[i] = np.repeat(values[order], lengths[order])
    return out


@dataclass(frozen=True)
class SkillResult:
    """The outcome of :func:`skill_test`."""

    sortino: float  # the policy's
    null: np.ndarray  # the random same-exposure paths' Sortinos
    pvalue: float  # (1 + #{null >= sortino}) / (n + 1)

    @property
    def percentile(self) -> float:
        """Share of the null paths the policy beats (0.5 for a typical random path)."""
        return float(np.mean(self.null < self.sortino))


def _sortinos(paths: np.ndarray, close: np.ndarray, open_, *, fee: float, execution: str, ppy: float) -> np.ndarray:
    import empyrical  # imported here: it pulls in scipy.stats

    rets = []
    for path in paths:
        weights = np.column_stack([1.0 - path, path])
        values, *_ = simulate(
            weights, close[:, None], None if open_ is None else open_[:, None], cost=fee, execution=execution
        )
        rets.append(values[1:] / values[:-1] - 1.0)
    r = np.array(rets).T  # (T - 1, paths)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.asarray(empyrical.sortino_ratio(r, required_return=0.0, annualization=ppy), dtype="float64")
    flat = ~np.any(r, axis=0)
    s[flat] = 0.0  # a path that never holds: no return, no risk (the metrics' convention)
    return np.nan_to_num(s, nan=0.0, posinf=np.finfo("float64").max)


def skill_test(
    position: pd.Series,
    market: pd.DataFrame,
    *,
    interval: str,
    fee: float = 0.001,
    execution: str = "close",
    n: int = 999,
    seed: int = 0,
) -> SkillResult:
    """Test a one-coin timing policy (crypto share at each decision time) against ``n`` random
    paths with its exposure and (at most) its number of trades on the same bars and costs."""
    if not isinstance(position, pd.Series) or not len(position):
        raise ValueError("position must be a non-empty pandas Series of crypto shares")
    p = position.to_numpy(dtype="float64")
    if np.isnan(p).any() or (p < -1e-12).any() or (p > 1 + 1e-12).any():
        raise ValueError("position must be crypto shares in [0, 1]")
    bars = market.reindex(position.index)
    if bars["close"].isna().any():
        raise ValueError("the market lacks bars at some of the policy's decision times")
    close = bars["close"].to_numpy(dtype="float64")
    open_ = bars["open"].to_numpy(dtype="float64") if execution == "next_open" else None
    ppy = periods_per_year(interval)
    paths = np.vstack([p, same_exposure_paths(p, n, np.random.default_rng(seed))])
    s = _sortinos(np.clip(paths, 0.0, 1.0), close, open_, fee=fee, execution=execution, ppy=ppy)
    own, null = float(s[0]), s[1:]
    return SkillResult(own, null, float((1 + np.sum(null >= own - 1e-12)) / (n + 1)))


def combined_pvalue(pvalues) -> float:
    """One p-value for several independent tests (Stouffer's z), e.g. folds or coins."""
    from scipy.stats import combine_pvalues

    p = np.clip(np.asarray(list(pvalues), dtype="float64"), 1e-12, 1 - 1e-12)
    return float(combine_pvalues(p, method="stouffer").pvalue)


__all__ = ["SkillResult", "combined_pvalue", "runs", "same_exposure_paths", "skill_test"]
