"""cryptorl: reinforcement learning for crypto portfolio management (CryptoRLPM).

The front door: everything a user needs to train, save, reuse and vote Crypto Modules::

    from cryptorl import CMConfig, Portfolio, backtest, load_data, paper_split, train_crypto_module

    market, metrics = load_data("BTC", "1d", source="demo")
    split = paper_split(market.index)
    module, _ = train_crypto_module(market, metrics, CMConfig(asset="BTC", timesteps=5_000), split)
    weights = Portfolio([module]).decide({"BTC": market}, {"BTC": metrics}, *split.backtest)
    print(backtest(weights, {"BTC": market}, interval="1d").metrics()["Sortino"])

Names are imported on first use, so ``import cryptorl.data`` stays light (no torch, no SB3).
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import Any

try:
    __version__ = metadata.version("cryptorl")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

# public name -> module that defines it
_EXPORTS = {
    "load_data": "cryptorl.data",
    "DataStore": "cryptorl.data",
    "DataError": "cryptorl.data",
    "DataRefinementUnit": "cryptorl.features",
    "Portfolio": "cryptorl.portfolio",
    "backtest": "cryptorl.portfolio",
    "baselines": "cryptorl.portfolio",
    "write_report": "cryptorl.portfolio",
    "ModelStore": "cryptorl.modelstore",
    "CMConfig": "agents.config",
    "CryptoModule": "agents.crypto_module",
    "Split": "agents.training",
    "paper_split": "agents.training",
    "train_crypto_module": "agents.training",
    "train_and_save": "agents.pipeline",
    "load_portfolio": "agents.portfolio",
    "CryptoModuleEnv": "envs",
    "CryptoModuleVecEnv": "envs",
    "SignalEnv": "envs",
    "PortfolioEnv": "envs",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cryptorl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
