"""The skill test against random same-exposure policies (cryptorl.portfolio.skill)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorl.portfolio import backtest
from cryptorl.portfolio.skill import combined_pvalue, runs, same_exposure_paths, skill_test


def _market(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    idx = pd.date_range("2022-01-01", periods=n, freq="1D", tz="UTC", name="time")
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)


def test_runs_by_hand():
    values, lengths = runs(np.array([0, 0, 1, 1, 1, 0, 0.5, 0.5]))
    assert values.tolist() == [0, 1, 0, 0.5] and lengths.tolist() == [2, 3, 1, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.4, 1.0]), min_size=1, max_size=60), st.integers(0, 2**31))
def test_paths_keep_exposure_and_do_not_trade_more(path, seed):
    p = np.array(path)
    out = same_exposure_paths(p, 20, np.random.default_rng(seed))
    assert out.shape == (20, len(p))
    np.testing.assert_allclose(out.sum(axis=1), p.sum())
    assert all(len(runs(row)[0]) <= len(runs(p)[0]) for row in out)


def test_policy_sortino_is_the_engines():
    market = _market()
    pos = pd.Series((np.arange(len(market)) // 7) % 2, index=market.index, dtype="float64")
    res = skill_test((pos, market), interval="1d", n=19)
    weights = pd.DataFrame({"cash": 1 - pos, "X": pos})
    engine = backtest(weights, {"X": market}, interval="1d", fee=0.001).metrics()["Sortino"]
    assert res.sortino == pytest.approx(engine, rel=1e-9)


def test_doing_nothing_or_holding_has_no_skill():
    market = _market()
    for value in (0.0, 1.0):
        res = skill_test((pd.Series(value, index=market.index), market), interval="1d", n=99)
        assert res.pvalue == pytest.approx(0.5)  # its null is itself: no evidence either way


def test_an_oracle_is_skilled_and_random_policies_are_not():
    market = _market(300)
    up = (market["close"].shift(-1) > market["close"]).astype("float64").fillna(0.0)
    assert skill_test((up, market), interval="1d", n=199).pvalue < 0.01
    # random policies: the p-values are about uniform, so the 5 % test passes about 5 % of them
    rng = np.random.default_rng(1)
    pvals = []
    for i in range(60):
        pos = pd.Series(np.repeat(rng.integers(0, 2, 30), 10).astype("float64"), index=market.index)
        pvals.append(skill_test((pos, market), interval="1d", n=99, seed=i).pvalue)
    assert np.mean(np.array(pvals) < 0.05) <= 0.15
    assert 0.35 < np.mean(pvals) < 0.65


def test_folds_are_stitched_and_exposure_across_folds_counts():
    market = _market(400, seed=3)
    a, b = market.iloc[:100], market.iloc[200:300]
    rising = a if a["close"].iloc[-1] > a["close"].iloc[0] else b
    falling = b if rising is a else a
    # in during the rising fold, out during the falling one: per fold a constant, across folds skill
    folds = [(pd.Series(1.0, index=rising.index), market), (pd.Series(0.0, index=falling.index), market)]
    assert skill_test(folds, interval="1d", n=99).pvalue < 0.5
    res = skill_test(folds, interval="1d", n=9)
    assert len(res.null) == 9


def test_combined_pvalue():
    assert combined_pvalue([1.0, 1.0]) > 0.999
    assert combined_pvalue([0.01, 0.02, 0.01]) < 0.001
    assert combined_pvalue([0.5]) == pytest.approx(0.5)


def test_bad_input_is_refused():
    market = _market(20)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        skill_test((pd.Series(2.0, index=market.index), market), interval="1d")


def test_a_prior_is_not_skill_of_its_filter():
    market = _market(300, seed=5)
    # a prior that knows tomorrow: following it all the time is skill of the rule, not of the filter
    oracle = (market["close"].shift(-1) > market["close"]).astype("float64").fillna(0.0)
    always = pd.Series(1.0, index=market.index)
    assert skill_test((oracle, market), interval="1d", n=99).pvalue < 0.01
    assert skill_test((always, market, oracle), interval="1d", n=99).pvalue == pytest.approx(0.5)
    # random filters of the oracle: about uniform p-values
    rng = np.random.default_rng(2)
    pvals = []
    for i in range(40):
        act = pd.Series(np.repeat(rng.integers(0, 2, 30), 10).astype("float64"), index=market.index)
        pvals.append(skill_test((act, market, oracle), interval="1d", n=99, seed=i).pvalue)
    assert np.mean(np.array(pvals) < 0.05) <= 0.2 and 0.3 < np.mean(pvals) < 0.7
    # the policy's position is action * prior: the engine's Sortino of that product
    half = pd.Series(0.5, index=market.index)
    res = skill_test((always, market, half), interval="1d", n=9)
    weights = pd.DataFrame({"cash": 1 - half, "X": half})
    assert res.sortino == pytest.approx(backtest(weights, {"X": market}, interval="1d").metrics()["Sortino"], rel=1e-9)
    with pytest.raises(ValueError, match="prior"):
        skill_test((always, market, half.iloc[:-1]), interval="1d", n=9)


def test_a_lift_of_a_prior_is_tested_against_random_lifts_of_it():
    market = _market(300, seed=5)
    # a lift is prior + action * (1 - prior): the engine's Sortino of that position
    rng = np.random.default_rng(1)
    prior = pd.Series(rng.uniform(0, 1, len(market)).round(2), index=market.index)
    act = pd.Series(np.repeat(rng.integers(0, 2, 30), 10).astype("float64"), index=market.index)
    res = skill_test((act, market, prior, True), interval="1d", n=9)
    held = prior + act * (1 - prior)
    weights = pd.DataFrame({"cash": 1 - held, "X": held})
    assert res.sortino == pytest.approx(backtest(weights, {"X": market}, interval="1d").metrics()["Sortino"], rel=1e-9)
    # a prior that knows tomorrow: never lifting it is no skill of the lift (only itself as null),
    # and neither is always lifting it (every random lift holds the coin throughout, too)
    oracle = (market["close"].shift(-1) > market["close"]).astype("float64").fillna(0.0)
    for action in (0.0, 1.0):
        fold = (pd.Series(action, index=market.index), market, oracle, True)
        assert skill_test(fold, interval="1d", n=99).pvalue == pytest.approx(0.5)
    # lifting the oracle on exactly the days it is out (before each fall) holds the coin throughout:
    # random lifts of the same exposure keep some of the oracle's exits and beat it
    worst = pd.Series((1 - oracle).to_numpy(), index=market.index)
    assert skill_test((worst, market, oracle, True), interval="1d", n=99).pvalue > 0.95
    # False is the filter
    a = skill_test((act, market, prior, False), interval="1d", n=19)
    b = skill_test((act, market, prior), interval="1d", n=19)
    assert a.sortino == b.sortino and np.array_equal(a.null, b.null)
