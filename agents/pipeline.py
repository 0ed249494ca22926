"""The orchestration the commands share: train a module and save it, train the missing ones,
compose a portfolio and backtest it beside the baselines.

``python -m experiments.train_cm`` is :func:`train_and_save` plus printing;
``experiments.compose`` and ``experiments.compare`` call :func:`train_missing` and
:func:`backtest_portfolio`. Nothing here parses a command line or prints a table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cryptorl.modelstore import ModelStore
from cryptorl.parallel import raise_failures
from cryptorl.portfolio.backtest import BacktestResult
from cryptorl.portfolio.baselines import BuyAndHold
from cryptorl.portfolio.strategy import backtest_strategies, make_baselines
from cryptorl.portfolio.voting import Portfolio

from .crypto_module import CMConfig, CryptoModule
from .portfolio import backtest_range, missing_modules
from .training import Split, ValidationCallback, paper_split, train_crypto_module

Loader = Callable[[str], tuple[pd.DataFrame, "pd.DataFrame | None"]]
STRATEGY = "CryptoRLPM"


@dataclass
class TrainedModule:
    """What :func:`train_and_save` returns: the module, its validation history, its backtest
    beside buy-and-hold (when the split has a backtest range) and where it was saved."""

    module: CryptoModule
    callback: ValidationCallback
    backtest: dict[str, BacktestResult]
    folder: Path | None


def train_and_save(
    market: pd.DataFrame,
    metrics: pd.DataFrame | None,
    config: CMConfig,
    split: Split | None = None,
    *,
    models: ModelStore | str | Path | None = None,
    save: bool = True,
    eval_freq: int = 2_000,
    tensorboard_log: str | None = None,
    progress_bar: bool = False,
    note: str | None = None,
    pool: Mapping[str, pd.DataFrame] | None = None,
) -> TrainedModule:
    """Train a Crypto Module on ``split`` (default: the paper's 15/2/7-month split of the data),
    backtest it against buy-and-hold on the split's backtest range, log that to TensorBoard and
    save it in the model store ``models`` (unless ``save=False``). ``pool``: the markets of
    ``config.pool``'s assets."""
    split = split or paper_split(market.index)
    module, callback = train_crypto_module(
        market,
        metrics,
        config,
        split,
        eval_freq=eval_freq,
        tensorboard_log=tensorboard_log,
        progress_bar=progress_bar,
        pool=pool,
    )
    results: dict[str, BacktestResult] = {}
    if split.backtest is not None:
        strategies = [
            Portfolio([module], name=f"CM {config.asset} ({config.algo.upper()})"),
            BuyAndHold(assets=[config.asset]),
        ]
        runs = backtest_strategies(
            strategies,
            {config.asset: market},
            {config.asset: metrics},
            interval=config.interval,
            start=split.backtest[0],
            end=split.backtest[1],
            fee=config.fee,
            execution=config.execution,
        )
        results = {name: run.result for name, run in runs.items()}
        if tensorboard_log:
            _log_backtest(module, results)
    folder = None
    if save:
        store = models if isinstance(models, ModelStore) else ModelStore(models)
        folder = module.save(store, note=note or f"seed {config.seed}")
    return TrainedModule(module, callback, results, folder)


def _log_backtest(module: CryptoModule, results: Mapping[str, BacktestResult]) -> None:
    from stable_baselines3.common.logger import Figure

    from cryptorl.portfolio.report import equity_figure

    logger = module.sam.logger
    fig = equity_figure(results, f"{module.asset} backtest")
    logger.record("backtest/equity_curve", Figure(fig, close=True), exclude=("stdout", "log", "json", "csv"))
    for k, val in next(iter(results.values())).metrics().items():
        logger.record(f"backtest/{k}", float(val))
    logger.dump(module.sam.num_timesteps)


def train_missing(
    assets: Iterable[str],
    interval: str,
    load: Loader,
    *,
    models: ModelStore | str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    eval_freq: int = 2_000,
    tensorboard_log: str | None = None,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Train and save, exactly as ``train_cm --asset A`` with its defaults would (paper split of
    the loaded data, ``CMConfig`` defaults updated by ``overrides``), each asset whose module the
    store lacks; modules already there are reused, never retrained. The trainings run at once
    through :func:`cryptorl.parallel.run_tasks` (``workers=1``: one after another, in process);
    only this process writes to the store. Returns ``{asset: folder}`` of the new versions; a
    ``ValueError`` names every asset whose training failed (the others are saved)."""
    from .jobs import TrainJob, train_many

    store = models if isinstance(models, ModelStore) else ModelStore(models)
    jobs = []
    for asset in missing_modules(assets, store, interval):
        market, metrics = load(asset)
        config = CMConfig(asset=asset, interval=interval, **dict(overrides or {}))
        jobs.append(TrainJob(market, metrics, config, paper_split(market.index), eval_freq, tensorboard_log))
    outcomes = train_many(jobs, workers=workers, address=address, progress=progress)
    saved = {
        job.config.asset: o.value.module().save(store, note=f"seed {job.config.seed}")
        for job, o in zip(jobs, outcomes)
        if o.ok
    }
    raise_failures(outcomes, "training")
    return saved


@dataclass
class PortfolioBacktest:
    """The voted portfolio and the baselines over one backtest range, with the same costs."""

    start: pd.Timestamp
    end: pd.Timestamp
    results: dict[str, BacktestResult]


def backtest_portfolio(
    portfolio: Portfolio,
    markets: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, pd.DataFrame | None],
    start=None,
    end=None,
    *,
    fee: float = 0.001,
    slippage: float = 0.0,
    execution: str = "close",
) -> PortfolioBacktest:
    """Vote ``portfolio``'s decisions over ``[start, end]`` (default: after every module's
    training, to the end of the data) and backtest it beside the standard baselines
    (:func:`cryptorl.portfolio.make_baselines`: buy-and-hold of each asset, equal-weight
    buy-and-hold, CRP and trend timing on the 20-bar SMA), all in one loop with the same costs.
    The portfolio's result is under its ``name`` (``"CryptoRLPM"``, :data:`STRATEGY`, by default)."""
    start, end = backtest_range(portfolio, markets, start, end)
    runs = backtest_strategies(
        [portfolio, *make_baselines(portfolio.assets, interval=portfolio.interval, distinct=True)],
        markets,
        metrics,
        interval=portfolio.interval,
        start=start,
        end=end,
        fee=fee,
        slippage=slippage,
        execution=execution,
    )
    results = {name: run.result for name, run in runs.items()}
    return PortfolioBacktest(start, end, results)
