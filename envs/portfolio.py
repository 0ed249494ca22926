"""``PortfolioEnv``: several cryptos plus cash with continuous weights (the classic setting).

Observation: float32 (f, k + 1, n): f features x (cash, asset_1, ..., asset_k) x the n bars
ending at bar t, the same features as :mod:`envs.features` (cash row first, in the order of the
weights).

Action: ``Box(-1, 1, (k + 1,))`` of scaled logits; the target weights are
``softmax(logit_scale * action)`` over (cash, asset_1, ..., asset_k). The bounded, symmetric box
is what stable-baselines3 expects of a continuous action; ``logit_scale`` (default 5) lets a
policy reach nearly all-in positions (a logit gap of 10 gives 99.995 %).

Reward: log growth net of the cost on the traded amount, the shared accounting of
:mod:`envs.accounting` (execution at bar t's close, or at bar t+1's open).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from gymnasium import spaces

from cryptorl.data.frames import DataError, validate_market
from cryptorl.portfolio.baselines import common_index

from .accounting import check_execution, cost_rate, multi_asset_close, multi_asset_next_open
from .base import RangeEnv, market_or_demo
from .features import asset_block, stack_assets

DEFAULT_ASSETS = ("BTC", "ETH")


def _common_markets(markets: Mapping[str, pd.DataFrame], interval: str, allow_gaps: bool) -> dict[str, pd.DataFrame]:
    """Validate each market and cut all of them to the times they share."""
    clean = {a: validate_market(m, a, interval, allow_gaps=allow_gaps) for a, m in markets.items()}
    common = common_index(clean)
    return {a: validate_market(m.loc[common], a, interval, allow_gaps=allow_gaps) for a, m in clean.items()}


class PortfolioEnv(RangeEnv):
    """Cash plus k cryptos, softmax weights; see the module docstring and ``docs/envs.md``.

    Precomputed: ``obs_tensor`` (T, f, k+1, n), ``index``, ``closes`` (T, k), the price
    relatives ``y_close``, ``y_gap``, ``y_intra`` (T, k+1) with a cash column of ones (row 0 NaN).
    """

    def __init__(
        self,
        markets: Mapping[str, pd.DataFrame] | None = None,
        features: Mapping[str, pd.DataFrame] | None = None,
        *,
        assets: Sequence[str] | None = None,
        interval: str = "1d",
        window: int = 30,
        fee: float = 0.001,
        execution: str = "close",
        start=None,
        end=None,
        episode_length: int | None = None,
        seed: int | None = None,
        slippage: float = 0.0,
        allow_gaps: bool = False,
        logit_scale: float = 5.0,
    ):
        super().__init__()
        if markets is None:
            names = [str(a).upper() for a in (assets if assets is not None else DEFAULT_ASSETS)]
            markets = {a: market_or_demo(None, a, interval, start=start, end=end, window=int(window)) for a in names}
        else:
            if assets is not None and [str(a).upper() for a in assets] != [str(a).upper() for a in markets]:
                raise ValueError("give either markets or assets (or the same names in both)")
            markets = {str(a).upper(): m for a, m in markets.items()}
        if len(markets) < 1:
            raise ValueError("PortfolioEnv needs at least one market")
        if not (np.isfinite(logit_scale) and logit_scale > 0):
            raise ValueError(f"logit_scale must be a positive number, got {logit_scale!r}")
        self.assets = list(markets)
        self.interval = interval
        self.window = int(window)
        self.fee, self.slippage = fee, slippage
        self.cost = cost_rate(fee, slippage)
        self.execution = check_execution(execution)
        self.logit_scale = float(logit_scale)
        self.markets = _common_markets(markets, interval, allow_gaps)

        feats: dict[str, pd.DataFrame] = {}
        for a, f in (features or {}).items():
            if isinstance(f, pd.Series):
                f = f.to_frame()
            if not isinstance(f, pd.DataFrame):
                raise DataError(str(a).upper(), f"features must be a pandas DataFrame, got {type(f).__name__}")
            feats[str(a).upper()] = f.set_axis([str(c) for c in f.columns], axis=1)
        unknown = sorted(set(feats) - set(self.assets))
        if unknown:
            raise ValueError(f"features given for {unknown}, which have no market (markets: {self.assets})")
        extra: list[str] = []
        for f in feats.values():
            extra += [c for c in f.columns if c not in extra]
        blocks = [
            asset_block(
                self.markets[a], feats.get(a), window=self.window, asset=a, extra_names=extra if feats else None
            )
            for a in self.assets
        ]
        self.obs_tensor = stack_assets(blocks, cash="first")
        self.feature_names = blocks[0].names
        first_valid = max(b.first_valid for b in blocks)

        k = len(self.assets)
        o = np.column_stack([self.markets[a]["open"].to_numpy(np.float64) for a in self.assets])
        c = np.column_stack([self.markets[a]["close"].to_numpy(np.float64) for a in self.assets])
        self.closes = c
        ones = np.ones((len(c), 1))
        nan = np.full((1, k), np.nan)
        self.y_close = np.hstack([ones, np.vstack([nan, c[1:] / c[:-1]])])
        self.y_gap = np.hstack([ones, np.vstack([nan, o[1:] / c[:-1]])])
        self.y_intra = np.hstack([ones, c / o])
        index = self.markets[self.assets[0]].index
        self._init_range(index, first_valid, start, end, episode_length, ",".join(self.assets), seed)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=self.obs_tensor.shape[1:], dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(k + 1,), dtype=np.float32)
        self._value = 1.0
        self._drifted = self._all_cash()

    def _all_cash(self) -> np.ndarray:
        w = np.zeros(len(self.assets) + 1)
        w[0] = 1.0
        return w

    def action_weights(self, action) -> np.ndarray:
        """Target weights (cash, asset_1, ..., asset_k) = softmax(logit_scale * action)."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (len(self.assets) + 1,) or not np.isfinite(a).all():
            raise ValueError(
                f"invalid action {action!r}: expected {len(self.assets) + 1} finite logits (cash, {', '.join(self.assets)})"
            )
        z = self.logit_scale * np.clip(a, -1.0, 1.0)
        e = np.exp(z - z.max())
        return e / e.sum()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        t = self._start(seed)
        self._value, self._drifted = 1.0, self._all_cash()
        info = {
            "time": self._times[t],
            "value": 1.0,
            "weights": self._all_cash(),
            "drifted_weights": self._all_cash(),
            "fee": 0.0,
            "turnover": 0.0,
            "prices": self.closes[t].copy(),
        }
        return self.obs_tensor[t].copy(), info

    def step(self, action):
        t = self._check_running()
        w = self.action_weights(action)
        if self.execution == "close":
            s = multi_asset_close(self._value, self._drifted, w, self.y_close[t + 1], self.cost)
        else:
            s = multi_asset_next_open(self._value, self._drifted, w, self.y_gap[t + 1], self.y_intra[t + 1], self.cost)
        self._value, self._drifted = s.value, s.drifted
        t += 1
        self._t = t
        info = {
            "time": self._times[t],
            "decision_time": self._times[t - 1],
            "value": s.value,
            "weights": w,
            "drifted_weights": s.drifted.copy(),
            "fee": s.fee,
            "turnover": s.turnover,
            "prices": self.closes[t].copy(),
        }
        return self.obs_tensor[t].copy(), float(np.log(s.growth)), False, t >= self._stop, info
