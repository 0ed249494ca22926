"""Chen & Zheng's (2025) reliability analysis (cryptorl.portfolio.reliability): hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cryptorl.portfolio.reliability import (
    cvar,
    entropy_weights,
    reliability,
    rolling_sharpe_cv,
    sharpe,
    topsis,
    wilcoxon_p,
)


def test_entropy_weights_hand_case():
    # two criteria, three strategies; column 2 is constant -> no information, weight 0
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(entropy_weights(x, [True, True]), [1.0, 0.0])
    # benefit column r = (0, .5, 1) -> p = (0, 1/3, 2/3); e = -(1/3 ln 1/3 + 2/3 ln 2/3)/ln 3
    # cost column (same numbers) r = (1, .5, 0) -> the same entropy; equal weights
    e = -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3)) / np.log(3)
    x2 = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(entropy_weights(x2, [True, False]), [0.5, 0.5])
    assert 1 - e > 0


def test_topsis_hand_case():
    # one benefit, one cost criterion, equal weights
    x = np.array([[3.0, 1.0], [1.0, 3.0], [2.0, 2.0]])
    w = np.array([0.5, 0.5])
    norm = np.sqrt(14.0)
    v = x / norm * 0.5
    best, worst = np.array([v[0, 0], v[0, 1]]), np.array([v[1, 0], v[1, 1]])
    d_best = np.sqrt(((v - best) ** 2).sum(axis=1))
    d_worst = np.sqrt(((v - worst) ** 2).sum(axis=1))
    np.testing.assert_allclose(topsis(x, w, [True, False]), d_worst / (d_best + d_worst))
    np.testing.assert_allclose(topsis(x, w, [True, False]), [1.0, 0.0, 0.5])


def test_cvar_and_sharpe_and_cv():
    r = pd.Series(np.arange(-10, 10) / 100.0)  # -0.10 .. 0.09
    q = np.quantile(r, 0.05)
    assert cvar(r) == pytest.approx(-r[r <= q].mean())
    assert cvar(r) == pytest.approx(0.10)  # only the worst bar is at or below the 5 % quantile
    assert sharpe(r, "1d") == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(365))
    assert sharpe(pd.Series([0.0] * 10), "1d") == 0.0
    roll = r.rolling(5).mean() / r.rolling(5).std(ddof=1)
    assert rolling_sharpe_cv(r, 5) == pytest.approx(roll.std(ddof=1) / abs(roll.mean()))


def test_wilcoxon_matches_scipy_and_handles_identical_series():
    rng = np.random.default_rng(0)
    a, b = pd.Series(rng.normal(0.01, 0.02, 60)), pd.Series(rng.normal(0.0, 0.02, 60))
    assert wilcoxon_p(a, b) == pytest.approx(stats.wilcoxon(a - b).pvalue)
    assert wilcoxon_p(a, b, "greater") == pytest.approx(stats.wilcoxon(a - b, alternative="greater").pvalue)
    assert wilcoxon_p(a, a) == 1.0


def test_reliability_ranks_a_dominating_strategy_first():
    rng = np.random.default_rng(1)
    idx = pd.date_range("2022-01-01", periods=200, freq="D", tz="UTC")
    noise = rng.normal(0, 0.02, 200)
    rets = {
        "bench": pd.Series(noise, index=idx),
        "good": pd.Series(noise * 0.5 + 0.004, index=idx),  # higher mean, half the risk
        "bad": pd.Series(noise * 1.5 - 0.004, index=idx),
        "cash": pd.Series(0.0, index=idx),  # never moves: CV undefined -> worst CV
    }
    table = reliability(rets, benchmark="bench", interval="1d")
    assert table.index[0] == "good"
    assert table.loc["good", "Score"] > 0.9 > table.loc["bad", "Score"]
    assert table.loc["bench", "p_value"] == 1.0
    assert table.loc["good", "p_greater"] < 0.01
    w = table[[c for c in table.columns if c.startswith("w_")]].iloc[0]
    assert w.sum() == pytest.approx(1.0)
    assert table["Score"].between(0, 1).all()


def test_reliability_needs_the_benchmark():
    with pytest.raises(ValueError, match="benchmark"):
        reliability({"a": pd.Series([0.1, 0.2])}, benchmark="b", interval="1d")
