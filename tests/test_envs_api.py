"""Gymnasium / stable-baselines3 conformance, registration, seeding, features and clear errors."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from envs_helpers import market_from, random_market
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from cryptorl.data.demo import demo_market
from cryptorl.data.frames import DataError
from envs import CryptoModuleEnv, PortfolioEnv, SignalEnv, signals_from_actions

SMALL = dict(start="2021-01-01", end="2021-06-30", window=10)


def small_market(asset="BTC"):
    return demo_market(asset, "1d", "2020-11-01", "2021-06-30")


ENV_FACTORIES = {
    "cm-discrete": lambda: CryptoModuleEnv(small_market(), **SMALL),
    "cm-continuous-next-open": lambda: CryptoModuleEnv(
        small_market(), action_type="continuous", execution="next_open", episode_length=40, **SMALL
    ),
    "signal": lambda: SignalEnv(small_market(), short_on_sell=True, episode_length=40, **SMALL),
    "portfolio": lambda: PortfolioEnv({"BTC": small_market("BTC"), "ETH": small_market("ETH")}, **SMALL),
}


@pytest.mark.parametrize("name", list(ENV_FACTORIES))
def test_gymnasium_and_sb3_checkers_pass(name):
    env = ENV_FACTORIES[name]()
    with warnings.catch_warnings():
        # Known, accepted warnings: unbounded feature values, 2-D/3-D observations that are not
        # images, the CM's Box([0], [1]) action (SB3 recommends [-1, 1]).
        warnings.simplefilter("ignore", UserWarning)
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)


def test_registered_ids_make_demo_environments():
    assert set(envs.ENV_IDS) <= set(gym.registry)
    env = gym.make("cryptorl/CryptoModule-v0", asset="BTC")
    assert env.unwrapped.asset == "BTC" and env.observation_space.shape == (6, 2, 30)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    port = gym.make("cryptorl/Portfolio-v0", assets=["BTC", "ETH"], window=5)
    assert port.unwrapped.assets == ["BTC", "ETH"] and port.action_space.shape == (3,)
    sig = gym.make("cryptorl/Signal-v0", asset="ETH", window=5)
    assert sig.action_space.n == 3
    for e in (env, port, sig):
        e.reset(seed=1)
        e.step(e.action_space.sample())


@pytest.mark.parametrize("name", list(ENV_FACTORIES))
def test_same_seed_same_episode(name):
    def episode(seed):
        env = ENV_FACTORIES[name]()
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        out = [(obs, info["time"])]
        for _ in range(25):
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            out.append((obs, info["time"], r))
            if term or trunc:
                break
        return out

    a, b = episode(7), episode(7)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


def test_training_starts_are_random_and_seeded_evaluation_starts_are_fixed():
    train = CryptoModuleEnv(small_market(), episode_length=20, **SMALL)
    starts = {train.reset(seed=s)[1]["time"] for s in range(20)}
    assert len(starts) > 5
    assert {train.reset(seed=3)[1]["time"] for _ in range(3)} == {train.reset(seed=3)[1]["time"]}
    seeded = CryptoModuleEnv(small_market(), episode_length=20, seed=3, **SMALL)
    assert seeded.reset()[1]["time"] == train.reset(seed=3)[1]["time"]
    ev = CryptoModuleEnv(small_market(), **SMALL)
    assert {ev.reset(seed=s)[1]["time"] for s in range(5)} == {pd.Timestamp("2021-01-01", tz="UTC")}
    n = 0
    ev.reset()
    while True:
        *_, trunc, info = ev.step(1)
        n += 1
        if trunc:
            break
    assert n == len(ev.decision_times) and info["time"] == pd.Timestamp("2021-06-30", tz="UTC")
    with pytest.raises(RuntimeError, match="reset"):
        ev.step(1)


def test_external_features_warm_up_and_holes():
    market = random_market(np.random.default_rng(0), 40)
    feats = pd.DataFrame({"pc1": np.arange(40.0), "pc2": -np.arange(40.0)}, index=market.index)
    feats.iloc[:12] = np.nan  # warm-up: the first complete row is bar 12
    env = CryptoModuleEnv(market, feats, window=5, asset="RND")
    assert env.feature_names[-2:] == ("pc1", "pc2")
    assert env.first_step == 12 + 5 - 1
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs[6, 0], [12, 13, 14, 15, 16])
    np.testing.assert_array_equal(obs[6:, 1], 0.0)  # cash row of external features
    holed = feats.copy()
    holed.iloc[30, 0] = np.nan
    with pytest.warns(UserWarning, match="read as 0"):
        env2 = CryptoModuleEnv(market, holed, window=5, asset="RND")
    assert env2.obs_tensor[30, 6, 0, -1] == 0.0


def test_signals_series_and_one_hot():
    market = random_market(np.random.default_rng(1), 30)
    sig = pd.Series(np.tile([1.0, 0.0, -1.0], 10), index=market.index)
    env = CryptoModuleEnv(market, signals=sig, window=3, asset="RND")
    assert env.feature_names[-1] == "signal"
    obs, _ = env.reset()
    t = env.first_step
    np.testing.assert_array_equal(obs[-1, 0], sig.to_numpy()[t - 2 : t + 1])
    onehot = pd.get_dummies(sig.map({1.0: "buy", 0.0: "hold", -1.0: "sell"})).astype(float)
    env = CryptoModuleEnv(market, signals=onehot, window=3, asset="RND")
    assert env.feature_names[-3:] == ("signal_buy", "signal_hold", "signal_sell")
    with pytest.raises(DataError, match="-1 \\(sell\\)"):
        CryptoModuleEnv(market, signals=sig * 2, window=3, asset="RND")
    acts = signals_from_actions([0, 1, 2], market.index[:3])
    assert acts.tolist() == [1.0, -1.0, 0.0]


def test_portfolio_features_may_differ_per_asset_and_markets_are_cut_to_common_times():
    a = random_market(np.random.default_rng(2), 40)
    b = random_market(np.random.default_rng(3), 30, start=a.index[10])
    fa = pd.DataFrame({"pc1": 1.0, "pc2": 2.0}, index=a.index)
    fb = pd.DataFrame({"pc1": 3.0}, index=b.index)
    env = PortfolioEnv({"A": a, "B": b}, {"A": fa, "B": fb}, window=4)
    assert len(env.index) == 30 and env.index[0] == a.index[10]
    assert env.feature_names[-2:] == ("pc1", "pc2")
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs[6:, :, 0], [[0.0, 1.0, 3.0], [0.0, 2.0, 0.0]])  # cash, A, B
    w = env.action_weights(np.array([0.2, -0.5, 0.9]))
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(window=0), ValueError, "window"),
        (dict(window=500), DataError, "window of 500"),
        (dict(fee=-0.1), ValueError, "fee"),
        (dict(execution="vwap"), ValueError, "execution"),
        (dict(action_type="multi"), ValueError, "action_type"),
        (dict(episode_length=10_000), DataError, "episode_length"),
        (dict(start="2030-01-01"), DataError, "no step"),
    ],
)
def test_bad_settings_give_one_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        CryptoModuleEnv(small_market(), **{**dict(window=10), **kwargs})


def test_bad_data_and_actions_give_one_clear_error():
    market = market_from([100.0, 101.0, 102.0, 103.0, 104.0])
    bad = market.copy()
    bad.iloc[2, 3] = -1.0
    with pytest.raises(DataError, match=r"\[TST\].*non-positive"):
        CryptoModuleEnv(bad, window=2, asset="TST")
    feats = pd.DataFrame({"pc1": [0.0, 1.0]}, index=market.index[:2])
    with pytest.raises(DataError, match="lack 3 of the market's 5"):
        CryptoModuleEnv(market, feats, window=2, asset="TST")
    env = CryptoModuleEnv(market, window=2, asset="TST")
    env.reset()
    for action in (2, -1, "buy", 0.5):
        with pytest.raises(ValueError, match="0 \\(all cash\\) or 1"):
            env.step(action)
    env.step(np.int64(1))
    env.step(np.array(0))
    cont = CryptoModuleEnv(market, window=2, asset="TST", action_type="continuous")
    cont.reset()
    with pytest.raises(ValueError, match="share"):
        cont.step(np.array([np.nan]))
    sig = SignalEnv(market, window=2, asset="TST")
    sig.reset()
    with pytest.raises(ValueError, match="buy"):
        sig.step(3)
    port = PortfolioEnv({"A": market, "B": market}, window=2)
    port.reset()
    with pytest.raises(ValueError, match="3 finite logits"):
        port.step(np.zeros(2))
