"""Base class of the window forecasters (LSTM, attention-LSTM, transformer) as portfolio agents.

A forecaster reads a window of ``window`` bars ending at t and predicts the next close
(t+1). Subclasses say which per-bar inputs they read (:meth:`raw_inputs`), how a window is
normalised (:meth:`normalise`), and which network maps ``(B, window, features)`` to one number
(:meth:`build_net`). This class does the rest, once for all of them:

* **inputs** — price-derived inputs, plus (``use_metrics=True`` or a list of names) the asset's
  metrics as z-scores fitted on the training range (:class:`~.features.MetricScaler`);
* **target** — ``"return"`` (default): the next log return ``log(c_{t+1}/c_t)``; or
  ``"price"``: Chen & Zheng's (2025) ``c_{t+1}/c_{t-window+1} - 1`` (the next close relative to the
  window's first close). Both are scaled by their training standard deviation. Either way the
  forecast is a next close: ``c_t exp(r)`` or ``c_{first} (1 + y)``;
* **training** — :func:`~.training.train` with MSE, early stopping on the validation tail,
  TensorBoard logging; one model per asset (``per_asset = True``, Chen & Zheng (2025)) or one model on
  the windows of all assets in time order;
* **forecast** — :meth:`forecast` gives next-close forecasts for decision times, :meth:`errors`
  the error table (MSE, RMSE, MAE, R², naive last-value beside them);
* **weights** — from the predicted returns (:meth:`allocate`); default: long the assets with
  a positive predicted return, in proportion to it, fully invested among them; all cash when
  none is positive (``weighting="equal"``: equal weights among them).
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from cryptorl.data.frames import to_utc_timestamp

from ..base import Markets, MetricsMap, PortfolioAgent, check_markets, cut, decision_times, risky_to_row, weights_frame
from ..networks import resolve_device
from .features import MetricScaler, forecast_errors, metric_names
from .training import TrainConfig, TrainResult, seeded, sliding_windows, train


class WindowForecaster(PortfolioAgent):
    """Common machinery; subclasses define inputs, normalisation and the network."""

    name = "forecaster"
    per_asset = True

    def __init__(
        self,
        *,
        window: int = 60,
        target: str = "return",
        use_metrics: bool | list[str] = False,
        weighting: str = "proportional",
        config: TrainConfig | None = None,
    ):
        if window < 2:
            raise ValueError(f"window must be >= 2 bars, got {window}")
        if target not in ("return", "price"):
            raise ValueError(f"target must be 'return' or 'price', got {target!r}")
        if weighting not in ("proportional", "equal"):
            raise ValueError(f"weighting must be 'proportional' or 'equal', got {weighting!r}")
        self.window, self.target, self.use_metrics, self.weighting = window, target, use_metrics, weighting
        self.config = config or TrainConfig()
        self.assets = None
        self.nets: dict[str, nn.Module] = {}
        self.scalers: dict[str, MetricScaler] = {}
        self.y_scale: dict[str, float] = {}
        self.history: dict[str, TrainResult] = {}

    # ---- hooks for subclasses -------------------------------------------------------------
    def raw_inputs(self, market: pd.DataFrame) -> np.ndarray:
        """Per-bar inputs ``(T, F)`` from one asset's market frame; row t uses rows <= t."""
        raise NotImplementedError

    def fit_normaliser(self, asset: str, raw: np.ndarray) -> None:
        """Learn normalisation state from the training rows of ``raw`` (default: none)."""

    def normalise(self, asset: str, windows: np.ndarray) -> np.ndarray:
        """Normalise ``(N, W, F)`` windows of raw inputs (default: unchanged)."""
        return windows

    def build_net(self, n_features: int) -> nn.Module:
        """A network mapping ``(B, window, n_features)`` to ``(B,)``."""
        raise NotImplementedError

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Training-time input augmentation (default: none)."""
        return x

    # ---- data ----------------------------------------------------------------------------
    def _metrics_for(self, asset: str, metrics: MetricsMap) -> pd.DataFrame | None:
        if not self.use_metrics:
            return None
        if metrics is None or asset not in metrics:
            raise ValueError(f"[{asset}] forecaster '{self.name}' uses metrics but none were given for this asset")
        return metrics[asset]

    def _features(self, asset: str, mk: pd.DataFrame, mx: pd.DataFrame | None) -> np.ndarray:
        """All normalised windows ``(T - W + 1, W, F)`` of one asset; window i ends at row i + W - 1."""
        wins = self.normalise(asset, sliding_windows(self.raw_inputs(mk), self.window))
        if self.use_metrics:
            z = self.scalers[asset].transform(mx, mk.index, asset)
            wins = np.concatenate([wins, sliding_windows(z, self.window)], axis=2)
        return wins.astype(np.float32)

    def _targets(self, close: np.ndarray) -> np.ndarray:
        """Raw target of each window (NaN for the last, whose next close is unknown)."""
        w = self.window
        last = close[w - 1 :]
        nxt = np.append(close[w:], np.nan)
        if self.target == "return":
            return np.log(nxt / last)
        return nxt / close[: len(close) - w + 1] - 1.0

    def _to_close(self, y: np.ndarray, close: np.ndarray) -> np.ndarray:
        """Raw predictions of the windows -> next-close forecasts."""
        w = self.window
        if self.target == "return":
            return close[w - 1 :] * np.exp(y)
        return close[: len(close) - w + 1] * (1.0 + y)

    # ---- fit -----------------------------------------------------------------------------
    def fit(self, market: Markets, metrics: MetricsMap = None, *, end=None) -> Self:
        """Train on rows <= ``end``: one network per asset, or one for all (``per_asset=False``)."""
        assets, closes = check_markets(market, end, min_rows=self.window + 3)
        mk_all, mx_all = cut(market, metrics, end)
        self.assets = assets
        self.fit_end = closes.index[-1] if end is None else to_utc_timestamp(end)
        names = metric_names(self.use_metrics, assets, mx_all, common=not self.per_asset)
        xs, ys = {}, {}
        for a in assets:
            mk, mx = mk_all[a], self._metrics_for(a, mx_all)
            if self.use_metrics:
                self.scalers[a] = MetricScaler(names).fit(mx, mk.index, a)
            self.fit_normaliser(a, self.raw_inputs(mk))
            x = self._features(a, mk, mx)[:-1]
            y = self._targets(mk["close"].to_numpy(dtype=float))[:-1]
            ok = np.isfinite(y)
            xs[a], ys[a] = x[ok], y[ok]
        if self.per_asset:
            for i, a in enumerate(assets):
                self.y_scale[a] = _scale(ys[a])
                self.nets[a], self.history[a] = self._train(
                    xs[a], ys[a] / self.y_scale[a], tag=f"{self.name}/{a}", seed_offset=i
                )
        else:
            n = min(len(ys[a]) for a in assets)  # same index: same count; keep the time-major order
            x = np.stack([xs[a][-n:] for a in assets], axis=1).reshape(n * len(assets), *xs[assets[0]].shape[1:])
            scale = {a: _scale(ys[a]) for a in assets}
            y = np.stack([ys[a][-n:] / scale[a] for a in assets], axis=1).reshape(-1)
            net, hist = self._train(x, y, tag=self.name, seed_offset=0)
            for a in assets:
                self.nets[a], self.history[a], self.y_scale[a] = net, hist, scale[a]
        return self

    def _train(self, x: np.ndarray, y: np.ndarray, *, tag: str, seed_offset: int) -> tuple[nn.Module, TrainResult]:
        cfg = self.config
        dev = resolve_device(cfg.device)
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
        yt = torch.from_numpy(y.astype(np.float32)).to(dev)

        def loss_fn(model: nn.Module, idx: np.ndarray, training: bool) -> torch.Tensor:
            xb = xt[idx]
            if training:
                xb = self.augment(xb)
            return nn.functional.mse_loss(model(xb), yt[idx])

        with seeded(cfg.seed + seed_offset):
            net = self.build_net(x.shape[2])
            hist = train(net, loss_fn, len(y), cfg, tag=tag)
        return net, hist

    # ---- predict -------------------------------------------------------------------------
    def _predict_all(self, asset: str, mk: pd.DataFrame, mx: pd.DataFrame | None) -> pd.Series:
        """Next-close forecast for every row with a full window (NaN before)."""
        close = mk["close"].to_numpy(dtype=float)
        out = pd.Series(np.nan, index=mk.index, name=asset)
        if len(close) < self.window:
            return out
        x = torch.from_numpy(self._features(asset, mk, mx))
        net = self.nets[asset]
        net.eval()
        with torch.no_grad():
            y = net(x).numpy().astype(float) * self.y_scale[asset]
        out.iloc[self.window - 1 :] = self._to_close(y, close)
        return out

    def forecast(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        """Forecast of the next close made at each decision time in ``[start, end]``.

        Index = decision times t, columns = assets; value = predicted close at t+1, using data
        up to t only. NaN where there is not yet a full window of history.
        """
        self._check_fitted()
        self._check_assets(market)
        _, closes = check_markets({a: market[a] for a in self.assets}, end)
        times = decision_times(closes.index, start, end)
        mk_all, mx_all = cut(market, metrics, end)
        cols = {a: self._predict_all(a, mk_all[a], self._metrics_for(a, mx_all)).reindex(times) for a in self.assets}
        out = pd.DataFrame(cols, index=times)
        out.index.name = "time"
        return out

    def predicted_returns(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        """Predicted simple return from t to t+1 for each decision time (forecast / close - 1)."""
        fc = self.forecast(market, metrics, start=start, end=end)
        close = pd.DataFrame({a: market[a]["close"] for a in self.assets}).reindex(fc.index)
        return fc / close - 1.0

    def errors(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        """Error table (one row per asset) of the forecasts made at t in ``[start, end)`` for t+1 <= end."""
        fc = self.forecast(market, metrics, start=start, end=end)
        rows = {}
        for a in self.assets:
            close = market[a]["close"]
            if end is not None:
                close = close.loc[: to_utc_timestamp(end)]
            nxt = close.shift(-1).reindex(fc.index)
            rows[a] = forecast_errors(nxt.to_numpy(), fc[a].to_numpy(), close.reindex(fc.index).to_numpy())
        out = pd.DataFrame(rows).T
        out.index.name = "asset"
        return out

    # ---- weights -------------------------------------------------------------------------
    def allocate(self, predicted: pd.DataFrame, closes: pd.DataFrame) -> np.ndarray:
        """Rows ``[cash, *assets]`` from predicted returns (rows = decision times)."""
        r = predicted.to_numpy(dtype=float)
        pos = np.where(np.isfinite(r) & (r > 0), r, 0.0)
        if self.weighting == "equal":
            pos = (pos > 0).astype(float)
        sums = pos.sum(axis=1, keepdims=True)
        risky = np.divide(pos, sums, out=np.zeros_like(pos), where=sums > 0)
        return np.stack([risky_to_row(w) for w in risky]) if len(risky) else np.zeros((0, len(self.assets) + 1))

    def weights(self, market: Markets, metrics: MetricsMap = None, *, start=None, end=None) -> pd.DataFrame:
        pred = self.predicted_returns(market, metrics, start=start, end=end)
        _, closes = check_markets({a: market[a] for a in self.assets}, end)
        return self._overlay(weights_frame(pred.index, self.assets, self.allocate(pred, closes)), closes)

    def _overlay(self, weights: pd.DataFrame, closes: pd.DataFrame) -> pd.DataFrame:
        """Hook for risk overlays (the transformer's drawdown limit)."""
        return weights


def _scale(y: np.ndarray) -> float:
    s = float(np.std(y)) if len(y) > 1 else 1.0
    return s if np.isfinite(s) and s > 0 else 1.0
