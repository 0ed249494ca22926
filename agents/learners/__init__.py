"""The learners a Crypto Module's SAM can be trained with (``CMConfig.algo``, ``--algo``).

A learner is a name for an SB3-compatible algorithm class with the facts the rest of the project
needs about it: its default hyper-parameters, whether it is on-policy (its networks and rollout
settings), whether the batched backend (:mod:`agents.batched`) can train it, and its
hyper-parameter search space for :mod:`agents.tuning`. Every command takes its ``--algo``
choices from :data:`LEARNERS`.

Adding a learner is one file that calls :func:`register_learner` (copy ``agents/learners/sb3.py``)::

    from agents.learners import register_learner

    register_learner("trpo", "sb3_contrib:TRPO", defaults={"n_steps": 8, "gamma": 0.5}, on_policy=True)

Every module of this package is imported with it, so a file dropped here is registered; an
installed package registers its own through the ``cryptorl.learners`` entry point group (the
entry point names the module to import). The class is named ``"module:Class"`` (or given as the
class itself) and imported only when a module is built or loaded with it, so listing the learners
imports neither torch nor SB3. A saved module names its learner: loading it needs that learner
registered (no code is ever taken from a saved module).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

# How the members of a Crypto Module are trained (``CMConfig.backend``, ``train_cm --backend``).
BACKENDS: dict[str, str] = {
    "batched": "the K members as one stacked network on one vectorised batch (agents.batched; DQN)",
    "sb3": "stable-baselines3, one member after another (the reference)",
}


def common_space(trial) -> dict[str, Any]:
    """The search space every learner has: learning rate and discount (an Optuna trial -> values)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "gamma": trial.suggest_float("gamma", 0.3, 0.99),
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
        return (self.search_space or common_space)(trial)


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


def batched_algos() -> tuple[str, ...]:
    """The learners :mod:`agents.batched` can train."""
    return tuple(name for name, learner in LEARNERS.items() if learner.batched)


def _discover() -> None:
    """Register the learners of this package's modules and of the installed entry points."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    for entry in metadata.entry_points(group="cryptorl.learners"):
        entry.load()


_discover()

__all__ = [
    "BACKENDS",
    "LEARNERS",
    "Learner",
    "batched_algos",
    "common_space",
    "get_learner",
    "register_learner",
]
