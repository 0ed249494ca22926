"""Environment throughput: steps per second with random actions, on real BTC daily bars.

Measures, in one run, on the same data (``../shared/data/prices/daily/BTC-USD_1d.csv``, or the
demo market when that folder is absent):

(a) one ``CryptoModuleEnv`` with a 30-bar window (raw, and through ``gymnasium.make``'s
    checker wrappers);
(b) the peers: gym-anytrading's ``StocksEnv`` (window 30) and gym-trading-env's
    ``TradingEnv`` (window 30, a few features) -- "not installed" when they are missing;
(c) ``CryptoModuleVecEnv`` stepping many Crypto Modules in one NumPy call, in environment
    steps per second (N environments x vector steps / second), and the bound no SB3 VecEnv
    returning the same observations can beat here: gathering N fresh observations and building
    the N info dicts SB3 requires, with no accounting at all.

Ratios are printed against gym-anytrading (goals: (a) >= 2x, (c) >= 25x).

Rates are measured in process CPU time (``time.process_time``), best of ``--repeats``
interleaved runs: on a machine shared with other jobs, wall-clock rates mostly measure how often
the scheduler lets the process run. ``--clock wall`` measures wall-clock time instead.

The peers are NOT project dependencies (gym-trading-env pins an old ccxt): install them in a
separate virtual environment that sees the project's packages, then run the script with it::

    python -m venv --system-site-packages /tmp/peers
    /tmp/peers/bin/pip install gym-anytrading
    /tmp/peers/bin/pip install --no-deps gym-trading-env
    /tmp/peers/bin/python benchmarks/env_throughput.py

With the project's own interpreter (``python benchmarks/env_throughput.py``) the peers print
"not installed" and only (a) and (c) are measured.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402

import envs  # noqa: E402, F401  (registers cryptorl/CryptoModule-v0)
from cryptorl.data.demo import demo_market  # noqa: E402
from cryptorl.data.frames import validate_market  # noqa: E402
from envs import CryptoModuleEnv, CryptoModuleVecEnv  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "prices" / "daily" / "BTC-USD_1d.csv"
WINDOW = 30


def load_btc() -> tuple[pd.DataFrame, str]:
    if DATA.is_file():
        df = pd.read_csv(DATA, parse_dates=["datetime"], index_col="datetime")
        return validate_market(df, "BTC", "1d"), f"{DATA.name} ({len(df)} daily bars)"
    market = demo_market("BTC", "1d", "2015-01-01", "2025-01-01")
    return market, f"demo BTC market ({len(market)} daily bars; {DATA} is absent)"


CLOCK = time.process_time


def time_single(env: gym.Env, actions: list) -> float:
    """Steps/second over len(actions) steps (resets on episode end included)."""
    env.reset(seed=0)
    step = env.step
    t0 = CLOCK()
    for a in actions:
        _, _, term, trunc, _ = step(a)
        if term or trunc:
            env.reset()
    return len(actions) / (CLOCK() - t0)


def time_vector(vec: CryptoModuleVecEnv, actions: np.ndarray) -> float:
    """Environment-steps/second: num_envs x len(actions) / time."""
    vec.reset()
    t0 = CLOCK()
    for a in actions:
        vec.step(a)
    return actions.size / (CLOCK() - t0)


def time_floor(vec: CryptoModuleVecEnv, steps: int) -> float:
    """What any SB3 VecEnv over this tensor must do per step, and nothing else: gather N fresh
    observations and build N info dicts. An upper bound for (c) on this machine."""
    tensor, span = vec.env.obs_tensor, vec.env.episode_length
    vec.reset()
    starts = vec.steps.copy()
    t0 = CLOCK()
    for k in range(steps):
        tensor.take(starts + k % span, axis=0)  # rows advance like episodes do
        [{} for _ in range(vec.num_envs)]
    return steps * vec.num_envs / (CLOCK() - t0)


def anytrading_factory(market: pd.DataFrame) -> Callable[[], gym.Env] | None:
    try:
        from gym_anytrading.envs import StocksEnv
    except ImportError:
        return None
    df = market.rename(columns=str.capitalize)
    return lambda: StocksEnv(df=df, window_size=WINDOW, frame_bound=(WINDOW, len(df)))


def trading_env_factory(market: pd.DataFrame) -> Callable[[], gym.Env] | None:
    try:
        from gym_trading_env.environments import TradingEnv
    except ImportError:
        return None
    df = market.copy()
    df["feature_close"] = df["close"].pct_change()
    df["feature_open"] = df["open"] / df["close"]
    df["feature_high"] = df["high"] / df["close"]
    df["feature_low"] = df["low"] / df["close"]
    df["feature_volume"] = np.log1p(df["volume"])
    df = df.dropna()
    return lambda: TradingEnv(df=df, windows=WINDOW, positions=[0, 1], trading_fees=0.001, verbose=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=50_000, help="steps per timed run of a single env (default 50000)")
    p.add_argument("--vec-envs", type=int, default=256, help="environments in the batched VecEnv (default 256)")
    p.add_argument("--vec-steps", type=int, default=1_000, help="vector steps per timed run (default 1000)")
    p.add_argument(
        "--repeats", type=int, default=5, help="timed runs per env, interleaved; the best is kept (default 5)"
    )
    p.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu", help="process CPU time (default) or wall-clock time"
    )
    args = p.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if min(args.steps, args.vec_envs, args.vec_steps, args.repeats) < 1:
        print("error: --steps, --vec-envs, --vec-steps and --repeats must be positive", file=sys.stderr)
        return 2

    market, source = load_btc()
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, args.steps).tolist()
    print(f"data: {source}; window {WINDOW}; random actions; {args.clock} time, best of {args.repeats} runs")
    singles: dict[str, gym.Env] = {"(a) CryptoModuleEnv": CryptoModuleEnv(market, window=WINDOW)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        singles["(a) CryptoModuleEnv via gymnasium.make"] = gym.make(
            "cryptorl/CryptoModule-v0", market=market, window=WINDOW
        )
        peers = {
            "(b) gym-anytrading StocksEnv": anytrading_factory(market),
            "(b) gym-trading-env TradingEnv": trading_env_factory(market),
        }
        for name, factory in peers.items():
            if factory is None:
                print(f"{name:<42} not installed (see this script's docstring)")
            else:
                singles[name] = factory()
    vec_name = f"(c) CryptoModuleVecEnv x{args.vec_envs} (env-steps/s)"
    vec = CryptoModuleVecEnv(CryptoModuleEnv(market, window=WINDOW, episode_length=365), args.vec_envs, seed=0)
    vec_actions = rng.integers(0, 2, (args.vec_steps, args.vec_envs))

    # Interleave the timed runs (the machine is shared: load changes during the run) and keep
    # each environment's best.
    floor_name = "(c) bound: gather + info dicts only"
    results = dict.fromkeys([*singles, vec_name, floor_name], 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.repeats):
            for name, env in singles.items():
                results[name] = max(results[name], time_single(env, actions))
            results[vec_name] = max(results[vec_name], time_vector(vec, vec_actions))
            results[floor_name] = max(results[floor_name], time_floor(vec, args.vec_steps))

    base = results.get("(b) gym-anytrading StocksEnv")
    for name, rate in results.items():
        ratio = f"{rate / base:7.1f}x gym-anytrading" if base else ""
        print(f"{name:<42} {rate:>12,.0f} steps/s  {ratio}")
    if base:
        a = results["(a) CryptoModuleEnv"] / base
        c = results[vec_name] / base
        print(
            f"goals: (a) >= 2x: {a:.1f}x {'met' if a >= 2 else 'NOT met'}; (c) >= 25x: {c:.1f}x {'met' if c >= 25 else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
