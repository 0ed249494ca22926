"""``SignalEnv``: buy / sell / hold on one crypto, the environment of a Crypto Module's EAM.

Observation: float32 (f + 1, n): the asset's features over the n bars ending at bar t (the
same rows as :class:`envs.crypto_module.CryptoModuleEnv`'s crypto row: OHLCV features,
refined metrics) plus a last row holding the current position (constant along the window),
since the reward of "hold" depends on it.

Action: ``Discrete(3)``: 0 = buy (go long), 1 = sell (go flat, or short with
``short_on_sell=True``), 2 = hold (keep the position). The signal series a trained EAM gives a
SAM is -1 / 0 / +1 for sell / hold / buy (:func:`signals_from_actions`).

Reward: the next-period return of the resulting position p' (a fraction of equity: 1 long,
0 flat, -1 short) net of the cost ``c * |p' - p|``, compounded as one unit of equity would::

    close:      r = (1 - c|p' - p|) * (1 + p' (y - 1)) - 1,             y = close_{t+1}/close_t
    next_open:  r = (1 + p (y_gap - 1)) * (1 - c|p' - p|) * (1 + p' (y_intra - 1)) - 1

For a long-only position this is exactly the Crypto Module accounting (1 + r = V'/V). ``info``
carries the equity (product of 1 + r; an episode terminates if it reaches 0, which only a
short can do) and the fee paid in equity units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from gymnasium import spaces

from .base import RangeEnv

BUY, SELL, HOLD = 0, 1, 2
ACTIONS = ("buy", "sell", "hold")
SIGNAL_OF_ACTION = np.array([1, -1, 0], dtype=np.int8)  # buy +1, sell -1, hold 0


def signals_from_actions(actions, index: pd.DatetimeIndex) -> pd.Series:
    """EAM actions (0 buy, 1 sell, 2 hold) at decision times -> the -1/0/+1 signal Series."""
    acts = np.asarray(actions)
    if acts.shape != (len(index),) or not np.isin(acts, (BUY, SELL, HOLD)).all():
        raise ValueError(f"actions must be {len(index)} values among 0 (buy), 1 (sell), 2 (hold)")
    return pd.Series(SIGNAL_OF_ACTION[acts.astype(int)].astype("float64"), index=index, name="signal")


class SignalEnv(RangeEnv):
    """Buy / sell / hold on one crypto; see the module docstring and ``docs/envs.md``."""

    def __init__(
        self,
        market: pd.DataFrame | None = None,
        features: pd.DataFrame | None = None,
        *,
        short_on_sell: bool = False,
        **options,
    ):
        """``options``: the market and episode options of :meth:`RangeEnv._init_market`, as
        :class:`envs.CryptoModuleEnv` takes them."""
        super().__init__()
        self.short_on_sell = bool(short_on_sell)
        block = self._init_market(market, features, None, **options)
        self.obs_tensor = block.values
        self.obs_tensor.flags.writeable = False
        self.feature_names = (*block.names, "position")
        c = self.market["close"].to_numpy(np.float64)
        o = self.market["open"].to_numpy(np.float64)
        self.closes = c
        self._yc = np.r_[np.nan, c[1:] / c[:-1]].tolist()
        self._yg = np.r_[np.nan, o[1:] / c[:-1]].tolist()
        self._yi = (c / o).tolist()
        f, n = block.values.shape[1:]
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(f + 1, n), dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        self._position = 0.0
        self._equity = 1.0

    def _obs(self, t: int) -> np.ndarray:
        f = self.obs_tensor.shape[1]
        out = np.empty((f + 1, self.window), dtype=np.float32)
        out[:f] = self.obs_tensor[t]
        out[f] = self._position
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        t = self._start(seed)
        self._position, self._equity = 0.0, 1.0
        return self._obs(t), {"time": self._times[t], "position": 0.0, "equity": 1.0, "fee": 0.0}

    def step(self, action):
        t = self._check_running()
        try:
            a = int(np.asarray(action).item())
        except (TypeError, ValueError):
            a = -1
        if a not in (BUY, SELL, HOLD):
            raise ValueError(f"invalid action {action!r}: SignalEnv takes 0 (buy), 1 (sell) or 2 (hold)")
        p = self._position
        new = 1.0 if a == BUY else (-1.0 if self.short_on_sell else 0.0) if a == SELL else p
        rate = self.cost * abs(new - p)
        if self.execution == "close":
            before = self._equity
            growth = (1.0 - rate) * (1.0 + new * (self._yc[t + 1] - 1.0))
        else:
            gap = 1.0 + p * (self._yg[t + 1] - 1.0)
            before = self._equity * gap
            growth = gap * (1.0 - rate) * (1.0 + new * (self._yi[t + 1] - 1.0))
        reward = growth - 1.0
        fee = before * rate
        self._equity *= growth
        self._position = new
        t += 1
        self._t = t
        bankrupt = self._equity <= 0.0
        info = {
            "time": self._times[t],
            "decision_time": self._times[t - 1],
            "action": ACTIONS[a],
            "signal": int(SIGNAL_OF_ACTION[a]),
            "position": new,
            "equity": self._equity,
            "fee": fee,
        }
        if bankrupt:
            self._stop = t
        return self._obs(t), reward, bankrupt, (t >= self._stop) and not bankrupt, info
