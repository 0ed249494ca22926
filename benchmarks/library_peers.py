"""DQN libraries on the Crypto Module's training configuration: SBX and TorchRL beside SB3 and the batched learner.

Every learner trains the members of a five-member DQN ensemble on the default configuration
(``CMConfig()``: 30-bar window, market features, the position observed, 64 episodes per
member in one ``CryptoModuleVecEnv``, the DQN hyper-parameters of ``CMConfig.algo_kwargs()``)
on the last 900 bars of real daily BTC (``../shared/data/prices/daily/BTC-USD_1d.csv``; the demo
market when that folder is absent), measured in the same run:

* **SB3**: ``stable_baselines3.DQN`` with the package's network (``build_algo``), one member at a time.
* **batched**: ``agents.batched.learn_dqn_members``, all members as one stacked network.
* **SBX** (``pip install sbx-rl``): the SB3 authors' JAX DQN, one member at a time, with the
  package's network written in Flax (SBX takes no torch feature extractor; the same layers and
  parameter count as ``SAMCNN`` and the Q head); **sbx-mlp**: SBX's own MLP Q-network on the
  flattened observation (two hidden layers of 64 units), a cheaper network than the others.
* **TorchRL** (``pip install torchrl``): TorchRL's ``DQNLoss`` (Huber loss, target network
  copied as SB3 does) and ``TensorDictReplayBuffer`` around the package's network (SB3's
  ``q_net`` of ``build_algo``), a CleanRL-style loop, one member at a time, SB3's schedule
  (epsilon-greedy, ``train_freq``, ``gradient_steps``, gradient norm clipped to 10).

Each member first runs ``--warmup`` steps (random actions until ``learning_starts``, JIT
compilation for SBX), then ``--steps`` timed steps; the figure is env steps per second summed
over the members in the timed part, in wall time and per CPU second of the process (steadier on
a machine shared with other work), the whole run's rate beside, and the ratios to SB3 in the
same round (``--rounds`` repeats the comparison). A library that is not installed is reported so. ``--variants`` also times the batched learner with fewer, larger
gradient steps (``gradient_steps``, ``batch_size``, ``train_freq``), each ``--repeat`` times
interleaved, the median kept: throughput only, the defaults are not changed by it. XLA and
torch run one intra-op thread each (``--threads`` for torch).

    python benchmarks/library_peers.py                   # two to five minutes on 2 shared cores
    python benchmarks/library_peers.py --variants --skip sbx,torchrl
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from pathlib import Path

# One intra-op thread for XLA as for torch (set before JAX is imported).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from batched_learner import load_btc, members  # noqa: E402

from agents.batched import learn_dqn_members  # noqa: E402
from agents.crypto_module import MEMBER_SEED_STRIDE, CMConfig  # noqa: E402
from agents.training import make_logger  # noqa: E402
from envs import CryptoModuleEnv, CryptoModuleVecEnv  # noqa: E402
from envs.features import market_features  # noqa: E402

LEARNERS = ("sb3", "batched", "sbx", "sbx-mlp", "torchrl")


def clock() -> tuple[float, float]:
    """(wall, CPU) seconds: CPU seconds of this process (all its threads) stay steadier than
    wall time on a machine shared with other work."""
    return time.perf_counter(), time.process_time()


class Rate:
    """Env steps per second summed over members: the timed part (wall and CPU), and the whole run."""

    def __init__(self):
        self.steps = self.wall = self.cpu = self.all_steps = self.all_wall = 0.0

    def add(self, start: tuple, mark: tuple, end: tuple, warm_steps: int, steps: int) -> None:
        """One run from ``start`` (clock()), timed from ``mark`` after ``warm_steps`` to ``end``."""
        self.steps += steps
        self.wall += end[0] - mark[0]
        self.cpu += end[1] - mark[1]
        self.all_steps += warm_steps + steps
        self.all_wall += end[0] - start[0]

    @property
    def per_s(self) -> float:
        return self.steps / self.wall

    @property
    def per_cpu_s(self) -> float:
        return self.steps / self.cpu

    def __str__(self) -> str:
        return (
            f"{self.per_s:8,.0f} env steps/s, {self.per_cpu_s:8,.0f} per CPU second "
            f"({self.all_steps / self.all_wall:,.0f}/s whole run)"
        )


def template_env(market, config: CMConfig) -> CryptoModuleEnv:
    train = market.iloc[-900:]  # the last 900 bars: a training range as the paper's split makes it
    return CryptoModuleEnv(
        train,
        market_features(train, config.features),
        window=config.window,
        episode_length=config.episode_length,
        observe_position=True,
        allow_gaps=True,
    )


def seeds_of(config: CMConfig) -> list[int]:
    return [config.seed + MEMBER_SEED_STRIDE * k for k in range(config.ensemble)]


def sb3_rate(config: CMConfig, template: CryptoModuleEnv, warmup: int, steps: int) -> Rate:
    rate = Rate()
    for sam in members(config, template):
        sam.set_logger(make_logger(None, "bench"))  # no SB3-<time> folder in the temp folder
        start = clock()
        sam.learn(warmup)
        mark, done = clock(), sam.num_timesteps
        sam.learn(steps, reset_num_timesteps=False)
        rate.add(start, mark, clock(), done, sam.num_timesteps - done)
        sam.replay_buffer = None
    return rate


def batched_rate(config: CMConfig, template: CryptoModuleEnv, warmup: int, steps: int, **overrides) -> Rate:
    sams = members(config, template)
    for sam in sams:
        sam.replay_buffer = None
    marks: list[tuple[int, tuple]] = []

    def on_step(timesteps: int) -> None:
        if not marks and timesteps >= warmup:
            marks.append((timesteps, clock()))

    hp = config.algo_kwargs() | overrides
    start = clock()
    learn_dqn_members(
        sams,
        template,
        seeds_of(config),
        warmup + steps,
        hp,
        n_envs=config.n_envs,
        device=torch.device("cpu"),
        on_step=on_step,
    )
    end, total = clock(), sams[0].num_timesteps
    (done, mark), k = marks[0], config.ensemble
    rate = Rate()
    rate.add(start, mark, end, k * done, k * (total - done))
    return rate


def sbx_sam_policy():
    """SBX's DQN policy with the package's SAM network (:class:`agents.networks.SAMCNN` and the
    64-unit Q head) written in Flax, so that SBX is timed on the same network as the others."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    from sbx.common.type_aliases import RLTrainState
    from sbx.dqn.policies import DQNPolicy

    class SAMQNetwork(nn.Module):
        n_actions: int
        channels: int = 8
        features_dim: int = 64
        n_units: int = 64

        @nn.compact
        def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
            h = jnp.transpose(x, (0, 2, 3, 1))  # (batch, m, n, f): rows, time, channels last
            h = nn.relu(nn.Conv(self.channels, (1, 3), strides=(1, 2), padding="VALID")(h))
            h = nn.relu(nn.Conv(self.channels, (1, 3), padding="VALID")(h))
            h = nn.relu(nn.Conv(self.channels, (1, h.shape[2]), padding="VALID")(h))  # collapses time
            h = nn.relu(nn.Dense(self.channels)(h.reshape(h.shape[0], -1)))  # mixes crypto and cash
            h = nn.relu(nn.Dense(self.features_dim)(h))
            h = nn.relu(nn.Dense(self.n_units)(h))
            return nn.Dense(self.n_actions)(h)

    class SAMPolicy(DQNPolicy):
        def build(self, key, lr_schedule):  # DQNPolicy.build with the SAM network
            key, qf_key = jax.random.split(key, 2)
            obs = jnp.array([self.observation_space.sample()])
            self.qf = SAMQNetwork(n_actions=int(self.action_space.n))
            self.qf_state = RLTrainState.create(
                apply_fn=self.qf.apply,
                params=self.qf.init({"params": qf_key}, obs),
                target_params=self.qf.init({"params": qf_key}, obs),
                tx=self.optimizer_class(learning_rate=lr_schedule(1), **self.optimizer_kwargs),
            )
            self.qf.apply = jax.jit(self.qf.apply)
            return key

    return SAMPolicy


def sbx_rate(config: CMConfig, template: CryptoModuleEnv, warmup: int, steps: int, network: str = "sam") -> Rate:
    from sbx import DQN

    policy, kwargs = (sbx_sam_policy(), {}) if network == "sam" else ("MlpPolicy", {"net_arch": [64]})
    rate = Rate()
    for seed in seeds_of(config):
        env = CryptoModuleVecEnv(template, config.n_envs, seed=seed)
        model = DQN(policy, env, policy_kwargs=kwargs, seed=seed, verbose=0, **config.algo_kwargs())
        model.set_logger(make_logger(None, "bench"))
        start = clock()
        model.learn(warmup)
        mark, done = clock(), model.num_timesteps
        model.learn(steps, reset_num_timesteps=False)
        rate.add(start, mark, clock(), done, model.num_timesteps - done)
    return rate


def torchrl_member(sam, template: CryptoModuleEnv, seed: int, warmup: int, steps: int, hp: dict) -> tuple:
    """One member with TorchRL's DQN loss and replay buffer: the arguments of :meth:`Rate.add`."""
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
    from torchrl.modules import QValueActor
    from torchrl.objectives import DQNLoss, HardUpdate

    logging.getLogger("torchrl").setLevel(logging.WARNING)  # not a line per buffer

    env = sam.env
    n, total = env.num_envs, warmup + steps
    actor = QValueActor(sam.q_net, in_keys=["observation"], action_space="categorical")
    loss_module = DQNLoss(actor, loss_function="smooth_l1", delay_value=True, action_space="categorical")
    loss_module.make_value_estimator(gamma=float(hp["gamma"]))
    # SB3 copies every target_update_interval // n vector steps; HardUpdate copies at its (interval + 1)-th step
    every = max(hp["target_update_interval"] // n, 1)
    target = HardUpdate(loss_module, value_network_update_interval=every - 1)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=float(hp["learning_rate"]))
    # the buffer never fills in so short a run: sized to the run, not to buffer_size
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(min(int(hp["buffer_size"]), total)), batch_size=int(hp["batch_size"])
    )
    rng = np.random.default_rng(seed)
    obs = env.reset()
    timesteps, calls, mark = 0, 0, None
    start = clock()
    while timesteps < total:
        frac = min(timesteps / total / hp["exploration_fraction"], 1.0)
        epsilon = 1.0 + frac * (hp["exploration_final_eps"] - 1.0)
        if timesteps < hp["learning_starts"]:
            actions = rng.integers(0, 2, size=n)
        else:
            with torch.no_grad():
                actions = actor(TensorDict(observation=torch.as_tensor(obs), batch_size=[n]))["action"].numpy()
            explored = rng.random(n) < epsilon
            actions[explored] = rng.integers(0, 2, size=int(explored.sum()))
        new_obs, rewards, dones, infos = env.step(actions)
        next_obs = new_obs.copy()
        for i in np.flatnonzero(dones):  # episodes end by truncation: bootstrap from the last observation
            next_obs[i] = infos[i]["terminal_observation"]
        no_end = torch.zeros(n, 1, dtype=torch.bool)
        buffer.extend(
            TensorDict(
                {
                    "observation": torch.as_tensor(obs),
                    "action": torch.as_tensor(actions),
                    "next": {
                        "observation": torch.as_tensor(next_obs),
                        "reward": torch.as_tensor(rewards, dtype=torch.float32)[:, None],
                        "done": no_end,
                        "terminated": no_end,
                    },
                },
                batch_size=[n],
            )
        )
        obs = new_obs
        timesteps += n
        calls += 1
        target.step()
        if timesteps > hp["learning_starts"] and calls % hp["train_freq"] == 0:
            for _ in range(hp["gradient_steps"]):
                loss = loss_module(buffer.sample())["loss"]
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(loss_module.parameters(), 10.0)
                optimizer.step()
        if mark is None and timesteps >= warmup:
            mark = (timesteps, clock())
    (done, at), end = mark, clock()
    return start, at, end, done, timesteps - done


def torchrl_rate(config: CMConfig, template: CryptoModuleEnv, warmup: int, steps: int) -> Rate:
    hp = config.algo_kwargs()
    rate = Rate()
    for sam, seed in zip(members(config, template), seeds_of(config), strict=True):
        sam.replay_buffer = None
        rate.add(*torchrl_member(sam, template, seed, warmup, steps, hp))
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warmup", type=int, default=1_000, help="untimed steps per member first (default 1000)")
    p.add_argument("--steps", type=int, default=4_000, help="timed steps per member (default 4000)")
    p.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--skip", default="", help="learners left out, comma-separated among " + ", ".join(LEARNERS))
    p.add_argument("--variants", action="store_true", help="also time the batched learner's update variants")
    p.add_argument("--rounds", type=int, default=1, help="rounds of the learners' comparison (default 1)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each variant, the median kept (default 3)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    market, source = load_btc()
    config = CMConfig(asset="BTC", ensemble=args.members)
    template = template_env(market, config)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    print(
        f"data: {source}, {len(market)} bars (the last 900 trained on); {args.members} members x "
        f"{config.n_envs} envs, window {config.window}, obs {template.observation_space.shape}; "
        f"{args.warmup} warm-up + {args.steps} timed steps per member; torch threads {args.threads}"
    )
    runs = {
        "sb3": sb3_rate,
        "batched": batched_rate,
        "sbx": sbx_rate,
        "sbx-mlp": functools.partial(sbx_rate, network="mlp"),
        "torchrl": torchrl_rate,
    }
    packages = {"sbx": "sbx-rl", "sbx-mlp": "sbx-rl", "torchrl": "torchrl"}
    ratios: dict[str, list[tuple[float, float]]] = {name: [] for name in runs if name not in skip}
    for round_ in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_ + 1} of {args.rounds}:")
        results: dict[str, Rate] = {}
        for name, run in runs.items():
            if name in skip:
                continue
            try:
                results[name] = rate = run(config, template, args.warmup, args.steps)
            except ImportError as exc:
                print(f"{name:<8} not measured: {exc} (pip install {packages.get(name, name)})")
                skip.add(name)
                continue
            line = f"{name:<8} {rate}"
            if "sb3" in results:
                sb3 = results["sb3"]
                ratios[name].append((rate.per_s / sb3.per_s, rate.per_cpu_s / sb3.per_cpu_s))
                line += f"; {ratios[name][-1][0]:.2f}x SB3 ({ratios[name][-1][1]:.2f}x per CPU second)"
            print(line, flush=True)
    if args.rounds > 1 and "sb3" not in skip:
        print(f"median over {args.rounds} rounds of the ratio to SB3 in the same round:")
        for name, values in ratios.items():
            if values:
                wall, cpu = np.median(values, axis=0)
                print(f"  {name:<8} {wall:.2f}x ({cpu:.2f}x per CPU second)")
    if args.variants:
        print(f"batched learner, update variants (throughput only, median of {args.repeat}):")
        variants = [(2, 128, 1), (1, 256, 1), (1, 128, 1), (1, 256, 2), (2, 128, 2), (1, 256, 4), (2, 256, 4)]
        rates: dict[tuple[int, int, int], list[Rate]] = {v: [] for v in variants}
        for _ in range(args.repeat):  # interleaved: a busy moment of the machine spreads over all
            for gs, batch, freq in variants:
                hp = {"gradient_steps": gs, "batch_size": batch, "train_freq": freq}
                rates[gs, batch, freq].append(batched_rate(config, template, args.warmup, args.steps, **hp))
        for (gs, batch, freq), values in rates.items():
            samples = gs * batch / (freq * config.n_envs)
            print(
                f"  gradient_steps {gs}, batch_size {batch:>3}, train_freq {freq} ({samples:.1f} sampled "
                f"transitions per env step): {np.median([r.per_s for r in values]):8,.0f} env steps/s, "
                f"{np.median([r.per_cpu_s for r in values]):8,.0f} per CPU second "
                f"(runs: {', '.join(f'{r.per_s:,.0f}' for r in values)})"
            )


if __name__ == "__main__":
    main()
