"""Hyper-parameter search for Crypto Modules: Optuna on the validation ranges, trials on Ray.

* The **objective** of a trial is the mean, over the assets and the seeds, of the best validation
  Sortino ratio that training keeps (:class:`agents.training.ValidationCallback`). Each asset's
  data are cut at the end of its validation range before anything is trained: the backtest range
  is never seen, so it stays out of sample for the tuned recipe.
* **Walk-forward folds** (``TuneSpec.folds``, a scoreboard protocol's windows): every (asset,
  seed) trains once per fold, on that fold's training range with the data cut at its validation
  end, and its module (the voted ensemble, after the fallback to the prior) is backtested on the
  fold's validation range. The objective is the mean over (asset, seed) of the Sortino ratio of
  those validation returns chained over the folds (:func:`stitched_sortino`), as the scoreboard
  stitches its backtests: one window with few losing days cannot dominate it, as it dominates a
  mean of per-window ratios. No backtest range is ever trained on or scored.
* **Pruning**: every validation the callback computes is reported to Optuna as an intermediate
  value (the running mean of the runs' best Sortino so far, at step ``run * timesteps + t``; with
  folds, the objective so far after each fold, at step ``fold``, and the median pruner judges
  none before a third of the folds); the median pruner (or ASHA) stops trials that fall behind.
* **Sampler**: TPE. The driver asks the study for trials, their training runs as
  :func:`cryptorl.parallel.run_tasks` tasks (one CPU each, on a local Ray instance or a cluster),
  each task re-attaches to the study through its storage to report intermediate values, and the
  driver tells the study the results. The storage (a SQLite file by default; PostgreSQL for
  workers on several machines) holds the whole study: a run that is stopped resumes where it was
  with the same ``--storage`` and study name.
* **Overfitting of the search**: :func:`fold_scores` tabulates the completed trials' validation
  Sortino per fold, and :func:`search_pbo` is the probability of backtest overfitting of the search
  (CSCV over that table, as the scoreboard's PBO over its configurations and windows).
* :func:`best_config` is the YAML mapping ``python -m experiments.train_cm --config`` takes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from cryptorl.data.frames import periods_per_year
from cryptorl.parallel import TaskOutcome, run_tasks
from cryptorl.portfolio.stats import probability_of_backtest_overfitting, sortino_ratio

from .config import DEFAULT_FEATURES
from .crypto_module import CMConfig
from .learners import get_learner
from .training import Split, policy_backtest, train_crypto_module

NO_SORTINO = -10.0  # the score of a run without a validation Sortino (e.g. no downside at all)
PRUNERS = ("median", "asha", "none")
SPACES = ("learner", "module")  # what a trial varies: the learner's hyper-parameters, or the module too


# -- the search space ------------------------------------------------------------------------------
def suggest_hyperparams(trial: optuna.Trial, algo: str) -> dict[str, Any]:
    """The SB3 hyper-parameters of a trial, for ``algo`` (its learner's search space, see
    :mod:`agents.learners`; the rest keep the module's defaults)."""
    return get_learner(algo).suggest(trial)


def suggest_module(trial: optuna.Trial) -> dict[str, Any]:
    """The module's own choices of the ``module`` space (CMConfig fields): the prior under it, how
    many bars it observes, and whether it sees the market features."""
    features = trial.suggest_categorical("features", ["market", "none"])
    return {
        "prior": trial.suggest_categorical("prior", ["donchian", "sma20", "vol_target"]),
        "window": trial.suggest_categorical("window", [10, 30, 60]),
        "features": list(DEFAULT_FEATURES) if features == "market" else [],
    }


# -- what every trial trains -----------------------------------------------------------------------
@dataclass(frozen=True)
class AssetData:
    """One asset's data, cut at the end of its validation range, and its train / validation split."""

    market: pd.DataFrame
    metrics: pd.DataFrame | None
    split: Split


def validation_data(market: pd.DataFrame, metrics: pd.DataFrame | None, split: Split) -> AssetData:
    """The data a trial may use: everything up to the end of the validation range, nothing later."""
    end = split.validation[1]
    cut_metrics = metrics[metrics.index <= end] if metrics is not None else None
    return AssetData(market[market.index <= end], cut_metrics, Split(split.train, split.validation))


@dataclass(frozen=True)
class TuneSpec:
    """The recipe every trial varies (``base``: the CM config; its ``asset`` is replaced per asset).

    ``folds``: walk-forward (train, validation) splits; when given, each asset's ``data`` must
    reach the last fold's validation end, and every (asset, seed) trains once per fold.
    """

    data: Mapping[str, AssetData]
    base: CMConfig
    seeds: tuple[int, ...] = (0,)
    eval_freq: int = 2_000
    folds: tuple[Split, ...] = ()
    space: str = "learner"  # one of SPACES

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"unknown search space {self.space!r}: choose among {', '.join(SPACES)}")

    def runs(self) -> list[tuple[str, int]]:
        """(asset, seed) of every training of a trial (of every fold's, with folds), in the order they run."""
        return [(asset, seed) for asset in self.data for seed in self.seeds]

    @property
    def warmup(self) -> int:
        """Reports before the pruner may judge a trial: with folds, a third of the windows' (at
        least one: the first windows' luck would otherwise decide), else none."""
        return max(1, len(self.folds) // 3) if self.folds else 0


@dataclass(frozen=True)
class TrialTask:
    """One trial as a task: where its study lives, which trial it is, what it trains."""

    storage: str
    study_name: str
    trial_id: int
    number: int
    hyperparams: dict[str, Any]
    spec: TuneSpec
    pruner: str = "median"
    fields: dict[str, Any] = field(default_factory=dict)  # CMConfig fields of the module space

    def config(self, asset: str, seed: int) -> CMConfig:
        """What the trial trains for ``asset`` and ``seed``."""
        base = self.spec.base
        hyperparams = {**base.hyperparams, **self.hyperparams}
        return replace(base, **self.fields, asset=asset, seed=seed, hyperparams=hyperparams)


@dataclass(frozen=True)
class TrialResult:
    value: float | None  # the objective (None when pruned)
    pruned: bool = False
    runs: dict[str, float] = field(default_factory=dict)  # "ASSET seed S" -> best validation Sortino


def run_score(best_score: float) -> float:
    return best_score if math.isfinite(best_score) else NO_SORTINO


def run_trial(task: TrialTask) -> TrialResult:
    """Train every (asset, seed) of a trial with its hyper-parameters; report to the study as it goes.

    A top-level function: what Ray ships to a worker. Pruning ends the trial early (``pruned``).
    """
    spec = task.spec
    pruner = make_pruner(task.pruner, warmup=spec.warmup)
    study = optuna.load_study(study_name=task.study_name, storage=task.storage, pruner=pruner)
    trial = optuna.trial.Trial(study, task.trial_id)
    if spec.folds:
        return _run_fold_trial(trial, task)
    finished: list[float] = []
    runs: dict[str, float] = {}
    reported: set[int] = set()
    try:
        for k, (asset, seed) in enumerate(spec.runs()):
            d = spec.data[asset]
            config = task.config(asset, seed)
            best = [-math.inf]

            def report(row: dict[str, float], offset: int = k * config.timesteps, best: list[float] = best) -> None:
                best[0] = max(best[0], run_score(row["Sortino"]))
                step = offset + int(row["timesteps"])
                if step not in reported:  # the evaluation at the end of training may repeat the last step
                    reported.add(step)
                    trial.report(sum([*finished, best[0]]) / (len(finished) + 1), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            _, callback = train_crypto_module(
                d.market, d.metrics, config, d.split, eval_freq=spec.eval_freq, on_evaluate=report
            )
            finished.append(run_score(callback.best_score))
            runs[f"{asset} seed {seed}"] = finished[-1]
    except optuna.TrialPruned:
        return TrialResult(None, pruned=True, runs=runs)
    return TrialResult(sum(finished) / len(finished), runs=runs)


def stitched_sortino(returns: Sequence[pd.Series], interval: str) -> float:
    """The annualised Sortino ratio of bar returns chained over disjoint ranges (0 with no downside)."""
    chained = np.concatenate([np.asarray(r, dtype="float64") for r in returns])
    return sortino_ratio(chained) * math.sqrt(periods_per_year(interval))


def _run_fold_trial(trial: optuna.Trial, task: TrialTask) -> TrialResult:
    """:func:`run_trial` over walk-forward folds: one module per (fold, asset, seed); the objective
    is the mean over (asset, seed) of the Sortino ratio of its validation returns chained over the
    folds (:func:`stitched_sortino`), reported after each fold. ``runs`` keeps the Sortino ratio of
    every module's returns on its fold (what :func:`fold_scores` tabulates)."""
    spec = task.spec
    returns: dict[tuple[str, int], list[pd.Series]] = {}
    runs: dict[str, float] = {}

    def objective() -> float:
        return float(np.mean([stitched_sortino(r, spec.base.interval) for r in returns.values()]))

    try:
        for k, fold in enumerate(spec.folds):
            cut = {a: validation_data(d.market, d.metrics, fold) for a, d in spec.data.items()}  # once per fold
            for asset, seed in spec.runs():
                d = cut[asset]
                config = task.config(asset, seed)
                module, _ = train_crypto_module(d.market, d.metrics, config, d.split, eval_freq=spec.eval_freq)
                path = policy_backtest(module, d.market, d.metrics, *fold.validation)
                returns.setdefault((asset, seed), []).append(path.returns)
                runs[f"{asset} seed {seed} validation {fold.validation[0]:%Y-%m-%d}"] = stitched_sortino(
                    [path.returns], spec.base.interval
                )
            trial.report(objective(), k)
            if trial.should_prune():
                raise optuna.TrialPruned()
    except optuna.TrialPruned:
        return TrialResult(None, pruned=True, runs=runs)
    return TrialResult(objective(), runs=runs)


# -- the study ---------------------------------------------------------------------------------------
def make_pruner(name: str, warmup: int = 0) -> optuna.pruners.BasePruner:
    """The named pruner; the median pruner judges no trial before step ``warmup``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}: choose among {', '.join(PRUNERS)}")


def open_study(study_name: str, storage: str, *, pruner: str = "median", seed: int | None = 0) -> optuna.Study:
    """The study in ``storage`` (created, or loaded to resume), maximising the validation Sortino."""
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="maximize", load_if_exists=True, pruner=make_pruner(pruner)
    )
    # A resumed study must not replay the proposals of its first run: the seed moves on with the trials.
    study.sampler = optuna.samplers.TPESampler(seed=None if seed is None else seed + len(study.trials))
    return study


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Completed and pruned trials: what counts towards ``n_trials``."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=states)


def tune(
    spec: TuneSpec,
    study: optuna.Study,
    storage: str,
    n_trials: int,
    *,
    pruner: str = "median",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on_trial: Callable[[optuna.trial.FrozenTrial, TaskOutcome[TrialResult]], None] | None = None,
) -> optuna.Study:
    """Run trials until ``study`` has ``n_trials`` finished (completed or pruned) ones.

    ``study`` lives in ``storage`` (see :func:`open_study`; ``pruner`` is the name it was opened with).
    Trials run in batches of as many as can run at once (``workers``, else the CPUs of the Ray
    instance), each batch through :func:`cryptorl.parallel.run_tasks`. A trial that raises is
    marked failed (and does not count); if a whole batch fails, a ValueError says why. If the run
    is interrupted, the trials in flight are marked failed and the study stays usable: calling
    again resumes it. Finished trials from earlier runs count, so a resumed run does only the rest.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    batch = _slots(workers, address)
    while (done := len(finished_trials(study))) < n_trials:
        trials = [study.ask() for _ in range(min(batch, n_trials - done))]
        try:
            tasks = [
                TrialTask(
                    storage,
                    study.study_name,
                    t._trial_id,
                    t.number,
                    suggest_hyperparams(t, spec.base.algo),
                    spec,
                    pruner,
                    suggest_module(t) if spec.space == "module" else {},
                )
                for t in trials
            ]
            outcomes = run_tasks(
                run_trial,
                tasks,
                labels=[f"trial {t.number}" for t in trials],
                workers=workers,
                address=address,
                desc=f"trials {done + 1}-{done + len(trials)} of {n_trials}",
                progress=progress,
            )
        except BaseException:  # interrupted: nothing is left RUNNING in the storage
            for t in trials:
                study.tell(t, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
        for t, outcome in zip(trials, outcomes, strict=True):
            if not outcome.ok:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            elif outcome.value.pruned:
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
            else:
                t.set_user_attr("runs", outcome.value.runs)
                study.tell(t, outcome.value.value)
            if on_trial is not None:
                on_trial(study.trials[t.number], outcome)
        if not any(o.ok for o in outcomes):
            raise ValueError("every trial of the batch failed: " + "; ".join(f"{o.label}: {o.error}" for o in outcomes))
    return study


def _slots(workers: int | None, address: str | None) -> int:
    """How many trials to run at once."""
    if workers is not None:
        return workers
    import ray

    from cryptorl.parallel import ensure_ray

    ensure_ray(None, address)
    return max(1, int(ray.cluster_resources().get("CPU", os.cpu_count() or 1)))


# -- results -----------------------------------------------------------------------------------------
def best_config(study: optuna.Study, spec: TuneSpec) -> dict[str, Any]:
    """The best trial's recipe as the mapping ``train_cm --config`` reads (``asset`` for one asset;
    with folds also every field in which the protocol's configuration differs from the defaults)."""
    best = study.best_trial
    fields = {} if spec.space == "learner" else suggest_module(optuna.trial.FixedTrial(best.params))
    base = replace(spec.base, **fields)
    out: dict[str, Any] = {}
    if len(spec.data) == 1:
        out["asset"] = next(iter(spec.data))
    out.update(
        interval=base.interval,
        algo=base.algo,
        timesteps=base.timesteps,
        window=base.window,
        n_envs=base.n_envs,
        episode_length=base.episode_length,
        fee=base.fee,
        execution=base.execution,
        eval_freq=spec.eval_freq,
        hyperparams={**base.hyperparams, **_hyperparams_of(best, base.algo)},
    )
    if spec.folds:  # the protocol's configuration where it differs from the defaults (prior, ensemble, ...)
        default = asdict(CMConfig(asset=base.asset, seed=base.seed))
        fields = {k: v for k, v in asdict(base).items() if v != default[k]}
    out.update({k: _plain(v) for k, v in fields.items() if k not in out})
    return out


def _plain(value: Any) -> Any:
    """Tuples as lists (what YAML's safe dumper writes)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _hyperparams_of(trial: optuna.trial.FrozenTrial, algo: str) -> dict[str, Any]:
    """The trial's SB3 hyper-parameters (its params under the names :func:`suggest_hyperparams` gives)."""
    fixed = optuna.trial.FixedTrial(trial.params)
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in suggest_hyperparams(fixed, algo).items()}


def write_report(study: optuna.Study, spec: TuneSpec, out: Path) -> dict[str, Path]:
    """best.yml (for ``train_cm --config``), trials.csv and the study's plots in ``out``; with folds
    also protocol_config.yml, the recipe as a protocol configuration named ``tuned`` (to score it on
    later windows with ``experiments.evaluate``), fold_scores.csv (:func:`fold_scores`) and its plot
    trials_by_window.png (:func:`plot_fold_scores`).

    Each file is written beside its final name and renamed into place: nothing half-written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml
    from optuna.visualization import matplotlib as ovm

    out.mkdir(parents=True, exist_ok=True)
    paths = {"config": out / "best.yml", "trials": out / "trials.csv"}
    config = best_config(study, spec)
    _atomic_text(paths["config"], yaml.safe_dump(config, sort_keys=False))
    if spec.folds:  # the protocol fixes these for all its configurations
        options = {k: v for k, v in config.items() if k not in ("asset", "interval", "fee", "execution", "eval_freq")}
        paths["protocol_config"] = out / "protocol_config.yml"
        _atomic_text(paths["protocol_config"], yaml.safe_dump({"tuned": options}, sort_keys=False))
    _atomic_text(paths["trials"], study.trials_dataframe().to_csv(index=False))
    plots: list[tuple[str, Callable[[], Any]]] = [
        ("optimization_history", lambda: ovm.plot_optimization_history(study)),
        ("param_importances", lambda: ovm.plot_param_importances(study)),
    ]
    if spec.folds:
        scores = fold_scores(study)
        paths["fold_scores"] = out / "fold_scores.csv"
        _atomic_text(paths["fold_scores"], scores.to_csv())
        plots.append(("trials_by_window", lambda: plot_fold_scores(scores, study.best_trial.number)))
    import warnings

    for name, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
            try:
                ax = plot()
            except (ValueError, RuntimeError) as exc:  # e.g. importances need two completed trials
                warnings.warn(f"{name} plot skipped: {exc}", stacklevel=2)
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 4.5)
        fig.tight_layout()
        tmp = out / f".{name}.png"
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, out / f"{name}.png")
        paths[name] = out / f"{name}.png"
    return paths


def fold_scores(study: optuna.Study) -> pd.DataFrame:
    """(fold x completed trial) the mean over (asset, seed) of each fold's validation Sortino, from
    the ``runs`` of a walk-forward search (folds by their validation start, in time order); empty
    for a search without folds."""
    cols = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        runs = pd.Series(t.user_attrs.get("runs", {}), dtype="float64")
        fold = runs.index.str.extract(r" validation (\d{4}-\d{2}-\d{2})$", expand=False)
        if len(runs) and fold.notna().all():
            cols[t.number] = runs.groupby(fold.to_numpy()).mean()
    return pd.DataFrame(cols).sort_index().rename_axis(index="validation start", columns="trial")


def plot_fold_scores(scores: pd.DataFrame, best: int):
    """Every completed trial's :func:`fold_scores` over the windows as its lead over the median
    trial of each window (grey; the best trial in colour): whether a lead holds across the windows
    or comes from one of them. Returns the Axes; a ValueError without a completed trial."""
    import matplotlib.pyplot as plt

    if scores.empty:
        raise ValueError("no completed trial")
    x, lead = pd.to_datetime(scores.index), scores.sub(scores.median(axis=1), axis=0)
    fig, ax = plt.subplots()
    ax.plot(x, lead.to_numpy(), color="grey", lw=0.8, alpha=0.6)
    if best in lead:
        ax.plot(x, lead[best], color="C3", lw=2, marker="o", label=f"best trial ({best})")
        ax.legend()
    ax.axhline(0.0, color="black", ls="--", lw=1)
    ax.set_xlabel("validation window (start)")
    ax.set_ylabel("validation Sortino - the median trial's")
    ax.set_title(f"{scores.shape[1]} completed trials, window by window (mean over coins and seeds)")
    return ax


def search_pbo(scores: pd.DataFrame) -> float | None:
    """The probability of backtest overfitting of a search (CSCV over :func:`fold_scores`): how often
    the trial best on half of the folds ranks at or below the median on the other half. None with
    fewer than two completed trials or two folds."""
    scores = scores.dropna()
    if scores.shape[0] < 2 or scores.shape[1] < 2:
        return None
    return probability_of_backtest_overfitting(scores.to_numpy()).pbo


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def default_storage(out: Path) -> str:
    """``sqlite:///<out>/study.db``: the study's storage beside its report."""
    return f"sqlite:///{(out / 'study.db').as_posix()}"


def asset_data(
    markets: Mapping[str, tuple[pd.DataFrame, pd.DataFrame | None]], splits: Mapping[str, Split]
) -> dict[str, AssetData]:
    """:func:`validation_data` for every asset."""
    return {a: validation_data(m, x, splits[a]) for a, (m, x) in markets.items()}


__all__ = [
    "NO_SORTINO",
    "PRUNERS",
    "SPACES",
    "AssetData",
    "TrialResult",
    "TrialTask",
    "TuneSpec",
    "asset_data",
    "best_config",
    "default_storage",
    "finished_trials",
    "make_pruner",
    "open_study",
    "run_trial",
    "suggest_hyperparams",
    "stitched_sortino",
    "suggest_module",
    "tune",
    "validation_data",
    "write_report",
]
