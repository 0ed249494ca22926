"""Feature extractors of the paper's networks, as stable-baselines3 ``BaseFeaturesExtractor``.

* :class:`SAMCNN` — the SAM's "simple 4-layer CNN" (MSPM, Huang & Tanaka 2022): input
  ``(f, m, n)`` = features x assets (crypto, cash) x recent intervals. Convolutions run along
  time with kernels ``(1, k)`` shared across the ``m`` rows (EIIE style), so the same filters
  read the crypto and the cash row; the first one has stride 2 along time, the third collapses
  time and the last mixes the rows. 8 channels by default: on a CPU this keeps the network's
  cost per sample close to a 64x64 MLP's (see ``benchmarks/train_throughput.py``).
* :class:`EAMCNN` — the EAM's 1-D CNN over time: every non-time dimension becomes a channel.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class SAMCNN(BaseFeaturesExtractor):
    """Four convolutions over an ``(f, m, n)`` observation, then a linear layer."""

    default_channels = 8

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 64, channels: int = default_channels):
        super().__init__(observation_space, features_dim)
        if len(observation_space.shape) != 3:
            raise ValueError(f"SAMCNN expects (features, assets, window) observations, got {observation_space.shape}")
        f, m, n = observation_space.shape
        if n < 7:
            raise ValueError(f"SAMCNN needs a window of at least 7 intervals, got {n}")
        t = (n - 3) // 2 + 1  # time steps left after the strided first layer
        self.cnn = nn.Sequential(
            nn.Conv2d(f, channels, kernel_size=(1, 3), stride=(1, 2)),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=(1, 3)),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=(1, t - 2)),  # collapses time
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=(m, 1)),  # mixes crypto and cash
            nn.ReLU(),
            nn.Flatten(),
        )
        self.linear = nn.Sequential(nn.Linear(channels, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


class EAMCNN(BaseFeaturesExtractor):
    """A 1-D CNN along the last (time) axis; other axes are flattened into channels."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 64, channels: int = 16):
        super().__init__(observation_space, features_dim)
        shape = observation_space.shape
        in_ch = 1
        for s in shape[:-1]:
            in_ch *= s
        n = shape[-1]
        if n < 5:
            raise ValueError(f"EAMCNN needs a window of at least 5 intervals, got {n}")
        self.in_ch = in_ch
        self.cnn = nn.Sequential(
            nn.Conv1d(in_ch, channels, kernel_size=3),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.linear = nn.Sequential(nn.Linear(channels * (n - 4), features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = observations.reshape(observations.shape[0], self.in_ch, observations.shape[-1])
        return self.linear(self.cnn(x))


EXTRACTORS = {"sam_cnn": SAMCNN, "eam_cnn": EAMCNN}
