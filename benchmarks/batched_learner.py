"""The batched learner against stable-baselines3: training throughput, scoring time, train_cm wall time.

Measures in one run, on real daily BTC (``../shared/data/prices/daily/BTC-USD_1d.csv``; the demo
market when that folder is absent):

1. **Training throughput**: env steps per second summed over the members of a five-member DQN
   ensemble with the default configuration (``CMConfig()``: 30-bar window, market features, the
   position observed, 64 episodes per member; the CNN, then ``network="mlp"``), SB3 (``backend="sb3"``: one ``learn`` per member)
   against the batched learner (``agents.batched.learn_dqn_members``), the same members
   (seeds, initial weights, hyper-parameters), validation left out of both; and where the time
   goes (SB3's gradient steps; the batched learner's network work against stepping and storing),
   which bounds the ratio any faster stepping could reach.
2. **Scoring**: ``decide_range`` of 80 five-member position-observing modules over 2,400 bars,
   the bar-by-bar walk through SB3's ``predict`` (on a few modules, extrapolated) against the
   batched scoring (both positions in one forward per member, then the position recurrence).
3. **One walk-forward module**: ``train_crypto_module`` with the defaults (``selection="last"``) on
   a window of the daily scoreboard (12 months of training, 3 of validation), each network:
   validated every 2,000 steps as a reader of the checkpoints (TensorBoard, a tuner) has it, against
   validated once after training (what ``evaluate`` and ``walk_forward`` get); same module checked.
4. **train_cm**: wall time and peak memory of
   ``python -m experiments.train_cm --asset BTC --source demo`` (default ensemble), from
   ``/usr/bin/time -v`` when it is there.

    python benchmarks/batched_learner.py                  # about two minutes on 2 cores
    python benchmarks/batched_learner.py --timesteps 5000 --skip-cli
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.batched import learn_dqn_members  # noqa: E402
from agents.config import NETWORKS  # noqa: E402
from agents.crypto_module import (  # noqa: E402
    MEMBER_SEED_STRIDE,
    CMConfig,
    CryptoModule,
    build_algo,
    module_features,
    prior_row,
    sam_extractor,
)
from agents.training import Split, make_logger, train_crypto_module  # noqa: E402
from cryptorl.data.demo import demo_market  # noqa: E402
from cryptorl.data.frames import validate_market  # noqa: E402
from cryptorl.features import DataRefinementUnit  # noqa: E402
from envs import CryptoModuleEnv, CryptoModuleVecEnv  # noqa: E402
from envs.crypto_module import with_position  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "prices" / "daily" / "BTC-USD_1d.csv"


def load_btc() -> tuple[pd.DataFrame, str]:
    if DATA.is_file():
        raw = pd.read_csv(DATA, parse_dates=["datetime"], index_col="datetime")
        return validate_market(raw, "BTC", "1d", allow_gaps=True), str(DATA.name)
    return demo_market("BTC", "1d", "2017-01-01", "2024-12-31"), "demo market"


def members(config: CMConfig, template: CryptoModuleEnv) -> list:
    seeds = [config.seed + MEMBER_SEED_STRIDE * k for k in range(config.ensemble)]
    extractor, extractor_kwargs = sam_extractor(config)
    return [
        build_algo(
            "dqn",
            CryptoModuleVecEnv(template, config.n_envs, seed=s),
            extractor,
            config.features_dim,
            seed=s,
            hyperparams=config.algo_kwargs(),
            extractor_kwargs=extractor_kwargs,
        )
        for s in seeds
    ]


def template_env(data: pd.DataFrame, config: CMConfig, **kw) -> CryptoModuleEnv:
    """The module's environment over ``data``: its market features and its prior (no metrics)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dru = DataRefinementUnit().fit(data, None, data.index[-1], asset=config.asset)
    feats = module_features(dru, data, None, config)
    return CryptoModuleEnv(
        data,
        feats,
        window=config.window,
        observe_position=True,
        allow_gaps=True,
        scale=prior_row(feats),
        **kw,
    )


def throughput(market: pd.DataFrame, timesteps: int, network: str = "cnn") -> dict[str, float]:
    """Seconds of SB3 and of the batched learner over the five members, and where they go.

    SB3's gradient steps are timed around ``DQN.train``. The batched learner's network work
    (greedy acting and updates) is its run less the same run with ``learning_starts`` past the
    end, which acts at random and never updates: what is left is stepping and storing.
    """
    config = CMConfig(asset="BTC", network=network)
    train = market.iloc[-900:]  # the last 900 bars: a training range as the paper's split makes it
    template = template_env(train, config, episode_length=config.episode_length)
    seeds = [config.seed + MEMBER_SEED_STRIDE * k for k in range(config.ensemble)]
    out = {"sb3_train": 0.0}

    def timed(train):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            train(*args, **kwargs)
            out["sb3_train"] += time.perf_counter() - t0

        return run

    sams = members(config, template)
    t0 = time.perf_counter()
    for sam in sams:
        sam.set_logger(make_logger(None, "bench"))  # no SB3-<time> folder in the temp folder
        sam.train = timed(sam.train)
        sam.learn(timesteps)
    out["sb3"] = time.perf_counter() - t0
    for key, hyperparams in (("batched", {}), ("batched_random", {"learning_starts": timesteps + 1})):
        sams = members(config, template)
        for sam in sams:
            sam.replay_buffer = None
        t0 = time.perf_counter()
        learn_dqn_members(
            sams,
            template,
            seeds,
            timesteps,
            config.algo_kwargs() | hyperparams,
            n_envs=config.n_envs,
            device=torch.device("cpu"),
        )
        out[key] = time.perf_counter() - t0
    return out


def bar_by_bar(module: CryptoModule, obs: np.ndarray) -> np.ndarray:
    """How a position-observing module decided before: each member through predict, bar by bar."""
    paths = []
    for sam in module.members:
        rows, path, position = np.array(obs, dtype=np.float32), np.empty(len(obs)), 0.0
        for i in range(len(rows)):
            with_position(rows[i], position)
            a, _ = sam.policy.predict(rows[i : i + 1], deterministic=True)
            path[i] = position = float(np.asarray(a).reshape(-1)[0])
        paths.append(path)
    return np.mean(paths, axis=0)


def scoring(market: pd.DataFrame, n_modules: int, bars: int, old_modules: int) -> tuple[float, float, bool]:
    """(old seconds extrapolated to n_modules, new seconds for n_modules, same decisions)."""
    config = CMConfig(asset="BTC")
    data = market.iloc[-(bars + 100) :]  # 2,400 decisions after the 60-bar features and the window
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dru = DataRefinementUnit().fit(data, None, data.index[-1], asset="BTC")
    template = template_env(data, config)
    pool = [members(CMConfig(asset="BTC", seed=s), template) for s in range(4)]  # 4 sets of 5 members, reused
    modules = [CryptoModule(config, dru, pool[i % 4][0], members=pool[i % 4]) for i in range(n_modules)]
    start = data.index[-bars]
    t0 = time.perf_counter()
    new = [m.decide_range(data, None, start) for m in modules]
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    same = True
    for m, decided in zip(modules[:old_modules], new, strict=False):
        env = m.env(data, None)
        crypto = m.shares(bar_by_bar(m, env.obs_tensor[env.first_step :])[-len(decided) :], env.scale[-len(decided) :])
        same = same and np.array_equal(crypto, decided["crypto"].to_numpy())
    t_old = (time.perf_counter() - t0) / old_modules * n_modules
    return t_old, t_new, same


def walk_forward_module(market: pd.DataFrame, network: str, repeat: int = 3) -> tuple[float, float, bool]:
    """(seconds validated along the way, seconds validated at the end alone, same decisions): the
    best of ``repeat`` runs of one default module on a window of the daily scoreboard."""
    config = CMConfig(asset="BTC", network=network)
    day = pd.Timedelta(days=1)
    t0 = pd.Timestamp("2023-01-01", tz="UTC")
    split = Split(
        (t0, t0 + pd.DateOffset(months=12) - day), (t0 + pd.DateOffset(months=12), t0 + pd.DateOffset(months=15) - day)
    )
    data = market.loc[t0 - pd.Timedelta(days=400) : split.validation[1]]
    times: dict[bool, float] = {}
    decided = {}
    for along in (True, False) * repeat:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            module, _ = train_crypto_module(
                data, None, config, split, eval_freq=2_000, on_evaluate=(lambda row: None) if along else None
            )
            times[along] = min(times.get(along, np.inf), time.perf_counter() - start)
        decided[along] = module.decide_range(data, None, *split.validation)
    return times[True], times[False], decided[True].equals(decided[False])


def train_cm_run() -> str:
    """Wall time and peak memory of train_cm on the demo market, default ensemble."""
    cmd = [sys.executable, "-m", "experiments.train_cm", "--asset", "BTC", "--source", "demo"]
    cmd += ["--no-save", "--tensorboard-log", "", "--no-progress"]
    full = ["/usr/bin/time", "-v", *cmd] if Path("/usr/bin/time").is_file() else cmd
    t0 = time.perf_counter()
    out = subprocess.run(full, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode:
        return f"failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}"
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    mem = f", peak RSS {int(rss.group(1)) / 1024:.0f} MB" if rss else ""
    return f"{wall:.1f} s wall{mem}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=int, default=10_000, help="timesteps per member (default 10000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--modules", type=int, default=80, help="modules scored (default 80)")
    p.add_argument("--bars", type=int, default=2_400, help="bars decided per module (default 2400)")
    p.add_argument("--old-modules", type=int, default=2, help="modules walked bar by bar (default 2)")
    p.add_argument("--skip-cli", action="store_true", help="do not time train_cm")
    p.add_argument(
        "--networks", nargs="+", default=["cnn", "mlp"], choices=NETWORKS, help="SAM networks trained (default both)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    market, source = load_btc()
    print(f"data: {source}, {len(market)} bars; torch threads {args.threads}")
    for name in args.networks:
        t = throughput(market, args.timesteps, name)
        steps = 5 * args.timesteps
        sb3, batched = steps / t["sb3"], steps / t["batched"]
        network = t["batched"] - t["batched_random"]
        print(
            f"training, 5-member DQN ({name}), {args.timesteps} steps per member: SB3 {sb3:,.0f} env steps/s, "
            f"batched {batched:,.0f} env steps/s, ratio {batched / sb3:.2f}x"
        )
        print(
            f"  SB3 {t['sb3']:.2f} s, {t['sb3_train']:.2f} s of it in gradient steps; batched {t['batched']:.2f} s, "
            f"{network:.2f} s of it in the networks (acting and updates): the ratio if stepping and storing "
            f"cost nothing {t['sb3'] / network:.1f}x"
        )
    old, new, same = scoring(market, args.modules, args.bars, args.old_modules)
    print(
        f"scoring {args.modules} five-member modules over {args.bars} bars: bar-by-bar walk {old:,.1f} s "
        f"(extrapolated from {args.old_modules}), batched {new:.1f} s, ratio {old / new:.0f}x, "
        f"same decisions: {same}"
    )
    for name in args.networks:
        along, once, same = walk_forward_module(market, name)
        print(
            f"one walk-forward module ({name}, defaults): validated every 2,000 steps {along:.2f} s, "
            f"once after training {once:.2f} s, ratio {along / once:.2f}x, same decisions: {same}"
        )
    if not args.skip_cli:
        print(f"python -m experiments.train_cm --asset BTC --source demo: {train_cm_run()}")


if __name__ == "__main__":
    main()
