"""The evaluation's work: resumable training of every (config, window, asset, seed) Crypto Module,
then one out-of-sample backtest of every module, voted portfolio and baseline.

Model selection never sees a backtest range. :func:`training_jobs` hands every training the market
cut at its window's validation end, and :func:`train_job` refuses data beyond it; the backtests
(:func:`score`) run only after every training, load the saved modules, and check that each
module's training and validation ended before the backtest starts.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents import jobs
from agents.crypto_module import CMConfig, CryptoModule, config_from_manifest, decision_frame
from agents.jobs import train_job
from agents.training import Split, in_crypto, trades
from cryptorl.data.frames import interval_timedelta
from cryptorl.modelstore import ModelStore, verify
from cryptorl.parallel import TaskOutcome, raise_failures, run_tasks
from cryptorl.portfolio import FixedWeights, backtest_strategies, common_markets, make_baselines, vote
from cryptorl.portfolio.backtest import BacktestResult
from cryptorl.portfolio.baselines import BuyAndHold
from cryptorl.portfolio.skill import skill_test

from .protocol import Protocol, Window

Data = Mapping[str, tuple[pd.DataFrame, pd.DataFrame | None]]


@dataclass(frozen=True)
class TrainJob:
    """One Crypto Module to train: picklable, carries its (cut) data and where to save it."""

    config_name: str
    window: str
    config: CMConfig
    split: Split
    market: pd.DataFrame  # ends at the validation end: selection never sees later bars
    metrics: pd.DataFrame | None
    eval_freq: int
    store: str
    pool: dict[str, pd.DataFrame] | None = None  # markets of config.pool's assets, cut as market

    @property
    def label(self) -> str:
        return f"{self.config_name} {self.window} {self.config.asset} seed {self.config.seed}"

    @property
    def core(self) -> jobs.TrainJob:
        """The training itself, as the execution layer runs it (the store stays with the caller)."""
        return jobs.TrainJob(self.market, self.metrics, self.config, self.split, self.eval_freq, pool=self.pool)


def store_root(out: Path, config_name: str, window: str, seed: int) -> Path:
    """The model store of one (config, window, seed): one module per asset in it."""
    return Path(out) / "models" / config_name / window / f"seed{seed}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def is_trained(config: CMConfig, split: Split, root: Path) -> bool:
    """Whether ``root`` holds a verified module trained with exactly this config and split."""
    folder = ModelStore(root).current(config.asset, config.interval)
    if folder is None:
        return False
    try:
        manifest = verify(folder)
    except Exception:
        return False
    try:  # fields newer than the saved module take their defaults, as when it is loaded
        saved = config_from_manifest(manifest.get("config", {}))
    except (TypeError, ValueError):
        return False
    return _jsonable(asdict(saved)) == _jsonable(asdict(config)) and manifest.get("ranges") == {
        k: list(v) for k, v in split.as_dict().items()
    }


def _cut(frame: pd.DataFrame | None, end: pd.Timestamp) -> pd.DataFrame | None:
    return None if frame is None else frame.loc[frame.index <= end]


def covers(market: pd.DataFrame, window: Window, interval: str) -> bool:
    """Whether ``market``'s bars run from ``window``'s training start to its backtest end."""
    return market.index[0] <= window.train[0] and market.index[-1] + interval_timedelta(interval) > window.backtest[1]


def listed_assets(protocol: Protocol, data: Data) -> dict[str, tuple[str, ...]]:
    """Per window name, the assets it holds: all the protocol's under ``universe: fixed``, those
    whose bars cover the window under ``universe: listed``."""
    return {
        w.name: tuple(
            a for a in protocol.assets if protocol.universe == "fixed" or covers(data[a][0], w, protocol.interval)
        )
        for w in protocol.windows
    }


def training_jobs(protocol: Protocol, data: Data, out: Path) -> tuple[list[TrainJob], int]:
    """The jobs still to run (already trained ones are skipped) and how many were skipped."""
    jobs, done = [], 0
    listed = listed_assets(protocol, data)
    for window in protocol.windows:
        val_end = window.validation[1]
        split = Split(window.train, window.validation)  # the backtest range is not even named
        for cname in protocol.configs:
            for seed in protocol.seeds:
                root = store_root(out, cname, window.name, seed)
                for asset in listed[window.name]:
                    config = protocol.cm_config(cname, asset, seed, listed[window.name])
                    if is_trained(config, split, root):
                        done += 1
                        continue
                    market, metrics = data[asset]
                    jobs.append(
                        TrainJob(
                            cname,
                            window.name,
                            config,
                            split,
                            _cut(market, val_end),
                            _cut(metrics, val_end),
                            protocol.eval_freq,
                            str(root),
                            {a: _cut(data[a][0], val_end) for a in config.pool} or None,
                        )
                    )
    return jobs, done


def train_all(
    protocol: Protocol,
    data: Data,
    out: Path,
    *,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> tuple[list[TaskOutcome], int]:
    """Train every missing module of the protocol (:func:`agents.jobs.train_job` through
    :func:`cryptorl.parallel.run_tasks`) and save each in its store here, in the caller;
    returns the outcomes and the count skipped. Each module is saved as soon as its training
    finishes, so an interrupted evaluation keeps (and a rerun skips) every finished module."""
    jobs, skipped = training_jobs(protocol, data, out)

    def save(i: int, outcome: TaskOutcome) -> None:
        if outcome.ok:
            outcome.value.module().save(ModelStore(jobs[i].store), note=f"evaluate {jobs[i].label}")

    outcomes = run_tasks(
        train_job,
        [j.core for j in jobs],
        labels=[j.label for j in jobs],
        workers=workers,
        address=address,
        desc="training",
        progress=progress,
        on_done=save,
    )
    return outcomes, skipped


# -- backtests ---------------------------------------------------------------------------------
@dataclass
class Scores:
    """Every backtest of an evaluation (see :func:`score`)."""

    cms: pd.DataFrame  # one row per (window, config, asset, seed)
    runs: pd.DataFrame  # one row per (window, portfolio, strategy, seed); baselines have seed -1
    values: dict[tuple[str, str, str], pd.Series]  # (window, portfolio, strategy) -> seed-mean value path
    returns: dict[tuple[str, str, str], pd.Series]  # same keys: seed-mean bar returns
    # (window, portfolio, strategy, seed) -> value path of one seed (baselines: seed -1)
    seed_values: dict[tuple[str, str, str, int], pd.Series] = field(default_factory=dict)
    # one row per (config, asset, seed): the module's timing skill over all the windows (timing_skill)
    skill: pd.DataFrame = field(default_factory=pd.DataFrame)
    listed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # window -> its assets (listed_assets)


def _row(res: BacktestResult) -> dict[str, float]:
    m = res.metrics()
    return {k: float(m[k]) for k in ("ARR", "Sortino", "Sharpe", "MaxDrawdown", "Turnover")}


SCORE_RANGES = ("backtest", "validation")


def score(
    protocol: Protocol,
    data: Data,
    out: Path | None,
    *,
    on: str = "backtest",
    baselines_only: bool = False,
    agents: AgentResults | None = None,
) -> Scores:
    """Backtest every trained module, portfolio and baseline of the protocol (after all training),
    and record the alternative agents' backtests (``agents``, from :func:`fit_agents`).

    ``on="validation"`` scores the validation ranges instead, where the modules were selected:
    in-sample figures for choosing between configurations without ever looking at a backtest.
    ``baselines_only``: the baselines alone (nothing trained is needed; ``out`` is not read).
    """
    if on not in SCORE_RANGES:
        raise ValueError(f"score on one of {SCORE_RANGES}, not {on!r}")
    cms, runs = [], []
    values: dict[tuple[str, str, str], list[pd.Series]] = {}
    rets: dict[tuple[str, str, str], list[pd.Series]] = {}
    seed_values: dict[tuple[str, str, str, int], pd.Series] = {}
    costs = {"interval": protocol.interval, "fee": protocol.fee, "execution": protocol.execution}
    folds: dict[tuple[str, str, int], list] = {}  # (config, asset, seed) -> (votes, market, prior) per window
    agent_folds: dict[str, dict[tuple[str, str, int], list]] = {}  # the same per portfolio, for agents

    def record(window: str, pname: str, name: str, kind: str, seed: int, res: BacktestResult) -> None:
        runs.append({"window": window, "portfolio": pname, "strategy": name, "kind": kind, "seed": seed, **_row(res)})
        values.setdefault((window, pname, name), []).append(res.values)
        rets.setdefault((window, pname, name), []).append(res.returns)
        seed_values[(window, pname, name, seed)] = res.values

    held = listed_assets(protocol, data)
    for window in protocol.windows:
        b0, b1 = window.backtest if on == "backtest" else window.validation
        assets, portfolios = held[window.name], protocol.portfolios_of(held[window.name])
        markets = {a: data[a][0].loc[data[a][0].index <= b1] for a in assets}
        metrics = {a: _cut(data[a][1], b1) for a in assets}
        own = backtest_strategies(BuyAndHold.instances(assets), markets, start=b0, end=b1, **costs)
        own_bh = {a: _row(run.result) for a, run in zip(assets, own.values())}
        for pname, members in portfolios.items():
            rules = make_baselines(members, protocol.baselines, interval=protocol.interval)
            for bname, run in backtest_strategies(rules, markets, start=b0, end=b1, **costs).items():
                record(window.name, pname, bname, "baseline", -1, run.result)
        for cname in [] if baselines_only else protocol.configs:
            for seed in protocol.seeds:
                decisions, modules = {}, {}
                for asset in assets:
                    module = _load(store_root(out, cname, window.name, seed), asset, protocol.interval)
                    if on == "backtest" and (module.train_end is None or module.train_end >= b0):
                        raise ValueError(
                            f"{cname} {window.name} {asset} seed {seed}: the module was trained or "
                            f"selected on data up to {module.train_end}, not before the backtest {b0}"
                        )
                    modules[asset] = module
                    votes, prior = module.votes(markets[asset], metrics[asset], b0, b1)
                    fold = (votes, data[asset][0], prior, module.config.lift)
                    folds.setdefault((cname, asset, seed), []).append(fold)
                    decisions[asset] = decision_frame(module.shares(votes, prior))
                # each module alone, and each portfolio of them voted, in one loop on the same costs
                alone = [FixedWeights(a, d.rename(columns={"crypto": a})) for a, d in decisions.items()]
                voted = [
                    FixedWeights(pname, vote({a: decisions[a] for a in members}))
                    for pname, members in portfolios.items()
                ]
                done = backtest_strategies(alone, markets, start=b0, end=b1, **costs)
                for asset, d in decisions.items():
                    row = _row(done[asset].result)
                    bars = in_crypto(d["crypto"])
                    cms.append(
                        {
                            "window": window.name,
                            "config": cname,
                            "asset": asset,
                            "seed": seed,
                            "crypto_share": float(d["crypto"].iloc[:-1].mean()),
                            "in_crypto": bars,
                            "trades": trades(d["crypto"]),
                            "collapsed": "always in" if bars > 0.95 else "always out" if bars < 0.05 else "",
                            **row,
                            "B&H Sortino": own_bh[asset]["Sortino"],
                            "beats_own_bh": bool(row["Sortino"] > own_bh[asset]["Sortino"]),
                            "validation_Sortino": float(modules[asset].validation.get("Sortino", np.nan)),
                        }
                    )
                for pname, run in backtest_strategies(voted, markets, start=b0, end=b1, **costs).items():
                    record(window.name, pname, cname, "cm", seed, run.result)
        for (wname, pname, name, seed), run in (agents or {}).items():
            if wname != window.name:
                continue
            record(wname, pname, name, "agent", seed, run.result)
            if run.decisions is not None:  # a rule filtered: tested as the modules are
                take, rule = run.decisions
                for asset in take:
                    fold = (take[asset], data[asset][0], rule[asset].to_numpy(), False)
                    agent_folds.setdefault(pname, {}).setdefault((name, asset, seed), []).append(fold)
    mean = {k: pd.concat(v, axis=1).mean(axis=1) for k, v in values.items()}
    mean_r = {k: pd.concat(v, axis=1).mean(axis=1) for k, v in rets.items()}
    # modules decide alike in every portfolio; an agent is fitted per portfolio
    skill = pd.concat(
        [timing_skill(folds, **costs).assign(portfolio=None)]
        + [timing_skill(f, **costs).assign(portfolio=pname) for pname, f in agent_folds.items()],
        ignore_index=True,
    )
    return Scores(pd.DataFrame(cms), pd.DataFrame(runs), mean, mean_r, seed_values, skill, held)


@dataclass(frozen=True)
class AgentJob:
    """One alternative agent on one window and portfolio: picklable, carries its data."""

    name: str
    fast: bool
    seed: int
    window: str
    portfolio: str
    markets: dict[str, pd.DataFrame]  # the members' bars from the training start to the scored range's end
    fit_end: pd.Timestamp
    scored: tuple[pd.Timestamp, pd.Timestamp]
    costs: dict[str, Any]
    metrics: dict[str, pd.DataFrame] | None = None  # the members' metrics to the same end, for an agent that reads them

    @property
    def label(self) -> str:
        return f"{self.name} {self.window} {self.portfolio} seed {self.seed}"


def agent_jobs(protocol: Protocol, data: Data, *, on: str = "backtest") -> list[AgentJob]:
    """The protocol's alternative agents, one job per (window, portfolio, agent, seed): each fitted on
    the portfolio's bars from the window's training start to its validation end (to its training
    end when the validation range is scored), the Crypto Modules' data, then deciding the scored
    range; the networks once per seed, the deterministic allocators once (the first seed)."""
    from agents.catalog import SEEDED

    costs = {"interval": protocol.interval, "fee": protocol.fee, "execution": protocol.execution}
    jobs = []
    listed = listed_assets(protocol, data)
    for window in protocol.windows:
        scored = window.backtest if on == "backtest" else window.validation
        fit_end = window.validation[1] if on == "backtest" else window.train[1]
        for pname, members in protocol.portfolios_of(listed[window.name]).items():
            markets = common_markets({a: data[a][0].loc[window.train[0] : scored[1]] for a in members})
            for name, opts in protocol.agents.items():
                fast = bool(opts.get("fast", False))
                metrics = _agent_metrics(data, members, scored[1], name) if opts.get("use_metrics") else None
                for seed in protocol.seeds if name in SEEDED else protocol.seeds[:1]:
                    jobs.append(
                        AgentJob(name, fast, seed, window.name, pname, markets, fit_end, scored, costs, metrics)
                    )
    return jobs


def _agent_metrics(data: Data, members: list[str], end: pd.Timestamp, agent: str) -> dict[str, pd.DataFrame]:
    missing = [a for a in members if data[a][1] is None]
    if missing:
        raise ValueError(f"agents.{agent} reads metrics, but {', '.join(missing)} have none from the protocol's source")
    return {a: _cut(data[a][1], end) for a in members}


@dataclass(frozen=True)
class AgentRun:
    """One agent's backtest on one window and portfolio and, for an agent that filters a rule (one
    with a ``decisions`` method, as the meta-labellers), each coin's take-or-leave decisions and
    the rule's position: what the timing-skill test reads."""

    result: BacktestResult
    decisions: tuple[pd.DataFrame, pd.DataFrame] | None = None


def agent_job(job: AgentJob) -> AgentRun:
    """Fit one agent on its job's bars up to ``fit_end``, backtest its weights on the scored range
    and, for an agent that filters a rule, keep its decisions there."""
    from agents.catalog import make_agents

    agent = make_agents([job.name], fast=job.fast, seed=job.seed, use_metrics=job.metrics is not None)[job.name]
    start, end = job.scored
    runs = backtest_strategies(
        [agent], job.markets, job.metrics, fit_end=job.fit_end, start=start, end=end, **job.costs
    )
    filters = getattr(agent, "decisions", None)
    return AgentRun(runs[job.name].result, filters(job.markets, job.metrics, start=start, end=end) if filters else None)


AgentResults = dict[tuple[str, str, str, int], AgentRun]  # (window, portfolio, agent, seed) -> its run


def fit_agents(
    protocol: Protocol,
    data: Data,
    *,
    on: str = "backtest",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> AgentResults:
    """Every :func:`agent_jobs` job through :func:`cryptorl.parallel.run_tasks`; a failed fit stops
    the evaluation with a ``ValueError`` naming it."""
    jobs = agent_jobs(protocol, data, on=on)
    labels = [j.label for j in jobs]
    outcomes = run_tasks(
        agent_job, jobs, labels=labels, workers=workers, address=address, desc="agents", progress=progress
    )
    raise_failures(outcomes, "agent fit")
    return {(j.window, j.portfolio, j.name, j.seed): o.value for j, o in zip(jobs, outcomes)}


SEED_MEAN = -1  # the seed of timing_skill's rows that test the seeds' mean votes


def timing_skill(
    folds: Mapping[tuple[str, str, int], list], *, interval: str, fee: float, execution: str, n: int = 999
) -> pd.DataFrame:
    """Does each module time its coin better than chance, over all the windows it was scored on?

    ``folds`` maps ``(config, asset, seed)`` to the ``(votes, market, prior, lift)`` of each window:
    :func:`cryptorl.portfolio.skill.skill_test` shuffles the module's holding periods across the
    windows, over the same prior (the learning guard's test, here on every scored window and coin).
    One row per key: the module's stitched Sortino, the null's median, the share of the null it
    beats and the one-sided p-value. With several seeds, one more row per (config, asset), seed
    :data:`SEED_MEAN`, tests the seeds' mean votes: the configuration's one answer, where the
    seeds' own p-values are several looks at the same windows.
    """
    by_config: dict[tuple[str, str], list[list]] = {}
    for (config, asset, _), windows in folds.items():
        by_config.setdefault((config, asset), []).append(windows)
    mean_folds = {
        (config, asset, SEED_MEAN): [
            (pd.concat([w[0] for w in same], axis=1).mean(axis=1), *same[0][1:]) for same in zip(*seeds)
        ]
        for (config, asset), seeds in by_config.items()
        if len(seeds) > 1
    }
    rows = []
    for (config, asset, seed), windows in {**folds, **mean_folds}.items():
        res = skill_test(windows, interval=interval, fee=fee, execution=execution, n=n)
        rows.append(
            {
                "config": config,
                "asset": asset,
                "seed": seed,
                "windows": len(windows),
                "Sortino": res.sortino,
                "null median": float(np.median(res.null)),
                "percentile": res.percentile,
                "p": res.pvalue,
            }
        )
    return pd.DataFrame(rows)


def _load(root: Path, asset: str, interval: str) -> CryptoModule:
    folder = ModelStore(root).current(asset, interval)
    if folder is None:
        raise ValueError(f"no trained module for {asset} in {root} (its training failed?)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You have specified a mini-batch size", category=UserWarning)
        return CryptoModule.load(folder)


def window_of(protocol: Protocol, name: str) -> Window:
    return next(w for w in protocol.windows if w.name == name)
