"""Crypto Modules (CM): one crypto against cash, an optional EAM and a SAM on stable-baselines3.

A CM is what the paper's Portfolio Agent Unit trains once per crypto and then reuses in any
portfolio (section 2.3):

* its DRU (:class:`cryptorl.features.DataRefinementUnit`) fitted on the training range;
* an optional **EAM**: a DQN with a 1-D CNN (:class:`agents.networks.EAMCNN`) on
  :class:`envs.SignalEnv`, trained first and frozen; its buy / sell / hold signals become extra
  observation rows of the SAM;
* the **SAM**: DQN, PPO, A2C or QR-DQN (``algo``) with the 4-layer CNN
  (:class:`agents.networks.SAMCNN`) on :class:`envs.CryptoModuleEnv`, choosing all-cash or
  all-crypto.

``decide(observation)`` gives ``(cash share, crypto share)``; ``decide_range`` decides a whole
time range in one batched forward pass. Two options change this:

* ``ensemble=K``: K SAMs trained with different seeds (seed, seed + 1000, ...) and saved as one
  module; its crypto share is the mean of their actions (the members vote, 0, 1/K, ..., 1);
* ``observe_position=True``: the observation holds the module's own position (see
  :class:`envs.CryptoModuleEnv`), so a member decides bar after bar, seeing its own previous
  action; ``decide_range`` then always walks from the data's first complete observation (in
  cash), so a decision at t depends on the bars up to t and the data's start, never on the range
  asked for.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm

from cryptorl.data.frames import DataError, interval_timedelta, to_utc_timestamp
from cryptorl.features import DataRefinementUnit
from cryptorl.modelstore import ModelStore, ModelStoreError, verify
from envs import CryptoModuleEnv, SignalEnv, prior_share, signals_from_actions
from envs.crypto_module import with_position
from envs.features import market_features

from .config import (  # noqa: F401 - CMConfig and its constants, defined in the light agents.config
    DEFAULT_FEATURES,
    DEVICES,
    LEGACY_FIELDS,
    MAX_ENSEMBLE,
    MEMBER_SEED_STRIDE,
    NETWORKS,
    PRIOR_MODES,
    PRIORS,
    SELECTIONS,
    CMConfig,
    config_from_manifest,
)
from .learners import BACKENDS, LEARNERS, get_learner
from .networks import EAMCNN, SAMCNN, LatestMLP, resolve_device


def space_to_manifest(space: gym.Space) -> dict[str, Any]:
    """A SAM's action space as the manifest stores it (Discrete or Box)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(), "dtype": str(space.dtype)}
    raise ValueError(f"a Crypto Module's action space must be Discrete or Box, got {space}")


def space_from_manifest(saved: Any) -> gym.Space:
    """The action space a manifest stores; a manifest from before it was stored (absent, or the
    text ``"Discrete(2)"``) means the all-cash / all-crypto ``Discrete(2)``."""
    if saved is None or isinstance(saved, str):
        n = re.fullmatch(r"Discrete\((\d+)\)", saved or "Discrete(2)")
        if n is None:
            raise ValueError(f"unknown action space {saved!r}")
        return gym.spaces.Discrete(int(n.group(1)))
    if saved["type"] == "Discrete":
        return gym.spaces.Discrete(int(saved["n"]), start=int(saved.get("start", 0)))
    if saved["type"] == "Box":
        dtype = np.dtype(saved.get("dtype", "float32"))
        return gym.spaces.Box(np.asarray(saved["low"], dtype), np.asarray(saved["high"], dtype), dtype=dtype)
    raise ValueError(f"unknown action space {saved!r}")


class _SpacesEnv(gym.Env):
    """Only carries spaces: lets an SB3 algorithm be rebuilt to receive saved weights."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):  # pragma: no cover - never stepped
        return self.observation_space.sample(), {}

    def step(self, action):  # pragma: no cover - never stepped
        raise RuntimeError("a spaces-only environment cannot be stepped")


def policy_kwargs(algo: str, extractor: type, features_dim: int, **extractor_kwargs: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "features_extractor_class": extractor,
        "features_extractor_kwargs": {"features_dim": features_dim, **extractor_kwargs},
    }
    kw["net_arch"] = dict(pi=[64], vf=[64]) if get_learner(algo).on_policy else [64]
    return kw


def sam_extractor(config: CMConfig) -> tuple[type, dict[str, Any]]:
    """The SAM's feature extractor and what it takes from a module's config (``config.network``):
    training and loading build one network."""
    if config.network == "mlp":
        return LatestMLP, {}
    return SAMCNN, {"channels": SAMCNN.default_channels, "align_latest": config.align_latest}


def build_algo(
    algo: str,
    env,
    extractor: type,
    features_dim: int,
    *,
    seed: int | None = None,
    tensorboard_log: str | None = None,
    hyperparams: dict[str, Any] | None = None,
    device: str = "cpu",
    extractor_kwargs: dict[str, Any] | None = None,
) -> BaseAlgorithm:
    """An SB3 algorithm with ``extractor`` as its network (what training and loading both use);
    ``extractor_kwargs`` go to the extractor (:func:`sam_extractor` gives the SAM's)."""
    return get_learner(algo).algorithm_class(
        "MlpPolicy",
        env,
        policy_kwargs=policy_kwargs(algo, extractor, features_dim, **(extractor_kwargs or {})),
        seed=seed,
        tensorboard_log=tensorboard_log,
        device=resolve_device(device),
        verbose=0,
        **(hyperparams or {}),
    )


def _bar_interval(market: pd.DataFrame) -> pd.Timedelta | None:
    if len(market.index) < 2:
        return None
    return pd.Series(market.index).diff().dropna().min()


class CryptoModule:
    """A trained Crypto Module (see the module docstring)."""

    def __init__(
        self,
        config: CMConfig,
        dru: DataRefinementUnit,
        sam: BaseAlgorithm,
        eam: BaseAlgorithm | None = None,
        *,
        ranges: dict[str, tuple[str, str]] | None = None,
        validation: dict[str, float] | None = None,
        folder: Path | None = None,
        members: list[BaseAlgorithm] | None = None,
    ):
        """``members``: an ensemble's SAMs (the first is ``sam``); None: ``[sam]``."""
        self.config, self.dru, self.sam, self.eam = config, dru, sam, eam
        self.members = list(members) if members is not None else [sam]
        if self.members[0] is not sam:
            raise ValueError("the first ensemble member must be the module's sam")
        self.ranges = ranges or {}
        self.validation = validation or {}
        self.folder = folder

    # -- the portfolio's view of a module ---------------------------------------------------
    @property
    def asset(self) -> str:
        return self.config.asset

    @property
    def interval(self) -> str:
        return self.config.interval

    @property
    def data_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The span the module can decide on: from its training start, open-ended."""
        train = self.ranges.get("train", (None, None))
        start = to_utc_timestamp(train[0]) if train[0] else pd.Timestamp.min.tz_localize("UTC")
        return start, pd.Timestamp.max.tz_localize("UTC")

    @property
    def train_end(self) -> pd.Timestamp | None:
        """Last time of the data the module was fitted or selected on (training + validation).

        A portfolio refuses to backtest the module from before this time: that would be in-sample.
        """
        last = self.ranges.get("validation", self.ranges.get("train"))
        return to_utc_timestamp(last[1]) if last else None

    def __repr__(self) -> str:
        eam = "+EAM" if self.eam is not None else ""
        k = f" x{len(self.members)}" if len(self.members) > 1 else ""
        return f"CryptoModule({self.asset} {self.interval} {self.config.algo.upper()}{k}{eam})"

    # -- data -> observations ------------------------------------------------------------------
    def check_data(self, market: pd.DataFrame, metrics: pd.DataFrame | None) -> None:
        """Refuse data that does not fit the module (other interval, missing metric)."""
        bar = _bar_interval(market)
        if bar is not None and bar != interval_timedelta(self.interval):
            raise ModelStoreError(
                f"[{self.asset}] this module was trained on {self.interval} bars; the data has {bar} bars"
            )
        need = list(self.dru.metrics)
        have = set(metrics.columns) if metrics is not None else set()
        missing = [m for m in need if m not in have]
        if missing:
            raise ModelStoreError(f"[{self.asset}] the data lacks metric(s) {missing} that this module was trained on")

    def features(self, market: pd.DataFrame, metrics: pd.DataFrame | None) -> pd.DataFrame | None:
        """The module's external observation rows: refined metrics (DRU output) and the
        configured market features, or None when there are neither."""
        return module_features(self.dru, market, metrics, self.config)

    def signals(self, market: pd.DataFrame, features: pd.DataFrame | None) -> pd.Series | None:
        """The frozen EAM's buy/sell/hold signal series over the data (None without an EAM)."""
        if self.eam is None:
            return None
        return eam_signals(self.eam, market, features, self.config)

    def env(
        self,
        market: pd.DataFrame,
        metrics: pd.DataFrame | None,
        *,
        start=None,
        end=None,
        episode_length: int | None = None,
    ) -> CryptoModuleEnv:
        """The SAM's environment over ``market`` with this module's features."""
        self.check_data(market, metrics)
        feats = self.features(market, metrics)
        return CryptoModuleEnv(
            market,
            feats,
            asset=self.asset,
            interval=self.interval,
            window=self.config.window,
            fee=self.config.fee,
            execution=self.config.execution,
            start=start,
            end=end,
            episode_length=episode_length,
            signals=self.signals(market, feats),
            observe_position=self.config.observe_position,
            scale=prior_row(feats),
            lift=self.config.lift,
        )

    # -- decisions -----------------------------------------------------------------------------
    def _vote(self, obs: np.ndarray) -> np.ndarray:
        """The members' mean action on each observation, taken as given."""
        return np.mean([_predict(sam, obs) for sam in self.members], axis=0)

    def _actions(self, obs: np.ndarray, skip: int = 0) -> np.ndarray:
        """Crypto shares decided on consecutive bars' observations from ``obs[skip]`` on, the
        walk starting in cash at ``obs[0]``.

        With the position observed, each member's action at bar t depends only on the bar's
        observation and its own previous action (0 or 1): every member decides every bar for
        both positions in one forward pass, then :func:`walk_from_cash` follows the recurrence,
        exactly the bar-by-bar walk, deciding only the bars before ``skip`` that it needs.
        """
        if not self.config.observe_position:
            return self._vote(obs[skip:])
        rows = np.array(obs, dtype=np.float32)

        def both(start: int) -> np.ndarray:
            part = rows[start:]
            x = np.concatenate([with_position(part.copy(), 0.0), with_position(part.copy(), 1.0)])
            acts = np.stack([_predict(sam, x).reshape(2, len(part)) for sam in self.members])
            if not np.isin(acts, (0.0, 1.0)).all():
                raise ValueError("a position-observing module needs all-cash / all-crypto (0 / 1) actions")
            return acts.astype(np.int64)

        return walk_from_cash(both, skip).mean(axis=0)

    def decide(self, observation: np.ndarray) -> tuple[float, float]:
        """``(cash share, crypto share)`` for one observation of shape (f, 2, n) (with the
        position row filled in when the module observes its position); with a prior, the vote's
        share of the prior's position at the observation's bar (its ``prior`` row), as
        :meth:`decide_range` decides."""
        obs = np.asarray(observation, dtype=np.float32)
        a = float(np.clip(self._vote(obs[None])[0], 0.0, 1.0))
        if self.config.prior != "none":  # the prior row comes before the EAM signal and position rows
            row = -1 - (self.eam is not None) - self.config.observe_position
            a = float(self.shares(a, float(obs[row, 0, -1])))
        return 1.0 - a, a

    def decide_range(self, market: pd.DataFrame, metrics: pd.DataFrame | None, start=None, end=None) -> pd.DataFrame:
        """Decisions at every bar close in [start, end] with a complete observation, in one pass.

        Returns a frame indexed by decision time with columns ``cash, crypto``: the crypto share
        is the share the members' vote takes of the prior's position (:meth:`votes`, :meth:`shares`). The
        decision at the last bar is included (what a live loop acts on); ``start == end``
        decides one bar.
        """
        votes, prior = self.votes(market, metrics, start, end)
        return decision_frame(self.shares(votes, prior))

    def shares(self, votes, prior):
        """The crypto shares that votes (the members' mean actions, in [0, 1]) take of the prior's
        position: ``votes * prior``, or with ``prior_mode="lift"`` ``prior + votes * (1 - prior)``
        (:func:`envs.prior_share`)."""
        return prior_share(votes, prior, self.config.lift)

    def votes(
        self, market: pd.DataFrame, metrics: pd.DataFrame | None, start=None, end=None
    ) -> tuple[pd.Series, np.ndarray]:
        """The members' mean action at every bar close in [start, end] (in [0, 1]) and the prior's
        position at those bars (ones without a prior): what :meth:`shares` combines."""
        path = self.decision_path(market, metrics, start, end)
        votes = np.clip(self._actions(path.obs, path.skip), 0.0, 1.0)
        return pd.Series(votes, index=path.index, name="votes"), path.prior

    def decision_path(self, market: pd.DataFrame, metrics: pd.DataFrame | None, start=None, end=None) -> DecisionPath:
        """What deciding [start, end] takes: the observations from where a decision path starts
        (the data's first complete observation when the module observes its position, else
        ``start``) to ``end``, how many of them come before ``start``, and the decision times and
        prior there. Validation during training decides the same way (one measure)."""
        env = self.env(market, metrics)
        index = env.index
        lo = env.first_step if start is None else max(env.first_step, int(index.searchsorted(to_utc_timestamp(start))))
        hi = len(index) if end is None else int(index.searchsorted(to_utc_timestamp(end), side="right"))
        if hi <= lo:
            raise DataError(
                self.asset,
                f"no complete observation in {start} .. {end}: the first one is at "
                f"{index[env.first_step]} (window and DRU warm-up), the data end at {index[-1]}",
            )
        first = env.first_step if self.config.observe_position else lo  # a path starts in cash
        return DecisionPath(env.obs_tensor[first:hi], lo - first, index[lo:hi], env.scale[lo:hi])

    # -- persistence ---------------------------------------------------------------------------
    def save(self, store: ModelStore | str | Path | None = None, *, promote: bool = True, note: str = "") -> Path:
        """Save as a new version in the model store (see :mod:`cryptorl.modelstore`)."""
        store = store if isinstance(store, ModelStore) else ModelStore(store)

        def write(folder: Path) -> dict[str, Any]:
            # SB3 also writes every pickled attribute as text, the observation space's bounds
            # among them: printed in short, a member saves in a third of the time.
            with np.printoptions(threshold=8, edgeitems=1):
                for k, sam in enumerate(self.members):
                    sam.save(folder / member_file(k))
                if self.eam is not None:
                    self.eam.save(folder / "eam.zip")
            self.dru.save(folder / "dru")
            return self.manifest()

        self.folder = store.save(self.asset, self.interval, write, promote=promote, note=note)
        return self.folder

    def manifest(self) -> dict[str, Any]:
        obs = self.sam.observation_space
        return {
            "kind": "crypto_module",
            "asset": self.asset,
            "interval": self.interval,
            "ranges": {k: list(map(str, v)) for k, v in self.ranges.items()},
            "config": asdict(self.config),
            "algorithm": self.config.algo,
            "hyperparameters": self.config.algo_kwargs(),
            "network": {
                "sam": _describe(*sam_extractor(self.config), self.config.features_dim),
                "eam": f"EAMCNN(features_dim={self.config.features_dim})" if self.eam is not None else None,
            },
            "feature_spec": {
                "observation_shape": list(obs.shape),
                "action_space": space_to_manifest(self.sam.action_space),
                "metrics": list(self.dru.metrics),
                "components": int(self.dru.n_components),
                "eam": self.eam is not None,
                "eam_observation_shape": list(self.eam.observation_space.shape) if self.eam is not None else None,
            },
            "validation": self.validation,
        }

    @classmethod
    def load(cls, folder: str | Path) -> CryptoModule:
        """Load a saved module after checking every file's sha256; no pickled code is run.

        The SB3 models are rebuilt from the manifest and receive their weights through
        ``set_parameters``, which reads only the zip's tensors (``torch.load(weights_only=True)``).
        """
        folder = Path(folder)
        manifest = verify(folder)
        try:
            config = config_from_manifest(dict(manifest["config"]))
            spec = manifest["feature_spec"]
            obs_space = gym.spaces.Box(-np.inf, np.inf, shape=tuple(spec["observation_shape"]), dtype=np.float32)
            act_space = space_from_manifest(spec.get("action_space"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelStoreError(f"{folder}: manifest.json is incomplete or malformed ({exc})") from None
        members = [
            _rebuild(config.algo, obs_space, act_space, *sam_extractor(config), config, folder / member_file(k))
            for k in range(config.ensemble)
        ]
        eam = None
        if spec.get("eam"):
            eam_space = gym.spaces.Box(-np.inf, np.inf, shape=tuple(spec["eam_observation_shape"]), dtype=np.float32)
            eam = _rebuild("dqn", eam_space, gym.spaces.Discrete(3), EAMCNN, {}, config, folder / "eam.zip")
        try:
            dru = DataRefinementUnit.load(folder / "dru")
        except ValueError as exc:
            raise ModelStoreError(str(exc)) from None
        ranges = {k: tuple(v) for k, v in manifest.get("ranges", {}).items()}
        validation = manifest.get("validation", {})
        return cls(config, dru, members[0], eam, ranges=ranges, validation=validation, folder=folder, members=members)


@dataclass(frozen=True)
class DecisionPath:
    """:meth:`CryptoModule.decision_path`: decide on ``obs``, keep the decisions from ``skip`` on."""

    obs: np.ndarray
    skip: int
    index: pd.DatetimeIndex
    prior: np.ndarray


def member_file(k: int) -> str:
    """The file of ensemble member k in a saved module (``sam.zip`` for the first)."""
    return "sam.zip" if k == 0 else f"sam_{k}.zip"


def _predict(sam: BaseAlgorithm, obs: np.ndarray) -> np.ndarray:
    actions, _ = sam.policy.predict(obs, deterministic=True)
    return np.asarray(actions).reshape(len(obs), -1)[:, 0].astype("float64")


def position_walk(actions: np.ndarray, held: int = 0) -> np.ndarray:
    """The position recurrence of K members over T bars: ``actions[k, p, t]`` is member k's
    action (0 or 1) at bar t when it holds ``p``; holding ``held`` before the first bar,
    ``a_t = actions[k, a_(t-1), t]``. Returns the (K, T) path of actions as floats."""
    acts = np.asarray(actions, dtype=np.int64)
    k, _, t = acts.shape
    path = np.empty((k, t))
    for m in range(k):
        cash, crypto = acts[m, 0].tolist(), acts[m, 1].tolist()
        out, a = [0] * t, held
        for i in range(t):
            a = crypto[i] if a else cash[i]
            out[i] = a
        path[m] = out
    return path


def walk_from_cash(both: Callable[[int], np.ndarray], skip: int, lead: int = 64) -> np.ndarray:
    """The (K, T - skip) path of :func:`position_walk` from cash over T bars, from bar ``skip`` on,
    deciding as few of the bars before ``skip`` as the answer needs.

    ``both(start)`` gives the members' actions (K, 2, T - start) on bars ``start..T-1`` for both
    held positions. Where the walk holds nothing and where it holds the crypto before bar
    ``start``, the two walks from there meet once they take the same action, and are one walk
    from then on: when every member's two walks meet by bar ``skip``, the walk from cash at bar
    0 is that walk from ``skip`` on, whichever position it held at ``start``. ``start`` begins
    ``lead`` bars before ``skip`` and moves back (doubling the lead) until they do, or reaches 0.
    """
    while True:
        start = max(0, skip - lead)
        acts = both(start)
        from_cash = position_walk(acts)
        if start == 0:
            return from_cash[:, skip:]
        met = (from_cash[:, : skip - start + 1] == position_walk(acts, 1)[:, : skip - start + 1]).any(axis=1)
        if met.all():
            return from_cash[:, skip - start :]
        lead *= 2


def decision_frame(crypto: pd.Series) -> pd.DataFrame:
    """The ``cash, crypto`` decisions of crypto shares (:meth:`CryptoModule.shares`)."""
    return pd.DataFrame({"cash": 1.0 - crypto, "crypto": crypto}, index=crypto.index)


def prior_position(market: pd.DataFrame, config: CMConfig) -> pd.Series | None:
    """The position of ``config.prior`` at each bar of ``market`` (closes up to t; NaN while it
    warms up), or None without a prior."""
    rule = PRIORS[config.prior]
    if rule is None:
        return None
    return rule(market["close"].astype("float64"), config.interval).rename("prior")


def prior_row(features: pd.DataFrame | None) -> pd.Series | None:
    """The prior's position as :func:`module_features` put it in the observation rows (the
    environment's ``scale``), or None without a prior."""
    return None if features is None or "prior" not in features else features["prior"]


def module_features(
    dru: DataRefinementUnit, market: pd.DataFrame, metrics: pd.DataFrame | None, config: CMConfig
) -> pd.DataFrame | None:
    """DRU output beside ``config.features`` (market features) and the prior's position; None
    when there are none."""
    feats = dru.transform(market, metrics, asset=config.asset)
    if config.features:
        feats = pd.concat([feats, market_features(market, config.features)], axis=1)
    prior = prior_position(market, config)
    if prior is not None:
        feats = pd.concat([feats, prior], axis=1)
    return feats if feats.shape[1] else None


def _describe(extractor: type, kwargs: dict[str, Any], features_dim: int) -> str:
    """The manifest's line for a network, e.g. ``SAMCNN(features_dim=64, channels=8, align_latest=True)``."""
    args = ", ".join(f"{k}={v}" for k, v in {"features_dim": features_dim, **kwargs}.items())
    return f"{extractor.__name__}({args})"


def _rebuild(
    algo: str, obs_space, act_space, extractor: type, extractor_kwargs: dict[str, Any], config: CMConfig, path: Path
) -> BaseAlgorithm:
    model = build_algo(
        algo,
        _SpacesEnv(obs_space, act_space),
        extractor,
        config.features_dim,
        hyperparams=_load_safe_kwargs(algo, config),
        extractor_kwargs=extractor_kwargs,
    )
    try:
        model.set_parameters(str(path), exact_match=True, device="cpu")
    except Exception as exc:  # a zip that is not what the manifest says
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelStoreError(
            f"{path}: its weights do not fit this version's {extractor.__name__} network ({first}); "
            "retrain the module with python -m experiments.train_cm"
        ) from None
    return model


def _load_safe_kwargs(algo: str, config: CMConfig) -> dict[str, Any]:
    """Hyper-parameters that shape the networks (the rest only matter for training)."""
    learner = get_learner(algo)
    kw = config.algo_kwargs() if algo == config.algo else dict(learner.defaults)
    if learner.on_policy:
        n = kw.get("n_steps", 64)
        shaping = {"n_steps": n, "batch_size": n}  # a rollout of n steps, nothing to train on
    else:
        shaping = {"buffer_size": 1, "learning_starts": 0}  # no replay buffer worth the memory
    accepted = inspect.signature(learner.algorithm_class.__init__).parameters
    return {k: v for k, v in shaping.items() if k in accepted}


def eam_signals(eam: BaseAlgorithm, market: pd.DataFrame, features: pd.DataFrame | None, config: CMConfig) -> pd.Series:
    """Run the frozen EAM over the data from its first complete observation, bar by bar.

    The EAM observes its own position, so its actions are computed in order; bars before its
    first complete observation get the neutral signal 0.
    """
    env = SignalEnv(
        market,
        features,
        asset=config.asset,
        interval=config.interval,
        window=config.window,
        fee=config.fee,
        execution=config.execution,
    )
    obs, _ = env.reset()
    actions = []
    done = False
    while not done:
        a, _ = eam.predict(obs, deterministic=True)
        actions.append(int(np.asarray(a).item()))
        obs, _, _, done, _ = env.step(actions[-1])
    a, _ = eam.predict(obs, deterministic=True)  # the decision at the last bar
    actions.append(int(np.asarray(a).item()))
    idx = env.index[env.first_step : env.last_step + 1]
    sig = signals_from_actions(np.array(actions), idx)
    return sig.reindex(market.index).fillna(0.0)


__all__ = [
    "BACKENDS",
    "LEARNERS",
    "CMConfig",
    "CryptoModule",
    "build_algo",
    "config_from_manifest",
    "decision_frame",
    "eam_signals",
    "module_features",
    "position_walk",
    "walk_from_cash",
    "prior_position",
    "prior_row",
]
