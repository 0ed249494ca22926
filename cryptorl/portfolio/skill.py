"""Is a timing policy skilled, or only exposed? A test against random policies of the same shape.

A policy that holds a coin on 40 % of the bars and trades 12 times will beat buy-and-hold in a
falling market whatever it knows. The fair null is a policy that holds the same exposure and
trades as often, at random times: :func:`same_exposure_paths` draws such paths by shuffling the
policy's own holding periods (runs of a constant position) into a random order, which keeps the
exposure (the time-average position) exactly and the number of trades at most the same (two
shuffled runs of equal position next to each other merge into one).

:func:`skill_test` backtests the policy and ``n`` such paths on the same bars, fee and execution
(:func:`cryptorl.portfolio.backtest.simulate`) and returns the policy's Sortino ratio, the null
Sortinos and the one-sided permutation mid-p-value ``(#{null > policy} + (#{null = policy} + 1)
/ 2) / (n + 1)``. It takes several folds at once (``[(position, market), ...]``, e.g. forward
validation folds of different periods or coins): the runs are shuffled across all of them, so a
policy that is out of the market in the falling folds and in during the rising ones shows that
as skill, and the Sortino ratio is that of the stitched returns (each fold starts in cash, as a
backtest window does). A fold may carry a prior, ``(action, market, prior)``: the position is then
``action * prior`` (a rule's position the policy filters, e.g. a trend rule's) and the null
shuffles the actions over the same prior, so the test asks whether the filter beats random
filters of the same rule, not whether the rule beats random timing. A fourth element ``lift``
(True) makes the position ``prior + action * (1 - prior)``: the action lifts the rule's position
toward the whole coin instead of filtering it, and the null lifts it at random times. A policy that never trades has only itself as its null and gets p = 1/2:
no evidence either way; a lucky random policy gets a p-value about uniform on (0, 1).
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
    pvalue: float  # the one-sided permutation mid-p-value

    @property
    def percentile(self) -> float:
        """Share of the null paths the policy beats (0.5 for a typical random path)."""
        return float(np.mean(self.null < self.sortino))


def _stitched_sortinos(
    paths: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray | None]], *, fee: float, execution: str, ppy: float
) -> np.ndarray:
    """Sortino ratio of each path's stitched fold returns (paths ``(n, sum of fold lengths)``)."""
    import empyrical  # imported here: it pulls in scipy.stats

    rets = np.empty((len(paths), sum(len(close) - 1 for close, _ in folds)))
    for i, path in enumerate(paths):
        at, col = 0, 0
        for close, open_ in folds:
            p = path[at : at + len(close)]
            values, *_ = simulate(np.column_stack([1.0 - p, p]), close[:, None], open_, cost=fee, execution=execution)
            rets[i, col : col + len(close) - 1] = values[1:] / values[:-1] - 1.0
            at, col = at + len(close), col + len(close) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.asarray(empyrical.sortino_ratio(rets.T, required_return=0.0, annualization=ppy), dtype="float64")
    s[~np.any(rets, axis=1)] = 0.0  # a path that never holds: no return, no risk (the metrics' convention)
    return np.nan_to_num(s, nan=0.0, posinf=np.finfo("float64").max)


def skill_test(
    folds: list[tuple[pd.Series, pd.DataFrame]] | tuple[pd.Series, pd.DataFrame],
    *,
    interval: str,
    fee: float = 0.001,
    execution: str = "close",
    n: int = 999,
    seed: int = 0,
) -> SkillResult:
    """Test a one-coin timing policy against ``n`` random paths with its exposure and (at most)
    its number of trades on the same bars and costs (see the module docstring).

    ``folds``: ``(position, market)`` pairs, ``position`` the crypto share decided at each time
    of a fold (a Series indexed by decision times, all in ``market``); one pair or a list; or
    ``(action, market, prior)`` triples or ``(action, market, prior, lift)`` (see the module
    docstring), ``prior`` in [0, 1] at the same times.
    """
    if isinstance(folds, tuple):
        folds = [folds]
    if not folds:
        raise ValueError("skill_test needs at least one (position, market) fold")
    positions, bars, priors, lifts = [], [], [], []
    for position, market, *prior in folds:
        if not isinstance(position, pd.Series) or len(position) < 2:
            raise ValueError("a position must be a pandas Series of at least two crypto shares")
        p = position.to_numpy(dtype="float64")
        if np.isnan(p).any() or (p < -1e-12).any() or (p > 1 + 1e-12).any():
            raise ValueError("position must be crypto shares in [0, 1]")
        fold = market.reindex(position.index)
        if fold["close"].isna().any():
            raise ValueError("the market lacks bars at some of the policy's decision times")
        close = fold["close"].to_numpy(dtype="float64")
        open_ = fold["open"].to_numpy(dtype="float64")[:, None] if execution == "next_open" else None
        positions.append(np.clip(p, 0.0, 1.0))
        bars.append((close, open_))
        s = np.asarray(prior[0], dtype="float64") if prior else np.ones(len(p))
        if s.shape != p.shape or np.isnan(s).any() or (s < -1e-12).any() or (s > 1 + 1e-12).any():
            raise ValueError("a fold's prior must be one share in [0, 1] per decision time")
        priors.append(s)
        lifts.append(np.full(len(p), bool(prior[1]) if len(prior) > 1 else False))
    own_path = np.concatenate(positions)
    paths = np.vstack([own_path, same_exposure_paths(own_path, n, np.random.default_rng(seed))])
    prior, lift = np.concatenate(priors), np.concatenate(lifts)
    paths = np.where(lift, prior + paths * (1.0 - prior), paths * prior)
    s = _stitched_sortinos(paths, bars, fee=fee, execution=execution, ppy=periods_per_year(interval))
    own, null = float(s[0]), s[1:]
    tie = np.abs(null - own) <= 1e-12 * max(1.0, abs(own))
    above = np.sum((null > own) & ~tie)
    return SkillResult(own, null, float((above + (tie.sum() + 1) / 2) / (n + 1)))


def combined_pvalue(pvalues) -> float:
    """One p-value for several independent tests (Stouffer's z), e.g. coins tested apart."""
    from scipy.stats import combine_pvalues

    p = np.clip(np.asarray(list(pvalues), dtype="float64"), 1e-12, 1 - 1e-12)
    return float(combine_pvalues(p, method="stouffer").pvalue)


__all__ = ["SkillResult", "combined_pvalue", "runs", "same_exposure_paths", "skill_test"]
