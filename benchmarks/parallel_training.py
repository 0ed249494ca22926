"""Training many Crypto Modules: one after another in one process vs Ray tasks (cryptorl.parallel).

Prints, in one run, on the demo market (4 assets x seeds, small modules: PPO, 16 episodes,
``--timesteps`` steps each, validation every half of them):

* 16 modules trained sequentially (``run_tasks(..., workers=1)``: in process, torch on one
  thread) and through Ray (alternating, best of ``--repeat``) (``run_tasks`` on a local instance with all cores), the speed-up, cold
  (the Ray instance started and its workers importing torch/SB3 inside the timing) and warm
  (workers already up, as in any later call of the same process);
* Ray's overhead per task: (Ray wall time x CPUs - the time the tasks spent training) / tasks on
  the warm run, and the wall time of 200 empty tasks / 200;
* how the wall time grows from 4 to 16 to 64 modules on Ray (``--sizes``).

The parallel results are checked against the sequential ones (same seeds: same weights).

    python benchmarks/parallel_training.py                  # about 5 minutes on 2 quiet cores
    python benchmarks/parallel_training.py --timesteps 1024 --sizes 4,16
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.crypto_module import CMConfig  # noqa: E402
from agents.jobs import TrainJob, train_job  # noqa: E402
from agents.training import paper_split  # noqa: E402
from cryptorl.data import load_data  # noqa: E402
from cryptorl.parallel import run_tasks  # noqa: E402

ASSETS = ("BTC", "ETH", "LINK", "BNB")


@dataclass(frozen=True)
class Timed:
    result: object
    seconds: float  # time spent inside the task


def timed_train(job: TrainJob) -> Timed:
    t = time.perf_counter()
    result = train_job(job)
    return Timed(result, time.perf_counter() - t)


def nothing(_: int) -> None:
    return None


def jobs(n: int, timesteps: int, data) -> list[TrainJob]:
    out = []
    for i in range(n):
        asset = ASSETS[i % len(ASSETS)]
        market, metrics, split = data[asset]
        config = CMConfig(asset=asset, timesteps=timesteps, n_envs=16, episode_length=64, seed=i // len(ASSETS))
        out.append(TrainJob(market, metrics, config, split, eval_freq=max(1, timesteps // 2)))
    return out


def run(batch: list[TrainJob], workers: int | None) -> tuple[float, list]:
    t = time.perf_counter()
    outcomes = run_tasks(
        timed_train, batch, labels=[j.label for j in batch], workers=workers, desc="modules", progress=False
    )
    wall = time.perf_counter() - t
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"{len(failed)} task(s) failed: {failed[0].label}: {failed[0].error}")
    return wall, [o.value for o in outcomes]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=int, default=2048, help="training timesteps per module (default 2048)")
    p.add_argument(
        "--repeat", type=int, default=2, help="sequential / Ray runs of the 16 modules, best kept (default 2)"
    )
    p.add_argument("--sizes", default="4,16,64", help="numbers of modules for the growth table (default 4,16,64)")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cpus = os.cpu_count() or 1

    import ray
    import torch

    torch.set_num_threads(1)
    data = {}
    for asset in ASSETS:
        market, metrics = load_data(asset, "1d", "2020-03-01", "2022-09-30", source="demo")
        data[asset] = (market, metrics, paper_split(market.index))
    print(
        f"{cpus} CPUs, load average at start {load()}; PPO modules of {args.timesteps} steps, 16 episodes "
        f"per step, demo market {', '.join(ASSETS)}"
    )

    base = jobs(16, args.timesteps, data)
    run(base[:1], workers=1)  # warm-up: this process's first training pays torch's start-up
    cold_wall, _ = run(base, workers=None)  # starts the local Ray instance: all cores
    # Sequential and warm Ray runs alternate, best of --repeat each: other load on a shared
    # machine then hits both sides alike, and the minimum is the least disturbed run.
    seq_runs, warm_runs = [], []
    for _ in range(args.repeat):
        seq_runs.append(run(base, workers=1))
        warm_runs.append(run(base, workers=None))
    seq_wall, seq = min(seq_runs, key=lambda r: r[0])
    warm_wall, warm = min(warm_runs, key=lambda r: r[0])
    busy = sum(r.seconds for r in seq)
    print(
        f"\n16 modules, sequential (in process): {seq_wall:7.1f} s  ({busy / 16:.2f} s per module; runs "
        f"{', '.join(f'{w:.1f}' for w, _ in seq_runs)} s)"
    )
    ray_cpus = int(ray.cluster_resources().get("CPU", cpus))
    same = all(
        a.result.module().sam.policy.state_dict().keys() == b.result.module().sam.policy.state_dict().keys()
        and all(
            (x == y).all()
            for x, y in zip(
                a.result.module().sam.policy.state_dict().values(),
                b.result.module().sam.policy.state_dict().values(),
                strict=True,
            )
        )
        for a, b in zip(seq, warm, strict=True)
    )
    print(
        f"16 modules, Ray cold ({ray_cpus} CPUs):  {cold_wall:7.1f} s  speed-up {seq_wall / cold_wall:.2f}x "
        "(instance start and worker imports included)"
    )
    print(
        f"16 modules, Ray warm ({ray_cpus} CPUs):  {warm_wall:7.1f} s  speed-up {seq_wall / warm_wall:.2f}x "
        f"(target >= 1.8x; runs {', '.join(f'{w:.1f}' for w, _ in warm_runs)} s); "
        f"same weights as sequential: {same}"
    )
    inside = sum(r.seconds for r in warm)
    overhead = (warm_wall * ray_cpus - inside) / len(warm)
    print(
        f"Ray overhead per training task: {overhead:.3f} s  (wall x CPUs - time inside the tasks, per task; "
        "target < 0.5 s)"
    )
    t = time.perf_counter()
    run_tasks(nothing, list(range(200)), progress=False)
    print(f"Ray round trip of an empty task: {(time.perf_counter() - t) / 200 * 1000:.1f} ms (200 tasks)")

    print("\nGrowth on Ray (warm):")
    print(f"{'modules':>8} {'wall s':>8} {'s/module':>9} {'x sequential est.':>18}")
    per_module = seq_wall / 16
    for n in sizes:
        wall, _ = run(jobs(n, args.timesteps, data), workers=None)
        print(f"{n:>8} {wall:>8.1f} {wall / n:>9.2f} {per_module * n / wall:>17.2f}x")
    print(f"\nload average at end {load()} (the machine may be shared: compare with the start)")


if __name__ == "__main__":
    main()
