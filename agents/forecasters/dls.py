"""DLS: deep learning for portfolio optimisation (Zhang, Zohren & Roberts 2020), named in Chen & Zheng (2025).

An LSTM reads the recent history of all assets and outputs portfolio weights directly through
a softmax; it is trained by gradient ascent on the Sharpe ratio of the portfolio returns it
produces (no return forecast in between). As in the paper: one LSTM layer (64 units) over a
window of 50 bars, per-asset inputs that describe prices and returns, long-only fully invested
softmax weights (``cash=True`` adds cash as one more softmax output).

Per-bar inputs per asset (standardised with training statistics): the log return
``log(c_t/c_{t-1})`` and the log distance of the close from its ``window``-bar mean (the
paper's normalised price), optionally the asset's metrics (z-scored levels, see
:class:`~.features.MetricScaler`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .features import MetricScaler, metric_names
from .sharpe import SharpeNetAgent
from .training import TrainConfig


class DLSNet(nn.Module):
    """LSTM over the concatenated asset features -> dense -> softmax weights."""

    def __init__(self, n_assets: int, n_features: int, hidden: int = 64, cash: bool = False):
        super().__init__()
        self.lstm = nn.LSTM(n_assets * n_features, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_assets + int(cash))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, w, n, f = x.shape
        h, _ = self.lstm(x.reshape(b, w, n * f))
        return torch.softmax(self.out(h[:, -1]), dim=-1)


class DLSAgent(SharpeNetAgent):
    """Zhang, Zohren & Roberts (2020): LSTM -> softmax weights, trained on the Sharpe ratio."""

    name = "dls"

    def __init__(
        self,
        *,
        window: int = 50,
        hidden: int = 64,
        l2: float = 0.0,
        cash: bool = False,
        use_metrics: bool | list[str] = False,
        config: TrainConfig | None = None,
    ):
        super().__init__(window=window, l2=l2, cash=cash, config=config)
        self.hidden, self.use_metrics = hidden, use_metrics
        self.scalers: dict[str, MetricScaler] = {}

    def panel(self, market, metrics) -> np.ndarray:
        if self.use_metrics and self.net is None:  # fitting: one metric list for all assets
            self.scalers = {}
            self._names = metric_names(self.use_metrics, self.assets, metrics, common=True)
        blocks = []
        for a in self.assets:
            c = market[a]["close"]
            logc = np.log(c)
            feats = [logc.diff().to_numpy(), (logc - np.log(c.rolling(self.window, min_periods=1).mean())).to_numpy()]
            cols = np.column_stack(feats)
            if self.use_metrics:
                if metrics is None or a not in metrics:
                    raise ValueError(f"[{a}] agent '{self.name}' uses metrics but none were given for this asset")
                if a not in self.scalers:
                    self.scalers[a] = MetricScaler(self._names).fit(metrics[a], market[a].index, a)
                cols = np.column_stack([cols, self.scalers[a].transform(metrics[a], market[a].index, a)])
            blocks.append(cols)
        return np.stack(blocks, axis=1)

    def build_net(self, n_assets: int, n_features: int) -> nn.Module:
        return DLSNet(n_assets, n_features, self.hidden, self.cash)
