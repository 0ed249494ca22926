"""Chen & Zheng's (2025) DLM: deep learning and multi-task portfolio network on top of the LSTM forecaster.

Pipeline (Chen & Zheng (2025), section 3.2 c): the per-coin LSTM forecaster (:mod:`.lstm`) predicts
prices; with its predictions, per coin and per bar:

* ``deviation`` — ``yhat_t / y_t - 1``: the forecast of today's close made yesterday against
  today's close (eq. 11, relative so that coins are comparable);
* ``volatility`` — rolling standard deviation of log returns over ``vol_window`` bars (eq. 13);
* ``return`` — today's log return (eq. 12);
* ``predicted`` — the forecast return for the next bar (the seed feeds the predicted value in
  place of the unknown true one at the window's last step).

Network (fig. 7): the coins' windows of ``window`` bars go through the *same* (shared) LSTM
16 -> dropout 0.2 -> LSTM 16; each coin has its own head (multi-task) that reads the shared
output concatenated with the coin's current volatility and gives a score; a softmax over the
scores gives the weights (long-only, fully invested; ``cash=True`` adds a learned cash score).
Loss: negative Sharpe ratio of the portfolio returns plus ``l2/2 * sum w^2`` (eq. 16-19).

The forecaster is trained on the same training range first (or reused when it already is);
its in-sample predictions feed the DLM's training, so the training deviations are smaller
than the ones the DLM meets after ``end``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from cryptorl.data.frames import to_utc_timestamp

from .lstm import LSTMForecaster
from .sharpe import SharpeNetAgent, rolling_vol
from .training import TrainConfig

VOL = 1  # index of the volatility feature


class DLMNet(nn.Module):
    """Shared LSTM-dropout-LSTM over each coin's features, one head per coin, softmax."""

    def __init__(self, n_assets: int, n_features: int, hidden: int = 16, dropout: float = 0.2, cash: bool = False):
        super().__init__()
        self.lstm1 = nn.LSTM(n_features, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True)
        self.heads = nn.ModuleList(nn.Linear(hidden + 1, 1) for _ in range(n_assets))
        self.cash_score = nn.Parameter(torch.zeros(1)) if cash else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, w, n, f = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(b * n, w, f)  # every coin through the shared layers
        h, _ = self.lstm1(seq)
        h, _ = self.lstm2(self.drop(h))
        h = h[:, -1].reshape(b, n, -1)
        vol = x[:, -1, :, VOL]
        scores = torch.cat(
            [head(torch.cat([h[:, i], vol[:, i : i + 1]], dim=1)) for i, head in enumerate(self.heads)], dim=1
        )
        if self.cash_score is not None:
            scores = torch.cat([self.cash_score.expand(b, 1), scores], dim=1)
        return torch.softmax(scores, dim=-1)


class DLMAgent(SharpeNetAgent):
    """Chen & Zheng's (2025) multi-task LSTM portfolio over forecaster deviations, volatility and returns."""

    name = "dlm"

    def __init__(
        self,
        *,
        forecaster: LSTMForecaster | None = None,
        window: int = 9,
        hidden: int = 16,
        dropout: float = 0.2,
        vol_window: int = 10,
        l2: float = 0.01,
        cash: bool = False,
        config: TrainConfig | None = None,
    ):
        super().__init__(window=window, l2=l2, cash=cash, config=config)
        self.forecaster = forecaster if forecaster is not None else LSTMForecaster(config=self.config)
        self.hidden, self.dropout, self.vol_window = hidden, dropout, vol_window
        self._metrics = None

    def prepare(self, market, metrics, end) -> None:
        f = self.forecaster
        same = f.assets == self.assets and f.fit_end is not None and f.fit_end == to_utc_timestamp(end)
        if not same:
            f.fit(market, metrics, end=end)

    def panel(self, market, metrics) -> np.ndarray:
        closes = pd.DataFrame({a: market[a]["close"] for a in self.assets})
        fc = self.forecaster.forecast(market, metrics if self.forecaster.use_metrics else None)
        logret = np.log(closes).diff()
        deviation = fc.shift(1) / closes - 1.0
        vol = rolling_vol(logret, self.vol_window)
        predicted = fc / closes - 1.0
        return np.stack([f.to_numpy() for f in (deviation, vol, logret, predicted)], axis=2)

    def build_net(self, n_assets: int, n_features: int) -> nn.Module:
        return DLMNet(n_assets, n_features, self.hidden, self.dropout, self.cash)
