"""The honest scoreboard behind ``python -m experiments.evaluate`` (see docs/findings.md).

    from agents.evaluation import load_protocol, load_markets, evaluate
    protocol = load_protocol("experiments/protocols/daily_bear_bull.yml")
    paths = evaluate(protocol, "reports/evaluate-daily")

1. :mod:`.protocol`: the YAML protocol (assets, interval, source, windows or a walk-forward span,
   seeds, fee, the CM configurations to compare, the baselines), checked up front;
2. :mod:`.runner`: every (config, window, asset, seed) module trained and selected on data cut at
   its validation end, saved in a model store per (config, window, seed) so that a rerun skips
   what is trained; then one backtest of each module, voted portfolio and baseline;
3. :mod:`.report`: Markdown + CSV + PNG with means and spreads over seeds, seeds beating each
   baseline, rank tests, collapsed modules and the target figures;
4. :mod:`.scoreboard`: with many disjoint windows, the stitched out-of-sample curves, windows won,
   paired tests, block bootstrap, deflated Sharpe, PBO and the "selected" meta-strategy.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from cryptorl.data import load_data
from cryptorl.data.frames import DataError, fill_gaps, find_gaps, interval_timedelta, warn_outliers

from .protocol import (
    Protocol,
    Window,
    load_protocol,
    parse_protocol,
    walk_forward_windows,
)
from .report import write_evaluation_report
from .runner import Data, Scores, TrainJob, fit_agents, listed_assets, score, train_all, training_jobs


def _add_metrics(protocol: Protocol, asset: str, first: pd.Timestamp, store) -> None:
    """The protocol's metrics source for ``asset`` into the store; an asset it has none for runs on
    market data alone (said on stderr)."""
    from cryptorl.data.metric_sources import add_metrics_source

    try:
        add_metrics_source(
            protocol.metrics, asset, protocol.interval, first, protocol.data_end, store=store, progress=False
        )
    except DataError as exc:
        print(f"note: {asset}: no metrics from {protocol.metrics} ({' '.join(str(exc).split())})", file=sys.stderr)


def _without_old_holes(market: pd.DataFrame, asset: str, interval: str, first_day: pd.Timestamp, gaps: str):
    """The loaded bars from after the last hole that ends by ``first_day`` (the first training day:
    warm-up history across a hole would be made up), with the holes inside the windows filled
    under ``gaps="fill"`` and refused under ``gaps="error"``."""
    old = [g for g in find_gaps(market.index, interval) if g.before <= first_day]
    if old:
        market = market[market.index >= old[-1].before]
    holes = find_gaps(market.index, interval)
    if holes and gaps == "error":
        more = f" and {len(holes) - 1} more" if len(holes) > 1 else ""
        raise DataError(
            asset,
            f"{interval} market data has gaps inside the protocol's windows: {holes[0]}{more}; set 'gaps: fill' "
            "in the protocol or add --gaps fill (flat zero-volume bars at the last close), or choose windows "
            "without them",
        )
    if holes:
        market = fill_gaps(market, interval)
    market.index = pd.DatetimeIndex(market.index, freq=interval_timedelta(interval), name="time")
    return market


def load_markets(
    protocol: Protocol, store: str | Path | None = None, *, progress: bool = True, gaps: str | None = None
) -> Data:
    """``{asset: (market, metrics)}`` for the protocol, from the data start to its last backtest bar.

    A ``csv:`` source is imported into ``store`` (a temporary folder when None). Holes before the
    first training day never matter (the bars begin after the last of them); holes inside the
    windows stop with a :class:`DataError` unless ``gaps`` (default: the protocol's ``gaps``) is
    ``"fill"``. A coin whose bars do not cover every window (listed or delisted within the span)
    is a ``ValueError`` naming the windows it covers, unless the protocol's ``universe`` is
    ``"listed"``: it then joins those windows (:func:`listed_assets`; one that covers none is held
    in none, said on stderr), and only a window no portfolio has a coin in is an error.
    """
    gaps = protocol.gaps if gaps is None else gaps
    tmp = None
    if store is None and protocol.source.startswith("csv:"):
        tmp = tempfile.TemporaryDirectory(prefix="cryptorl-evaluate-")
        store = tmp.name
    first_day = min(w.train[0] for w in protocol.windows)
    first = first_day - pd.Timedelta(days=400)  # warm-up history
    out = {}
    try:
        for asset in tqdm(protocol.assets, desc="data", unit="asset", disable=not progress):
            if protocol.metrics is not None:
                _add_metrics(protocol, asset, first, store)
            market, metrics = load_data(
                asset, protocol.interval, first, protocol.data_end, source=protocol.source, store=store, gaps="keep"
            )
            market = _without_old_holes(market, asset, protocol.interval, first_day, gaps)
            warn_outliers(market, asset, first_day, protocol.data_end)
            out[asset] = (market, metrics if metrics is not None and metrics.shape[1] else None)
    finally:
        if tmp is not None:
            tmp.cleanup()
    held = listed_assets(replace(protocol, universe="listed"), out)  # the coins whose bars cover each window
    for asset, (market, _) in out.items():
        covered = [w for w in protocol.windows if asset in held[w.name]]
        if len(covered) == len(protocol.windows):
            continue
        if protocol.universe == "listed":
            if not covered:
                print(f"note: [{asset}] listed in none of these windows: it is held in none", file=sys.stderr)
            continue
        w = next(w for w in protocol.windows if w not in covered)
        hint = (
            f"it covers windows {covered[0].name} .. {covered[-1].name} of this protocol: choose those (--windows), "
            f"move the walk_forward span, leave {asset} out (--assets), or let it join the windows it covers "
            "(the protocol's universe: listed, or evaluate --universe listed)"
            if covered
            else f"it covers none of this protocol's windows: leave {asset} out (--assets)"
        )
        raise ValueError(
            f"[{asset}] the data cover {market.index[0]:%Y-%m-%d} .. {market.index[-1]:%Y-%m-%d}, "
            f"not window {w.name}'s {w.train[0]:%Y-%m-%d} .. {w.backtest[1]:%Y-%m-%d}; {hint}"
        )
    empty = [name for name, assets in held.items() if not protocol.portfolios_of(assets)]
    if protocol.universe == "listed" and empty:
        raise ValueError(
            f"window {empty[0]}: no portfolio has a coin whose data cover it; start the windows later (--windows, "
            "the walk_forward span)"
        )
    return out


def evaluate(
    protocol: Protocol,
    out: str | Path,
    *,
    data: Data | None = None,
    store: str | Path | None = None,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on: str = "backtest",
    baselines_only: bool = False,
) -> dict[str, Path]:
    """Train what is missing, fit the alternative agents, backtest everything once, write the
    report; returns its paths.

    ``on="validation"`` scores the validation ranges instead (choosing configurations without
    looking at a backtest). The backtests need every module, so a failed
    training ends the evaluation with a ``RuntimeError`` naming them (rerun to retry only those).
    ``baselines_only``: train nothing and score the baselines alone (seconds, for the scoreboard's
    reference figures).
    """
    out = Path(out)
    data = load_markets(protocol, store, progress=progress) if data is None else data
    if not baselines_only:
        outcomes, _ = train_all(protocol, data, out, workers=workers, address=address, progress=progress)
        failed = [f"{o.label}: {o.error}" for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} training(s) failed, first: {failed[0]}")
    agents = {}
    if protocol.agents and not baselines_only:
        agents = fit_agents(protocol, data, on=on, workers=workers, address=address, progress=progress)
    scores = score(protocol, data, out, on=on, baselines_only=baselines_only, agents=agents)
    report = out if on == "backtest" else out / "validation"
    return write_evaluation_report(protocol, scores, report, on=on)


__all__ = [
    "Data",
    "Protocol",
    "Scores",
    "TrainJob",
    "Window",
    "evaluate",
    "fit_agents",
    "listed_assets",
    "load_markets",
    "load_protocol",
    "parse_protocol",
    "score",
    "train_all",
    "training_jobs",
    "walk_forward_windows",
    "write_evaluation_report",
]
