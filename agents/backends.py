"""How the members of a Crypto Module are trained (``CMConfig.backend``, ``train_cm --backend``).

A dependency-free module so that command-line parsers can list the choices without importing torch.
"""

from __future__ import annotations

BACKENDS: dict[str, str] = {
    "batched": "the K members as one stacked network on one vectorised batch (agents.batched; DQN)",
    "sb3": "stable-baselines3, one member after another (the reference)",
}
# Algorithms with a batched learner; the others train on "sb3" whatever the backend says.
BATCHED_ALGOS: tuple[str, ...] = ("dqn",)

__all__ = ["BACKENDS", "BATCHED_ALGOS"]
