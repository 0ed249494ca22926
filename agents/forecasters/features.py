"""Inputs and error measures shared by the forecasters. Everything at row t uses rows <= t.

* :func:`atr` — Chen & Zheng's (2025) average true range (eq. 1-3: mean of the last ``n`` true ranges,
  fewer at the start);
* :func:`relative_to_first` — Chen & Zheng's (2025) window normalisation ``x_p / x_1 - 1`` (eq. 4);
* :class:`MetricScaler` — optional on-chain/social metrics as extra inputs: log (when a metric
  is positive on the training range), then z-scored with training statistics only; NaN -> 0;
* :func:`forecast_errors` — MSE, RMSE, MAE, R² of a price forecast (sklearn.metrics), next to
  the naive last-value forecast, so that the errors can be read honestly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from cryptorl.data.frames import align_metrics

CLIP = 10.0


def atr(market: pd.DataFrame, n: int = 14) -> pd.Series:
    """Average true range over ``n`` bars; the first bars average what there is (Chen & Zheng (2025))."""
    high, low, close = market["high"], market["low"], market["close"]
    prev = close.shift(1)
    tr = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)
    return tr.rolling(n, min_periods=1).mean().rename("atr")


def relative_to_first(windows: np.ndarray) -> np.ndarray:
    """``x_p / x_1 - 1`` along axis 1 of ``(N, W, F)`` windows; zero where ``x_1 <= 0``; clipped to +-10."""
    first = windows[:, :1, :]
    safe = np.where(first > 0, first, np.nan)
    out = windows / safe - 1.0
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=CLIP, neginf=-CLIP), -CLIP, CLIP)


class MetricScaler:
    """Metrics -> z-scores with statistics from the training range only (no look-ahead).

    Columns are the metrics seen at fit time (``names`` restricts them); a metric that is
    positive everywhere on the training range is logged first (on-chain counts are
    log-normal-ish). Metrics are put on the market index with
    :func:`cryptorl.data.frames.align_metrics` (latest value at or before t).
    """

    def __init__(self, names: list[str] | None = None):
        self.names = names
        self.columns: list[str] = []
        self.log: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, metrics: pd.DataFrame, index: pd.DatetimeIndex, asset: str = "") -> MetricScaler:
        cols = list(metrics.columns) if self.names is None else [c for c in self.names if c in metrics.columns]
        if self.names is not None and len(cols) < len(self.names):
            missing = [c for c in self.names if c not in metrics.columns]
            raise ValueError(f"[{asset}] metrics lack {missing}")
        x = align_metrics(metrics[cols], index).to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            self.log = np.array(
                [np.nanmin(x[:, j]) > 0 if np.isfinite(x[:, j]).any() else False for j in range(x.shape[1])], dtype=bool
            )
        z = self._log(x)
        self.mean = np.nan_to_num(np.nanmean(z, axis=0)) if len(z) else np.zeros(len(cols))
        sd = np.nanstd(z, axis=0) if len(z) else np.ones(len(cols))
        self.std = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        self.columns = cols
        return self

    def _log(self, x: np.ndarray) -> np.ndarray:
        out = x.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, self.log] = np.log(np.where(x[:, self.log] > 0, x[:, self.log], np.nan))
        return out

    def transform(self, metrics: pd.DataFrame, index: pd.DatetimeIndex, asset: str = "") -> np.ndarray:
        missing = [c for c in self.columns if c not in metrics.columns]
        if missing:
            raise ValueError(f"[{asset}] metrics lack {missing} (the forecaster was fitted with them)")
        x = align_metrics(metrics[self.columns], index).to_numpy(dtype=float)
        z = (self._log(x) - self.mean) / self.std
        return np.clip(np.nan_to_num(z, nan=0.0), -CLIP, CLIP)


def metric_names(use_metrics: bool | list[str], assets: list[str], metrics, *, common: bool) -> list[str] | None:
    """Which metrics a model reads: the given list, every metric of each asset (``None``), or,
    for one model shared by all assets (``common=True``), the metrics every asset has."""
    if not use_metrics:
        return None
    if isinstance(use_metrics, list):
        return list(use_metrics)
    if not common:
        return None
    if metrics is None or any(a not in metrics for a in assets):
        missing = [a for a in assets if metrics is None or a not in metrics]
        raise ValueError(f"metrics are used but missing for {missing}")
    first = list(metrics[assets[0]].columns)
    names = [c for c in first if all(c in metrics[a].columns for a in assets)]
    if not names:
        raise ValueError(f"a model shared by {assets} needs metrics they all have; they have none in common")
    return names


def forecast_errors(actual: np.ndarray, predicted: np.ndarray, last: np.ndarray) -> dict[str, float]:
    """Errors of a next-close forecast, with the naive last-value forecast beside it.

    ``MSE, RMSE, MAE, R2`` (price level, as the diffusion-transformer paper and 002 report them), ``naive_MSE`` and
    ``naive_R2`` (predicting the last close), ``skill`` = 1 - MSE / naive_MSE (> 0: beats the
    naive forecast), ``R2_return`` (R² of the implied next return), ``hit_rate`` (share of
    correctly signed next returns), ``n``.
    """
    a, p, l = (np.asarray(v, dtype=float) for v in (actual, predicted, last))
    ok = np.isfinite(a) & np.isfinite(p) & np.isfinite(l)
    a, p, l = a[ok], p[ok], l[ok]
    if len(a) < 2:
        return {
            k: float("nan")
            for k in ("MSE", "RMSE", "MAE", "R2", "naive_MSE", "naive_R2", "skill", "R2_return", "hit_rate")
        } | {"n": float(len(a))}
    mse = mean_squared_error(a, p)
    naive = mean_squared_error(a, l)
    ra, rp = a / l - 1.0, p / l - 1.0
    return {
        "MSE": float(mse),
        "RMSE": float(np.sqrt(mse)),
        "MAE": float(mean_absolute_error(a, p)),
        "R2": float(r2_score(a, p)),
        "naive_MSE": float(naive),
        "naive_R2": float(r2_score(a, l)),
        "skill": float(1.0 - mse / naive) if naive > 0 else float("nan"),
        "R2_return": float(r2_score(ra, rp)),
        "hit_rate": float(np.mean(np.sign(ra) == np.sign(rp))),
        "n": float(len(a)),
    }
