"""The batched VecEnv equals N single environments, and stable-baselines3 trains on it."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from agents.training import make_logger
from cryptorl.data.demo import demo_market
from envs import CryptoModuleEnv, CryptoModuleVecEnv


def market():
    return demo_market("ETH", "1d", "2021-01-01", "2021-04-30")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(execution="close", action_type="discrete"),
        dict(execution="next_open", action_type="discrete"),
        dict(execution="next_open", action_type="continuous"),
        dict(execution="close", action_type="discrete", observe_position=True),
        dict(execution="next_open", action_type="continuous", observe_position=True),
        dict(execution="close", action_type="discrete", observe_position=True, reward="dsr"),
        dict(execution="next_open", action_type="continuous", reward="dsr"),
        dict(execution="close", action_type="discrete", observe_position=True, reward="drawdown"),
        dict(execution="next_open", action_type="continuous", reward="drawdown"),
    ],
)
def test_vector_env_equals_single_envs(kwargs):
    n_envs, seed, steps = 5, 11, 60
    template = CryptoModuleEnv(market(), window=7, episode_length=13, fee=0.003, **kwargs)
    vec = CryptoModuleVecEnv(template, n_envs, seed=seed, full_info=True)
    singles = [CryptoModuleEnv(market(), window=7, episode_length=13, fee=0.003, **kwargs) for _ in range(n_envs)]
    obs = vec.reset()
    single_obs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    dones_seen = 0
    for _ in range(steps):
        if kwargs["action_type"] == "discrete":
            actions = rng.integers(0, 2, n_envs)
        else:
            actions = rng.uniform(-0.2, 1.2, (n_envs, 1)).astype(np.float32)
        obs, rewards, dones, infos = vec.step(actions)
        for i, env in enumerate(singles):
            o, r, term, trunc, info = env.step(actions[i])
            assert rewards[i] == pytest.approx(r, rel=1e-12, abs=1e-15)
            assert dones[i] == (term or trunc)
            for key in ("value", "fee", "turnover", "position", "drifted_position", "trade_price"):
                assert infos[i][key] == pytest.approx(info[key], rel=1e-12, abs=1e-15), key
            assert infos[i]["time"] == info["time"]
            if trunc:
                dones_seen += 1
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["TimeLimit.truncated"] and infos[i]["final_value"] == pytest.approx(info["value"])
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)
    assert dones_seen >= n_envs * 3


def test_vector_env_refuses_bad_actions_and_lean_infos_are_empty():
    vec = CryptoModuleVecEnv(num_envs=3, seed=0, window=5, episode_length=10)
    vec.reset()
    with pytest.raises(ValueError, match="0 \\(all cash\\) or 1"):
        vec.step(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="expected 3 actions"):
        vec.step(np.array([0, 1]))
    _, _, _, infos = vec.step(np.array([1, 1, 0]))
    assert infos == [{}, {}, {}]
    assert vec.values.shape == (3,) and vec.weights.tolist() == [1.0, 1.0, 0.0]
    assert vec.get_attr("asset") == ["BTC"] * 3 and vec.env_is_wrapped(VecMonitor) == [False] * 3


def test_ppo_runs_on_the_vector_env():
    vec = VecMonitor(CryptoModuleVecEnv(num_envs=8, seed=0, window=10, episode_length=32))
    model = PPO("MlpPolicy", vec, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.set_logger(make_logger(None, "ppo"))  # SB3 would leave an SB3-<time> folder in the temp folder
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    assert len(model.ep_info_buffer) >= 8  # episodes ended and were reset automatically
    action, _ = model.predict(vec.reset(), deterministic=True)
    assert action.shape == (8,) and set(np.unique(action)) <= {0, 1}


def test_observed_position_is_the_previous_action():
    """The position row holds the last action (crypto column) and its complement (cash column);
    every other row equals the observation of an environment that does not observe it."""
    plain = CryptoModuleEnv(market(), window=7, episode_length=20, action_type="continuous")
    env = CryptoModuleEnv(market(), window=7, episode_length=20, action_type="continuous", observe_position=True)
    assert env.feature_names == (*plain.feature_names, "position")
    assert env.observation_space.shape == (plain.observation_space.shape[0] + 1, 2, 7)
    obs, _ = env.reset(seed=3)
    ref, _ = plain.reset(seed=3)
    np.testing.assert_array_equal(obs[-1], [[0.0] * 7, [1.0] * 7])  # an episode starts in cash
    for a in (1.0, 0.25, 0.25, 0.0, 0.7):
        obs, _, _, _, _ = env.step(np.array([a], dtype=np.float32))
        ref, _, _, _, _ = plain.step(np.array([a], dtype=np.float32))
        np.testing.assert_allclose(obs[-1], [[a] * 7, [1.0 - a] * 7], rtol=1e-6)
        np.testing.assert_array_equal(obs[:-1], ref)
    assert not env.obs_tensor.flags.writeable and not env.obs_tensor[:, -1].any()
