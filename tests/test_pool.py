"""One policy learned on several coins' experience (CMConfig.pool, envs.pooled): episodes stay
inside one coin's bars, the pooled coins' bars after the training end are never used, and the
module stays its own coin's (validation, prior, saved format)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.crypto_module import CMConfig
from agents.training import Split, train_crypto_module
from cryptorl.data.demo import demo_market
from cryptorl.data.frames import to_utc_timestamp as utc
from envs import CryptoModuleEnv, CryptoModuleVecEnv, pooled

SPLIT = Split(
    (utc("2019-06-01"), utc("2020-05-31")),
    (utc("2020-06-01"), utc("2020-08-31")),
    (utc("2020-09-01"), utc("2020-12-31")),
)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def markets():
    return {a: demo_market(a, "1d", "2019-01-01", "2020-12-31") for a in ("BTC", "ETH", "LINK")}


def _env(market, asset, **kw):
    return CryptoModuleEnv(market, asset=asset, window=10, episode_length=20, observe_position=True, **kw)


def test_pooled_episodes_stay_inside_one_coin_and_step_as_that_coin(markets):
    btc = _env(markets["BTC"], "BTC", start="2019-06-01", end="2019-12-31", fee=0.0)
    eth = _env(markets["ETH"], "ETH", start="2020-01-01", end="2020-05-31", fee=0.0)
    pool = pooled([btc, eth])
    n_btc = btc.last_step - btc.first_step + 1
    assert len(pool.index) == n_btc + eth.last_step - eth.first_step + 1
    starts = pool.episode_starts
    assert ((starts + 20 < n_btc) | (starts >= n_btc)).all()  # never across the seam
    assert len(starts) == (n_btc - 20) + (len(pool.index) - n_btc - 20)
    np.testing.assert_array_equal(pool.obs_tensor[n_btc + 3], eth.obs_tensor[eth.first_step + 3])
    # a vector env on the pool: each step earns its own coin's price move (no fee: all in or out)
    vec = CryptoModuleVecEnv(pool, 6, seed=1)
    vec.reset()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(80):
        bars = vec.steps.copy()
        actions = rng.integers(0, 2, 6)
        _, rewards, _, _ = vec.step(actions)
        for i, t in enumerate(bars):
            src, t0 = (btc, btc.first_step + t) if t < n_btc else (eth, eth.first_step + t - n_btc)
            seen.add(src.asset)
            assert rewards[i] == pytest.approx(np.log(src.y_close[t0 + 1]) if actions[i] else 0.0, abs=1e-12)
    assert seen == {"BTC", "ETH"}
    with pytest.raises(ValueError, match="cannot pool"):
        pooled([btc, CryptoModuleEnv(markets["ETH"], asset="ETH", window=12, episode_length=20)])


def test_pooled_training_never_uses_the_pooled_coins_later_bars(markets):
    config = CMConfig(asset="BTC", pool=["ETH", "LINK"], ensemble=2, timesteps=4_000, prior="donchian")
    module, _ = train_crypto_module(markets["BTC"], None, config, SPLIT, pool=markets)
    changed = {a: m.copy() for a, m in markets.items()}
    for a in ("ETH", "LINK"):
        later = changed[a].index > SPLIT.train[1]
        changed[a].loc[later, ["open", "high", "low", "close"]] *= 0.2  # the pooled coins' validation and after
    again, _ = train_crypto_module(markets["BTC"], None, config, SPLIT, pool=changed)
    a = module.decide_range(markets["BTC"], None, *SPLIT.backtest)
    pd.testing.assert_frame_equal(a, again.decide_range(markets["BTC"], None, *SPLIT.backtest))
    alone, _ = train_crypto_module(markets["BTC"], None, CMConfig(**{**config.__dict__, "pool": []}), SPLIT)
    key = "q_net.q_net.0.weight"  # same seed, same initial weights: the pooled experience changes what is learned
    assert not np.array_equal(alone.sam.policy.state_dict()[key], module.sam.policy.state_dict()[key])


def test_pool_options_are_checked(markets):
    assert CMConfig(asset="BTC", pool=["eth", "BTC", "ETH"]).pool == ["ETH"]
    with pytest.raises(ValueError, match="list of assets"):
        CMConfig(pool="all")
    with pytest.raises(ValueError, match="with_eam"):
        CMConfig(pool=["ETH"], with_eam=True)
    with pytest.raises(ValueError, match="pass their markets"):
        train_crypto_module(markets["BTC"], None, CMConfig(pool=["ETH"], timesteps=100), SPLIT)


def test_pooling_needs_one_reward(markets):
    with pytest.raises(ValueError, match="reward must be the same"):
        pooled([_env(markets["BTC"], "BTC"), _env(markets["ETH"], "ETH", reward="dsr")])
