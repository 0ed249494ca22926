"""Property tests over random price paths and actions: invariants and no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from envs_helpers import random_market
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import CryptoModuleEnv, PortfolioEnv, SignalEnv
from envs.accounting import differential_sharpe

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**32 - 1)
executions = st.sampled_from(["close", "next_open"])


@SETTINGS
@given(seed=seeds, n=st.integers(8, 40), window=st.integers(1, 6), execution=executions, continuous=st.booleans())
def test_crypto_module_invariants(seed, n, window, execution, continuous):
    rng = np.random.default_rng(seed)
    market = random_market(rng, n)
    env = CryptoModuleEnv(
        market,
        window=window,
        fee=0.002,
        execution=execution,
        action_type="continuous" if continuous else "discrete",
        asset="RND",
    )
    obs, info = env.reset(seed=seed)
    value = info["value"]
    trunc = False
    while not trunc:
        action = rng.uniform(-0.5, 1.5, 1).astype(np.float32) if continuous else int(rng.integers(0, 2))
        obs, r, term, trunc, info = env.step(action)
        assert not term
        assert env.observation_space.contains(obs) and np.isfinite(obs).all()
        assert info["value"] > 0 and info["fee"] >= 0
        assert 0.0 <= info["position"] <= 1.0 and 0.0 <= info["drifted_position"] <= 1.0 + 1e-12
        assert 0.0 <= info["turnover"] <= 1.0
        assert math.isclose(r, math.log(info["value"] / value), rel_tol=1e-9, abs_tol=1e-12)
        # the fee is at most c times the value at the trade (the next open moves it by y_gap)
        at_trade = value if execution == "close" else value * max(1.0, env.y_gap[env.index.get_loc(info["time"])])
        assert info["fee"] <= at_trade * 0.002 * (1 + 1e-12)
        value = info["value"]


@SETTINGS
@given(seed=seeds, k=st.integers(1, 3), execution=executions)
def test_portfolio_invariants(seed, k, execution):
    rng = np.random.default_rng(seed)
    markets = {f"A{i}": random_market(rng, 15) for i in range(k)}
    env = PortfolioEnv(markets, window=3, fee=0.001, execution=execution)
    _, info = env.reset()
    trunc = False
    while not trunc:
        _, r, _, trunc, info = env.step(rng.uniform(-1, 1, k + 1).astype(np.float32))
        for key in ("weights", "drifted_weights"):
            w = info[key]
            assert (w >= 0).all() and abs(w.sum() - 1) < 1e-12
        assert info["value"] > 0 and info["fee"] >= 0 and np.isfinite(r)


@SETTINGS
@given(seed=seeds, short=st.booleans(), execution=executions)
def test_signal_env_positions_follow_the_actions(seed, short, execution):
    rng = np.random.default_rng(seed)
    env = SignalEnv(random_market(rng, 20), window=3, short_on_sell=short, execution=execution, asset="RND")
    env.reset()
    pos = 0.0
    trunc = term = False
    while not (trunc or term):
        a = int(rng.integers(0, 3))
        obs, r, term, trunc, info = env.step(a)
        pos = 1.0 if a == 0 else (-1.0 if short else 0.0) if a == 1 else pos
        assert info["position"] == pos and obs[-1, 0] == pos
        assert info["fee"] >= 0 and np.isfinite(r)
        if not short:
            assert info["equity"] > 0


def _perturb_after(market: pd.DataFrame, t: int, rng: np.random.Generator) -> pd.DataFrame:
    """Same bars up to t, a different (still valid) random path after t."""
    other = random_market(rng, len(market) - t - 1, start=market.index[t + 1])
    return pd.concat([market.iloc[: t + 1], other * rng.uniform(0.2, 5.0)])


@SETTINGS
@given(seed=seeds, n=st.integers(10, 40), window=st.integers(1, 6), execution=executions, data=st.data())
def test_no_look_ahead(seed, n, window, execution, data):
    """Observations up to t, and the rewards of decisions before t, ignore every bar after t."""
    rng = np.random.default_rng(seed)
    market = random_market(rng, n)
    feats = pd.DataFrame(rng.normal(size=(n, 2)), index=market.index, columns=["pc1", "pc2"])
    signals = pd.Series(rng.integers(-1, 2, n).astype(float), index=market.index)
    kw = dict(window=window, execution=execution, asset="RND")
    env = CryptoModuleEnv(market, feats, signals=signals, **kw)
    t = data.draw(st.integers(env.first_step, n - 2), label="t")
    market2 = _perturb_after(market, t, rng)
    feats2 = feats.copy()
    feats2.iloc[t + 1 :] = rng.normal(size=(n - t - 1, 2)) * 100
    signals2 = signals.copy()
    signals2.iloc[t + 1 :] = -signals.iloc[t + 1 :]
    env2 = CryptoModuleEnv(market2, feats2, signals=signals2, **kw)
    assert env2.first_step == env.first_step
    np.testing.assert_array_equal(env.obs_tensor[: t + 1], env2.obs_tensor[: t + 1])
    assert not np.array_equal(env.obs_tensor[t + 1 :], env2.obs_tensor[t + 1 :])  # the test can fail

    actions = rng.integers(0, 2, n)
    for e in (env, env2):
        e.reset()
    step = env.first_step
    while step < t:  # decisions at bars < t are settled by bar t at the latest
        a = int(actions[step])
        o1, r1, *_, i1 = env.step(a)
        o2, r2, *_, i2 = env2.step(a)
        step += 1
        np.testing.assert_array_equal(o1, o2)
        assert (r1, i1["value"], i1["fee"], i1["trade_price"]) == (r2, i2["value"], i2["fee"], i2["trade_price"])


@SETTINGS
@given(seed=seeds, data=st.data())
def test_no_look_ahead_signal_and_portfolio(seed, data):
    rng = np.random.default_rng(seed)
    a, b = random_market(rng, 20), random_market(rng, 20)
    t = data.draw(st.integers(4, 18), label="t")
    a2, b2 = _perturb_after(a, t, rng), _perturb_after(b, t, rng)
    p1 = PortfolioEnv({"A": a, "B": b}, window=4)
    p2 = PortfolioEnv({"A": a2, "B": b2}, window=4)
    np.testing.assert_array_equal(p1.obs_tensor[: t + 1], p2.obs_tensor[: t + 1])
    s1, s2 = SignalEnv(a, window=4), SignalEnv(a2, window=4)
    np.testing.assert_array_equal(s1.obs_tensor[: t + 1], s2.obs_tensor[: t + 1])


@settings(max_examples=60, deadline=None)
@given(
    r=st.floats(-0.5, 0.5),
    a=st.floats(-0.05, 0.05),
    excess=st.floats(1e-5, 0.01),
    k=st.floats(0.01, 100.0),
)
def test_differential_sharpe_does_not_depend_on_the_scale_of_returns(r, a, excess, k):
    """Scaling every return by k scales the moments by k and k^2 and leaves the reward unchanged:
    a module rewarded by it gains nothing from holding more or less of the same bet."""
    b = a * a + excess
    d, *_ = differential_sharpe(r, a, b, 0.05, excess / 4)
    dk, *_ = differential_sharpe(k * r, k * a, k * k * b, 0.05, k * k * excess / 4)
    assert dk == pytest.approx(d, rel=1e-9, abs=1e-9)
