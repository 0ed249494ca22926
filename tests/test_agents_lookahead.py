"""Every agent: valid weights, and no look-ahead (perturbing the future leaves weights up to t unchanged)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.base import validate_weights
from agents.catalog import AGENT_NAMES, FORECASTERS, make_agents
from cryptorl.data.demo import demo_data
from cryptorl.portfolio.backtest import check_weights

ASSETS = ("BTC", "ETH", "LINK")
TRAIN_END, START, END = "2021-08-31", "2021-09-01", "2021-09-30"


@pytest.fixture(scope="module")
def data():
    mk, mx = {}, {}
    for a in ASSETS:
        mk[a], mx[a] = demo_data(a, start="2021-01-01", end="2021-10-10")
    return mk, mx


@pytest.fixture(scope="module", params=AGENT_NAMES)
def fitted(request, data):
    mk, mx = data
    agent = make_agents([request.param], fast=True, use_metrics=True)[request.param]
    agent.fit(mk, mx, end=TRAIN_END)
    return agent, agent.weights(mk, mx, start=START, end=END)


def perturb(mk: dict, mx: dict, cutoff: pd.Timestamp, seed: int) -> tuple[dict, dict]:
    """Scramble every bar and metric after ``cutoff`` (OHLC scaled together, so bars stay valid)."""
    rng = np.random.default_rng(seed)
    mk2, mx2 = {}, {}
    for a in mk:
        m = mk[a].copy()
        after = m.index > cutoff
        factor = np.exp(rng.normal(0, 0.3, after.sum()))
        m.loc[after, ["open", "high", "low", "close"]] = m.loc[after, ["open", "high", "low", "close"]].mul(
            factor, axis=0
        )
        m.loc[after, "volume"] *= np.exp(rng.normal(0, 1, after.sum()))
        mk2[a] = m
        x = mx[a].copy()
        x.loc[x.index > cutoff] *= np.exp(rng.normal(0, 1, ((x.index > cutoff).sum(), x.shape[1])))
        mx2[a] = x
    return mk2, mx2


def test_weights_are_valid(fitted):
    agent, w = fitted
    validate_weights(w, list(ASSETS), long_short=agent.long_short)
    check_weights(w, "1d")  # the backtest engine accepts them as they are
    assert w.index[0] == pd.Timestamp(START, tz="UTC") and w.index[-1] == pd.Timestamp(END, tz="UTC")
    assert not w.iloc[:, 1:].eq(0).all().all(), "the agent never invests"


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut_at=st.integers(min_value=0, max_value=28), seed=st.integers(0, 2**16))
def test_perturbing_the_future_leaves_past_weights_unchanged(fitted, data, cut_at, seed):
    agent, w = fitted
    mk, mx = data
    cutoff = w.index[cut_at]
    mk2, mx2 = perturb(mk, mx, cutoff, seed)
    w2 = agent.weights(mk2, mx2, start=START, end=END)
    pd.testing.assert_frame_equal(w.loc[:cutoff], w2.loc[:cutoff], rtol=0, atol=1e-12)
    if agent.name in FORECASTERS:
        f1 = agent.forecast(mk, mx, start=START, end=END)
        f2 = agent.forecast(mk2, mx2, start=START, end=END)
        pd.testing.assert_frame_equal(f1.loc[:cutoff], f2.loc[:cutoff], rtol=0, atol=1e-12)


def test_weights_ending_early_equal_the_full_run(fitted, data):
    agent, w = fitted
    mk, mx = data
    t = w.index[20]
    # float32 networks: a different batch size changes the BLAS blocking by ~1e-8, nothing more
    pd.testing.assert_frame_equal(agent.weights(mk, mx, start=START, end=t), w.loc[:t], rtol=0, atol=1e-6)
