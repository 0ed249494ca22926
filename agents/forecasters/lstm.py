"""Chen & Zheng's (2025) LSTM price forecaster (Chen & Zheng 2025, section 3.2 b).

Per coin: inputs close, volume and ATR(14) over a window of ``window - 1`` = 59 bars, each
window normalised relative to its first value (``x_p / x_1 - 1``, eq. 4); one LSTM layer of
100 units, dropout 0.2, a dense output. One model per coin (the seed trains "a unique LSTM
model for each cryptocurrency").

Differences from the seed, and why:

* The seed's window of 60 holds 59 inputs and the 60th value as target; here ``window`` is
  the number of *input* bars (default 59) and the target is the bar after it. Same thing.
* Target: ``target="price"`` is the seed's (next close relative to the window's first
  close); the default ``"return"`` predicts the next log return instead, which is what the
  portfolio needs and gives an honest skill measure; both report price errors.
* Optional metrics as extra inputs (``use_metrics``), z-scored on the training range: on the
  demo market the signal sits in the leading metrics, not in prices.

As an agent: long the coins with a positive predicted next return, in proportion to it
(``weighting="equal"``: equally), all cash when no coin is predicted to rise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .features import atr, relative_to_first
from .forecaster import WindowForecaster
from .training import TrainConfig


class LSTMNet(nn.Module):
    """LSTM(hidden) -> dropout -> dense(1), reading the last time step."""

    def __init__(self, n_features: int, hidden: int = 100, dropout: float = 0.2):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)
        return self.out(self.drop(h[:, -1])).squeeze(-1)


class LSTMForecaster(WindowForecaster):
    """Chen & Zheng's (2025) per-coin LSTM on close, volume and ATR(14) windows."""

    name = "lstm"
    per_asset = True

    def __init__(
        self,
        *,
        window: int = 59,
        hidden: int = 100,
        dropout: float = 0.2,
        atr_period: int = 14,
        target: str = "return",
        use_metrics: bool | list[str] = False,
        weighting: str = "proportional",
        config: TrainConfig | None = None,
    ):
        super().__init__(window=window, target=target, use_metrics=use_metrics, weighting=weighting, config=config)
        self.hidden, self.dropout, self.atr_period = hidden, dropout, atr_period

    def raw_inputs(self, market: pd.DataFrame) -> np.ndarray:
        return np.column_stack(
            [
                market["close"].to_numpy(float),
                market["volume"].to_numpy(float),
                atr(market, self.atr_period).to_numpy(float),
            ]
        )

    def normalise(self, asset: str, windows: np.ndarray) -> np.ndarray:
        return relative_to_first(windows)

    def build_net(self, n_features: int) -> nn.Module:
        return LSTMNet(n_features, self.hidden, self.dropout)
