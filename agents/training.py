"""Training a Crypto Module end to end: DRU fit, optional EAM, SAM with validation selection.

``train_crypto_module`` is what ``python -m experiments.train_cm`` runs. Steps:

1. fit the DRU on the training range only and refine the whole series (leak-free by design);
2. with ``with_eam``: train a DQN on :class:`envs.SignalEnv` over the training range, freeze it
   and turn its decisions into the signal rows of the SAM's observation;
3. train the SAM on a batched :class:`envs.CryptoModuleVecEnv` of random training episodes;
   every ``eval_freq`` steps :class:`ValidationCallback` backtests the current policy on the
   validation range (batched decisions + the backtest engine), logs the figures to TensorBoard
   and keeps the weights with the best validation Sortino ratio (``config.selection``: or the
   best among checkpoints that trade, or the last), which the module ends with;
4. with ``ensemble=K``: step 3 K times with seeds ``seed + 1000 k``, each member selected on
   validation alone; the module votes their actions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback

from cryptorl.features import DataRefinementUnit
from cryptorl.portfolio.backtest import BacktestResult, backtest
from envs import CryptoModuleEnv, CryptoModuleVecEnv, SignalEnv

from .crypto_module import (
    MEMBER_SEED_STRIDE,
    CMConfig,
    CryptoModule,
    build_algo,
    eam_signals,
    module_features,
)
from .networks import EAMCNN, SAMCNN


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
    from cryptorl.data.frames import to_utc_timestamp

    eps = pd.Timedelta(seconds=1)
    tr0 = to_utc_timestamp(train_start) if train_start else index[0]
    v0, b0 = to_utc_timestamp(val_start), to_utc_timestamp(backtest_start)
    if not tr0 < v0 < b0 <= index[-1]:
        raise ValueError(
            f"the split must satisfy train start < validation start < backtest start <= data end ({index[-1]})"
        )
    return Split((tr0, v0 - eps), (v0, b0 - eps), (b0, index[-1]))


def policy_backtest(
    module: CryptoModule, market: pd.DataFrame, metrics: pd.DataFrame | None, start, end
) -> BacktestResult:
    """Backtest a module alone (cash vs its crypto) over [start, end] with the shared engine."""
    decisions = module.decide_range(market, metrics, start, end)
    weights = decisions.rename(columns={"crypto": module.asset})
    return backtest(
        weights,
        {module.asset: market},
        interval=module.interval,
        fee=module.config.fee,
        execution=module.config.execution,
    )


class ValidationCallback(BaseCallback):
    """Evaluate on validation every ``eval_freq`` steps; log to TensorBoard; keep the best."""

    def __init__(
        self,
        module: CryptoModule,
        market: pd.DataFrame,
        metrics: pd.DataFrame | None,
        start,
        end,
        eval_freq: int,
        verbose: int = 0,
        on_evaluate: Callable[[dict[str, float]], None] | None = None,
        selection: str = "sortino",
    ):
        super().__init__(verbose)
        self.on_evaluate = on_evaluate  # called with each evaluation's row (e.g. a tuner's pruning)
        self.selection = selection
        self.module, self.market, self.metrics = module, market, metrics
        self.start, self.end, self.eval_freq = start, end, max(1, int(eval_freq))
        self.best_score = -np.inf
        self.best_state: dict | None = None
        self.best_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self._last = 0
        # The validation observations do not change during training: build them once.
        env = module.env(market, metrics, start=start, end=end)
        self._obs = env.obs_tensor[env.first_step : env.last_step + 1]
        self._index = env.index[env.first_step : env.last_step + 1]

    def _evaluate(self) -> None:
        crypto = np.clip(self.module._actions(self._obs), 0.0, 1.0)
        weights = pd.DataFrame({"cash": 1.0 - crypto, self.module.asset: crypto}, index=self._index)
        res = backtest(
            weights,
            {self.module.asset: self.market},
            interval=self.module.interval,
            fee=self.module.config.fee,
            execution=self.module.config.execution,
        )
        m = res.metrics()
        trades = int((np.abs(np.diff(np.r_[0.0, crypto[:-1]])) > 1e-9).sum())
        row = {
            "timesteps": float(self.num_timesteps),
            "value": float(res.values.iloc[-1]),
            "ARR": m["ARR"],
            "Sortino": m["Sortino"],
            "MaxDrawdown": m["MaxDrawdown"],
            "crypto_share": float(crypto[:-1].mean()),
            "trades": float(trades),
        }
        self.history.append(row)
        for key in ("value", "ARR", "Sortino", "MaxDrawdown", "crypto_share", "trades"):
            self.logger.record(f"validation/{key}", row[key])
        score = m["Sortino"] if not np.isnan(m["Sortino"]) else -np.inf
        if self.selection == "sortino_trading" and not 0.05 <= row["crypto_share"] <= 0.95:
            score -= 1e6  # a collapsed checkpoint is kept only while no trading one was seen
        if self.selection == "last" or score > self.best_score or self.best_state is None:
            self.best_score = score
            self.best_state = copy.deepcopy(self.module.sam.policy.state_dict())
            self.best_metrics = {k: float(v) for k, v in m.items()}
        self.logger.record("validation/best_Sortino", float(self.best_score))
        self.logger.dump(self.num_timesteps)
        if self.on_evaluate is not None:
            self.on_evaluate(row)

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.eval_freq:
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
) -> tuple[CryptoModule, ValidationCallback]:
    """Train a Crypto Module on ``split``; returns it with its validation callback (history).

    ``on_evaluate`` is called with every validation row (timesteps, Sortino, ...) as it is computed;
    an exception it raises stops training (the tuner prunes trials this way). An ensemble returns
    its first member's callback; the module's ``validation`` figures are the ensemble's.
    """
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
        eam.learn(config.eam_timesteps, tb_log_name=f"{run_name}_eam", progress_bar=progress_bar)
        signals = eam_signals(eam, market, feats, config)

    template = CryptoModuleEnv(
        market,
        feats,
        start=train_start,
        end=train_end,
        episode_length=config.episode_length,
        signals=signals,
        observe_position=config.observe_position,
        **env_kw,
    )
    members: list = []
    for k in range(config.ensemble):
        seed = config.seed + MEMBER_SEED_STRIDE * k
        sam = build_algo(
            config.algo,
            CryptoModuleVecEnv(template, config.n_envs, seed=seed),
            SAMCNN,
            config.features_dim,
            seed=seed,
            tensorboard_log=tensorboard_log,
            hyperparams=config.algo_kwargs(),
            device=config.device,
        )
        callback = ValidationCallback(
            CryptoModule(config, dru, sam, eam, ranges=split.as_dict()),
            market,
            metrics,
            *split.validation,
            eval_freq=eval_freq,
            on_evaluate=on_evaluate,
            selection=config.selection,
        )
        name = run_name if k == 0 else f"{run_name}_member{k}"
        sam.learn(config.timesteps, callback=callback, tb_log_name=name, progress_bar=progress_bar)
        if hasattr(sam, "replay_buffer"):  # hundreds of MB an off-policy member no longer needs
            sam.replay_buffer = None
        members.append(sam)
        if k == 0:
            first = callback  # what is returned: its history and best score
    module = CryptoModule(config, dru, members[0], eam, ranges=split.as_dict(), members=members)
    if len(members) == 1:
        module.validation = first.best_metrics
    else:
        res = policy_backtest(module, market, metrics, *split.validation)
        module.validation = {k: float(v) for k, v in res.metrics().items()}
    if tensorboard_log:
        module.sam.logger.record("dru/chosen_metrics", str(dru.selection), exclude=("stdout", "log", "json", "csv"))
        module.sam.logger.dump(module.sam.num_timesteps)
    return module, first


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
