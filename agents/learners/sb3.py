"""The built-in learners: stable-baselines3's DQN, PPO and A2C, and sb3-contrib's QR-DQN.

A learner of one's own is a file like this one beside it (see :mod:`agents.learners`).
"""

from __future__ import annotations

from typing import Any

from . import common_space, register_learner


def ppo_space(trial) -> dict[str, Any]:
    """The PPO search space of :mod:`agents.tuning` (an Optuna trial -> hyper-parameters)."""
    return {
        **common_space(trial),
        "gae_lambda": trial.suggest_float("gae_lambda", 0.8, 0.99),
        "n_epochs": trial.suggest_int("n_epochs", 2, 8),
        "clip_range": trial.suggest_float("clip_range", 0.1, 0.3),
        "ent_coef": trial.suggest_float("ent_coef", 1e-5, 1e-2, log=True),
    }


def a2c_space(trial) -> dict[str, Any]:
    """The A2C search space."""
    return {**common_space(trial), "ent_coef": trial.suggest_float("ent_coef", 1e-5, 1e-2, log=True)}


def dqn_space(trial) -> dict[str, Any]:
    """The search space of DQN-like (replay buffer, target network, epsilon-greedy) learners."""
    return {
        **common_space(trial),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.1, 0.5),
        "target_update_interval": trial.suggest_categorical("target_update_interval", [100, 250, 500]),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
    }


# Defaults tuned for a fast, stable start on daily bars; override with hyperparams.
_DQN_DEFAULTS = {
    "learning_rate": 5e-4,
    "buffer_size": 50_000,
    "learning_starts": 500,
    "batch_size": 256,
    "gamma": 0.8,  # with the position observed a trade's fee is weighed against the bars after it
    # one update of 256 samples every 4 vector steps: about 3.5x the throughput of two updates of
    # 128 every step, chosen on the walk-forward validation folds (docs/evaluation.md)
    "train_freq": 4,
    "gradient_steps": 1,
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
