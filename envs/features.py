"""The observation tensors of the environments, built once per data source.

Each environment hands out ``obs[t]``, a read-only view into a tensor built here in one
vectorised pass. Window position ``j = 0 .. n-1`` of ``obs[t]`` is bar ``t - n + 1 + j`` (the
last position is bar ``t`` itself); nothing after bar ``t`` ever enters ``obs[t]``.

Features of an asset, in this order (the full list with formulas is in ``docs/envs.md``):

========== ================================================ ==========
name       value at window position of bar tau (t = last)    cash row
========== ================================================ ==========
close      close_tau / close_t                               1
open       open_tau / close_t                                1
high       high_tau / close_t                                1
low        low_tau / close_t                                 1
log_return log(close_tau / close_(tau-1))                    0
volume     z-score of log(1 + volume_tau) within the window  0
<feature>  the external feature's value at tau (e.g. pc1)    0
signal     the EAM signal at tau (-1 sell, 0 hold, +1 buy)   0
========== ================================================ ==========

External ``features`` (refined metrics from the DRU) and ``signals`` may start with NaN rows
(warm-up): the first complete observation is the first whose whole window lies after the
warm-up, and episodes start there. A NaN after the warm-up (a hole in a metric) is read as 0,
the mean of a normalised feature, with a warning saying how many values were filled.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from cryptorl.data.frames import DataError

# The market features (a Crypto Module's optional extra observation rows) are defined in the
# light cryptorl.features.market, so that listing them imports no environment; they are
# re-exported here.
from cryptorl.features.market import (  # noqa: F401
    MARKET_FEATURES,
    MarketFeature,
    market_features,
    parse_market_feature,
    register_market_feature,
)

PRICE_FEATURES = ("close", "open", "high", "low")
OHLCV_FEATURES = (*PRICE_FEATURES, "log_return", "volume")
# What the cash row holds for each OHLCV feature: cash never moves and never trades.
CASH_VALUES = {"close": 1.0, "open": 1.0, "high": 1.0, "low": 1.0, "log_return": 0.0, "volume": 0.0}
_STD_FLOOR = 1e-8  # a window whose log volume varies less than this gets volume feature 0


@dataclass(frozen=True)
class AssetBlock:
    """Per-asset observation block.

    ``values`` has shape (T, f, n), float32: ``values[t]`` is the window ending at bar ``t``.
    Rows ``t < first_valid`` are incomplete (zeros) and never handed out.
    """

    values: np.ndarray
    names: tuple[str, ...]
    first_valid: int

    @property
    def n_features(self) -> int:
        return len(self.names)


def _aligned(frame: pd.DataFrame, index: pd.DatetimeIndex, asset: str | None, what: str) -> pd.DataFrame:
    """``frame`` restricted to ``index`` (exact timestamps) or a DataError naming what is missing."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(asset, f"{what} must be a pandas DataFrame (or Series), got {type(frame).__name__}")
    fidx = frame.index
    if not isinstance(fidx, pd.DatetimeIndex):
        raise DataError(asset, f"{what} must have a DatetimeIndex like the market frame")
    fidx = fidx.tz_localize("UTC") if fidx.tz is None else fidx.tz_convert("UTC")
    if fidx.has_duplicates:
        raise DataError(asset, f"{what} has duplicate timestamps", str(fidx[fidx.duplicated()][0]))
    frame = frame.set_axis(fidx.as_unit("ns"), axis=0)
    present = index.isin(frame.index)
    if not present.all():
        missing = index[~present]
        raise DataError(
            asset,
            f"{what} lack {len(missing)} of the market's {len(index)} time stamps (align them to market.index)",
            str(missing[0]),
        )
    out = frame.loc[index]
    for c in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[c]) or pd.api.types.is_bool_dtype(out[c])):
            raise DataError(asset, f"{what} column '{c}' is not numeric")
    return out.astype("float64")


def _first_complete_row(values: np.ndarray, asset: str | None, what: str, names: list[str], index) -> int:
    """Index of the first row without NaN (end of warm-up); fills later NaN with 0 (warned)."""
    if values.shape[1] == 0:
        return 0
    if np.isinf(values).any():
        r, c = np.argwhere(np.isinf(values))[0]
        raise DataError(asset, f"{what} column '{names[c]}' is infinite", str(index[r]))
    complete = ~np.isnan(values).any(axis=1)
    if not complete.any():
        raise DataError(asset, f"{what} have no row without NaN: nothing to observe")
    first = int(np.argmax(complete))
    holes = np.isnan(values[first:])
    if holes.any():
        warnings.warn(
            f"[{asset}] {what}: {int(holes.sum())} NaN value(s) after the warm-up (first at "
            f"{index[first + int(np.argwhere(holes)[0][0])]}) are read as 0",
            stacklevel=4,
        )
        values[first:][holes] = 0.0
    return first


def _signals_frame(signals, index, asset) -> pd.DataFrame:
    if isinstance(signals, pd.Series):
        frame = _aligned(signals.to_frame("signal"), index, asset, "signals")
        vals = frame["signal"].to_numpy()
        ok = np.isnan(vals) | np.isin(vals, (-1.0, 0.0, 1.0))
        if not ok.all():
            raise DataError(
                asset,
                f"a signal Series holds -1 (sell), 0 (hold) or +1 (buy); found {vals[~ok][0]!r}",
                str(index[np.flatnonzero(~ok)[0]]),
            )
        return frame
    frame = _aligned(signals, index, asset, "signals")
    return frame.set_axis([f"signal_{c}" for c in frame.columns], axis=1)


def asset_block(
    market: pd.DataFrame,
    features: pd.DataFrame | None = None,
    signals: pd.Series | pd.DataFrame | None = None,
    *,
    window: int,
    asset: str | None = None,
    extra_names: list[str] | None = None,
) -> AssetBlock:
    """The (T, f, n) block of one asset (see the module docstring for the features).

    ``market`` must be a validated market frame. ``extra_names`` (used by the multi-asset env)
    fixes the external feature rows: a name the asset's ``features`` lack is a row of zeros.
    """
    n = int(window)
    T = len(market)
    if n < 1:
        raise ValueError(f"window must be at least 1 bar, got {window}")
    if T < n + 1:
        raise DataError(asset, f"market has {T} bars; a window of {n} needs at least {n + 1}")
    idx = market.index
    o, h, l, c, v = (market[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume"))

    per_bar: list[np.ndarray] = []  # features whose value depends on the bar only
    names: list[str] = []
    first_valid = n  # log_return needs the bar before the window's first bar
    ext_names: list[str] = []
    if features is not None:
        if isinstance(features, pd.Series):
            features = features.to_frame()
        f = _aligned(features, idx, asset, "features")
        if extra_names is not None:
            f = f.reindex(columns=extra_names, fill_value=0.0)
        ext_names = [str(x) for x in f.columns]
        vals = f.to_numpy(np.float64, copy=True)
        warm = _first_complete_row(vals, asset, "features", ext_names, idx)
        first_valid = max(first_valid, warm + n - 1)
        per_bar.append(vals)
    elif extra_names:
        ext_names = list(extra_names)
        per_bar.append(np.zeros((T, len(ext_names))))
    names += ext_names
    if signals is not None:
        s = _signals_frame(signals, idx, asset)
        sig_names = list(s.columns)
        vals = s.to_numpy(np.float64, copy=True)
        warm = _first_complete_row(vals, asset, "signals", sig_names, idx)
        first_valid = max(first_valid, warm + n - 1)
        per_bar.append(vals)
        names += sig_names
    if first_valid >= T - 1:
        raise DataError(asset, f"no complete observation before the last bar (window {n}, warm-up included)")

    out = np.zeros((T, len(OHLCV_FEATURES) + len(names), n), dtype=np.float32)
    body = out[n - 1 :]  # body[i] is the window ending at bar i + n - 1
    last_close = c[n - 1 :, None]
    for k, series in enumerate((c, o, h, l)):
        body[:, k] = sliding_window_view(series, n) / last_close
    log_ret = np.zeros(T)
    log_ret[1:] = np.log(c[1:] / c[:-1])
    body[:, 4] = sliding_window_view(log_ret, n)
    lv = sliding_window_view(np.log1p(v), n)
    mean = lv.mean(axis=1, keepdims=True)
    std = lv.std(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        body[:, 5] = np.where(std > _STD_FLOOR, (lv - mean) / std, 0.0)
    if per_bar:
        ext = np.concatenate(per_bar, axis=1)  # (T, e)
        body[:, 6:] = sliding_window_view(ext, n, axis=0)
    out[:first_valid] = 0.0
    return AssetBlock(out, (*OHLCV_FEATURES, *names), first_valid)


def cash_block(names: tuple[str, ...], window: int) -> np.ndarray:
    """The constant (f, n) cash row: price relatives 1, everything else 0."""
    vals = np.array([CASH_VALUES.get(nm, 0.0) for nm in names], dtype=np.float32)
    return np.repeat(vals[:, None], window, axis=1)


def stack_assets(blocks: list[AssetBlock], *, cash: str | None) -> np.ndarray:
    """(T, f, m, n) tensor from asset blocks plus the cash row, read-only and C-contiguous.

    ``cash="last"`` gives (asset, cash) as the Crypto Module's paper layout; ``cash="first"``
    gives (cash, asset_1, ..., asset_k) as the weights of the multi-asset env; ``None`` no cash.
    """
    names = blocks[0].names
    T, f, n = blocks[0].values.shape
    m = len(blocks) + (cash is not None)
    out = np.empty((T, f, m, n), dtype=np.float32)
    offset = 1 if cash == "first" else 0
    for i, b in enumerate(blocks):
        if b.names != names or b.values.shape != (T, f, n):
            raise ValueError("asset blocks must share feature names and shape to be stacked")
        out[:, :, i + offset, :] = b.values
    if cash is not None:
        out[:, :, 0 if cash == "first" else m - 1, :] = cash_block(names, n)
    first = max(b.first_valid for b in blocks)
    out[:first] = 0.0
    out.flags.writeable = False
    return out
