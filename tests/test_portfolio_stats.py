"""Deflated Sharpe, PBO, paired window tests and the block bootstrap: hand-computed cases and checks
over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cryptorl.portfolio.stats import (
    EULER_GAMMA,
    bootstrap_difference,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    paired_windows,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
    sortino_ratio,
)

R = np.array([0.01, -0.005, 0.02, 0.0, 0.015, -0.01, 0.004])


def test_ratios_hand_computed():
    assert sharpe_ratio(R) == pytest.approx(R.mean() / R.std(ddof=1))
    assert sortino_ratio(R) == pytest.approx(R.mean() / np.sqrt((0.005**2 + 0.01**2) / 7))
    assert sharpe_ratio([0.01, 0.01, 0.01]) == 0.0 and sortino_ratio([0.01, 0.02, 0.0]) == 0.0


def test_probabilistic_sharpe_ratio_hand_computed():
    sr = R.mean() / R.std(ddof=1)
    m2 = ((R - R.mean()) ** 2).mean()
    g3 = ((R - R.mean()) ** 3).mean() / m2**1.5
    g4 = ((R - R.mean()) ** 4).mean() / m2**2
    z = sr * np.sqrt(6) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(R) == pytest.approx(stats.norm.cdf(z))
    assert probabilistic_sharpe_ratio(R, sr) == pytest.approx(0.5)  # against itself


def test_deflated_sharpe_is_psr_with_one_trial_and_falls_with_more():
    r = np.random.default_rng(0).normal(0.002, 0.02, 500)
    assert deflated_sharpe_ratio(r, 1) == pytest.approx(probabilistic_sharpe_ratio(r))
    dsr = [deflated_sharpe_ratio(r, n) for n in (1, 2, 10, 100, 1000)]
    assert all(a > b for a, b in zip(dsr, dsr[1:]))
    # the default variance of the trials' Sharpe ratios is the null sampling variance 1 / (T - 1)
    assert deflated_sharpe_ratio(r, 10) == pytest.approx(
        probabilistic_sharpe_ratio(r, expected_max_sharpe(10, 1 / 499))
    )


def test_expected_max_sharpe_hand_computed_and_by_simulation():
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert expected_max_sharpe(2, 1.0) == pytest.approx(EULER_GAMMA * stats.norm.ppf(1 - 1 / (2 * np.e)))
    draws = np.random.default_rng(1).normal(0, 0.1, size=(20_000, 100)).max(axis=1)
    assert expected_max_sharpe(100, 0.01) == pytest.approx(draws.mean(), rel=0.03)
    with pytest.raises(ValueError, match="trials"):
        expected_max_sharpe(0, 1.0)


def test_pbo_hand_computed():
    # two windows, two configurations, each best in one window: the in-sample winner always loses
    assert probability_of_backtest_overfitting([[1.0, 0.0], [0.0, 1.0]]).pbo == 1.0
    assert probability_of_backtest_overfitting([[1.0, 0.0], [1.0, 0.0]]).pbo == 0.0
    res = probability_of_backtest_overfitting(np.zeros((6, 3)) + np.arange(3), n_blocks=6)
    assert res.pbo == 0.0 and len(res.logits) == 20 and res.n_configs == 3  # C(6, 3) combinations


def test_pbo_zero_when_one_configuration_dominates_and_near_one_when_overfit():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(24, 6))
    m[:, 3] += 5.0  # best in every window
    assert probability_of_backtest_overfitting(m).pbo == 0.0
    # each configuration shines in one block of windows and loses elsewhere: whatever wins in
    # sample was lucky there
    over = rng.normal(0, 0.1, size=(16, 8))
    for j in range(8):
        over[2 * j : 2 * j + 2, j] += 3.0
    assert probability_of_backtest_overfitting(over).pbo > 0.9


def test_pbo_of_pure_noise_is_about_one_half_over_seeds():
    """Under pure noise the in-sample winner's out-of-sample rank is uniform: PBO about 0.5."""
    pbos = [probability_of_backtest_overfitting(np.random.default_rng(s).normal(size=(12, 8))).pbo for s in range(30)]
    assert 0.35 < np.mean(pbos) < 0.65


def test_pbo_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="two configurations"):
        probability_of_backtest_overfitting(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="even number"):
        probability_of_backtest_overfitting(np.zeros((4, 2)), n_blocks=3)


def test_paired_windows_share_and_wilcoxon():
    a = pd.Series([1.0, 2.0, 3.0, 5.0], index=list("wxyz"))
    b = pd.Series([0.0, 0.0, 4.0], index=list("wxy"))
    won, p = paired_windows(a, b)
    assert won == pytest.approx(2 / 3)  # z has no baseline
    assert p == pytest.approx(stats.wilcoxon([1.0, 2.0, -1.0]).pvalue)
    assert paired_windows(a, a) == (0.0, 1.0)


def test_bootstrap_finds_a_clearly_better_series():
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 0.03, 1500)
    better = base * 0.5 + 0.004  # half the risk plus a drift
    res = bootstrap_difference(better, base, reps=500)
    assert res["sortino"].difference > 0 and res["sortino"].p_value < 0.01
    assert res["sortino"].ci_low > 0 and res["sharpe"].p_value < 0.01
    # pandas series are paired on their common index
    idx = pd.date_range("2020-01-01", periods=1500, freq="1D")
    again = bootstrap_difference(pd.Series(better, idx), pd.Series(base, idx).iloc[:1400], reps=100)
    assert again["sharpe"].difference == pytest.approx(sharpe_ratio(better[:1400]) - sharpe_ratio(base[:1400]))


def test_bootstrap_p_values_are_about_uniform_under_the_null():
    ps = []
    for seed in range(60):
        rng = np.random.default_rng(100 + seed)
        a, b = rng.standard_t(4, size=(2, 600)) * 0.02
        ps.append(bootstrap_difference(a, b, reps=200, seed=seed, statistics=("sortino",))["sortino"].p_value)
    ps = np.asarray(ps)
    assert stats.kstest(ps, "uniform").pvalue > 0.001
    assert 0.3 < ps.mean() < 0.7 and (ps < 0.05).mean() < 0.15


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_bootstrap_standard_error_is_the_sharpe_differences_and_sets_what_it_can_detect(rho):
    """For iid normal returns with zero means and correlation rho, a Sharpe difference has the
    standard error sqrt((2 - 2 rho) / T) (Jobson & Korkie 1981, Memmel 2003); the bootstrap (mean
    block 1: iid resampling) finds it, and the detectable difference is 2.80 of it
    (z_0.975 + z_0.8 = 1.95996 + 0.84162)."""
    rng = np.random.default_rng(11)
    n = 2_000
    a, e = rng.normal(0.0, 0.02, size=(2, n))
    b = rho * a + np.sqrt(1 - rho**2) * e
    res = bootstrap_difference(a, b, reps=1_000, block=1.0, statistics=("sharpe",))["sharpe"]
    assert res.se == pytest.approx(np.sqrt((2 - 2 * rho) / n), rel=0.1)
    assert res.detectable() == pytest.approx(2.801585 * res.se, rel=1e-6)
    assert res.detectable(power=0.5) == pytest.approx(1.959964 * res.se, rel=1e-6)


def test_bootstrap_is_reproducible_by_seed():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 0.02, size=(2, 300))
    assert bootstrap_difference(a, b, reps=100, seed=7) == bootstrap_difference(a, b, reps=100, seed=7)
    with pytest.raises(ValueError, match="statistics"):
        bootstrap_difference(a, b, statistics=("calmar",))
