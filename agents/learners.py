"""The learners a Crypto Module's SAM can be trained with (``CMConfig.algo``, ``--algo``).

A learner is a name for an SB3-compatible algorithm class with the facts the rest of the project
needs about it: its default hyper-parameters, whether it is on-policy (its networks and rollout
settings), whether the batched backend (:mod:`agents.batched`) can train it, and its
hyper-parameter search space for :mod:`agents.tuning`. Every command takes its ``--algo``
choices from :data:`LEARNERS`.

Adding a learner is one file that calls :func:`register_learner`::

    from agents.learners import register_learner

    register_learner("trpo", "sb3_contrib:TRPO", defaults={"n_steps": 8, "gamma": 0.5}, on_policy=True)

The class is named ``"module:Class"`` (or given as the class itself) and imported only when a
module is built or loaded with it, so listing the learners imports neither torch nor SB3.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# How the members of a Crypto Module are trained (``CMConfig.backend``, ``train_cm --backend``).
BACKENDS: dict[str, str] = {
    "batched": "the K members as one stacked network on one vectorised batch (agents.batched; DQN)",
    "sb3": "stable-baselines3, one member after another (the reference)",
}


def _common_space(trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "gamma": trial.suggest_float("gamma", 0.3, 0.99),
    }


def ppo_space(trial) -> dict[str, Any]:
    """The PPO search space of :mod:`agents.tuning` (an Optuna trial -> hyper-parameters)."""
    return {
        **_common_space(trial),
        "gae_lambda": trial.suggest_float("gae_lambda", 0.8, 0.99),
        "n_epochs": trial.suggest_int("n_epochs", 2, 8),
        "clip_range": trial.suggest_float("clip_range", 0.1, 0.3),
        "ent_coef": trial.suggest_float("ent_coef", 1e-5, 1e-2, log=True),
    }


def a2c_space(trial) -> dict[str, Any]:
    """The A2C search space."""
    return {**_common_space(trial), "ent_coef": trial.suggest_float("ent_coef", 1e-5, 1e-2, log=True)}


def dqn_space(trial) -> dict[str, Any]:
    """The search space of DQN-like (replay buffer, target network, epsilon-greedy) learners."""
    return {
        **_common_space(trial),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.1, 0.5),
        "target_update_interval": trial.suggest_categorical("target_update_interval", [100, 250, 500]),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
    }


@dataclass(frozen=True)
class Learner:
    """One registered learner (see the module docstring).

    ``algorithm``: the SB3-compatible class, or ``"module:Class"`` imported on first use.
    ``defaults``: hyper-parameters a module starts from (``CMConfig.hyperparams`` override them).
    ``on_policy``: rollout-based (PPO, A2C: separate policy and value heads, ``n_steps``) rather
    than replay-based. ``batched``: :mod:`agents.batched` can train it (else the "sb3" backend).
    ``search_space``: an Optuna trial -> hyper-parameters (None: learning rate and gamma only).
    """

    name: str
    algorithm: type | str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    on_policy: bool = False
    batched: bool = False
    search_space: Callable[[Any], dict[str, Any]] | None = None
    description: str = ""

    @property
    def algorithm_class(self) -> type:
        """The algorithm class (imported now if it was registered by name)."""
        if not isinstance(self.algorithm, str):
            return self.algorithm
        module, _, name = self.algorithm.partition(":")
        return getattr(importlib.import_module(module), name)

    def suggest(self, trial) -> dict[str, Any]:
        """The hyper-parameters of an Optuna trial for this learner."""
        return (self.search_space or _common_space)(trial)


LEARNERS: dict[str, Learner] = {}


def register_learner(
    name: str,
    algorithm: type | str,
    *,
    defaults: Mapping[str, Any] | None = None,
    on_policy: bool = False,
    batched: bool = False,
    search_space: Callable[[Any], dict[str, Any]] | None = None,
    description: str = "",
    replace: bool = False,
) -> Learner:
    """Make ``name`` a learner every command and :class:`~agents.crypto_module.CMConfig` accept.

    A name already taken is refused unless ``replace``. Returns the registered :class:`Learner`.
    """
    name = str(name).lower()
    if not name.isidentifier():
        raise ValueError(f"a learner's name must be a plain identifier such as 'dqn', got {name!r}")
    if name in LEARNERS and not replace:
        raise ValueError(f"a learner named {name!r} is registered already (replace=True to replace it)")
    if isinstance(algorithm, str) and ":" not in algorithm:
        raise ValueError(f"name the algorithm class as 'module:Class', got {algorithm!r}")
    learner = Learner(
        name,
        algorithm,
        dict(defaults or {}),
        on_policy=bool(on_policy),
        batched=bool(batched),
        search_space=search_space,
        description=description or (algorithm if isinstance(algorithm, str) else algorithm.__name__),
    )
    LEARNERS[name] = learner
    return learner


def get_learner(name: str) -> Learner:
    """The learner registered as ``name``; a ValueError lists the choices otherwise."""
    try:
        return LEARNERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown algorithm {name!r}: choose among {', '.join(sorted(LEARNERS))}") from None


# Defaults tuned for a fast, stable start on daily bars; override with hyperparams.
_DQN_DEFAULTS = {
    "learning_rate": 5e-4,
    "buffer_size": 50_000,
    "learning_starts": 500,
    "batch_size": 128,
    "gamma": 0.8,  # with the position observed a trade's fee is weighed against the bars after it
    "train_freq": 1,
    "gradient_steps": 2,
    "target_update_interval": 250,
    "exploration_fraction": 0.3,
    "exploration_final_eps": 0.02,
}
register_learner(
    "dqn",
    "stable_baselines3:DQN",
    defaults=_DQN_DEFAULTS,
    batched=True,
    search_space=dqn_space,
    description="DQN (stable-baselines3)",
)
register_learner(
    "ppo",
    "stable_baselines3:PPO",
    defaults={
        "n_steps": 8,
        "batch_size": 256,
        "n_epochs": 4,
        "learning_rate": 1e-3,
        "gamma": 0.5,
        "gae_lambda": 0.9,
        "ent_coef": 0.0,
        "clip_range": 0.2,
    },
    on_policy=True,
    search_space=ppo_space,
    description="PPO (stable-baselines3)",
)
register_learner(
    "a2c",
    "stable_baselines3:A2C",
    defaults={"n_steps": 8, "learning_rate": 7e-4, "gamma": 0.5, "ent_coef": 0.0},
    on_policy=True,
    search_space=a2c_space,
    description="A2C (stable-baselines3)",
)
register_learner(
    "qrdqn",
    "sb3_contrib:QRDQN",
    defaults=_DQN_DEFAULTS,
    search_space=dqn_space,
    description="QR-DQN (sb3-contrib; DQN's budget and schedule)",
)


def batched_algos() -> tuple[str, ...]:
    """The learners :mod:`agents.batched` can train."""
    return tuple(name for name, learner in LEARNERS.items() if learner.batched)


__all__ = [
    "BACKENDS",
    "LEARNERS",
    "Learner",
    "batched_algos",
    "get_learner",
    "register_learner",
]
