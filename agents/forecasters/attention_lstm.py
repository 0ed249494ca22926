"""The LSTM mean-variance article's attention-LSTM forecaster feeding a mean-variance optimiser.

Network (the LSTM mean-variance article "LSTM Price Prediction Model"): a 60-bar window of OHLCV (each series
relative to its first value in the window), LSTM 128 -> dropout -> LSTM 64 -> dropout, then
attention over time, ``alpha_t = softmax(W_a h_t)``, ``y = W_o (sum_t alpha_t h_t) + b_o``.
One network is trained on the windows of all coins (more data per weight than one per coin).

Portfolio (the LSTM mean-variance article "Portfolio Optimization"): with predicted next returns ``mu`` and the
historical covariance ``Sigma`` of the last ``cov_window`` bars, solve

    min_w  1/2 w' Sigma w - risk_aversion * mu' w   s.t.  0 <= w_i <= max_weight (0.3)

with skfolio ``MeanRisk(MAXIMIZE_UTILITY)`` and ``overwrite_expected_return`` (the forecast
replaces the sample mean). Full investment with a 0.3 cap needs at least four coins; here the
invested share may be below 1 and the rest is cash, so with three coins, or when every coin is
predicted to fall, the optimiser can hold cash (cash has zero return and zero risk, which is
what the seed's problem gives when the budget is "at most 1"). Rebalanced every ``rebalance``
bars (the LSTM mean-variance article: weekly was best); the holding drifts in between.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction
from torch import nn

from ..base import Markets, MetricsMap, check_markets, hold_targets, risky_to_row, weights_frame
from .features import relative_to_first
from .forecaster import WindowForecaster
from .training import TrainConfig


class AttentionLSTMNet(nn.Module):
    """LSTM(h1) -> dropout -> LSTM(h2) -> dropout -> softmax attention over time -> dense(1)."""

    def __init__(self, n_features: int, hidden: tuple[int, int] = (128, 64), dropout: float = 0.2):
        super().__init__()
        h1, h2 = hidden
        self.lstm1 = nn.LSTM(n_features, h1, batch_first=True)
        self.lstm2 = nn.LSTM(h1, h2, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.score = nn.Linear(h2, 1, bias=False)
        self.out = nn.Linear(h2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm1(x)
        h, _ = self.lstm2(self.drop(h))
        h = self.drop(h)
        alpha = torch.softmax(self.score(h), dim=1)  # (B, T, 1): weights over time
        return self.out((alpha * h).sum(dim=1)).squeeze(-1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights ``(B, T)`` of a batch (for inspection)."""
        h, _ = self.lstm1(x)
        h, _ = self.lstm2(h)
        return torch.softmax(self.score(h), dim=1).squeeze(-1)


class AttentionLSTMForecaster(WindowForecaster):
    """The LSTM mean-variance article: OHLCV windows -> attention-LSTM -> predicted returns -> mean-variance weights."""

    name = "attention_lstm"
    per_asset = False

    def __init__(
        self,
        *,
        window: int = 60,
        hidden: tuple[int, int] = (128, 64),
        dropout: float = 0.2,
        risk_aversion: float = 1.0,
        max_weight: float = 0.3,
        cov_window: int = 90,
        rebalance: int = 7,
        target: str = "return",
        use_metrics: bool | list[str] = False,
        config: TrainConfig | None = None,
    ):
        super().__init__(window=window, target=target, use_metrics=use_metrics, config=config)
        if not 0 < max_weight <= 1:
            raise ValueError(f"max_weight must be in (0, 1], got {max_weight}")
        if risk_aversion <= 0:
            raise ValueError(f"risk_aversion must be > 0, got {risk_aversion}")
        self.hidden, self.dropout = tuple(hidden), dropout
        self.risk_aversion, self.max_weight = risk_aversion, max_weight
        self.cov_window, self.rebalance = cov_window, rebalance

    def raw_inputs(self, market: pd.DataFrame) -> np.ndarray:
        return market[["open", "high", "low", "close", "volume"]].to_numpy(float)

    def normalise(self, asset: str, windows: np.ndarray) -> np.ndarray:
        return relative_to_first(windows)

    def build_net(self, n_features: int) -> nn.Module:
        return AttentionLSTMNet(n_features, self.hidden, self.dropout)

    def optimise(self, mu: np.ndarray, returns: pd.DataFrame) -> np.ndarray:
        """The LSTM mean-variance article's problem for one decision: risky weights (sum <= 1) from ``mu`` and a return window."""
        mu = np.nan_to_num(np.asarray(mu, dtype=float))
        model = MeanRisk(
            objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
            risk_measure=RiskMeasure.VARIANCE,
            # skfolio maximises mu'w - l * w'Sigma w; the seed minimises 1/2 w'Sigma w - ra * mu'w
            risk_aversion=0.5 / self.risk_aversion,
            max_weights=self.max_weight,
            budget=None,
            min_budget=0.0,
            max_budget=1.0,
            overwrite_expected_return=lambda w: mu @ w,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(returns)
        return model.weights_

    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        pred = self.predicted_returns(market, metrics, start=start, end=end)
        _, closes = check_markets({a: market[a] for a in self.assets}, end)
        returns = closes.pct_change()
        pos = closes.index.get_indexer(pred.index)
        targets = {}
        for k, (t, p) in enumerate(zip(pred.index, pos)):
            mu = pred.loc[t].to_numpy(dtype=float)
            if k % self.rebalance or p < self.cov_window or not np.isfinite(mu).all():
                continue
            targets[t] = risky_to_row(self.optimise(mu, returns.iloc[p - self.cov_window + 1 : p + 1]))
        return weights_frame(pred.index, self.assets, hold_targets(targets, closes, pred.index))
