"""``CryptoModuleVecEnv``: N Crypto Module episodes stepped in one NumPy call (an SB3 ``VecEnv``).

All N environments share one :class:`~envs.crypto_module.CryptoModuleEnv`'s precomputed
observation tensor and price relatives; each has its own bar pointer, value and position. A
step gathers the N observations with one fancy index, computes the N rewards with the same
arithmetic as the single environment (:mod:`envs.accounting`, on arrays; its ``reward`` too), and resets finished
environments in place the way stable-baselines3 expects: the returned observation is the new
episode's first one and ``infos[i]["terminal_observation"]`` holds the last one, with
``infos[i]["TimeLimit.truncated"] = True`` (episodes end by truncation).

Seeding: environment i draws its episode starts from its own generator, seeded ``seed + i``
exactly as ``CryptoModuleEnv.reset(seed=seed + i)`` would, so N single environments reset with
those seeds and fed the same actions give the same rewards. ``seed`` may also be a list of N
seeds, one per environment (K groups of environments stepped together, each seeded as its own
vector environment would be).

Speed: the per-step ``infos`` are empty dicts unless ``full_info=True`` (building N dicts of
floats costs more than the step itself); the same figures are always in the arrays
``values``, ``positions`` (drifted crypto weights), ``weights`` (last target weights),
``fees``, ``turnovers`` and ``steps`` (current bar numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from .accounting import differential_sharpe, drawdown_rise, one_asset_close, one_asset_next_open
from .crypto_module import DRAWDOWN_PENALTY, DSR_ETA, CryptoModuleEnv, prior_share, with_position


class CryptoModuleVecEnv(VecEnv):
    """N Crypto Module episodes over one precomputed tensor; see the module docstring.

    ``env``: the template environment (its data, window, fees, execution, range, episode
    length and action type are used); or leave it None and pass ``CryptoModuleEnv`` keyword
    arguments.
    """

    def __init__(
        self,
        env: CryptoModuleEnv | None = None,
        num_envs: int = 8,
        *,
        seed: int | Sequence[int] | None = None,
        full_info: bool = False,
        **env_kwargs: Any,
    ):
        if env is None:
            env = CryptoModuleEnv(**env_kwargs)
        elif env_kwargs:
            raise ValueError("pass either a CryptoModuleEnv or its keyword arguments, not both")
        if not isinstance(env, CryptoModuleEnv):
            raise TypeError(f"env must be a CryptoModuleEnv, got {type(env).__name__}")
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.env = env
        super().__init__(int(num_envs), env.observation_space, env.action_space)
        n = self.num_envs
        self.full_info = bool(full_info)
        self._tensor = env.obs_tensor
        # price relatives of the step that starts at bar t, at index t: one take per step
        self._close_next, self._gap_next, self._intra_next = env.y_close[1:], env.y_gap[1:], env.y_intra[1:]
        self._discrete = env.action_type == "discrete"
        self._next_open = env.execution == "next_open"
        self._rngs: list[np.random.Generator | None] = [None] * n
        self.steps = np.full(n, env.first_step, dtype=np.int64)
        self._stop = np.full(n, env.last_step, dtype=np.int64)
        self.values = np.ones(n)
        self.positions = np.zeros(n)
        self.weights = np.zeros(n)
        self.fees = np.zeros(n)
        self.turnovers = np.zeros(n)
        self._actions: np.ndarray | None = None
        self._dsr = env.reward == "dsr"
        self._mean, self._second = np.zeros(n), np.full(n, env.dsr_variance)  # the differential Sharpe ratio's moments
        self._peaks, self._drawdowns = np.ones(n), np.zeros(n)  # the "drawdown" reward's running peak and drawdown
        if seed is not None:
            self.seed(seed)

    def seed(self, seed: int | Sequence[int] | None = None) -> Sequence[int | None]:
        """Seeds for the next ``reset``: ``seed + i`` for environment i, or one seed per environment."""
        if seed is None or isinstance(seed, (int, np.integer)):
            return super().seed(None if seed is None else int(seed))
        seeds = [int(s) for s in seed]
        if len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        self._seeds = seeds
        return seeds

    # ------------------------------------------------------------ episodes
    def _new_episode(self, i: int) -> int:
        """Draw environment i's first bar like ``CryptoModuleEnv.reset`` and reset its state."""
        env = self.env
        if self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random(None)
        if env.episode_length is None:
            t0, stop = env.first_step, env.last_step
        elif env.episode_starts is not None:
            t0 = int(env.episode_starts[self._rngs[i].integers(0, len(env.episode_starts))])
            stop = t0 + env.episode_length
        else:
            t0 = int(self._rngs[i].integers(env.first_step, env.last_step - env.episode_length + 1))
            stop = t0 + env.episode_length
        self.steps[i], self._stop[i] = t0, stop
        self.values[i], self.positions[i] = 1.0, 0.0
        self._mean[i], self._second[i] = 0.0, self.env.dsr_variance
        self._peaks[i], self._drawdowns[i] = 1.0, 0.0
        return t0

    def reset(self) -> VecEnvObs:
        for i, s in enumerate(self._seeds):
            if s is not None:
                self._rngs[i], _ = seeding.np_random(s)
            self._new_episode(i)
        self._reset_seeds()
        self._reset_options()
        self.weights[:] = 0.0
        self.fees[:] = 0.0
        self.turnovers[:] = 0.0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        obs = self._tensor.take(self.steps, axis=0)
        return with_position(obs, self.weights) if self.env.observe_position else obs

    def _weights(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions)
        if a.size != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got an array of shape {a.shape}")
        if a.ndim != 1:
            a = a.reshape(self.num_envs)
        if self._discrete:
            # integers: x >> 1 is 0 exactly for 0 and 1 (negative numbers stay negative)
            bad = np.count_nonzero(a >> 1) if a.dtype.kind in "iu" else not np.isin(a, (0, 1)).all()
            if bad:
                raise ValueError("invalid action: CryptoModuleEnv takes 0 (all cash) or 1 (all crypto)")
            return a.astype(np.float64)
        a = a.astype(np.float64)
        if np.isnan(a).any():
            raise ValueError("invalid action nan: expected the crypto share in [0, 1]")
        return np.clip(a, 0.0, 1.0)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        a = self._weights(self._actions)
        self._actions = None
        t = self.steps
        env = self.env
        w = prior_share(a, env.scale.take(t), env.lift) if env.scaled else a  # the prior's share the actions take
        if self._next_open:
            y_gap, y_intra = self._gap_next.take(t), self._intra_next.take(t)
            step = one_asset_next_open(self.values, self.positions, w, y_gap, y_intra, env.cost)
        else:
            step = one_asset_close(self.values, self.positions, w, self._close_next.take(t), env.cost)
        self.values, self.positions, self.fees, self.turnovers, growth = step
        self.weights = w
        if self._dsr:
            rewards, self._mean, self._second = differential_sharpe(
                growth - 1.0, self._mean, self._second, DSR_ETA, self.env.dsr_variance / 4
            )
        else:
            rewards = np.log(growth)
            if env.reward == "drawdown":
                self._drawdowns, rise, self._peaks = drawdown_rise(self.values, self._peaks, self._drawdowns)
                rewards -= DRAWDOWN_PENALTY * rise
        t = t + 1
        self.steps = t
        dones = t >= self._stop
        obs = self._tensor.take(t, axis=0)  # one gather (take beats fancy indexing here)
        if env.observe_position:
            with_position(obs, a)
        if self.full_info:
            infos = [self._info(i) for i in range(self.num_envs)]
        else:
            infos = [{} for _ in range(self.num_envs)]
        finished = np.flatnonzero(dones)
        if finished.size:
            for i in finished:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = True
                infos[i]["final_value"] = float(self.values[i])
                obs[i] = self._tensor[self._new_episode(i)]
                if env.observe_position:
                    with_position(obs[i], 0.0)
        return obs, rewards, dones, infos

    def _info(self, i: int) -> dict[str, Any]:
        t = int(self.steps[i])
        env = self.env
        return {
            "time": env._times[t],
            "decision_time": env._times[t - 1],
            "value": float(self.values[i]),
            "position": float(self.weights[i]),
            "drifted_position": float(self.positions[i]),
            "fee": float(self.fees[i]),
            "turnover": float(self.turnovers[i]),
            "price": float(env.closes[t]),
            "trade_price": float(env.opens[t] if self._next_open else env.closes[t - 1]),
        }

    # ---------------------------------------------------- VecEnv plumbing
    def close(self) -> None:
        self.env.close()

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attributes of the shared template environment (one entry per index)."""
        value = getattr(self.env, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on the shared template; all N environments share it."""
        if len(self._indices(indices)) != self.num_envs:
            raise ValueError("the N environments share one template: set attributes on all of them at once")
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        method = getattr(self.env, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]
