"""How long do the alternative agents take on CPU? Fit and weights time per agent on demo data.

Each agent is fitted on the demo market's bars up to 2022-02-28 (BTC, ETH, LINK, daily, from
2020-10-01: 516 bars) with its full default settings (or ``--fast``), then gives weights for
2022-03-01 .. 2022-09-30 (214 bars). Prints seconds (wall and process CPU), the epochs the
networks trained before early stopping, and the backtest Sharpe of each agent.

Run: ``python benchmarks/agents_fit_time.py [--fast] [--agents lstm,dls]`` (``--help``).
"""

from __future__ import annotations

import argparse
import time

import torch

from agents.catalog import AGENT_NAMES, make_agents
from cryptorl.data.demo import demo_data
from cryptorl.portfolio import backtest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="tiny networks, 3 epochs")
    p.add_argument("--agents", default=",".join(AGENT_NAMES), help="comma-separated agent names")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    assets = ["BTC", "ETH", "LINK"]
    mk, mx = {}, {}
    for a in assets:
        mk[a], mx[a] = demo_data(a)
    names = [n.strip() for n in args.agents.split(",") if n.strip()]
    print(f"{'agent':16s} {'fit s':>8s} {'fit cpu':>8s} {'weights s':>10s} {'epochs':>8s} {'Sharpe':>8s}")
    for name, agent in make_agents(names, fast=args.fast).items():
        t0, c0 = time.perf_counter(), time.process_time()
        agent.fit(mk, mx, end="2022-02-28")
        t1, c1 = time.perf_counter(), time.process_time()
        w = agent.weights(mk, mx, start="2022-03-01", end="2022-09-30")
        t2 = time.perf_counter()
        hist = getattr(agent, "history", None)
        if isinstance(hist, dict):
            epochs = ",".join(str(len(h.train_loss)) for h in {id(h): h for h in hist.values()}.values())
        elif hist is not None:
            epochs = str(len(hist.train_loss))
        else:
            epochs = "-"
        sharpe = backtest(w, mk, interval="1d").metrics()["Sharpe"]
        print(f"{name:16s} {t1 - t0:8.2f} {c1 - c0:8.2f} {t2 - t1:10.2f} {epochs:>8s} {sharpe:8.2f}")


if __name__ == "__main__":
    main()
