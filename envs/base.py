"""What every cryptorl environment shares: market loading, the episode range, seeded starts.

Episode range. Bars are numbered 0..T-1. ``first_step`` is the first bar whose observation is
complete (window full, warm-up over) and whose time is >= ``start``; ``last_step`` is the last
bar with time <= ``end``. Decisions are made at the closes of bars ``first_step ..
last_step - 1``; the episode's last value is marked at ``last_step``'s close. Bars before
``start`` may feed the first windows (they are in the past).

Evaluation (``episode_length=None``): every reset starts at ``first_step`` and the episode runs
to ``last_step``. Training (``episode_length=L``): every reset draws the first decision bar
uniformly from ``first_step .. last_step - L`` with the environment's ``np_random`` and the
episode lasts L steps. Both end by truncation (``truncated=True``): the market goes on, the
episode is cut, so agents should bootstrap from the final observation.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd

from cryptorl.data.demo import DEFAULT_END, DEFAULT_START, demo_market, warn_demo
from cryptorl.data.frames import DataError, interval_timedelta, to_utc_timestamp, validate_market

from .accounting import check_execution, cost_rate
from .features import AssetBlock, asset_block


def market_or_demo(
    market: pd.DataFrame | None,
    asset: str,
    interval: str,
    *,
    start=None,
    end=None,
    window: int = 1,
    allow_gaps: bool = False,
) -> pd.DataFrame:
    """The validated market frame, or the demo market of ``asset`` covering [start, end]."""
    if market is not None:
        return validate_market(market, asset, interval, allow_gaps=allow_gaps)
    warn_demo(f"{asset} environment")
    step = interval_timedelta(interval)
    s, e = to_utc_timestamp(start), to_utc_timestamp(end)
    lo = to_utc_timestamp(DEFAULT_START)
    hi = to_utc_timestamp(DEFAULT_END)
    if s is not None:
        lo = min(lo, s - (window + 1) * step)
    if e is not None:
        hi = max(hi, e)
    return demo_market(asset, interval, lo, hi)


def episode_range(
    index: pd.DatetimeIndex,
    first_valid: int,
    start=None,
    end=None,
    episode_length: int | None = None,
    asset: str | None = None,
) -> tuple[int, int]:
    """``(first_step, last_step)`` as described in the module docstring, or a clear error."""
    s, e = to_utc_timestamp(start), to_utc_timestamp(end)
    lo = first_valid if s is None else max(first_valid, int(index.searchsorted(s, side="left")))
    hi = len(index) - 1 if e is None else int(index.searchsorted(e, side="right")) - 1
    if s is not None and e is not None and e <= s:
        raise ValueError(f"[{asset}] end {e} is not after start {s}")
    steps = hi - lo
    if steps < 1:
        first = index[min(first_valid, len(index) - 1)]
        raise DataError(
            asset,
            f"no step to take in [{s}, {e}]: the first complete observation is at {first} "
            f"(window and warm-up) and the data end at {index[-1]}",
        )
    if episode_length is not None:
        if int(episode_length) != episode_length or episode_length < 1:
            raise ValueError(f"episode_length must be a positive integer or None, got {episode_length!r}")
        if episode_length > steps:
            raise DataError(
                asset,
                f"episode_length={episode_length} is longer than the {steps} steps available "
                f"from {index[lo]} to {index[hi]}",
            )
    return lo, hi


class RangeEnv(gym.Env):
    """Base class: episode range, Gymnasium seeding, seeded random starts."""

    metadata = {"render_modes": []}
    render_mode = None

    def _init_market(
        self,
        market: pd.DataFrame | None,
        features: pd.DataFrame | None,
        signals=None,
        *,
        asset: str = "BTC",
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
    ) -> AssetBlock:
        """Load the market (the demo market of ``asset`` when None), set the costs, the execution
        and the episode range, and return the asset's observation block. The keywords are the
        options every environment of one crypto takes (``docs/envs.md``)."""
        self.asset = str(asset).upper()
        self.interval = interval
        self.window = int(window)
        self.fee, self.slippage = fee, slippage
        self.cost = cost_rate(fee, slippage)
        self.execution = check_execution(execution)
        self.market = market_or_demo(
            market, self.asset, interval, start=start, end=end, window=self.window, allow_gaps=allow_gaps
        )
        block = asset_block(self.market, features, signals, window=self.window, asset=self.asset)
        self._init_range(self.market.index, block.first_valid, start, end, episode_length, self.asset, seed)
        return block

    def _init_range(self, index, first_valid, start, end, episode_length, asset, seed) -> None:
        self.index = index
        self.first_step, self.last_step = episode_range(index, first_valid, start, end, episode_length, asset)
        self.episode_length = None if episode_length is None else int(episode_length)
        # the bars a training episode may start at (None: first_step .. last_step - episode_length)
        self.episode_starts: np.ndarray | None = None
        self._times = list(index)  # Timestamps, so that a step does not build one
        self._pending_seed = seed
        self._t = -1
        self._stop = -1

    @property
    def decision_times(self) -> pd.DatetimeIndex:
        """Bar closes at which an evaluation episode decides (``first_step .. last_step - 1``)."""
        return self.index[self.first_step : self.last_step]

    def _start(self, seed: int | None) -> int:
        """Seed like Gymnasium, draw (or fix) the first bar, set the stop bar; returns the start."""
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        super().reset(seed=seed)
        if self.episode_length is None:
            t0, stop = self.first_step, self.last_step
        elif self.episode_starts is not None:
            t0 = int(self.episode_starts[self.np_random.integers(0, len(self.episode_starts))])
            stop = t0 + self.episode_length
        else:
            t0 = int(self.np_random.integers(self.first_step, self.last_step - self.episode_length + 1))
            stop = t0 + self.episode_length
        self._t, self._stop = t0, stop
        return t0

    def _check_running(self) -> int:
        t = self._t
        if t < 0 or t >= self._stop:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        return t


def as_float_array(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite numbers, got {x!r}")
    return arr
