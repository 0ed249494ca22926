"""The diffusion-transformer paper's transformer forecaster with Gaussian-noise ("diffusion") augmentation.

The diffusion-transformer paper (section 4): inputs scaled with MinMaxScaler, a noise factor added to the data "to
simulate market fluctuations (diffusion process)", an embedding layer, positional encoding,
transformer encoder layers and an output layer, trained with Adam on MSE to predict the next
day; a portfolio that keeps a maximum drawdown of 10 %.

Here:

* per-bar inputs: log return ``log(c_t/c_{t-1})``, ``log(h_t/c_t)``, ``log(l_t/c_t)``,
  ``log(o_t/c_{t-1})`` and ``log(1 + volume_t)``, MinMax-scaled per asset with
  ``sklearn.preprocessing.MinMaxScaler`` fitted on the training rows only (stationary inputs,
  so the test range stays near [0, 1]; raw price levels would leave it);
* augmentation: every training batch gets ``N(0, noise_std^2)`` added to its (scaled) inputs;
* network: linear embedding to ``d_model``, sinusoidal positional encoding,
  ``nn.TransformerEncoder`` (``layers`` x ``heads``), a dense output read at the last bar;
* one network for all coins; target: the next log return (see :class:`WindowForecaster`);
* weights: long the coins predicted to rise, in proportion to the predicted return, then the
  optional drawdown overlay (``max_drawdown=0.10``): when the portfolio's drawdown from its
  peak reaches 10 % it moves to cash for ``cooldown`` bars (:func:`agents.base.drawdown_overlay`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import MinMaxScaler
from torch import nn

from ..base import drawdown_overlay
from .forecaster import WindowForecaster
from .training import TrainConfig


class PositionalEncoding(nn.Module):
    """The sinusoidal positional encoding of Vaswani et al. (2017), added to the embeddings."""

    def __init__(self, d_model: int, max_len: int = 2048):
        super().__init__()
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]


class TransformerNet(nn.Module):
    """Embedding -> positional encoding -> encoder layers -> dense output at the last bar."""

    def __init__(
        self, n_features: int, d_model: int = 32, heads: int = 4, layers: int = 2, ff: int = 64, dropout: float = 0.1
    ):
        super().__init__()
        self.embed = nn.Linear(n_features, d_model)
        self.pos = PositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.pos(self.embed(x)))
        return self.out(h[:, -1]).squeeze(-1)


class TransformerForecaster(WindowForecaster):
    """The diffusion-transformer paper: MinMax-scaled inputs + Gaussian noise -> transformer -> next return."""

    name = "transformer"
    per_asset = False

    def __init__(
        self,
        *,
        window: int = 30,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 2,
        ff: int = 64,
        dropout: float = 0.1,
        noise_std: float = 0.02,
        max_drawdown: float | None = 0.10,
        cooldown: int = 20,
        target: str = "return",
        use_metrics: bool | list[str] = False,
        weighting: str = "proportional",
        config: TrainConfig | None = None,
    ):
        super().__init__(window=window, target=target, use_metrics=use_metrics, weighting=weighting, config=config)
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.d_model, self.heads, self.layers, self.ff, self.dropout = d_model, heads, layers, ff, dropout
        self.noise_std, self.max_drawdown, self.cooldown = noise_std, max_drawdown, cooldown
        self.minmax: dict[str, MinMaxScaler] = {}

    def raw_inputs(self, market: pd.DataFrame) -> np.ndarray:
        o, h, l, c, v = (market[k].to_numpy(float) for k in ("open", "high", "low", "close", "volume"))
        prev = np.concatenate([[c[0]], c[:-1]])
        return np.column_stack([np.log(c / prev), np.log(h / c), np.log(l / c), np.log(o / prev), np.log1p(v)])

    def fit_normaliser(self, asset: str, raw: np.ndarray) -> None:
        self.minmax[asset] = MinMaxScaler().fit(raw)

    def normalise(self, asset: str, windows: np.ndarray) -> np.ndarray:
        n, w, f = windows.shape
        return self.minmax[asset].transform(windows.reshape(n * w, f)).reshape(n, w, f)

    def build_net(self, n_features: int) -> nn.Module:
        return TransformerNet(n_features, self.d_model, self.heads, self.layers, self.ff, self.dropout)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.noise_std * torch.randn_like(x) if self.noise_std > 0 else x

    def _overlay(self, weights: pd.DataFrame, closes: pd.DataFrame) -> pd.DataFrame:
        if self.max_drawdown is None:
            return weights
        return drawdown_overlay(weights, closes, limit=self.max_drawdown, cooldown=self.cooldown)
