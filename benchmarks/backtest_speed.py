"""How fast is the backtest engine? A 4-asset portfolio over 5 years of daily demo bars.

Times (median of ``--repeats`` runs):

* ``backtest()`` of random weights and of CRP (validation of inputs + the vectorised accounting);
* the array core ``simulate()`` alone;
* a voted portfolio end to end: batched decisions of four stand-in Crypto Modules (a 64x64
  MLP, the stable-baselines3 default size, run once over every 30-bar window of the 5 years,
  random weights since only the cost matters here), the vote, the backtest and the metrics;
* for comparison, the same accounting stepped bar by bar in Python (as an environment does).

Run: ``python benchmarks/backtest_speed.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
import torch

from cryptorl.data.demo import demo_market
from cryptorl.portfolio import backtest, constant_rebalanced, simulate, vote

ASSETS = ["BTC", "ETH", "LINK", "BNB"]


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def stand_in_module(window: int, n_features: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(window * n_features, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 2),
    ).eval()


def batched_decisions(market, net, window: int):
    """(cash, crypto) at every bar from one batched forward pass over all windows (data up to t)."""
    x = np.log(market[["open", "high", "low", "close"]].to_numpy() / market["close"].to_numpy()[:, None])
    x = np.column_stack([x, np.log1p(market["volume"].to_numpy())])
    windows = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # (T - window + 1, f, window)
    with torch.inference_mode():
        action = net(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))).argmax(1).numpy()
    crypto = np.zeros(len(market))
    crypto[window - 1 :] = action  # all cash during the warm-up
    return pd.DataFrame({"cash": 1.0 - crypto, "crypto": crypto}, index=market.index)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", default="2017-10-01", help="first bar (default: five years before --end)")
    ap.add_argument("--end", default="2022-09-30", help="last bar")
    ap.add_argument("--repeats", type=int, default=20, help="runs per figure (the median is printed)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    markets = {a: demo_market(a, "1d", args.start, args.end) for a in ASSETS}
    index = markets[ASSETS[0]].index
    n = len(index)
    rng = np.random.default_rng(0)
    random_w = pd.DataFrame(rng.dirichlet(np.ones(len(ASSETS) + 1), size=n), index=index, columns=["cash", *ASSETS])
    crp_w = constant_rebalanced(markets, ASSETS)
    close = np.column_stack([markets[a]["close"].to_numpy() for a in ASSETS])
    open_ = np.column_stack([markets[a]["open"].to_numpy() for a in ASSETS])
    window = 30
    nets = {a: stand_in_module(window, 5) for a in ASSETS}

    def voted_end_to_end():
        decisions = {a: batched_decisions(markets[a], nets[a], window) for a in ASSETS}
        res = backtest(vote(decisions), markets, interval="1d")
        return res.metrics()

    def step_by_step():
        w = random_w.to_numpy()
        v, held = 1.0, np.eye(len(ASSETS) + 1)[0]
        for t in range(n - 1):
            mu = 1 - 0.001 * np.abs(w[t, 1:] - held[1:]).sum()
            y = np.concatenate([[1.0], close[t + 1] / close[t]])
            g = w[t] @ y
            v, held = v * mu * g, w[t] * y / g
        return v

    rows = [
        ("backtest(random weights), close", timed(lambda: backtest(random_w, markets, interval="1d"), args.repeats)[0]),
        (
            "backtest(random weights), next_open",
            timed(lambda: backtest(random_w, markets, interval="1d", execution="next_open"), args.repeats)[0],
        ),
        ("backtest(CRP)", timed(lambda: backtest(crp_w, markets, interval="1d"), args.repeats)[0]),
        ("simulate() core only", timed(lambda: simulate(random_w.to_numpy(), close, open_), args.repeats)[0]),
        ("4 CMs batched decisions + vote + backtest + metrics", timed(voted_end_to_end, max(3, args.repeats // 4))[0]),
        ("reference: Python loop over bars", timed(step_by_step, max(3, args.repeats // 4))[0]),
    ]
    print(f"{len(ASSETS)} assets x {n} daily bars ({index[0].date()} .. {index[-1].date()}), median of runs:")
    for name, secs in rows:
        print(f"  {name:<55s} {secs * 1e3:9.2f} ms")


if __name__ == "__main__":
    main()
