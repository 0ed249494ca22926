"""Feature extractors of the paper's networks, as stable-baselines3 ``BaseFeaturesExtractor``.

* :class:`SAMCNN` — the SAM's "simple 4-layer CNN" (MSPM, Huang & Tanaka 2022): input
  ``(f, m, n)`` = features x assets (crypto, cash) x recent intervals. Convolutions run along
  time with kernels ``(1, k)`` shared across the ``m`` rows (EIIE style), so the same filters
  read the crypto and the cash row; the first one has stride 2 along time (``align_latest``
  says which end of an even window it leaves out), the third collapses time and the last mixes
  the rows. The time convolutions are computed as matrix products over shifted views
  (:class:`TimeConv`, identical to ``nn.Conv2d``; see the tests), which is about twice as fast on
  a CPU at these sizes; 8 channels by default (see ``benchmarks/train_throughput.py``).
* :class:`LatestMLP` — the SAM's alternative (``CMConfig.network="mlp"``): two dense layers over
  the current bar's crypto row alone (every feature, the prior and the position among them), for
  inputs that already summarise the history (the market features).
* :class:`EAMCNN` — the EAM's 1-D CNN over time: every non-time dimension becomes a channel.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from .config import DEVICES


def resolve_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available, else CPU) as a torch device.

    CPU is the package's default: the paper's networks are small, and on them a GPU spends more
    time moving batches than computing (see ``docs/crypto_modules.md``).
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: choose among {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA GPU here: use 'cpu' or 'auto'")
    return torch.device(device)


class TimeConv(nn.Module):
    """A convolution along time with kernel ``(1, k)``, shared across rows, as one matrix product.

    Input and output are channels-last ``(batch, rows, time, channels)``. The ``k`` shifted
    (strided) views of the input are concatenated and multiplied by the kernel: the same
    arithmetic as ``nn.Conv2d(cin, cout, (1, k), stride=(1, stride))`` (weight ``[o, c, 0, j]``
    = ``linear.weight[o, j * cin + c]``), about twice as fast on a CPU for these small sizes.

    With a stride, ``nn.Conv2d`` leaves out the input's last positions when the strides do not
    fit its length evenly; along time those are the newest bars. ``align_latest=True`` leaves out
    the oldest instead (the convolution of ``x[:, :, offset(n):]``), so the last window always
    ends on the current bar.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, align_latest: bool = False):
        super().__init__()
        self.k, self.stride, self.align_latest = k, stride, align_latest
        self.linear = nn.Linear(cin * k, cout)

    def out_len(self, n: int) -> int:
        return (n - self.k) // self.stride + 1

    def offset(self, n: int) -> int:
        """The input positions left out at the start of a length-``n`` input."""
        return (n - self.k) % self.stride if self.align_latest else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, self.offset(x.shape[2]) :]
        if self.k == x.shape[2]:  # the kernel spans all of time: one window, no copies
            return self.linear(x.flatten(2)).unsqueeze(2)
        span = self.stride * (self.out_len(x.shape[2]) - 1) + 1
        views = [x[:, :, j : j + span : self.stride] for j in range(self.k)]
        return self.linear(torch.cat(views, dim=-1))


class SAMCNN(BaseFeaturesExtractor):
    """Four convolutions over an ``(f, m, n)`` observation, then a linear layer.

    ``align_latest`` (the default): the strided first convolution ends on the window's last
    position, the current bar. Without it (as ``nn.Conv2d``, and modules saved before this
    option) the convolution leaves out that position for a window of even length, and the
    network reads the bars up to the one before.
    """

    default_channels = 8

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        features_dim: int = 64,
        channels: int = default_channels,
        align_latest: bool = True,
    ):
        super().__init__(observation_space, features_dim)
        if len(observation_space.shape) != 3:
            raise ValueError(f"SAMCNN expects (features, assets, window) observations, got {observation_space.shape}")
        f, m, n = observation_space.shape
        if n < 7:
            raise ValueError(f"SAMCNN needs a window of at least 7 intervals, got {n}")
        self.conv1 = TimeConv(f, channels, 3, stride=2, align_latest=align_latest)
        t = self.conv1.out_len(n)
        self.conv2 = TimeConv(channels, channels, 3)
        t = self.conv2.out_len(t)
        self.conv3 = TimeConv(channels, channels, t)  # kernel spans the remaining time: collapses it
        self.conv4 = nn.Linear(m * channels, channels)  # kernel (m, 1): mixes crypto and cash
        self.linear = nn.Sequential(nn.Linear(channels, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        h = observations.permute(0, 2, 3, 1)  # (batch, m, n, f): channels last
        h = torch.relu(self.conv1(h))
        h = torch.relu(self.conv2(h))
        h = torch.relu(self.conv3(h))  # (batch, m, 1, channels)
        h = torch.relu(self.conv4(h.flatten(1)))
        return self.linear(h)


class LatestMLP(BaseFeaturesExtractor):
    """Two dense layers over the current bar's crypto row of an ``(f, m, n)`` observation.

    It reads ``observations[:, :, 0, -1]``: the ``f`` features of the crypto at the newest bar.
    The cash row (its weight, ``1 - position``, and constants) and the older bars are left out, so
    the network sees a handful of numbers instead of ``f x m x n``.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 64, hidden: int = 64):
        super().__init__(observation_space, features_dim)
        if len(observation_space.shape) != 3:
            raise ValueError(
                f"LatestMLP expects (features, assets, window) observations, got {observation_space.shape}"
            )
        f = observation_space.shape[0]
        self.net = nn.Sequential(nn.Linear(f, hidden), nn.ReLU(), nn.Linear(hidden, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations[:, :, 0, -1])


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
