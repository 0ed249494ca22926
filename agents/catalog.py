"""Every alternative agent by name, with full and ``fast`` (tiny, for tests and smoke runs) settings.

``make_agents(["lstm", "min_cvar"], fast=True)`` -> ``{name: agent}``. The DLM reuses the LSTM
forecaster's instance when both are asked for, so the forecaster is trained once.
"""

from __future__ import annotations

from pathlib import Path

from .allocators import ALLOCATORS
from .base import PortfolioAgent
from .forecasters.attention_lstm import AttentionLSTMForecaster
from .forecasters.dlm import DLMAgent
from .forecasters.dls import DLSAgent
from .forecasters.lstm import LSTMForecaster
from .forecasters.training import TrainConfig
from .forecasters.transformer import TransformerForecaster
from .meta_label import MetaLabelAgent

FORECASTERS = ("lstm", "attention_lstm", "transformer")
SHARPE_NETS = ("dlm", "dls")
META_LABELLERS = ("meta_logistic", "meta_forest")  # a classifier filters the Donchian prior
AGENT_NAMES: tuple[str, ...] = (*FORECASTERS, *SHARPE_NETS, *META_LABELLERS, *ALLOCATORS)
# the agents whose fit depends on the seed (the networks and the forest)
SEEDED = (*FORECASTERS, *SHARPE_NETS, "meta_forest")


def _config(fast: bool, seed: int, log_dir: str | Path | None, device: str) -> TrainConfig:
    if fast:
        return TrainConfig(epochs=3, batch_size=64, patience=2, seed=seed, log_dir=log_dir, device=device)
    return TrainConfig(epochs=60, batch_size=64, patience=10, seed=seed, log_dir=log_dir, device=device)


def make_agents(
    names: list[str] | tuple[str, ...] = AGENT_NAMES,
    *,
    fast: bool = False,
    seed: int = 0,
    log_dir: str | Path | None = None,
    use_metrics: bool = False,
    device: str = "cpu",
) -> dict[str, PortfolioAgent]:
    """Agents for ``names`` (see :data:`AGENT_NAMES`), in that order.

    ``fast``: tiny networks (window 20, a few units) and 3 epochs. ``use_metrics``: the
    forecasters and DLS also read each asset's metrics. ``log_dir``: TensorBoard logs of the
    networks' train/validation losses. ``device``: where the networks train (cpu, cuda, auto).
    """
    unknown = [n for n in names if n not in AGENT_NAMES]
    if unknown:
        raise ValueError(f"unknown agent(s) {unknown}; known: {', '.join(AGENT_NAMES)}")
    cfg = _config(fast, seed, log_dir, device)
    small = dict(window=20) if fast else {}
    out: dict[str, PortfolioAgent] = {}
    lstm = None
    for name in names:
        if name in ("lstm", "dlm") and lstm is None:
            lstm = LSTMForecaster(hidden=8 if fast else 100, use_metrics=use_metrics, config=cfg, **small)
        if name == "lstm":
            out[name] = lstm
        elif name == "attention_lstm":
            out[name] = AttentionLSTMForecaster(
                hidden=(8, 8) if fast else (128, 64), use_metrics=use_metrics, config=cfg, **small
            )
        elif name == "transformer":
            kw = dict(d_model=8, heads=2, layers=1, ff=16) if fast else {}
            out[name] = TransformerForecaster(use_metrics=use_metrics, config=cfg, **small, **kw)
        elif name == "dlm":
            out[name] = DLMAgent(forecaster=lstm, hidden=4 if fast else 16, config=cfg)
        elif name == "dls":
            out[name] = DLSAgent(hidden=8 if fast else 64, use_metrics=use_metrics, config=cfg, **small)
        elif name in META_LABELLERS:
            out[name] = MetaLabelAgent(name.removeprefix("meta_"), use_metrics=use_metrics, seed=seed)
        else:
            out[name] = ALLOCATORS[name]()
    return out
