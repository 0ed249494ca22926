"""Base of the networks that output portfolio weights directly and train on the Sharpe ratio.

Used by :mod:`.dlm` (Chen & Zheng's (2025) multi-task LSTM) and :mod:`.dls` (Zhang, Zohren & Roberts 2020).
A subclass gives per-bar panel features ``(T, assets, F)`` (row t from data up to t) and a
network mapping windows ``(B, window, assets, F)`` to softmax weights ``(B, assets [+ cash])``.
This class standardises the features with training statistics, builds the windows and the
next-bar simple returns, and trains with :func:`~.training.train` on random blocks of
consecutive days: loss = negative Sharpe ratio of the block's portfolio returns + L2 on the
weights (:func:`~.training.sharpe_loss`). Decision times without a full, finite window hold cash.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from cryptorl.data.frames import to_utc_timestamp

from ..base import Markets, MetricsMap, PortfolioAgent, check_markets, cut, decision_times, weights_frame
from ..networks import resolve_device
from .training import TrainConfig, TrainResult, seeded, sharpe_loss, sliding_windows, train


class SharpeNetAgent(PortfolioAgent):
    """Weights straight from a network trained to maximise the Sharpe ratio."""

    name = "sharpe_net"

    def __init__(self, *, window: int = 50, l2: float = 0.0, cash: bool = False, config: TrainConfig | None = None):
        if window < 2:
            raise ValueError(f"window must be >= 2 bars, got {window}")
        self.window, self.l2, self.cash = window, l2, cash
        self.config = config or TrainConfig()
        self.assets = None
        self.net: nn.Module | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.history: TrainResult | None = None

    # ---- hooks ---------------------------------------------------------------------------
    def panel(self, market: dict[str, pd.DataFrame], metrics: dict[str, pd.DataFrame] | None) -> np.ndarray:
        """Per-bar features ``(T, assets, F)``; row t uses data up to t (NaN where unknown)."""
        raise NotImplementedError

    def build_net(self, n_assets: int, n_features: int) -> nn.Module:
        """Network ``(B, window, assets, F) -> (B, assets + cash)`` rows on the simplex."""
        raise NotImplementedError

    def prepare(self, market: Markets, metrics: MetricsMap, end) -> None:
        """Fit any upstream model before the features are built (default: nothing)."""

    # ---- fit / weights -------------------------------------------------------------------
    def _windows(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = (feats - self.mean) / self.std
        wins = sliding_windows(z, self.window)  # (N, W, n, F), window i ends at row i + W - 1
        ok = np.isfinite(wins).all(axis=(1, 2, 3))
        return np.nan_to_num(wins).astype(np.float32), ok

    def fit(self, market: Markets, metrics: MetricsMap = None, *, end=None) -> Self:
        assets, closes = check_markets(market, end, min_rows=self.window + 3)
        self.assets = assets
        self.fit_end = closes.index[-1] if end is None else to_utc_timestamp(end)
        self.net = None  # panel() may fit scalers while there is no network
        self.prepare(market, metrics, end)
        mk, mx = cut({a: market[a] for a in assets}, metrics, end)
        feats = self.panel(mk, mx)
        self.mean = np.nanmean(feats, axis=0, keepdims=True)
        sd = np.nanstd(feats, axis=0, keepdims=True)
        self.std = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        self.mean = np.nan_to_num(self.mean)
        x, ok = self._windows(feats)
        c = closes.to_numpy()
        nxt = c[self.window :] / c[self.window - 1 : -1] - 1.0  # return after each window but the last
        x, ok = x[:-1], ok[:-1]
        x, r = x[ok], nxt[ok]
        if self.cash:
            r = np.concatenate([np.zeros((len(r), 1)), r], axis=1)
        dev = resolve_device(self.config.device)
        xt, rt = torch.from_numpy(x).to(dev), torch.from_numpy(r.astype(np.float32)).to(dev)

        def loss_fn(model: nn.Module, idx: np.ndarray, training: bool) -> torch.Tensor:
            return sharpe_loss(model(xt[idx]), rt[idx], self.l2)

        with seeded(self.config.seed):
            self.net = self.build_net(len(assets), x.shape[3])
            self.history = train(self.net, loss_fn, len(r), self.config, contiguous=True, tag=self.name)
        return self

    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        self._check_fitted()
        self._check_assets(market)
        _, closes = check_markets({a: market[a] for a in self.assets}, end)
        times = decision_times(closes.index, start, end)
        mk, mx = cut({a: market[a] for a in self.assets}, metrics, end)
        x, ok = self._windows(self.panel(mk, mx))
        self.net.eval()
        with torch.no_grad():
            w = self.net(torch.from_numpy(x)).numpy().astype(float)
        if not self.cash:
            w = np.concatenate([np.zeros((len(w), 1)), w], axis=1)
        w = w / w.sum(axis=1, keepdims=True)
        w[~ok] = 0.0
        w[~ok, 0] = 1.0
        full = np.zeros((len(closes), len(self.assets) + 1))
        full[:, 0] = 1.0
        full[self.window - 1 :] = w
        pos = closes.index.get_indexer(times)
        return weights_frame(times, self.assets, full[pos])


def rolling_vol(log_ret: pd.DataFrame, n: int) -> pd.DataFrame:
    """Chen & Zheng's (2025) rolling volatility (eq. 13, population std over ``n`` bars; fewer at the start)."""
    return log_ret.rolling(n, min_periods=2).std(ddof=0)
