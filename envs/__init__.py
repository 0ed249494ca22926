"""Gymnasium environments of cryptorl (see ``docs/envs.md``).

Importing the package registers ``cryptorl/CryptoModule-v0``, ``cryptorl/Signal-v0`` and
``cryptorl/Portfolio-v0``, so that ``gymnasium.make("cryptorl/CryptoModule-v0", asset="BTC")``
works (on the built-in demo market when no ``market`` is given).
"""

from __future__ import annotations

import gymnasium as gym

from .accounting import EXECUTIONS, cost_rate
from .crypto_module import CryptoModuleEnv, pooled, prior_share
from .features import OHLCV_FEATURES
from .portfolio import PortfolioEnv
from .signal import ACTIONS, SignalEnv, signals_from_actions

ENV_IDS = {
    "cryptorl/CryptoModule-v0": "envs.crypto_module:CryptoModuleEnv",
    "cryptorl/Signal-v0": "envs.signal:SignalEnv",
    "cryptorl/Portfolio-v0": "envs.portfolio:PortfolioEnv",
}


def _register() -> None:
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


_register()


def __getattr__(name: str):
    # The batched VecEnv pulls in stable-baselines3 (and torch): load it only when asked for.
    if name == "CryptoModuleVecEnv":
        from .vector import CryptoModuleVecEnv

        return CryptoModuleVecEnv
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


__all__ = [
    "ACTIONS",
    "ENV_IDS",
    "EXECUTIONS",
    "OHLCV_FEATURES",
    "CryptoModuleEnv",
    "CryptoModuleVecEnv",
    "PortfolioEnv",
    "SignalEnv",
    "cost_rate",
    "pooled",
    "prior_share",
    "signals_from_actions",
]
