"""Allocators: their optimisations against independent formulations, constraints, holding rules."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.allocators import (
    BuyAndHold,
    EqualWeight,
    MaxSharpe,
    MaxSortino,
    MeanDownside,
    MeanVariance,
    MinCVaR,
    MinVariance,
    Momentum,
    RiskParity,
    _cap_weights,
)
from agents.base import hold_targets, weights_frame
from cryptorl.data.demo import demo_market
from cryptorl.portfolio.backtest import backtest
from cryptorl.portfolio.baselines import equal_weight_buy_and_hold


@pytest.fixture(scope="module")
def window() -> pd.DataFrame:
    """A fixed small problem: 120 bars of 3 assets' simple returns."""
    rng = np.random.default_rng(3)
    return pd.DataFrame(rng.normal([0.002, 0.001, 0.0015], [0.03, 0.02, 0.04], (120, 3)), columns=list("ABC"))


@pytest.fixture(scope="module")
def markets() -> dict[str, pd.DataFrame]:
    return {a: demo_market(a, start="2021-01-01", end="2021-12-31") for a in ("BTC", "ETH", "LINK")}


def _simplex_grid(step: float = 0.01) -> np.ndarray:
    k = int(round(1 / step))
    pts = [(i, j, k - i - j) for i in range(k + 1) for j in range(k + 1 - i)]
    return np.array(pts, dtype=float) / k


def test_mean_variance_matches_cvxpy_utility(window):
    mu, sigma = window.mean().to_numpy(), np.cov(window.T.to_numpy(), ddof=1)
    w = cp.Variable(3)
    cp.Problem(cp.Maximize(mu @ w - 2.0 * cp.quad_form(w, sigma)), [cp.sum(w) == 1, w >= 0]).solve(solver="CLARABEL")
    got = MeanVariance(risk_aversion=2.0).allocate(window)
    np.testing.assert_allclose(got, w.value, atol=1e-4)


def test_max_sharpe_matches_cvxpy_homogenised_problem(window):
    mu, sigma = window.mean().to_numpy(), np.cov(window.T.to_numpy(), ddof=1)
    y = cp.Variable(3)
    cp.Problem(cp.Minimize(cp.quad_form(y, sigma)), [mu @ y == 1, y >= 0]).solve(solver="CLARABEL")
    np.testing.assert_allclose(MaxSharpe().allocate(window), y.value / y.value.sum(), atol=1e-4)


def test_min_variance_matches_cvxpy_with_cap(window):
    sigma = np.cov(window.T.to_numpy(), ddof=1)
    w = cp.Variable(3)
    cp.Problem(cp.Minimize(cp.quad_form(w, sigma)), [cp.sum(w) == 1, w >= 0, w <= 0.4]).solve(solver="CLARABEL")
    got = MinVariance(max_weight=0.4).allocate(window)
    np.testing.assert_allclose(got, w.value, atol=1e-4)
    assert got.max() <= 0.4 + 1e-6


def test_min_cvar_matches_rockafellar_uryasev_lp(window):
    r, beta = window.to_numpy(), 0.95
    w, a, u = cp.Variable(3), cp.Variable(), cp.Variable(len(r))
    cons = [cp.sum(w) == 1, w >= 0, u >= 0, u >= -r @ w - a]
    prob = cp.Problem(cp.Minimize(a + cp.sum(u) / ((1 - beta) * len(r))), cons)
    prob.solve(solver="CLARABEL")
    got = MinCVaR().allocate(window)

    def cvar(x):
        return a_cvar(r @ x, beta)

    assert cvar(got) == pytest.approx(prob.value, abs=1e-5)
    np.testing.assert_allclose(got, w.value, atol=1e-3)


def a_cvar(port: np.ndarray, beta: float) -> float:
    """Historical CVaR of losses as the LP defines it (mean of the worst (1-beta) tail)."""
    loss = np.sort(-port)[::-1]
    k = (1 - beta) * len(loss)
    whole = int(np.floor(k))
    return float((loss[:whole].sum() + (k - whole) * loss[whole]) / k)


def _sortino(port: np.ndarray) -> float:
    semi = np.sqrt(np.mean(np.minimum(port - port.mean(), 0.0) ** 2))
    return port.mean() / semi


def test_max_sortino_beats_every_point_of_a_simplex_grid(window):
    r = window.to_numpy()
    best = max(_sortino(r @ g) for g in _simplex_grid())
    got = MaxSortino().allocate(window)
    assert got.sum() == pytest.approx(1.0) and (got >= -1e-9).all()
    assert _sortino(r @ got) >= best - 1e-5


def test_mean_downside_is_least_downside_among_portfolios_as_good_as_1_over_n(window):
    r = window.to_numpy()
    target = r.mean(axis=0).mean()

    def semi(p):
        return np.sqrt(np.mean(np.minimum(p - p.mean(), 0.0) ** 2))

    feasible = [g for g in _simplex_grid() if (r @ g).mean() >= target]
    best = min(semi(r @ g) for g in feasible)
    got = MeanDownside().allocate(window)
    assert (r @ got).mean() >= target - 1e-7
    assert semi(r @ got) <= best + 1e-6


def test_risk_parity_equalises_risk_contributions(window):
    sigma = np.cov(window.T.to_numpy(), ddof=1)
    w = RiskParity().allocate(window)
    contrib = w * (sigma @ w)
    np.testing.assert_allclose(contrib / contrib.sum(), np.full(3, 1 / 3), atol=1e-3)


def test_ratio_allocators_fall_back_when_no_asset_has_a_positive_mean(window):
    agent = MaxSharpe()
    w = agent.allocate(window - 0.01)
    assert agent.fallbacks == 1
    sigma = np.cov(window.T.to_numpy(), ddof=1)
    v = cp.Variable(3)
    cp.Problem(cp.Minimize(cp.quad_form(v, sigma)), [cp.sum(v) == 1, v >= 0]).solve(solver="CLARABEL")
    np.testing.assert_allclose(w, v.value, atol=1e-4)  # minimum standard deviation = minimum variance


def test_momentum_hand_case():
    r = pd.DataFrame({"A": [0.10, 0.10], "B": [0.0, 0.05], "C": [-0.1, 0.0]})
    # compounded: A 0.21, B 0.05, C -0.10 -> weights 0.21/0.26, 0.05/0.26, 0
    np.testing.assert_allclose(Momentum().allocate(r), [0.21 / 0.26, 0.05 / 0.26, 0.0])
    np.testing.assert_allclose(Momentum().allocate(-r.abs()), [1 / 3, 1 / 3, 1 / 3])


def test_cap_weights_spreads_the_excess():
    np.testing.assert_allclose(_cap_weights(np.array([0.8, 0.2, 0.0]), 0.5), [0.5, 0.5, 0.0])
    np.testing.assert_allclose(_cap_weights(np.array([0.9, 0.1, 0.0]), 0.4), [0.4, 0.4, 0.2])


def test_infeasible_cap_is_refused(markets):
    with pytest.raises(ValueError, match="fully invested"):
        MinVariance(max_weight=0.3).fit(markets, end="2021-08-31")


def test_weights_hold_between_rebalances(markets):
    agent = MinVariance(window=60, rebalance=5).fit(markets, end="2021-08-31")
    w = agent.weights(markets, start="2021-09-01", end="2021-10-31")
    res = backtest(w, markets, interval="1d", fee=0.001)
    traded = res.turnover[res.turnover > 1e-12].index
    rebal = w.index[::5]
    assert set(traded) <= set(rebal)  # trades only on rebalance days
    assert (w["cash"] == 0).all()


def test_buy_and_hold_is_the_engines_equal_weight_baseline(markets):
    agent = BuyAndHold().fit(markets, end="2021-08-31")
    w = agent.weights(markets, start="2021-09-01", end="2021-10-31")
    ref = equal_weight_buy_and_hold(markets, ["BTC", "ETH", "LINK"], start="2021-09-01", end="2021-10-31")
    pd.testing.assert_frame_equal(w, ref, check_freq=False)


def test_equal_weight_resets_to_one_over_n(markets):
    w = EqualWeight(rebalance=7).fit(markets, end="2021-08-31").weights(markets, start="2021-09-01", end="2021-10-31")
    np.testing.assert_allclose(w.iloc[::7, 1:].to_numpy(), 1 / 3)


@pytest.mark.parametrize("bad", [dict(window=1), dict(rebalance=0), dict(max_weight=0.0), dict(max_weight=1.5)])
def test_bad_parameters(bad):
    with pytest.raises(ValueError):
        MinVariance(**bad)


def test_misaligned_markets_get_one_clear_error(markets):
    bad = dict(markets)
    bad["ETH"] = markets["ETH"].iloc[1:]
    with pytest.raises(ValueError, match=r"\[ETH\].*index differs"):
        MinVariance().fit(bad, end="2021-08-31")


def test_unfitted_agent_says_so(markets):
    with pytest.raises(RuntimeError, match="not fitted"):
        MinVariance().weights(markets)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    every=st.integers(1, 6),
)
def test_hold_targets_rows_are_on_the_simplex_and_trade_only_at_targets(seed, every):
    rng = np.random.default_rng(seed)
    n, k = 30, 3
    idx = pd.date_range("2022-01-01", periods=n, freq="D", tz="UTC", name="time")
    closes = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.05, (n, k)), axis=0)), index=idx, columns=list("ABC"))
    targets = {t: rng.dirichlet(np.ones(k + 1)) for t in idx[::every]}
    rows = hold_targets(targets, closes, idx)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)
    assert (rows >= 0).all()
    mk = {
        a: pd.DataFrame({"open": closes[a], "high": closes[a], "low": closes[a], "close": closes[a], "volume": 1.0})
        for a in "ABC"
    }
    res = backtest(weights_frame(idx, list("ABC"), rows), mk, interval="1d", fee=0.001)
    traded = set(res.turnover[res.turnover > 1e-12].index)
    assert traded <= set(targets)
