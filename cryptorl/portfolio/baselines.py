"""Baseline strategies as weight frames for :func:`cryptorl.portfolio.backtest.backtest`.

* buy-and-hold of one asset: ``(cash 0, asset 1)`` at every bar (the paper's baselines);
* equal-weight buy-and-hold: ``1/n`` of each asset bought at the first close, then left to
  drift: the target at bar t is the drifted weight ``w_0 * close_t/close_0`` normalised, known at
  t's close, so the engine trades nothing after the first bar under ``execution="close"``
  (under ``"next_open"`` it re-aligns at each open to the close-drifted weights, which costs
  ``c * |open/close gap|``, tiny on 24/7 markets);
* CRP (constant rebalanced portfolio, the paper's named future baseline): equal weights
  restored at every bar;
* trend timing: ``1/n`` of each asset held while its close is above its n-bar simple moving
  average (default 20), its share in cash otherwise; decided at bar t's close on closes up to t;
* time-series momentum (Moskowitz, Ooi & Pedersen 2012, long/cash on spot): ``1/n`` of each asset
  held while its n-bar return ``close_t / close_{t-n} - 1`` is positive;
* Donchian ensemble with volatility targeting (after Zarattini, Pagani & Barbon 2025): for each
  lookback n, long from a close at the n-bar high (the highest of the last n closes, t included)
  until a close at the n/2-bar low; the signals averaged over the lookbacks, times
  ``min(1, target_vol / realised_vol)``, times the asset's ``1/n`` budget (no leverage);
* inverse volatility (equal risk, no correlations): weights proportional to ``1 / vol`` of each
  asset's last ``window`` bar returns, fully invested, set every ``rebalance`` bars and left to
  drift with prices in between.

Every weight at bar t is computed from closes up to t, on each asset's whole market frame (so the
history before ``start`` warms the indicators up); an indicator not yet defined holds cash.

Each rule is a function returning a weight frame, and a registered
:class:`~cryptorl.portfolio.strategy.Baseline` (its report name, its protocol key and its
parameter, stated once here): :data:`cryptorl.portfolio.strategy.BASELINES` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cryptorl.data.frames import DataError, periods_per_year, to_utc_timestamp

from .strategy import Baseline, make_baselines, register_baseline


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


def hold_targets(
    targets: Mapping[pd.Timestamp, np.ndarray], closes: pd.DataFrame, times: pd.DatetimeIndex
) -> np.ndarray:
    """Rows for ``times``: the target at a rebalance time, the drifted holding in between.

    ``targets`` maps rebalance times to rows ``[cash, *assets]``. Before the first target the
    portfolio is all cash. Drift uses the close-to-close price relatives up to each time, so
    the row at t depends on prices up to t only; the backtest then trades nothing between
    rebalances (the drifted weights equal the held ones).
    """
    n = closes.shape[1]
    rel = (closes / closes.shift(1)).reindex(times).to_numpy()
    out = np.zeros((len(times), n + 1))
    w = np.zeros(n + 1)
    w[0] = 1.0
    for i, t in enumerate(times):
        if i > 0:
            y = np.concatenate([[1.0], rel[i]])
            grown = w * y
            w = grown / grown.sum()
        if t in targets:
            w = np.asarray(targets[t], dtype=float)
        out[i] = w
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
    rebalance: int = 1,
    start=None,
    end=None,
) -> pd.DataFrame:
    """CRP: the same weights (default ``1/n`` each, no cash) restored at bars ``0, rebalance,
    2 rebalance, ...`` of the range (every bar by default) and drifted with prices in between."""
    assets = list(markets) if assets is None else list(assets)
    idx = common_index(markets, assets, start, end)
    target = np.full(len(assets), 1.0 / len(assets)) if weights is None else np.asarray(weights, dtype="float64")
    if target.shape != (len(assets),) or (target < 0).any() or target.sum() > 1 + 1e-9:
        raise ValueError(f"CRP weights must be {len(assets)} non-negative numbers summing to at most 1, got {weights}")
    if int(rebalance) < 1:
        raise ValueError(f"CRP rebalances every rebalance >= 1 bars, got {rebalance}")
    if int(rebalance) == 1:
        return _frame(idx, assets, np.tile(target, (len(idx), 1)))
    bars = common_index(markets, assets, None, idx[-1])  # the history too: the drift at idx[0] needs the bar before
    closes = pd.DataFrame({a: _closes(markets, a).reindex(bars) for a in assets})
    row = np.concatenate([[1.0 - target.sum()], target])
    held = hold_targets({t: row for t in idx[:: int(rebalance)]}, closes, idx)
    return pd.DataFrame(held, index=idx, columns=["cash", *assets])


def _drifted(close: np.ndarray, targets: np.ndarray, rebalance: int) -> np.ndarray:
    """Weights set to ``targets[r0]`` (summing to 1) at bars ``r0 = 0, rebalance, ...`` and drifted
    with prices until the next; a row with a NaN target holds cash."""
    w = np.zeros_like(close)
    for r0 in range(0, len(close), rebalance):
        r1 = min(r0 + rebalance, len(close))
        target = targets[r0]
        if not np.all(np.isfinite(target)):
            continue
        grown = target * close[r0:r1] / close[r0]
        w[r0:r1] = grown / grown.sum(axis=1, keepdims=True)
    return w


def trend_timing(
    markets: Mapping[str, pd.DataFrame],
    assets: Sequence[str] | None = None,
    *,
    sma: int = 20,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Each asset held at ``1/n`` while ``close_t > SMA_sma(close)_t``, else that share in cash.

    The moving average at t is the mean of the ``sma`` closes up to and including t, computed on
    each asset's whole market frame (so history before ``start`` warms it up); a bar whose
    average is not yet defined holds cash. Weights at t use closes up to t only.
    """
    if int(sma) < 2:
        raise ValueError(f"the trend baseline's moving average needs at least 2 bars, got {sma}")
    n = int(sma)
    return _timing(markets, assets, start, end, lambda close: close > close.rolling(n, min_periods=n).mean())


def _closes(markets: Mapping[str, pd.DataFrame], asset: str) -> pd.Series:
    return markets[asset]["close"].astype("float64")


def _timing(markets, assets, start, end, held_when) -> pd.DataFrame:
    """Each asset at ``1/n`` on the bars where ``held_when(its whole close series)`` is true, else cash."""
    assets = list(markets) if assets is None else list(assets)
    idx = common_index(markets, assets, start, end)
    held = [held_when(_closes(markets, a)).reindex(idx).fillna(False).to_numpy(dtype="float64") for a in assets]
    return _frame(idx, assets, np.column_stack(held) / len(assets))


def time_series_momentum(
    markets: Mapping[str, pd.DataFrame],
    assets: Sequence[str] | None = None,
    *,
    lookback: int = 60,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Each asset held at ``1/n`` while ``close_t / close_{t-lookback} - 1 > 0``, else that share in cash."""
    if int(lookback) < 1:
        raise ValueError(f"time-series momentum needs a lookback of at least 1 bar, got {lookback}")
    n = int(lookback)
    # NaN (no history yet) compares False
    return _timing(markets, assets, start, end, lambda close: close / close.shift(n) - 1.0 > 0.0)


def donchian_signal(close: pd.Series, lookback: int) -> pd.Series:
    """1 while long, 0 while out: in after a close at the ``lookback``-bar high (the highest of the
    last ``lookback`` closes, t included), out after a close at the ``lookback // 2``-bar low; a
    bar that is both (flat prices) exits. Undefined history (fewer bars than the window) is out."""
    n = int(lookback)
    if n < 2:
        raise ValueError(f"a Donchian lookback needs at least 2 bars, got {lookback}")
    entry = (close >= close.rolling(n, min_periods=n).max()).to_numpy()
    exit_ = (close <= close.rolling(max(n // 2, 1), min_periods=max(n // 2, 1)).min()).to_numpy()
    # the position is the last event (entry 1, exit 0) carried forward; out before any event
    event = np.where(exit_, 0.0, np.where(entry, 1.0, np.nan))
    return pd.Series(event, index=close.index).ffill().fillna(0.0)


def realised_vol(close: pd.Series, window: int, interval: str = "1d") -> pd.Series:
    """Annualised standard deviation (ddof 1) of the last ``window`` bar returns, up to and including t."""
    r = close.pct_change()
    return r.rolling(int(window), min_periods=int(window)).std(ddof=1) * np.sqrt(periods_per_year(interval))


def donchian_ensemble(
    markets: Mapping[str, pd.DataFrame],
    assets: Sequence[str] | None = None,
    *,
    lookbacks: Sequence[int] = (10, 20, 30, 60, 90),
    target_vol: float = 0.25,
    vol_window: int = 90,
    interval: str = "1d",
    start=None,
    end=None,
) -> pd.DataFrame:
    """The mean of :func:`donchian_signal` over ``lookbacks``, sized to ``target_vol``.

    Asset i's weight at t is ``signal_t * min(1, target_vol / vol_t) / n`` where ``vol_t`` is
    :func:`realised_vol` over ``vol_window`` bars: positions are resized every bar, never above
    the asset's budget ``1/n`` (Zarattini et al. allow leverage up to 2; spot has none).
    """
    if not lookbacks:
        raise ValueError("the Donchian ensemble needs at least one lookback")
    if not target_vol > 0:
        raise ValueError(f"target_vol must be positive, got {target_vol}")
    assets = list(markets) if assets is None else list(assets)
    idx = common_index(markets, assets, start, end)
    held = [
        donchian_position(
            _closes(markets, a), lookbacks, target_vol=target_vol, vol_window=vol_window, interval=interval
        )
        .reindex(idx)
        .fillna(0.0)
        .to_numpy(dtype="float64")
        for a in assets
    ]
    return _frame(idx, assets, np.column_stack(held) / len(assets))


def vol_target_position(
    close: pd.Series, *, target_vol: float = 0.25, vol_window: int = 90, interval: str = "1d"
) -> pd.Series:
    """``min(1, target_vol / vol_t)``: the share of one asset that runs at ``target_vol``
    annualised (:func:`realised_vol` over ``vol_window`` bars up to t); NaN before the window fills."""
    if not target_vol > 0:
        raise ValueError(f"target_vol must be positive, got {target_vol}")
    return (float(target_vol) / realised_vol(close, vol_window, interval)).clip(upper=1.0)


def donchian_position(
    close: pd.Series,
    lookbacks: Sequence[int] = (10, 20, 30, 60, 90),
    *,
    target_vol: float = 0.25,
    vol_window: int = 90,
    interval: str = "1d",
) -> pd.Series:
    """One asset's share in [0, 1] in :func:`donchian_ensemble` before its ``1/n`` budget: the
    mean Donchian signal times :func:`vol_target_position`; NaN before the volatility is known."""
    if not lookbacks:
        raise ValueError("the Donchian ensemble needs at least one lookback")
    signal = pd.concat([donchian_signal(close, n) for n in lookbacks], axis=1).mean(axis=1)
    return signal * vol_target_position(close, target_vol=target_vol, vol_window=vol_window, interval=interval)


def sma_position(close: pd.Series, sma: int = 20) -> pd.Series:
    """1 while ``close_t`` is above its ``sma``-bar simple moving average, else 0 (NaN before it is defined)."""
    if int(sma) < 2:
        raise ValueError(f"the trend baseline's moving average needs at least 2 bars, got {sma}")
    avg = close.rolling(int(sma), min_periods=int(sma)).mean()
    return (close > avg).astype("float64").where(avg.notna())


def inverse_volatility(
    markets: Mapping[str, pd.DataFrame],
    assets: Sequence[str] | None = None,
    *,
    window: int = 30,
    rebalance: int = 30,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Weights ``(1/vol_i) / sum_j (1/vol_j)`` set at bars ``0, rebalance, 2 rebalance, ...`` of the
    range and drifted with prices in between (so the engine trades only at a rebalance under
    ``execution="close"``); ``vol_i`` is the std of asset i's last ``window`` bar returns up to the
    rebalance bar. A rebalance where some asset has no volatility yet holds cash until the next."""
    if int(window) < 2 or int(rebalance) < 1:
        raise ValueError(f"inverse volatility needs window >= 2 and rebalance >= 1, got {window}, {rebalance}")
    assets = list(markets) if assets is None else list(assets)
    idx = common_index(markets, assets, start, end)
    close = np.column_stack([_closes(markets, a).reindex(idx).to_numpy() for a in assets])
    vol = np.column_stack(
        [_closes(markets, a).pct_change().rolling(int(window)).std(ddof=1).reindex(idx).to_numpy() for a in assets]
    )
    with np.errstate(divide="ignore", invalid="ignore"):  # no volatility yet (or none): cash
        inv = np.where(np.isfinite(vol) & (vol > 0), 1.0 / vol, np.nan)
        targets = inv / inv.sum(axis=1, keepdims=True)
    return _frame(idx, assets, _drifted(close, targets, int(rebalance)))


# -- the registered baselines: report name, protocol key and parameter, stated once --------------
@register_baseline
class BuyAndHold(Baseline):
    """All in one asset from the first bar (one strategy per asset: ``"B&H <asset>"``)."""

    key = "buy_and_hold"
    always = True
    per_asset = True

    def label(self) -> str:
        return f"B&H {self.assets[0]}" if self.assets and len(self.assets) == 1 else "B&H"

    def rule(self, markets, assets, start, end):
        if len(assets) != 1:
            raise ValueError(f"buy-and-hold holds one asset, got {assets}")
        return buy_and_hold(markets, assets[0], start=start, end=end)


@register_baseline
class EqualWeightBuyAndHold(Baseline):
    """:func:`equal_weight_buy_and_hold`: ``1/n`` of each asset bought at the first bar, then held."""

    key = "equal_weight"
    always = True
    multi_asset = True

    def label(self) -> str:
        return "B&H equal weight"

    def rule(self, markets, assets, start, end):
        return equal_weight_buy_and_hold(markets, assets, start=start, end=end)


@register_baseline
class EqualWeight(Baseline):
    """:func:`constant_rebalanced` at ``1/n``: reset every ``param`` bars (default 1: the CRP)."""

    key = "crp"
    default = 1
    always = True
    multi_asset = True

    @classmethod
    def check(cls, param):
        if not isinstance(param, int) or isinstance(param, bool) or param < 1:
            raise ValueError(f"the equal-weight rebalance period must be a whole number of bars >= 1, got {param!r}")
        return param

    def label(self) -> str:
        return "CRP equal weight" if self.param == 1 else f"Equal weight every {self.param} bars"

    def rule(self, markets, assets, start, end):
        return constant_rebalanced(markets, assets, rebalance=self.param, start=start, end=end)


def _bars(least: int):
    def check(cls, param):
        if not isinstance(param, int) or isinstance(param, bool) or param < least:
            raise ValueError(f"baselines.{cls.key} must be a whole number of bars >= {least}, got {param!r}")
        return param

    return classmethod(check)


@register_baseline
class TrendTiming(Baseline):
    """:func:`trend_timing` on a ``param``-bar simple moving average (default 20)."""

    key = "trend_sma"
    default = 20
    always = True
    check = _bars(2)

    def label(self) -> str:
        return f"Trend SMA{int(self.param)}"

    def rule(self, markets, assets, start, end):
        return trend_timing(markets, assets, sma=self.param, start=start, end=end)


@register_baseline
class TimeSeriesMomentum(Baseline):
    """:func:`time_series_momentum` over a ``param``-bar lookback (default 60)."""

    key = "tsmom"
    default = 60
    check = _bars(1)

    def label(self) -> str:
        return f"TSMOM {int(self.param)}"

    def rule(self, markets, assets, start, end):
        return time_series_momentum(markets, assets, lookback=self.param, start=start, end=end)


@register_baseline
class DonchianEnsemble(Baseline):
    """:func:`donchian_ensemble` over the lookbacks ``param`` (default 10, 20, 30, 60, 90)."""

    key = "donchian"
    default = (10, 20, 30, 60, 90)

    @classmethod
    def check(cls, param):
        if (
            not isinstance(param, (list, tuple))
            or not param
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in param)
        ):
            raise ValueError(f"baselines.donchian must be a list of lookbacks >= 2 bars, got {param!r}")
        return tuple(param)

    def label(self) -> str:
        return "Donchian " + "/".join(str(int(n)) for n in self.param) + " vol-target"

    def rule(self, markets, assets, start, end):
        return donchian_ensemble(markets, assets, lookbacks=self.param, interval=self.interval, start=start, end=end)


@register_baseline
class InverseVolatility(Baseline):
    """:func:`inverse_volatility` on a ``param``-bar window, rebalanced as often (default 30)."""

    key = "inverse_vol"
    default = 30
    check = _bars(2)

    def label(self) -> str:
        return f"Inverse vol {int(self.param)}"

    def rule(self, markets, assets, start, end):
        return inverse_volatility(markets, assets, window=self.param, rebalance=self.param, start=start, end=end)


EQUAL_WEIGHT = EqualWeightBuyAndHold().name  # the reference every report compares against


def holds_one_asset(strategy: str) -> bool:
    """Whether ``strategy`` names the buy-and-hold of a single asset (``"B&H <asset>"``): a
    per-coin reference that reports show beside the portfolios, not a rival portfolio."""
    return strategy.startswith("B&H ") and strategy != EQUAL_WEIGHT


def trend_name(sma: int = 20) -> str:
    """The report name of :func:`trend_timing`'s baseline."""
    return TrendTiming(sma).name


def baselines(
    markets: Mapping[str, pd.DataFrame], assets: Sequence[str] | None = None, *, start=None, end=None
) -> dict[str, pd.DataFrame]:
    """The weights of the standard baselines on the common bars of ``assets``: ``"B&H <asset>"``
    for each asset, then ``"B&H equal weight"`` and ``"CRP equal weight"`` (these two only with
    several assets) and the trend timing of all the assets, ``"Trend SMA20"``."""
    assets = list(markets) if assets is None else list(assets)
    idx = common_index(markets, assets, start, end)
    return {b.name: b.weights(markets, start=idx[0], end=idx[-1]) for b in make_baselines(assets, distinct=True)}
