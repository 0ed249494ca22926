"""Training a Crypto Module end to end: DRU fit, optional EAM, SAM with validation selection.

``train_crypto_module`` is what ``python -m experiments.train_cm`` runs. Steps:

1. fit the DRU on the training range only and refine the whole series (leak-free by design);
2. with ``with_eam``: train a DQN on :class:`envs.SignalEnv` over the training range, freeze it
   and turn its decisions into the signal rows of the SAM's observation;
3. train the SAM on a batched :class:`envs.CryptoModuleVecEnv` of random training episodes;
   every ``eval_freq`` steps :class:`ValidationCallback` backtests the current policy on the
   validation range (batched decisions + the backtest engine), logs the figures to TensorBoard
   and keeps the weights with the best validation Sortino ratio (``config.selection``: or the
   best among checkpoints that trade, or the last), which the module ends with; under ``last``
   the checkpoints choose nothing, so they are validated along the way only where someone reads
   them (TensorBoard, a progress bar, ``on_evaluate``), and otherwise once, at the end;
4. with ``ensemble=K``: step 3 K times with seeds ``seed + 1000 k``, each member selected on
   validation alone; the module votes their actions.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import configure_logger
from tqdm.auto import tqdm

from cryptorl.data.frames import to_utc_timestamp
from cryptorl.features import DataRefinementUnit
from cryptorl.features.dru import RefinementWarning
from cryptorl.portfolio.backtest import BacktestResult, backtest
from cryptorl.portfolio.stats import deflated_sharpe_ratio, sharpe_ratio, sortino_ratio
from envs import CryptoModuleEnv, CryptoModuleVecEnv, SignalEnv, pooled

from .batched import torch_threads
from .crypto_module import (
    MEMBER_SEED_STRIDE,
    CMConfig,
    CryptoModule,
    build_algo,
    eam_signals,
    module_features,
    prior_row,
    sam_extractor,
)
from .networks import EAMCNN, resolve_device

TRAIN_THREADS = 1  # intra-op torch threads while training: the networks are tiny (see docs/crypto_modules.md)


@dataclass(frozen=True)
class Split:
    """Train / validation / backtest ranges (inclusive, UTC)."""

    train: tuple[pd.Timestamp, pd.Timestamp]
    validation: tuple[pd.Timestamp, pd.Timestamp]
    backtest: tuple[pd.Timestamp, pd.Timestamp] | None = None

    def as_dict(self) -> dict[str, tuple[str, str]]:
        out = {"train": self.train, "validation": self.validation}
        if self.backtest is not None:
            out["backtest"] = self.backtest
        return {k: (str(a), str(b)) for k, (a, b) in out.items()}


def paper_split(
    index: pd.DatetimeIndex, train_months: int = 15, val_months: int = 2, backtest_months: int = 7
) -> Split:
    """Split a time index by the paper's proportions (15 / 2 / 7 months), anchored at its end.

    When the data are shorter than 24 months, the three parts are scaled down in proportion.
    """
    end = index[-1]
    total = train_months + val_months + backtest_months
    span_months = (index[-1] - index[0]).days / 30.4375
    scale = min(1.0, span_months / total)
    bt_days = int(round(backtest_months * scale * 30.4375))
    val_days = int(round(val_months * scale * 30.4375))
    tr_days = int(round(train_months * scale * 30.4375))
    bt_start = end - pd.Timedelta(days=bt_days)
    val_start = bt_start - pd.Timedelta(days=val_days)
    tr_start = max(index[0], val_start - pd.Timedelta(days=tr_days))
    eps = pd.Timedelta(seconds=1)
    return Split((tr_start, val_start - eps), (val_start, bt_start - eps), (bt_start, end))


def explicit_split(index: pd.DatetimeIndex, train_start, val_start, backtest_start) -> Split:
    """A split from explicit dates: training from ``train_start`` (default: the first bar) to just
    before ``val_start``, validation to just before ``backtest_start``, backtest to the last bar."""
    eps = pd.Timedelta(seconds=1)
    tr0 = to_utc_timestamp(train_start) if train_start else index[0]
    v0, b0 = to_utc_timestamp(val_start), to_utc_timestamp(backtest_start)
    if not tr0 < v0 < b0 <= index[-1]:
        raise ValueError(
            f"the split must satisfy train start < validation start < backtest start <= data end ({index[-1]})"
        )
    return Split((tr0, v0 - eps), (v0, b0 - eps), (b0, index[-1]))


def forward_split(check_start, train_months: int = 15, validation_months: int = 2, check_months: int = 2) -> Split:
    """The split of a forward check starting at ``check_start``: ``train_months`` of training,
    then ``validation_months`` of validation, both before it, and ``check_months`` from it as the
    backtest (the learning guard's folds: 15 / 2 / 2)."""
    c0 = to_utc_timestamp(check_start)
    eps = pd.Timedelta(seconds=1)
    v0 = c0 - pd.DateOffset(months=validation_months)
    t0 = v0 - pd.DateOffset(months=train_months)
    return Split((t0, v0 - eps), (v0, c0 - eps), (c0, c0 + pd.DateOffset(months=check_months) - eps))


# The learning guard's forward checks: one two-month check a year, from mid-2019 to mid-2024
FORWARD_CHECK_STARTS = ("2019-07-01", "2020-07-01", "2021-07-01", "2022-07-01", "2023-07-01", "2024-07-01")


def forward_folds(
    market: pd.DataFrame,
    metrics: pd.DataFrame | None,
    config: CMConfig,
    starts=FORWARD_CHECK_STARTS,
) -> list[tuple[pd.Series, pd.DataFrame, np.ndarray, bool]]:
    """A module of ``config`` trained on each :func:`forward_split` fold (nothing after its
    validation range seen) and its ``(votes, market, prior, lift)`` on the fold's check range, the
    market cut at the check's end: the folds :func:`cryptorl.portfolio.skill.skill_test` takes."""
    folds = []
    for start in starts:
        split = forward_split(start)
        c0, c1 = split.backtest
        cut, known = market.loc[:c1], None if metrics is None else metrics.loc[:c1]
        end = split.validation[1]
        module, _ = train_crypto_module(cut.loc[:end], None if known is None else known.loc[:end], config, split)
        votes, prior = module.votes(cut, known, c0, c1)
        folds.append((votes, cut, prior, config.lift))
    return folds


def shares_backtest(module: CryptoModule, market: pd.DataFrame, index: pd.DatetimeIndex, crypto) -> BacktestResult:
    """Backtest crypto shares decided at ``index`` (cash vs the module's crypto) with the module's
    fee and execution, on the shared engine."""
    weights = pd.DataFrame({"cash": 1.0 - np.asarray(crypto), module.asset: crypto}, index=index)
    return backtest(
        weights,
        {module.asset: market},
        interval=module.interval,
        fee=module.config.fee,
        execution=module.config.execution,
    )


def policy_backtest(
    module: CryptoModule, market: pd.DataFrame, metrics: pd.DataFrame | None, start, end
) -> BacktestResult:
    """Backtest a module alone (cash vs its crypto) over [start, end] with the shared engine."""
    decisions = module.decide_range(market, metrics, start, end)
    return shares_backtest(module, market, decisions.index, decisions["crypto"].to_numpy())


def prior_backtest(
    module: CryptoModule, market: pd.DataFrame, metrics: pd.DataFrame | None, start, end
) -> BacktestResult:
    """Backtest the module's prior alone over the bars the module decides in [start, end]."""
    path = module.decision_path(market, metrics, start, end)
    return shares_backtest(module, market, path.index, path.prior)


def in_crypto(crypto: pd.Series | np.ndarray) -> float:
    """The share of a module's bars spent holding crypto, whatever the size of the position (the
    last decision is never traded). A module under a vol-targeted prior holds a fraction of its
    value, so this, not the mean weight, tells whether it trades or sits in or out."""
    held = np.asarray(crypto, dtype="float64")[:-1]
    return float((held > 1e-9).mean()) if len(held) else 0.0


def trades(crypto: pd.Series | np.ndarray) -> int:
    """Position changes of a module over its decisions (entering from cash counts as one; the last
    decision is never traded)."""
    held = np.asarray(crypto, dtype="float64")[:-1]
    return int((np.abs(np.diff(np.r_[0.0, held])) > 1e-9).sum())


VALIDATION_KEYS = ("value", "ARR", "Sortino", "MaxDrawdown", "crypto_share", "in_crypto", "trades")


def validation_row(
    module: CryptoModule,
    market: pd.DataFrame,
    index: pd.DatetimeIndex,
    crypto: np.ndarray,
    timesteps: int,
    reference: BacktestResult | None = None,
) -> tuple[dict[str, float], BacktestResult]:
    """The validation figures of crypto shares decided at ``index`` (backtest engine): the row
    logged and kept in the history, and the backtest (whose ``metrics()`` a kept checkpoint records).
    With a ``reference`` (the prior's backtest on the same bars) the row also has ``excess_Sharpe``:
    the per-bar Sharpe ratio of the returns over the reference's."""
    res = shares_backtest(module, market, index, crypto)
    m = res.metrics(("ARR", "Sortino", "MaxDrawdown"))
    row = {
        "timesteps": float(timesteps),
        "value": float(res.values.iloc[-1]),
        **m,
        "crypto_share": float(crypto[:-1].mean()),
        "in_crypto": in_crypto(crypto),
        "trades": float(trades(crypto)),
    }
    if reference is not None:
        row["excess_Sharpe"] = sharpe_ratio(over(res.returns, reference.returns))
    return row, res


def over(returns: pd.Series, reference: pd.Series) -> np.ndarray:
    """Bar returns over a reference's, on the bars both have."""
    return (returns - reference.reindex(returns.index)).dropna().to_numpy()


def prior_reference(module: CryptoModule, market: pd.DataFrame, path, selection: str) -> BacktestResult | None:
    """The prior's backtest on a validation decision path, which ``selection="excess"`` ranks
    checkpoints against (holding the coin when the module has no prior: its prior is 1)."""
    return shares_backtest(module, market, path.index, path.prior) if selection == "excess" else None


def score_name(selection: str) -> str:
    """The validation figure checkpoints are ranked by under ``selection``."""
    return "excess_Sharpe" if selection == "excess" else "Sortino"


def selection_score(row: dict[str, float], selection: str) -> float:
    """What a checkpoint is ranked by (``CMConfig.selection``): its validation Sortino, minus a
    large penalty under ``sortino_trading`` when it holds crypto on under 5 % or over 95 % of the
    bars (a collapsed checkpoint is kept only while no trading one was seen); under ``excess`` the
    Sharpe ratio of its returns over the prior's (a row of :func:`validation_row` with a reference)."""
    score = row[score_name(selection)]
    score = score if not np.isnan(score) else -np.inf
    if selection == "sortino_trading" and not 0.05 <= row["in_crypto"] <= 0.95:
        score -= 1e6
    return score


def log_validation(logger: Logger, row: dict[str, float], best: float, timesteps: int, selection: str) -> None:
    for key in (*VALIDATION_KEYS, "excess_Sharpe"):
        if key in row:
            logger.record(f"validation/{key}", row[key])
    logger.record(f"validation/best_{score_name(selection)}", float(best))
    logger.dump(timesteps)


class ValidationCallback(BaseCallback):
    """Evaluate on validation every ``eval_freq`` steps; log to TensorBoard; keep the best."""

    def __init__(
        self,
        module: CryptoModule,
        market: pd.DataFrame,
        metrics: pd.DataFrame | None,
        start,
        end,
        eval_freq: int | None,
        verbose: int = 0,
        on_evaluate: Callable[[dict[str, float]], None] | None = None,
        selection: str = "sortino",
    ):
        super().__init__(verbose)
        self.on_evaluate = on_evaluate  # called with each evaluation's row (e.g. a tuner's pruning)
        self.selection = selection
        self.module, self.market, self.metrics = module, market, metrics
        self.start, self.end = start, end
        self.eval_freq = None if eval_freq is None else max(1, int(eval_freq))  # None: at the end alone
        self.best_score = -np.inf
        self.best_state: dict | None = None
        self.best_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self._last = 0
        # The validation observations do not change during training: build them once; decided
        # as the module decides (decide_range), from where its decision path starts.
        self._path = module.decision_path(market, metrics, start, end)
        self._reference = prior_reference(module, market, self._path, selection)

    def _evaluate(self) -> None:
        path = self._path
        crypto = self.module.shares(np.clip(self.module._actions(path.obs, path.skip), 0.0, 1.0), path.prior)
        row, res = validation_row(self.module, self.market, path.index, crypto, self.num_timesteps, self._reference)
        self.history.append(row)
        score = selection_score(row, self.selection)
        if self.selection == "last" or score > self.best_score or self.best_state is None:
            self.best_score = score
            self.best_state = copy.deepcopy(self.module.sam.policy.state_dict())
            self.best_metrics = res.metrics()
        log_validation(self.logger, row, self.best_score, self.num_timesteps, self.selection)
        if self.on_evaluate is not None:
            self.on_evaluate(row)

    def _on_step(self) -> bool:
        if self.eval_freq is not None and self.num_timesteps - self._last >= self.eval_freq:
            self._last = self.num_timesteps
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        self._evaluate()
        if self.best_state is not None:
            self.module.sam.policy.load_state_dict(self.best_state)


def train_crypto_module(
    market: pd.DataFrame,
    metrics: pd.DataFrame | None,
    config: CMConfig,
    split: Split,
    *,
    eval_freq: int = 2_000,
    tensorboard_log: str | None = None,
    run_name: str | None = None,
    progress_bar: bool = False,
    on_evaluate: Callable[[dict[str, float]], None] | None = None,
    threads: int | None = TRAIN_THREADS,
    pool: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[CryptoModule, ValidationCallback | MemberValidation]:
    """Train a Crypto Module on ``split``; returns it with its first member's validation record
    (``history``, ``best_score``, ``best_metrics``).

    ``on_evaluate`` is called with every validation row of the first member (timesteps,
    Sortino, ...) as it is computed (with the ``sb3`` backend: of every member, one after
    another); an exception it raises stops training (the tuner prunes trials this way). The
    module's ``validation`` figures are the ensemble's. ``config.learner`` says which backend
    trains the members. ``pool``: the markets of ``config.pool``'s assets (bars after the
    training end are not used). Training runs with ``threads`` intra-op torch threads (None: as set);
    ``progress_bar``: one bar for the module (members, steps, best validation Sortino so far).
    Under ``config.selection="last"`` with none of TensorBoard, ``on_evaluate`` or the progress bar,
    the members are validated once, after training (the checkpoints along the way would choose
    nothing and be read by no one): the same module, trained faster.
    """
    read = config.selection != "last" or tensorboard_log or on_evaluate is not None or progress_bar
    eval_freq = max(1, int(eval_freq)) if read else None
    train_start, train_end = split.train
    dru = DataRefinementUnit(**config.dru).fit(market, metrics, train_end, asset=config.asset)
    feats = module_features(dru, market, metrics, config)
    train_fee = config.fee if config.train_fee is None else float(config.train_fee)
    env_kw = dict(
        asset=config.asset, interval=config.interval, window=config.window, fee=train_fee, execution=config.execution
    )
    run_name = run_name or f"{config.asset}_{config.interval}_{config.algo}_s{config.seed}"

    eam = None
    signals = None
    if config.with_eam:
        sig_env = SignalEnv(
            market,
            feats,
            start=train_start,
            end=train_end,
            episode_length=config.episode_length,
            seed=config.seed,
            **env_kw,
        )
        eam = build_algo(
            "dqn",
            sig_env,
            EAMCNN,
            config.features_dim,
            seed=config.seed,
            tensorboard_log=tensorboard_log,
            hyperparams=DEFAULT_EAM,
            device=config.device,
        )
        eam.set_logger(make_logger(tensorboard_log, f"{run_name}_eam"))
        eam.learn(config.eam_timesteps, progress_bar=progress_bar)
        signals = eam_signals(eam, market, feats, config)

    template = CryptoModuleEnv(
        market,
        feats,
        start=train_start,
        end=train_end,
        episode_length=config.episode_length,
        signals=signals,
        observe_position=config.observe_position,
        scale=training_prior(feats, config),
        lift=config.lift,
        reward=config.reward,
        **env_kw,
    )
    if config.pool:
        template = pooled([template, *pool_templates(config, dru, pool, split, env_kw)])
    seeds = [config.seed + MEMBER_SEED_STRIDE * k for k in range(config.ensemble)]
    names = [run_name] if config.ensemble == 1 else [f"{run_name}_m{k}" for k in range(config.ensemble)]
    loggers = [make_logger(tensorboard_log, name) for name in names]
    progress = ModuleProgress(config, run_name) if progress_bar else None
    learn = _train_batched if config.learner == "batched" else _train_sb3
    try:
        with torch_threads(threads):
            members, first = learn(
                market, metrics, config, split, dru, eam, template, seeds, loggers, eval_freq, on_evaluate, progress
            )
    finally:
        if progress is not None:
            progress.close()
    module = CryptoModule(config, dru, members[0], eam, ranges=split.as_dict(), members=members)
    if len(members) == 1:
        module.validation = first.best_metrics
    else:
        res = policy_backtest(module, market, metrics, *split.validation)
        module.validation = {k: float(v) for k, v in res.metrics().items()}
    if config.prior != "none" and config.prior_fallback:
        earlier = [
            fold_returns(market, metrics, config, fold, eval_freq=eval_freq, threads=threads, pool=pool)
            for fold in earlier_folds(split, config.prior_folds)
        ]
        chosen_among = 1 if config.selection == "last" else len(first.history)
        keep_prior_unless_beaten(module, market, metrics, split, checkpoints=chosen_among, earlier=earlier)
    elif config.prior != "none":
        module.validation["follows_prior"] = 0.0  # kept whatever validation says
    if tensorboard_log:
        module.sam.logger.record("dru/chosen_metrics", str(dru.selection), exclude=("stdout", "log", "json", "csv"))
        module.sam.logger.dump(module.sam.num_timesteps)
    return module, first


def earlier_folds(split: Split, k: int) -> list[Split]:
    """The ``k - 1`` walk-forward folds before ``split``'s validation range: fold j validates the
    j-th range of the same length back and trains from the same start up to it."""
    eps = pd.Timedelta(seconds=1)
    v0, v1 = split.validation
    length = v1 + eps - v0
    folds = []
    for j in range(1, k):
        f0 = v0 - j * length
        if f0 - split.train[0] < length:
            raise ValueError(
                f"prior_folds {k} is too many for the training range {split.train[0]} .. {split.train[1]}: "
                f"fold {j} would train on less than one validation range's length"
            )
        folds.append(Split((split.train[0], f0 - eps), (f0, f0 + length - eps)))
    return folds


def fold_returns(
    market: pd.DataFrame, metrics: pd.DataFrame | None, config: CMConfig, fold: Split, **fit: Any
) -> tuple[pd.Series, pd.Series]:
    """The bar returns of a module of ``config`` trained on ``fold`` (nothing after its validation
    range seen; the fallback off) and of its prior, over the fold's validation range. ``fit``: the
    training options of :func:`train_crypto_module` (``eval_freq``, ``threads``, ``pool``)."""
    end = fold.validation[1]
    market, metrics = market.loc[:end], None if metrics is None else metrics.loc[:end]
    module, _ = train_crypto_module(market, metrics, replace(config, prior_fallback=False, prior_folds=1), fold, **fit)
    prior = prior_backtest(module, market, metrics, *fold.validation)
    return policy_backtest(module, market, metrics, *fold.validation).returns, prior.returns


def training_prior(features: pd.DataFrame, config: CMConfig) -> pd.Series | None:
    """The prior position the training episodes trade the actions on: the module's own, or none
    (all-in / all-out) with ``config.train_on_prior`` off."""
    return prior_row(features) if config.train_on_prior else None


def pool_templates(
    config: CMConfig,
    dru: DataRefinementUnit,
    pool: Mapping[str, pd.DataFrame] | None,
    split: Split,
    env_kw: dict[str, Any],
) -> list[CryptoModuleEnv]:
    """The training environments of ``config.pool``'s assets over the module's training range."""
    missing = [a for a in config.pool if a not in (pool or {})]
    if missing:
        raise ValueError(f"config.pool names {missing}: pass their markets (pool={{asset: market}})")
    if dru.metrics:
        raise ValueError(
            f"pooling needs the same observation rows for every coin; this module's DRU chose metrics "
            f"{list(dru.metrics)}: train it without metrics (market features only) or without pool"
        )
    out = []
    for asset in config.pool:
        cfg = replace(config, asset=asset, pool=[])
        market = pool[asset]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RefinementWarning)  # no metrics: said once, for the module's own
            no_metrics = DataRefinementUnit(**config.dru).fit(market, None, split.train[1], asset=asset)
        feats = module_features(no_metrics, market, None, cfg)
        out.append(
            CryptoModuleEnv(
                market,
                feats,
                start=split.train[0],
                end=split.train[1],
                episode_length=config.episode_length,
                observe_position=config.observe_position,
                scale=training_prior(feats, cfg),
                lift=config.lift,
                reward=config.reward,
                **{**env_kw, "asset": asset},
            )
        )
    return out


def follow_prior(sam: BaseAlgorithm, action: int = 1) -> None:
    """Make ``sam`` answer ``action`` (the one that takes the prior's position: 1 for a filter, 0
    for a lift) on every observation: its output layer's weights become 0 and its bias prefers
    that action (for every quantile of a QR-DQN)."""
    if hasattr(sam.policy, "q_net"):  # DQN
        layers = [sam.q_net.q_net[-1], sam.q_net_target.q_net[-1]]
    elif hasattr(sam.policy, "quantile_net"):  # QR-DQN
        layers = [sam.policy.quantile_net.quantile_net[-1], sam.policy.quantile_net_target.quantile_net[-1]]
    else:  # an actor-critic policy's action logits
        layers = [sam.policy.action_net]
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
            bias = [0.0, 1.0] if action == 1 else [1.0, 0.0]
            layer.bias.copy_(torch.tensor(bias).repeat(layer.bias.numel() // 2))


def keep_prior_unless_beaten(
    module: CryptoModule,
    market: pd.DataFrame,
    metrics: pd.DataFrame | None,
    split: Split,
    checkpoints: int = 1,
    earlier: Sequence[tuple[pd.Series, pd.Series]] = (),
) -> None:
    """With a prior, the module keeps what it learned only when that beats the prior alone on the
    validation range; otherwise every member follows the prior (:func:`follow_prior`), so that a
    module that learned nothing useful costs nothing against its rule.

    "Beats": a higher validation Sortino (with ``config.selection = "excess"``: a positive Sharpe
    ratio of the daily returns over the prior's), and with ``config.prior_confidence = p > 0`` also a
    deflated Sharpe ratio of the daily returns over the prior's of at least ``p``, deflated for
    the ``checkpoints`` each member chose among on that same range (the best of many checkpoints
    beats the prior on the range that chose it far more often than it would elsewhere).
    ``earlier``: the (learned, prior) bar returns of earlier validation folds (:func:`fold_returns`,
    ``config.prior_folds``); with them the figures are those of the returns chained over every fold.
    ``module.validation["follows_prior"]`` says which (1.0: the prior was kept), and
    ``"excess_dsr"`` gives that deflated Sharpe ratio when it was computed."""
    prior = prior_backtest(module, market, metrics, *split.validation)

    def this_range() -> tuple[pd.Series, pd.Series]:
        return policy_backtest(module, market, metrics, *split.validation).returns, prior.returns

    folds = [*earlier, this_range()] if earlier else []

    def over_prior() -> np.ndarray:
        return np.concatenate([over(learned, rule) for learned, rule in folds or [this_range()]])

    excess = excess_dsr = None
    if module.config.selection == "excess":
        excess = over_prior()
        beaten = sharpe_ratio(excess) > 0  # 0 when it never differs from the prior
    elif folds:
        chained = [pd.concat(returns) for returns in zip(*folds, strict=True)]
        beaten = sortino_ratio(chained[0]) > sortino_ratio(chained[1])
    else:
        learned = module.validation.get("Sortino", float("nan"))
        beaten = not np.isnan(learned) and learned > prior.metrics()["Sortino"]
    if beaten and module.config.prior_confidence > 0:
        excess = over_prior() if excess is None else excess
        excess_dsr = deflated_sharpe_ratio(excess, max(int(checkpoints), 1)) if excess.std() > 0 else 0.0
        beaten = excess_dsr >= module.config.prior_confidence
    if not beaten:
        for sam in module.members:
            follow_prior(sam, 0 if module.config.lift else 1)
        module.validation = {k: float(v) for k, v in prior.metrics().items()}
    module.validation["follows_prior"] = 0.0 if beaten else 1.0
    if excess_dsr is not None:
        module.validation["excess_dsr"] = float(excess_dsr)


def make_logger(tensorboard_log: str | None, name: str) -> Logger:
    """An SB3 logger writing to ``tensorboard_log/name_N`` (N: the next run number, as SB3
    numbers its runs), or one with no outputs and no folder without ``tensorboard_log`` (SB3
    would otherwise make an empty ``SB3-<time>`` folder in the system temp folder)."""
    if tensorboard_log:
        return configure_logger(0, tensorboard_log, name, True)
    return Logger(folder=None, output_formats=[])


@dataclass
class MemberValidation:
    """One member's validation record under the batched learner (what ValidationCallback keeps)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -np.inf
    best_metrics: dict[str, float] = field(default_factory=dict)


class ModuleProgress:
    """One progress bar per module: members, steps (all members together), the mean of the members'
    best validation score (their Sortino, or their excess Sharpe under ``selection="excess"``)."""

    def __init__(self, config: CMConfig, name: str):
        per_member = -(-config.timesteps // config.n_envs) * config.n_envs  # learners stop on a whole vector step
        self.k = config.ensemble
        self.bar = tqdm(total=per_member * self.k, desc=name, unit="step", unit_scale=True, dynamic_ncols=True)
        self.best: list[float] = [np.nan] * self.k
        self.score = score_name(config.selection).replace("_", " ")

    def update(self, steps: int) -> None:
        self.bar.update(steps)

    def validated(self, member: int, best: float) -> None:
        self.best[member] = best
        seen = [b for b in self.best if np.isfinite(b)]
        text = f"{np.mean(seen):.2f}" if seen else "n/a"
        self.bar.set_postfix_str(f"{self.k} member{'s' if self.k > 1 else ''}, val {self.score} {text}", refresh=False)

    def close(self) -> None:
        self.bar.close()


class _ProgressCallback(BaseCallback):
    """Feeds an SB3 member's steps to its module's bar."""

    def __init__(self, progress: ModuleProgress):
        super().__init__()
        self.progress = progress

    def _on_step(self) -> bool:
        self.progress.update(self.training_env.num_envs)
        return True


def _member(config: CMConfig, template: CryptoModuleEnv, seed: int):
    """One ensemble member's SB3 algorithm on its own seeded vector env (both backends start here)."""
    extractor, extractor_kwargs = sam_extractor(config)
    return build_algo(
        config.algo,
        CryptoModuleVecEnv(template, config.n_envs, seed=seed),
        extractor,
        config.features_dim,
        seed=seed,
        hyperparams=config.algo_kwargs(),
        device=config.device,
        extractor_kwargs=extractor_kwargs,
    )


def _train_sb3(market, metrics, config, split, dru, eam, template, seeds, loggers, eval_freq, on_evaluate, progress):
    """The members one after another, each an SB3 ``learn`` with its ValidationCallback."""
    members: list = []
    callbacks: list[ValidationCallback] = []
    for k, (seed, logger) in enumerate(zip(seeds, loggers, strict=True)):
        sam = _member(config, template, seed)
        sam.set_logger(logger)
        callback = ValidationCallback(
            CryptoModule(config, dru, sam, eam, ranges=split.as_dict()),
            market,
            metrics,
            *split.validation,
            eval_freq=eval_freq,
            on_evaluate=on_evaluate,
            selection=config.selection,
        )
        extra = []
        if progress is not None:
            extra = [_ProgressCallback(progress)]
            callback.on_evaluate = _also(
                on_evaluate, lambda row, k=k, cb=callback: progress.validated(k, cb.best_score)
            )
        sam.learn(config.timesteps, callback=CallbackList([callback, *extra]))
        if hasattr(sam, "replay_buffer"):  # hundreds of MB an off-policy member no longer needs
            sam.replay_buffer = None
        members.append(sam)
        callbacks.append(callback)
    return members, callbacks[0]


def _also(first, then):
    def both(row):
        if first is not None:
            first(row)
        then(row)

    return both


def _train_batched(
    market, metrics, config, split, dru, eam, template, seeds, loggers, eval_freq, on_evaluate, progress
):
    """The members together (:func:`agents.batched.learn_dqn_members`), each selected on validation."""
    from .batched import learn_dqn_members

    members = []
    for seed in seeds:  # each member's SB3 DQN, built (and initialised) as the sb3 backend builds it
        sam = _member(config, template, seed)
        sam.replay_buffer = None  # the batched learner has its own
        members.append(sam)
    for sam, logger in zip(members, loggers, strict=True):
        sam.set_logger(logger)
    probe = CryptoModule(config, dru, members[0], eam, ranges=split.as_dict())
    path = probe.decision_path(market, metrics, *split.validation)  # as decide_range decides
    reference = prior_reference(probe, market, path, config.selection)
    records = [MemberValidation() for _ in members]

    def evaluate(crypto: np.ndarray, timesteps: int) -> np.ndarray:
        keep = np.zeros(len(records), dtype=bool)
        for k, rec in enumerate(records):
            shares = probe.shares(np.clip(crypto[k], 0.0, 1.0), path.prior)
            row, res = validation_row(probe, market, path.index, shares, timesteps, reference)
            rec.history.append(row)
            score = selection_score(row, config.selection)
            if config.selection == "last" or score > rec.best_score or not rec.best_metrics:
                keep[k] = True
                rec.best_score, rec.best_metrics = score, res.metrics()
            log_validation(loggers[k], row, rec.best_score, timesteps, config.selection)
            if progress is not None:
                progress.validated(k, rec.best_score)
            if k == 0 and on_evaluate is not None:
                on_evaluate(row)
        return keep

    learn_dqn_members(
        members,
        template,
        seeds,
        config.timesteps,
        config.algo_kwargs(),
        n_envs=config.n_envs,
        device=resolve_device(config.device),
        validation_obs=path.obs,
        validation_skip=path.skip,
        evaluate=evaluate,
        eval_freq=eval_freq,
        on_step=None if progress is None else lambda _t: progress.update(len(members) * config.n_envs),
    )
    return members, records[0]


DEFAULT_EAM = {
    "learning_rate": 5e-4,
    "buffer_size": 20_000,
    "learning_starts": 500,
    "batch_size": 64,
    "gamma": 0.5,
    "train_freq": 4,
    "target_update_interval": 250,
    "exploration_fraction": 0.3,
    "exploration_final_eps": 0.02,
}
