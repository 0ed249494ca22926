"""Shared PyTorch training code for the forecasters and the Sharpe-trained allocators.

* :class:`TrainConfig` — epochs, batch size, learning rate, early stopping, seed, log dir;
* :func:`sliding_windows` — ``(T, ...)`` -> ``(N, window, ...)`` views, window i ending at i+window-1;
* :func:`train` — one loop for both kinds of model: shuffled mini-batches of windows (regression,
  MSE) or contiguous blocks of consecutive days (a portfolio loss such as the negative Sharpe
  ratio). The last ``val_fraction`` of the samples (in time order) is the validation tail; the
  best epoch on it is kept (early stopping with ``patience``). Train and validation losses go
  to TensorBoard (``torch.utils.tensorboard.SummaryWriter``) when ``log_dir`` is set.

Training is seeded and deterministic on CPU: the model is built and trained inside
``torch.random.fork_rng`` with ``torch.manual_seed(seed)``, so the caller's RNG state is left
alone and the same seed gives the same weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..networks import resolve_device


@dataclass
class TrainConfig:
    """How a network is trained. Small defaults: CPU, minutes on daily data."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    val_fraction: float = 0.2
    grad_clip: float | None = 1.0
    seed: int = 0
    log_dir: str | Path | None = None
    device: str = "cpu"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["log_dir"] = str(self.log_dir) if self.log_dir is not None else None
        return d


@dataclass
class TrainResult:
    """What a training run did: per-epoch losses and the kept (best validation) epoch."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = math.inf
    stopped_early: bool = False


@contextmanager
def seeded(seed: int):
    """Run a block with torch's CPU RNG seeded, restoring the caller's RNG state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def sliding_windows(x: np.ndarray, window: int) -> np.ndarray:
    """All windows of ``window`` consecutive rows: shape ``(T - window + 1, window, ...)``."""
    x = np.asarray(x)
    if len(x) < window:
        return np.empty((0, window, *x.shape[1:]), dtype=x.dtype)
    v = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)
    return np.moveaxis(v, -1, 1)


def _split(n: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    n_val = int(round(n * val_fraction))
    if n_val < 2 or n - n_val < 2:
        return np.arange(n), np.arange(0)
    return np.arange(n - n_val), np.arange(n - n_val, n)


def _batches(idx: np.ndarray, batch_size: int, contiguous: bool, gen: torch.Generator) -> Iterator[np.ndarray]:
    if contiguous:
        # random contiguous blocks of consecutive samples, covering the range once per epoch
        size = min(batch_size, len(idx))
        n_blocks = max(1, len(idx) // size)
        starts = torch.randint(0, len(idx) - size + 1, (n_blocks,), generator=gen).numpy()
        for s in starts:
            yield idx[s : s + size]
    else:
        perm = idx[torch.randperm(len(idx), generator=gen).numpy()]
        for s in range(0, len(perm), batch_size):
            yield perm[s : s + batch_size]


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, np.ndarray, bool], torch.Tensor],
    n_samples: int,
    config: TrainConfig,
    *,
    contiguous: bool = False,
    tag: str = "model",
) -> TrainResult:
    """Train ``model`` in place and keep its best epoch on the validation tail.

    ``loss_fn(model, idx, training)`` returns the mean loss of samples ``idx`` (an array of
    sample positions in time order); with ``training=True`` it may augment its inputs.
    Call inside :func:`seeded` for reproducible weights.
    """
    if n_samples < 2:
        raise ValueError(f"{tag}: need at least 2 training samples, got {n_samples} (more data or a shorter window)")
    tr_idx, val_idx = _split(n_samples, config.val_fraction)
    model.to(resolve_device(config.device))
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    writer = None
    if config.log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(Path(config.log_dir) / tag))
    result = TrainResult()
    best_state = copy.deepcopy(model.state_dict())
    bad_epochs = 0
    try:
        for epoch in range(config.epochs):
            model.train()
            total, count = 0.0, 0
            for b in _batches(tr_idx, config.batch_size, contiguous, gen):
                opt.zero_grad()
                loss = loss_fn(model, b, True)
                loss.backward()
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                opt.step()
                total += loss.detach().item() * len(b)
                count += len(b)
            result.train_loss.append(total / max(count, 1))
            if len(val_idx):
                model.eval()
                with torch.no_grad():
                    val = float(loss_fn(model, val_idx, False))
            else:
                val = result.train_loss[-1]
            result.val_loss.append(val)
            if writer is not None:
                writer.add_scalar("loss/train", result.train_loss[-1], epoch)
                writer.add_scalar("loss/val", val, epoch)
            if val < result.best_val - 1e-12 or not math.isfinite(result.best_val):
                result.best_val, result.best_epoch = val, epoch
                best_state = copy.deepcopy(model.state_dict())
                bad_epochs = 0
            else:
                bad_epochs += 1
                if bad_epochs >= config.patience:
                    result.stopped_early = True
                    break
    finally:
        if writer is not None:
            writer.close()
    model.load_state_dict(best_state)
    model.to("cpu").eval()  # predictions run on the CPU, beside the pandas frames
    return result


def sharpe_loss(weights: torch.Tensor, returns: torch.Tensor, l2: float = 0.0, eps: float = 1e-8) -> torch.Tensor:
    """Negative Sharpe ratio of a block of consecutive portfolio returns, plus L2 on weights.

    ``weights`` (B, k) decided at t, ``returns`` (B, k) simple returns from t to t+1 of the same
    k columns (cash: 0). Chen & Zheng's (2025) loss: -(mean / std) + lambda/2 * mean_t sum_i w_ti^2.
    """
    port = (weights * returns).sum(dim=1)
    sharpe = port.mean() / (port.std(unbiased=False) + eps)
    return -sharpe + 0.5 * l2 * (weights**2).sum(dim=1).mean()
