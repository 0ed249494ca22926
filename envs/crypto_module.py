"""``CryptoModuleEnv``: one crypto plus cash, the environment of a Crypto Module's SAM.

Observation ``obs[t]``: float32 tensor (f, 2, n) = f features x (crypto, cash) x the n bars
ending at bar t (see :mod:`envs.features`); it uses bars <= t only. With
``observe_position=True`` a last row ``position`` holds the module's own crypto weight (the
target weight of its previous action, 0 at the episode start) in the crypto column and its cash
weight in the cash column, over the whole window: with it a fee in the reward can be learned,
since the policy sees whether an action trades.

Action: ``Discrete(2)``, 0 = all cash, 1 = all crypto (weights (cash, crypto) = (1, 0) or
(0, 1)); or, with ``action_type="continuous"``, ``Box([0], [1])``: the crypto share.

Prior (``scale``): an optional series ``s_t`` in [0, 1] known at bar t (e.g. a trend rule's or a
volatility target's position): action ``a`` at bar t then holds ``a * s_t`` crypto, so the
action says how much of the prior's position to take (1: follow it, 0: stay out), and the
position row observes the action ``a``, not the scaled weight. With ``lift=True`` the action
lifts the prior instead of filtering it: ``s_t + a * (1 - s_t)`` crypto (0: follow it, 1: hold
the whole coin), so a policy can hold while the rule is out but never below it
(:func:`prior_share`).

Reward: log growth of the module's value over the step, net of the cost on the traded amount,
with the shared accounting (:mod:`envs.accounting`). The decision taken on ``obs[t]`` trades
at bar t's close (``execution="close"``) or at bar t+1's open (``execution="next_open"``).
With ``reward="dsr"`` it is instead the differential Sharpe ratio of the step's return (Moody &
Saffell; :func:`envs.accounting.differential_sharpe`): moving moments with rate
:data:`DSR_ETA`, started each episode at mean 0 and the variance of following the prior over
the environment's range (:meth:`CryptoModuleEnv.reference_variance`), a quarter of which floors
the moving variance. It rewards a step by how much it raises a running Sharpe ratio, so a gain
taken with less variance counts for more. With ``reward="drawdown"`` it is the log growth less
:data:`DRAWDOWN_PENALTY` times the rise of the drawdown from the episode's running peak
(:func:`envs.accounting.drawdown_rise`): a loss from a peak counts twice, a recovery once.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from gymnasium import spaces

from .accounting import differential_sharpe, drawdown_rise, one_asset_close, one_asset_next_open
from .base import RangeEnv
from .features import stack_assets

_DISCRETE_WEIGHT = {0: 0.0, 1: 1.0}
ACTION_TYPES = ("discrete", "continuous")
# log growth; the differential Sharpe ratio of the step's return; log growth less the rise of the drawdown
REWARDS = ("log", "dsr", "drawdown")
DRAWDOWN_PENALTY = 1.0  # the "drawdown" reward's weight on each rise of the drawdown from the episode's peak
DSR_ETA = 0.05  # the differential Sharpe ratio's moving-moment rate: a memory of about 20 bars


def with_position(obs: np.ndarray, position) -> np.ndarray:
    """Write the position row (the last feature) of observations ``(..., f, 2, n)`` in place:
    ``position`` (a scalar or one per observation) in the crypto column, its complement in cash."""
    p = np.asarray(position, dtype=np.float32).reshape(np.shape(position) + (1,))
    obs[..., -1, 0, :] = p
    obs[..., -1, 1, :] = 1.0 - p
    return obs


def prior_share(action, prior, lift: bool = False):
    """The crypto share that ``action`` (in [0, 1]; scalars or arrays) takes of a prior whose
    position is ``prior``: ``action * prior`` (a filter: 1 follows the prior, 0 stays out) or,
    with ``lift``, ``prior + action * (1 - prior)`` (1 holds the whole coin, 0 follows the prior)."""
    return prior + action * (1.0 - prior) if lift else action * prior


class CryptoModuleEnv(RangeEnv):
    """One crypto and cash; see the module docstring and ``docs/envs.md``.

    Precomputed for batched use (all indexed by bar number 0..T-1):
    ``obs_tensor`` (T, f, 2, n) float32 read-only, ``feature_names``, ``index``, ``opens``,
    ``closes``, price relatives ``y_close[t] = close[t]/close[t-1]``, ``y_gap[t] =
    open[t]/close[t-1]``, ``y_intra[t] = close[t]/open[t]`` (entry 0 is NaN), ``cost``,
    ``first_step``, ``last_step``.
    """

    def __init__(
        self,
        market: pd.DataFrame | None = None,
        features: pd.DataFrame | None = None,
        *,
        action_type: str = "discrete",
        signals: pd.Series | pd.DataFrame | None = None,
        observe_position: bool = False,
        scale: pd.Series | None = None,
        lift: bool = False,
        reward: str = "log",
        **options,
    ):
        """``options``: the market and episode options of :meth:`RangeEnv._init_market`
        (``asset``, ``interval``, ``window``, ``fee``, ``execution``, ``start``, ``end``,
        ``episode_length``, ``seed``, ``slippage``, ``allow_gaps``)."""
        super().__init__()
        if action_type not in ACTION_TYPES:
            raise ValueError(f"action_type must be one of {ACTION_TYPES}, got {action_type!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        self.action_type = action_type
        self.reward = reward
        block = self._init_market(market, features, signals, **options)
        self.obs_tensor = stack_assets([block], cash="last")
        self.feature_names = block.names
        self.observe_position = bool(observe_position)
        if self.observe_position:  # a zero row, filled with the position as observations are handed out
            tensor = np.concatenate([self.obs_tensor, np.zeros_like(self.obs_tensor[:, :1])], axis=1)
            tensor.flags.writeable = False
            self.obs_tensor, self.feature_names = tensor, (*block.names, "position")
        self.opens = self.market["open"].to_numpy(np.float64)
        self.closes = self.market["close"].to_numpy(np.float64)
        self.y_close = np.r_[np.nan, self.closes[1:] / self.closes[:-1]]
        self.y_gap = np.r_[np.nan, self.opens[1:] / self.closes[:-1]]
        self.y_intra = self.closes / self.opens
        self.scaled = scale is not None
        self.scale = np.ones(len(self.market))
        if self.scaled:
            s = pd.Series(scale, dtype="float64").reindex(self.market.index).to_numpy()
            if np.any(s[np.isfinite(s)] < 0) or np.any(s[np.isfinite(s)] > 1 + 1e-12):
                raise ValueError("scale (the prior position) must lie in [0, 1]")
            self.scale = np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)  # unknown prior: no position
        self.scale.flags.writeable = False
        if lift and not self.scaled:
            raise ValueError("lift needs a prior (scale) to lift")
        self.lift = bool(lift)

        self.observation_space = spaces.Box(-np.inf, np.inf, shape=self.obs_tensor.shape[1:], dtype=np.float32)
        if action_type == "discrete":
            self.action_space = spaces.Discrete(2)
        else:
            self.action_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self._lists()
        self._discrete = action_type == "discrete"
        self._at_close = self.execution == "close"
        self._value = 1.0
        self._drifted = 0.0

    def _lists(self) -> None:
        # What a step reads, derived from the arrays once (pooled() derives it again): plain Python
        # lists (a step reads scalars, and list indexing beats NumPy scalar access) and the scale
        # the "dsr" reward starts each episode from.
        self._yc, self._yg, self._yi = self.y_close.tolist(), self.y_gap.tolist(), self.y_intra.tolist()
        self._open_l, self._close_l = self.opens.tolist(), self.closes.tolist()
        self._scale_l = self.scale.tolist()
        self._rows = list(self.obs_tensor)  # per-bar views: a step copies one, no indexing cost
        self._times = list(self.index)
        self.dsr_variance = self.reference_variance() if self.reward == "dsr" else 0.0

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        t = self._start(seed)
        self._value, self._drifted = 1.0, 0.0
        self._peak, self._drawdown = 1.0, 0.0
        self._moments = (0.0, self.dsr_variance)  # the differential Sharpe ratio's moving mean and second moment
        info = {
            "time": self._times[t],
            "value": 1.0,
            "position": 0.0,
            "drifted_position": 0.0,
            "fee": 0.0,
            "turnover": 0.0,
            "price": self._close_l[t],
        }
        return self._observe(t, 0.0), info

    def step(self, action):
        t = self._t
        if t < 0 or t >= self._stop:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        try:  # the common case inline: a discrete action given as an int
            a = _DISCRETE_WEIGHT[action] if self._discrete else self.action_weight(action)
        except (KeyError, TypeError):
            a = self.action_weight(action)
        w = prior_share(a, self._scale_l[t], self.lift) if self.scaled else a
        if self._at_close:
            value, drifted, fee, turnover, growth = one_asset_close(
                self._value, self._drifted, w, self._yc[t + 1], self.cost
            )
            trade_price = self._close_l[t]
        else:
            value, drifted, fee, turnover, growth = one_asset_next_open(
                self._value, self._drifted, w, self._yg[t + 1], self._yi[t + 1], self.cost
            )
            trade_price = self._open_l[t + 1]
        self._value, self._drifted = value, drifted
        t += 1
        self._t = t
        info = {
            "time": self._times[t],
            "decision_time": self._times[t - 1],
            "value": value,
            "position": w,
            "drifted_position": drifted,
            "fee": fee,
            "turnover": turnover,
            "price": self._close_l[t],
            "trade_price": trade_price,
        }
        if self.reward == "dsr":
            r, *moments = differential_sharpe(growth - 1.0, *self._moments, DSR_ETA, self.dsr_variance / 4)
            self._moments = tuple(moments)
            return self._observe(t, a), float(r), False, t >= self._stop, info
        r = math.log(growth)
        if self.reward == "drawdown":
            self._drawdown, rise, self._peak = drawdown_rise(value, self._peak, self._drawdown)
            r -= DRAWDOWN_PENALTY * float(rise)
        return self._observe(t, a), r, False, t >= self._stop, info

    # -------------------------------------------------------------- helpers
    def _observe(self, t: int, position: float) -> np.ndarray:
        obs = self._rows[t].copy()
        if self.observe_position:
            with_position(obs, position)
        return obs

    def action_weight(self, action) -> float:
        """The crypto weight an action asks for (0 or 1; a share in [0, 1] when continuous)."""
        if self._discrete:
            try:
                return _DISCRETE_WEIGHT[action]
            except (KeyError, TypeError):
                try:
                    return _DISCRETE_WEIGHT[np.asarray(action).item()]
                except (KeyError, TypeError, ValueError):
                    raise ValueError(
                        f"invalid action {action!r}: CryptoModuleEnv takes 0 (all cash) or 1 (all crypto)"
                    ) from None
        try:
            a = float(action[0]) if hasattr(action, "__len__") else float(action)
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"invalid action {action!r}: expected the crypto share in [0, 1]") from None
        if math.isnan(a):
            raise ValueError("invalid action nan: expected the crypto share in [0, 1]")
        return 0.0 if a < 0.0 else 1.0 if a > 1.0 else a

    def reference_variance(self) -> float:
        """The variance of the step returns of following the prior (of holding the crypto without
        one) over the environment's bars: the scale of the ``"dsr"`` reward."""
        held = self.y_close[self.first_step + 1 : self.last_step + 1] - 1.0
        v = float(np.var(self.scale[self.first_step : self.last_step] * held))
        return v if v > 0 else float(np.var(held))

    @property
    def value(self) -> float:
        """The module's value now (1 at the start of the episode)."""
        return self._value

    @property
    def position(self) -> float:
        """The crypto weight held now, after prices drifted it."""
        return self._drifted


def pooled(envs: Sequence[CryptoModuleEnv]) -> CryptoModuleEnv:
    """One training environment whose episodes come from several (e.g. several coins over the same
    range): their complete observations, bars ``first_step .. last_step`` of each, one after
    another, with episodes drawn uniformly over every start that does not cross from one to the
    next (``episode_starts``). The environments must observe the same rows and share window,
    costs, execution, action type, episode length and reward; the result is for training (its times
    repeat and its ``market`` is the first environment's)."""
    envs = list(envs)
    if len(envs) == 1:
        return envs[0]
    first = envs[0]
    length = first.episode_length
    if length is None:
        raise ValueError("pooling environments needs an episode_length: evaluation runs one range")

    def contract(e: CryptoModuleEnv) -> tuple:
        return (
            e.feature_names,
            e.window,
            e.cost,
            e.execution,
            e.action_type,
            e.observe_position,
            e.lift,
            e.episode_length,
            e.reward,
        )

    for e in envs[1:]:
        if contract(e) != contract(first):
            raise ValueError(
                f"cannot pool {e.asset} with {first.asset}: observation rows, window, costs, execution, "
                "action type, lift, episode length and reward must be the same"
            )
    out = copy.copy(first)
    parts = [slice(e.first_step, e.last_step + 1) for e in envs]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(e, name)[part] for e, part in zip(envs, parts, strict=True)])

    out.obs_tensor = cat("obs_tensor")
    out.obs_tensor.flags.writeable = False
    for name in ("opens", "closes", "y_close", "y_gap", "y_intra", "scale"):
        setattr(out, name, cat(name))
    out.scaled = any(e.scaled for e in envs)
    out.index = pd.DatetimeIndex(np.concatenate([e.index[part] for e, part in zip(envs, parts, strict=True)]))
    out.first_step, out.last_step = 0, len(out.index) - 1
    starts, offset = [], 0
    for e in envs:
        bars = e.last_step - e.first_step + 1
        starts.append(offset + np.arange(bars - length))  # the episode ends at most on the part's last bar
        offset += bars
    out.episode_starts = np.concatenate(starts)
    out._lists()
    return out
