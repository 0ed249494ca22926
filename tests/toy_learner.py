"""A learner of one's own, registered from outside the package: DQN under another name, with a
budget small enough for a test (what a user's file beside agents/learners/sb3.py would hold)."""

from __future__ import annotations

from stable_baselines3 import DQN

from agents.learners import register_learner


class ToyDQN(DQN):
    """stable-baselines3's DQN, unchanged: a distinct class the test can recognise after loading."""


LEARNER = register_learner(
    "toydqn",
    ToyDQN,
    defaults={"learning_starts": 0, "buffer_size": 2_000, "batch_size": 16, "target_update_interval": 50},
    description="DQN for tests",
    replace=True,
)
