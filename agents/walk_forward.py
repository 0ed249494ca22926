"""Walk-forward evaluation of voted Crypto Modules: retrain every ``step``, trade the next ``step``.

For each segment k, starting at bar ``s_k`` (``s_{k+1} = s_k + step``):

1. every asset's CM is trained by :func:`agents.updating.fit_on_window` at ``now = s_k``: only
   bars closed by ``s_k`` (labels ``< s_k``) and metrics stamped before it are passed; training
   range ``train_window``, then validation range ``val_window`` ending at the bar before ``s_k``;
   the segments' modules do not depend on each other, so all of them (segments x assets) are
   trained at once through :func:`cryptorl.parallel.run_tasks` (Ray tasks, or in process with
   ``workers=1``), with the same results either way;
2. the modules, voted by :class:`cryptorl.portfolio.Portfolio` (paper eq. 2), decide at each bar
   ``s_k <= t < s_{k+1}`` from the market up to the segment's last bar (row t uses data up to t);
3. the segments' voted weights are stitched into one frame and the backtest engine runs **once**
   over the whole out-of-sample span, so the portfolio value and holdings carry across segment
   boundaries and a change of model is charged exactly the fee of the trades it causes.

The baselines (buy-and-hold of each asset, equal-weight buy-and-hold, CRP, trend timing) run over
the same span, in the same loop (:func:`cryptorl.portfolio.strategy.backtest_strategies`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from cryptorl.data.frames import DataError, interval_timedelta, to_utc_timestamp
from cryptorl.parallel import raise_failures, run_tasks
from cryptorl.portfolio import FixedWeights, Portfolio, backtest_strategies, common_markets, make_baselines
from cryptorl.portfolio.backtest import BacktestResult

from .crypto_module import CMConfig, CryptoModule
from .training import Split
from .updating import WindowJob, history_bars, parse_duration, window_job

STRATEGY = "Walk-forward CryptoRLPM"


@dataclass(frozen=True)
class Segment:
    """One out-of-sample segment: decisions at bars ``start .. end``, models trained before ``start``."""

    number: int
    start: pd.Timestamp
    end: pd.Timestamp
    split: Split  # training / validation ranges of the segment's models

    def row(self) -> dict[str, str]:
        return {
            "segment": str(self.number),
            "start": str(self.start),
            "end": str(self.end),
            "train_start": str(self.split.train[0]),
            "train_end": str(self.split.train[1]),
            "val_start": str(self.split.validation[0]),
            "val_end": str(self.split.validation[1]),
        }


def plan_segments(
    index: pd.DatetimeIndex, *, start, end, train_window, val_window, step, interval: str
) -> list[Segment]:
    """Cut the bars of ``index`` in ``[start, end]`` into consecutive segments of ``step``.

    Segment starts are bars (the first bar at or after ``start + k * step``); each segment ends at
    the bar before the next one starts, the last at ``end``; a tail shorter than two bars joins the
    previous segment. ``step`` must span at least two bars (a module decides over a range of bars).
    """
    train_window = parse_duration(train_window, "train window")
    val_window = parse_duration(val_window, "validation window")
    step = parse_duration(step, "step")
    bar = interval_timedelta(interval)
    if step < 2 * bar:
        raise ValueError(f"the step ({step}) must span at least two {interval} bars")
    s, e = to_utc_timestamp(start), to_utc_timestamp(end)
    if s is None or e is None or e <= s:
        raise ValueError(f"the walk-forward range needs start < end, got {start} .. {end}")
    bars = index[(index >= s) & (index <= e)]
    if len(bars) < 2:
        raise ValueError(f"the data have fewer than two bars in {s} .. {e}")
    starts: list[pd.Timestamp] = []
    t = bars[0]
    while t <= bars[-1]:
        pos = int(bars.searchsorted(t, side="left"))
        if pos >= len(bars):
            break
        if not starts or bars[pos] > starts[-1]:
            starts.append(bars[pos])
        t = t + step
    if len(starts) > 1 and len(bars[bars >= starts[-1]]) < 2:  # a one-bar tail joins the previous segment
        starts.pop()
    out = []
    for k, s_k in enumerate(starts):
        nxt = starts[k + 1] if k + 1 < len(starts) else None
        seg_bars = bars[bars >= s_k] if nxt is None else bars[(bars >= s_k) & (bars < nxt)]
        last_closed = s_k - bar
        val_start = s_k - val_window
        split = Split((val_start - train_window, val_start - pd.Timedelta(seconds=1)), (val_start, last_closed))
        out.append(Segment(k + 1, s_k, seg_bars[-1], split))
    return out


@dataclass
class SegmentRun:
    """A segment's models and what they decided."""

    segment: Segment
    modules: dict[str, CryptoModule]
    data_end: dict[str, pd.Timestamp]  # last bar each model saw (always before segment.start)
    weights: pd.DataFrame  # voted weights at the segment's bars


@dataclass
class WalkForwardResult:
    segments: list[SegmentRun]
    weights: pd.DataFrame  # stitched voted weights over the whole span
    result: BacktestResult  # the single backtest of the stitched weights
    baselines: dict[str, BacktestResult] = field(default_factory=dict)

    def results(self) -> dict[str, BacktestResult]:
        """The strategy first, then the baselines (what :func:`write_report` takes)."""
        return {STRATEGY: self.result, **self.baselines}

    def segment_table(self) -> pd.DataFrame:
        """One row per segment: ranges, each model's validation Sortino, the segment's return."""
        rows = []
        values = self.result.values
        for run in self.segments:
            seg = run.segment
            row: dict[str, object] = seg.row()
            # value at the segment's first close -> value at the next segment's first close (or the end)
            v0 = values.loc[seg.start]
            later = values.index[values.index > seg.end]
            v1 = values.loc[later[0]] if len(later) else values.iloc[-1]
            row["return"] = float(v1 / v0 - 1.0)
            row["turnover"] = float(self.result.turnover.loc[seg.start : seg.end].sum())
            for asset, module in run.modules.items():
                row[f"val_sortino_{asset}"] = module.validation.get("Sortino", float("nan"))
                row[f"data_end_{asset}"] = str(run.data_end[asset])
            rows.append(row)
        return pd.DataFrame(rows).set_index("segment")


def run_walk_forward(
    markets: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, pd.DataFrame | None] | None,
    config: CMConfig,
    *,
    start,
    end,
    train_window="450d",
    val_window="60d",
    step="30d",
    eval_freq: int = 2_000,
    slippage: float = 0.0,
    progress: bool = True,
    workers: int | None = None,
    address: str | None = None,
) -> WalkForwardResult:
    """Walk-forward over ``[start, end]`` (see the module docstring).

    ``config`` is the recipe of every CM (its ``asset`` is replaced per asset); ``config.fee``
    and ``config.execution`` are also the backtests' (plus ``slippage``). ``markets`` must cover the first segment's
    training window plus the warm-up history (:func:`agents.updating.history_bars`).
    ``workers``/``address``: where the modules are trained (see :func:`cryptorl.parallel.run_tasks`);
    if any fails, a ValueError names each failed asset and segment.
    """
    if not markets:
        raise ValueError("run_walk_forward needs at least one asset")
    metrics = dict(metrics or {})
    markets = common_markets(markets)
    assets = list(markets)
    index = next(iter(markets.values())).index
    segments = plan_segments(
        index,
        start=start,
        end=end,
        train_window=train_window,
        val_window=val_window,
        step=step,
        interval=config.interval,
    )
    need = segments[0].split.train[0] - history_bars(config) * interval_timedelta(config.interval)
    if index[0] > need:
        raise DataError(
            None,
            f"the first segment ({segments[0].start:%Y-%m-%d}) trains from "
            f"{segments[0].split.train[0]:%Y-%m-%d} and warms up from {need:%Y-%m-%d}, "
            f"but the data start at {index[0]:%Y-%m-%d}: load more history or start later",
        )
    train_w, val_w = parse_duration(train_window), parse_duration(val_window)

    jobs = [
        WindowJob(
            asset,
            markets[asset],
            metrics.get(asset),
            replace(config, asset=asset),
            now=seg.start,
            train=train_w,
            validation=val_w,
            eval_freq=eval_freq,
        )
        for seg in segments
        for asset in assets
    ]
    outcomes = run_tasks(
        window_job,
        jobs,
        labels=[f"segment {seg.number} {asset} seed {config.seed}" for seg in segments for asset in assets],
        workers=workers,
        address=address,
        desc="walk-forward",
        progress=progress,
    )
    raise_failures(outcomes, "module")
    fits = iter(outcomes)

    runs: list[SegmentRun] = []
    for seg in segments:
        modules, data_end = {}, {}
        for asset in assets:
            fit = next(fits).value
            modules[asset], data_end[asset] = fit.module(), fit.data_end
        seen = {a: m[m.index <= seg.end] for a, m in markets.items()}
        seen_metrics = {a: (x[x.index <= seg.end] if x is not None else None) for a, x in metrics.items()}
        weights = Portfolio(modules.values(), interval=config.interval).decide(seen, seen_metrics, seg.start, seg.end)
        runs.append(SegmentRun(seg, modules, data_end, weights))

    stitched = pd.concat([r.weights for r in runs])
    backtests = backtest_strategies(
        [FixedWeights(STRATEGY, stitched), *make_baselines(assets, interval=config.interval, distinct=True)],
        markets,
        interval=config.interval,
        start=stitched.index[0],
        end=stitched.index[-1],
        fee=config.fee,
        slippage=slippage,
        execution=config.execution,
    )
    result = backtests.pop(STRATEGY).result
    base = {name: run.result for name, run in backtests.items()}
    return WalkForwardResult(runs, stitched, result, base)


__all__ = ["STRATEGY", "Segment", "SegmentRun", "WalkForwardResult", "plan_segments", "run_walk_forward"]
