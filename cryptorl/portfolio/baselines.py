"""Baseline strategies as weight frames for :func:`cryptorl.portfolio.backtest.backtest`.

* buy-and-hold of one asset: ``(cash 0, asset 1)`` at every bar (the paper's baselines);
* equal-weight buy-and-hold: ``1/n`` of each asset bought at the first close, then left to
  drift: the target at bar t is the drifted weight ``w_0 * close_t/close_0`` normalised, known at
  t's close, so the engine trades nothing after the first bar under ``execution="close"``
  (under ``"next_open"`` it re-aligns at each open to the close-drifted weights, which costs
  ``c * |open/close gap|``, tiny on 24/7 markets);
* CRP (constant rebalanced portfolio, the paper's named future baseline): equal weights
  restored at every bar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cryptorl.data.frames import DataError, to_utc_timestamp


def common_index(
    markets: Mapping[str, pd.DataFrame],
    assets: Sequence[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> pd.DatetimeIndex:
    """Bars that every market in ``assets`` has, within ``[start, end]``."""
    assets = list(markets) if assets is None else list(assets)
    if not assets:
        raise ValueError("no assets given")
    missing = [a for a in assets if a not in markets]
    if missing:
        raise ValueError(f"no market for {missing}; markets: {sorted(markets)}")
    idx = markets[assets[0]].index
    for a in assets[1:]:
        idx = idx.intersection(markets[a].index)
    s, e = to_utc_timestamp(start), to_utc_timestamp(end)
    if s is not None:
        idx = idx[idx >= s]
    if e is not None:
        idx = idx[idx <= e]
    if len(idx) < 2:
        raise ValueError(f"the markets of {assets} share fewer than two bars in {s} .. {e}")
    return idx.rename("time")


def common_markets(markets: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The markets cut to the bars every asset has (one index for voting and comparing); a
    :class:`~cryptorl.data.frames.DataError` when those common bars have a hole."""
    idx = common_index(markets)
    full = pd.date_range(idx[0], idx[-1], freq=pd.Series(idx).diff().min())
    if len(full) != len(idx):
        missing = full.difference(idx)
        raise DataError(None, f"the common bars of {list(markets)} have {len(missing)} hole(s)", str(missing[0]))
    return {a: m.loc[idx] for a, m in markets.items()}


def _frame(index: pd.DatetimeIndex, assets: Sequence[str], values: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(values, index=index, columns=list(assets))
    out.insert(0, "cash", np.clip(1.0 - values.sum(axis=1), 0.0, None) if values.size else 1.0)
    return out


def buy_and_hold(markets: Mapping[str, pd.DataFrame], asset: str, *, start=None, end=None) -> pd.DataFrame:
    """All in ``asset`` from the first bar: columns ``["cash", asset]``."""
    idx = common_index(markets, [asset], start, end)
    return _frame(idx, [asset], np.ones((len(idx), 1)))


def equal_weight_buy_and_hold(
    markets: Mapping[str, pd.DataFrame], assets: Sequence[str] | None = None, *, start=None, end=None
) -> pd.DataFrame:
    """``1/n`` of each asset bought at the first close and held (weights drift with prices)."""
    assets = list(markets) if assets is None else list(assets)
    idx = common_index(markets, assets, start, end)
    close = np.column_stack([markets[a]["close"].reindex(idx).to_numpy(dtype="float64") for a in assets])
    grown = close / close[0]
    w = grown / grown.sum(axis=1, keepdims=True)
    return _frame(idx, assets, w)


def constant_rebalanced(
    markets: Mapping[str, pd.DataFrame],
    assets: Sequence[str] | None = None,
    *,
    weights: Sequence[float] | None = None,
    start=None,
    end=None,
) -> pd.DataFrame:
    """CRP: the same weights (default ``1/n`` each, no cash) restored at every bar."""
    assets = list(markets) if assets is None else list(assets)
    idx = common_index(markets, assets, start, end)
    target = np.full(len(assets), 1.0 / len(assets)) if weights is None else np.asarray(weights, dtype="float64")
    if target.shape != (len(assets),) or (target < 0).any() or target.sum() > 1 + 1e-9:
        raise ValueError(f"CRP weights must be {len(assets)} non-negative numbers summing to at most 1, got {weights}")
    return _frame(idx, assets, np.tile(target, (len(idx), 1)))


def baselines(
    markets: Mapping[str, pd.DataFrame], assets: Sequence[str] | None = None, *, start=None, end=None
) -> dict[str, pd.DataFrame]:
    """Every baseline on the common bars of ``assets``: ``"B&H <asset>"`` for each asset, then
    ``"B&H equal weight"`` and ``"CRP equal weight"`` (the last two only with several assets)."""
    assets = list(markets) if assets is None else list(assets)
    idx = common_index(markets, assets, start, end)
    s, e = idx[0], idx[-1]
    out = {f"B&H {a}": buy_and_hold(markets, a, start=s, end=e) for a in assets}
    if len(assets) > 1:
        out["B&H equal weight"] = equal_weight_buy_and_hold(markets, assets, start=s, end=e)
        out["CRP equal weight"] = constant_rebalanced(markets, assets, start=s, end=e)
    return out
