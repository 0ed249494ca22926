"""The configuration of a Crypto Module (:class:`CMConfig`) and its plain constants.

This module is light: it imports neither torch, stable-baselines3, gymnasium nor scikit-learn, so
that the commands build their ``--help`` (one flag per :class:`CMConfig` field) quickly. The
module itself is :class:`agents.crypto_module.CryptoModule`, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptorl.data.frames import interval_timedelta
from cryptorl.features.market import MARKET_FEATURES, parse_market_feature
from cryptorl.portfolio.baselines import donchian_position, sma_position, vol_target_position
from cryptorl.portfolio.costs import EXECUTIONS

from .learners import BACKENDS, LEARNERS, get_learner

DEVICES = ("auto", "cpu", "cuda")  # torch devices of the networks (CMConfig.device, --device)

# The market features of the default configuration (the best of the validation screen in
# docs/findings.md): returns over 5/20/60 bars, 20-bar volatility, distance from the
# 60-bar high and from the 20- and 50-bar averages.
DEFAULT_FEATURES = ("ret_5", "ret_20", "ret_60", "vol_20", "dd_60", "sma_20", "sma_50")
SELECTIONS = ("sortino", "sortino_trading", "last", "excess")
REWARDS = ("log", "dsr", "drawdown")  # the training rewards of envs.CryptoModuleEnv
NETWORKS = ("cnn", "mlp")  # the SAM's feature extractor (CMConfig.network)
PRIOR_MODES = ("filter", "lift")  # how the actions take the prior's position (CMConfig.prior_mode)
# Priors a module's actions scale (CMConfig.prior): the position of a rule known at each bar's
# close, from the module's own market; action 1 takes the prior's position, action 0 stays out.
PRIORS: dict[str, Any] = {
    "none": None,
    "vol_target": lambda close, interval: vol_target_position(close, interval=interval),
    "donchian": lambda close, interval: donchian_position(close, interval=interval),
    "sma20": lambda close, interval: sma_position(close, 20),
}
MEMBER_SEED_STRIDE = 1000  # ensemble member k trains with seed + k * MEMBER_SEED_STRIDE
MAX_ENSEMBLE = 32
MAX_PRIOR_FOLDS = 12


@dataclass
class CMConfig:
    """Everything that defines how a Crypto Module is built and trained.

    The defaults are the configuration chosen on the walk-forward validation folds of the real
    daily markets (docs/evaluation.md): five DQN SAMs voting (``ensemble=5``) on top of the
    vol-targeted Donchian prior (``prior="donchian"``), each observing the OHLCV rows,
    :data:`DEFAULT_FEATURES`, the prior and its own position (``observe_position``), with gamma
    0.8 and one update of 256 samples every 4 steps, keeping their final weights
    (``selection="last"``); ``ensemble=1`` trains five times faster.
    """

    # Each field's help is the command-line help of its flag (train_cm --<field-name>).
    asset: str = field(default="BTC", metadata={"help": "ticker of the crypto, e.g. BTC"})
    interval: str = field(default="1d", metadata={"help": "bar interval, e.g. 1d, 6h, 1h"})
    algo: str = field(default="dqn", metadata={"help": "SAM algorithm (agents.learners)", "choices": lambda: LEARNERS})
    window: int = field(default=30, metadata={"help": "observation window n in bars"})
    fee: float = field(default=0.001, metadata={"help": "transaction cost rate on traded value"})
    execution: str = field(
        default="close",
        metadata={
            "help": "trade at the decision bar's close or at the next bar's open",
            "choices": EXECUTIONS,
        },
    )
    timesteps: int = field(default=30_000, metadata={"help": "SAM training timesteps"})
    episode_length: int = field(default=64, metadata={"help": "training episode length in bars"})
    n_envs: int = field(default=64, metadata={"help": "parallel training episodes in the batched env"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    with_eam: bool = field(
        default=False, metadata={"help": "train an EAM (DQN signals) first and feed its signals to the SAM"}
    )
    eam_timesteps: int = field(default=10_000, metadata={"help": "EAM training timesteps"})
    features_dim: int = field(
        default=64, metadata={"help": "width of the SAM network's output (the features of the policy)"}
    )
    network: str = field(
        default="cnn",
        metadata={
            "help": "the SAM's network: cnn the paper's 4-layer CNN over the whole observation window; mlp two "
            "dense layers over the current bar's crypto row alone (its features, the prior and the position)",
            "choices": NETWORKS,
        },
    )
    align_latest: bool = field(
        default=True,
        metadata={
            "help": "end the SAM CNN's strided first convolution on the observation window's last bar, the "
            "current one (off: nn.Conv2d's cut, which for an even window reads the bars up to the one before, "
            "as modules saved before this option did)"
        },
    )
    hyperparams: dict[str, Any] = field(default_factory=dict)
    dru: dict[str, Any] = field(default_factory=dict)
    features: list[str] = field(
        default_factory=lambda: list(DEFAULT_FEATURES),
        metadata={
            "help": "market features in the observation (envs.features.market_features), comma-separated "
            "KIND_H names: " + ", ".join(f"{k}_H" for k in MARKET_FEATURES) + "; '' for OHLCV (+ DRU) only",
            "metavar": "KIND_H,...",
        },
    )
    selection: str = field(
        default="last",
        metadata={
            "help": "which weights the module keeps: last the final ones (validation only decides whether the "
            "filter beats its prior); sortino the checkpoint with the best validation Sortino; "
            "sortino_trading the best among checkpoints that hold crypto on 5-95 % of the validation bars "
            "(the best overall when none does); excess the best Sharpe ratio of the "
            "daily returns over the prior's (over holding the coin without a prior), where a checkpoint "
            "that stays out of the market scores no better than the prior does",
            "choices": SELECTIONS,
        },
    )
    reward: str = field(
        default="log",
        metadata={
            "help": "the training reward: log the log growth of the module's value over each bar; dsr the "
            "differential Sharpe ratio of the bar's return (Moody & Saffell), which rewards a gain by how "
            "much it raises a running Sharpe ratio; drawdown the log growth less each rise of the drawdown "
            "from the episode's peak (a loss from a peak counts twice)",
            "choices": REWARDS,
        },
    )
    train_fee: float | None = field(
        default=None,
        metadata={
            "help": "fee rate charged in the training episodes only (a higher rate than --fee teaches fewer, "
            "surer trades); validation and backtests use --fee",
            "default_help": "--fee",
        },
    )
    observe_position: bool = field(
        default=True,
        metadata={"help": "put the module's own position in its observation (so the fee of a trade can be learned)"},
    )
    ensemble: int = field(
        default=5,
        metadata={
            "help": "train K SAMs with different seeds and let them vote (the module's crypto share is the mean "
            "of their actions; K times the training time; 1 for a single SAM)",
            "metavar": "K",
        },
    )
    device: str = field(
        default="cpu",
        metadata={"help": "torch device of the networks (cpu: the small CNNs train fastest there)", "choices": DEVICES},
    )
    backend: str = field(
        default="batched",
        metadata={
            "help": "how the ensemble's members train: "
            + "; ".join(f"{name}: {text}" for name, text in BACKENDS.items())
            + " (a learner without a batched learner uses sb3)",
            "choices": BACKENDS,
        },
    )
    prior: str = field(
        default="donchian",
        metadata={
            "help": "a rule's position the actions take (see prior_mode; none: all-in / all-out); vol_target "
            "runs at 25 % annual volatility, donchian is the vol-targeted Donchian ensemble, sma20 the "
            "20-bar moving-average rule; a module that does not beat its prior on validation follows it",
            "choices": lambda: PRIORS,
        },
    )
    prior_mode: str = field(
        default="filter",
        metadata={
            "help": "how the actions take the prior's position: filter (action 1 takes it, 0 stays out) or "
            "lift (action 0 takes it, 1 holds the whole coin: the module may hold while the rule is out, "
            "never less than the rule)",
            "choices": PRIOR_MODES,
        },
    )
    prior_confidence: float = field(
        default=0.0,
        metadata={
            "help": "with a prior, how sure validation must be that the learned filter beats it: 0 keeps "
            "the filter when its validation Sortino is higher; p in (0, 1) only when the deflated Sharpe "
            "ratio of its daily returns over the prior's, given the checkpoints compared, is at least p",
        },
    )
    train_on_prior: bool = field(
        default=True,
        metadata={
            "help": "with a prior, train the actions on the prior's position (off: on the whole coin, all-in / "
            "all-out, so that every bar's return teaches them; the prior then filters the decisions only, in "
            "validation, backtests and trading)",
        },
    )
    prior_fallback: bool = field(
        default=True,
        metadata={
            "help": "with a prior, follow it when the learned filter does not beat it on validation (off: keep "
            "what was learned whatever validation says)",
        },
    )
    prior_folds: int = field(
        default=1,
        metadata={
            "help": "with a prior, the validation folds that decide whether the learned filter beats it: 1 the "
            "validation range alone; K > 1 also the K-1 ranges of the same length before it, each judged by a "
            "module trained on the training bars before that range (K times the training); the filter is kept "
            "when its returns chained over the K folds beat the prior's",
            "metavar": "K",
        },
    )
    pool: list[str] = field(
        default_factory=list,
        metadata={
            "help": "other assets whose training-range bars add training episodes (one policy learned on "
            "several coins, on market features only); validation and the prior stay the asset's",
            "metavar": "ASSET,...",
        },
    )

    def __post_init__(self) -> None:
        self.asset = self.asset.upper()
        if (
            isinstance(self.ensemble, bool)
            or not isinstance(self.ensemble, int)
            or not 1 <= self.ensemble <= MAX_ENSEMBLE
        ):
            raise ValueError(f"ensemble must be a whole number of SAMs in 1..{MAX_ENSEMBLE}, got {self.ensemble!r}")
        if not isinstance(self.observe_position, bool):
            raise ValueError(f"observe_position must be true or false, got {self.observe_position!r}")
        if self.train_fee is not None and not 0.0 <= float(self.train_fee) < 0.5:
            raise ValueError(f"train_fee must be a rate in [0, 0.5), got {self.train_fee}")
        if isinstance(self.pool, str) or not isinstance(self.pool, (list, tuple)):
            raise ValueError(f"pool must be a list of assets, got {self.pool!r}")
        self.pool = [a for a in dict.fromkeys(str(a).upper() for a in self.pool) if a != self.asset]
        if self.pool and self.with_eam:
            raise ValueError("pool and with_eam do not go together: the EAM is trained on the module's asset alone")
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}: choose among {', '.join(PRIORS)}")
        if self.prior_mode not in PRIOR_MODES:
            raise ValueError(f"unknown prior_mode {self.prior_mode!r}: choose among {', '.join(PRIOR_MODES)}")
        if self.prior_mode == "lift" and self.prior == "none":
            raise ValueError("prior_mode lift needs a prior to lift: choose one with prior")
        if isinstance(self.prior_confidence, bool) or not 0.0 <= float(self.prior_confidence) < 1.0:
            raise ValueError(f"prior_confidence must be a probability in [0, 1), got {self.prior_confidence!r}")
        if not isinstance(self.prior_fallback, bool):
            raise ValueError(f"prior_fallback must be true or false, got {self.prior_fallback!r}")
        if not isinstance(self.train_on_prior, bool):
            raise ValueError(f"train_on_prior must be true or false, got {self.train_on_prior!r}")
        if not self.train_on_prior and self.lift:
            raise ValueError("train_on_prior false trains all-in / all-out, which a lift does not decide: use a filter")
        if (
            isinstance(self.prior_folds, bool)
            or not isinstance(self.prior_folds, int)
            or not 1 <= self.prior_folds <= MAX_PRIOR_FOLDS
        ):
            raise ValueError(
                f"prior_folds must be a whole number of folds in 1..{MAX_PRIOR_FOLDS}, got {self.prior_folds!r}"
            )
        if self.prior_folds > 1 and (self.prior == "none" or not self.prior_fallback):
            raise ValueError(
                "prior_folds > 1 needs a prior and its fallback: the folds decide between the learned filter and the prior"
            )
        if self.network not in NETWORKS:
            raise ValueError(f"unknown network {self.network!r}: choose among {', '.join(NETWORKS)}")
        if self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}: choose among {', '.join(REWARDS)}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}: choose among {list(SELECTIONS)}")
        self.features = [str(f) for f in self.features]
        for name in self.features:
            parse_market_feature(name)  # raises a clear error on a bad name
        get_learner(self.algo)  # raises a clear error on an unknown algorithm
        interval_timedelta(self.interval)  # raises a clear error on a bad interval
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}: choose among {', '.join(BACKENDS)}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}: choose among {', '.join(DEVICES)}")
        if "device" in self.hyperparams:
            raise ValueError("the device is an option of its own (CMConfig.device, --device), not a hyper-parameter")

    @property
    def lift(self) -> bool:
        """Whether the actions lift the prior (``prior_mode="lift"``) rather than filter it."""
        return self.prior_mode == "lift"

    @property
    def learner(self) -> str:
        """The backend that trains this configuration: ``backend``, or "sb3" for an algorithm
        without a batched learner."""
        return self.backend if get_learner(self.algo).batched else "sb3"

    def algo_kwargs(self) -> dict[str, Any]:
        kw = {**get_learner(self.algo).defaults, **self.hyperparams}
        if get_learner(self.algo).on_policy and "batch_size" in kw:
            kw["batch_size"] = min(kw["batch_size"], kw.get("n_steps", 64) * self.n_envs)
        return kw


# Fields added to CMConfig after modules were first saved, with the value that reproduces the
# behaviour of a module saved before them (which may differ from today's default).
LEGACY_FIELDS: dict[str, Any] = {
    "features": [],
    "selection": "sortino",
    "observe_position": False,
    "ensemble": 1,
    "backend": "sb3",
    "prior": "none",
    "align_latest": False,
}


def config_from_manifest(saved: dict[str, Any]) -> CMConfig:
    """The CMConfig of a saved module: fields it predates take their :data:`LEGACY_FIELDS` value."""
    return CMConfig(**{**LEGACY_FIELDS, **saved})


__all__ = [
    "DEFAULT_FEATURES",
    "DEVICES",
    "LEGACY_FIELDS",
    "MAX_ENSEMBLE",
    "MEMBER_SEED_STRIDE",
    "NETWORKS",
    "PRIORS",
    "PRIOR_MODES",
    "SELECTIONS",
    "CMConfig",
    "config_from_manifest",
]
