"""Training throughput: timesteps per second of Crypto Module training against a peer.

Measures in one run, with the same budget and the same work per timestep (PPO: rollouts of 512
timesteps, 4 epochs of 256-sample minibatches; DQN: one 128-sample gradient step per 32 timesteps):

* ours: the SAM of a Crypto Module (PPO and DQN, the paper's 4-layer CNN extractor) on the
  batched ``CryptoModuleVecEnv``, exactly as ``train_crypto_module`` builds it (64 episodes per step);
* the peer: stable-baselines3 with an MLP policy on gym-anytrading's ``StocksEnv`` (window 30)
  in a ``DummyVecEnv`` of 8 copies, the usual way SB3 is run on trading environments.

Both train on real BTC daily bars (``../shared/data/prices/daily/BTC-USD_1d.csv``; the demo
market when that folder is absent). gym-anytrading is not a project dependency: install it in a
separate environment that sees the project's packages and run the script with it::

    python -m venv --system-site-packages /tmp/peers
    /tmp/peers/bin/pip install gym-anytrading
    /tmp/peers/bin/python benchmarks/train_throughput.py --timesteps 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.crypto_module import CMConfig, build_algo  # noqa: E402
from agents.learners import get_learner  # noqa: E402
from agents.networks import SAMCNN  # noqa: E402
from agents.training import make_logger  # noqa: E402
from cryptorl.data.demo import demo_market  # noqa: E402
from cryptorl.data.frames import validate_market  # noqa: E402
from envs import CryptoModuleEnv, CryptoModuleVecEnv  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "prices" / "daily" / "BTC-USD_1d.csv"
N_ENVS = 8  # the peer's DummyVecEnv
WINDOW = 30


def load_btc() -> tuple[pd.DataFrame, str]:
    if DATA.is_file():
        raw = pd.read_csv(DATA, parse_dates=["datetime"], index_col="datetime")
        return validate_market(raw, "BTC", "1d", allow_gaps=True), str(DATA.name)
    return demo_market("BTC", "1d", "2017-01-01", "2024-12-31"), "demo market"


def same_budget(algo: str, n_envs: int) -> dict:
    """The CM's hyper-parameters for the peer's number of envs, keeping the work per timestep.

    PPO: the rollout holds 512 timesteps (n_steps x n_envs). DQN: one gradient step per 32
    timesteps (train_freq counts vector steps).
    """
    hp = dict(get_learner(algo).defaults)
    if algo == "ppo":
        hp["n_steps"] = 512 // n_envs
    elif n_envs <= 32:
        hp["train_freq"], hp["gradient_steps"] = 32 // n_envs, 1
    else:
        hp["train_freq"], hp["gradient_steps"] = 1, n_envs // 32
    return hp


def rate(model, timesteps: int) -> float:
    model.set_logger(make_logger(None, "bench"))  # no SB3-<time> folder in the temp folder
    model.learn(200)  # warm-up: allocations, first gradient step
    t0 = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    return timesteps / (time.perf_counter() - t0)


def ours(market: pd.DataFrame, algo: str, timesteps: int) -> float:
    """A Crypto Module's SAM exactly as ``train_crypto_module`` builds it (CMConfig defaults)."""
    cfg = CMConfig(asset="BTC", algo=algo, window=WINDOW)
    template = CryptoModuleEnv(
        market, None, asset="BTC", window=WINDOW, episode_length=cfg.episode_length, allow_gaps=True
    )
    vec = CryptoModuleVecEnv(template, cfg.n_envs, seed=0)
    return rate(build_algo(algo, vec, SAMCNN, cfg.features_dim, seed=0, hyperparams=cfg.algo_kwargs()), timesteps)


def peer(market: pd.DataFrame, algo: str, timesteps: int) -> float | None:
    try:
        import gym_anytrading  # noqa: F401
        import gymnasium as gym
    except ImportError:
        return None
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    df = market.rename(columns=str.capitalize)
    bounds = (WINDOW, len(df))

    def make():
        return gym.make("stocks-v0", df=df, window_size=WINDOW, frame_bound=bounds)

    vec = DummyVecEnv([make] * N_ENVS)
    hp = same_budget(algo, N_ENVS)
    cls = {"ppo": PPO, "dqn": DQN}[algo]
    net = dict(pi=[64], vf=[64]) if algo == "ppo" else [64, 64]
    model = cls("MlpPolicy", vec, seed=0, device="cpu", policy_kwargs={"net_arch": net}, **hp)
    return rate(model, timesteps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=int, default=20_000, help="timesteps per measurement (default 20000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--repeats", type=int, default=3, help="alternating measurements; the best of each is shown (default 3)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    market, source = load_btc()
    print(
        f"data: {source}, {len(market)} bars; {args.timesteps} timesteps, best of {args.repeats}; envs: ours "
        f"{CMConfig().n_envs}, peer {N_ENVS}; torch threads {args.threads}"
    )
    print(f"{'algorithm':<8} {'ours (CNN, batched env)':>24} {'SB3 + gym-anytrading (MLP)':>28} {'ratio':>7}")
    for algo in ("ppo", "dqn"):
        runs = [(ours(market, algo, args.timesteps), peer(market, algo, args.timesteps)) for _ in range(args.repeats)]
        a = max(r[0] for r in runs)
        b = None if runs[0][1] is None else max(r[1] for r in runs)
        peer_txt = "not installed" if b is None else f"{b:,.0f} steps/s"
        ratio = "" if b is None else f"{a / b:.2f}x"
        print(f"{algo.upper():<8} {a:>18,.0f} steps/s {peer_txt:>28} {ratio:>7}")


if __name__ == "__main__":
    main()
