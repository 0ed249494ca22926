"""How long does one interval of the live loop take, outside the exchange's own latency?

One cycle = decide (equal weights, so the decision costs nothing) -> read balances and prices ->
plan orders (ccxt rounding) -> journal the plan -> look each order up by client id -> place it
-> journal the result. Measured for:

* a real ``ccxt.binance`` whose HTTP session is the in-process simulated Binance spot API of the
  tests (``tests/binance_spot_sim.py``): ccxt's signing, parsing and precision code and our
  journal, without network latency (a real exchange adds ~2 round trips per order), with ccxt's
  rate limiter on (as the loop runs: it spaces requests by ``exchange.rateLimit`` = 50 ms) and off
  (our and ccxt's own processing only);
* the SQLite paper account, including feeding it the interval's bar (fills at the open).

Prints the median milliseconds per interval and per order. Run:
``python benchmarks/live_cycle.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from binance_spot_sim import binance_markets, connect_sim

from cryptorl.live import (
    DemoBars,
    LiveTrader,
    PaperExchange,
    equal_weight,
    paper_feeder,
)

ASSETS = ["BTC", "ETH", "LINK"]
START = pd.Timestamp("2024-01-01 00:00:05", tz="UTC")


def ccxt_cycles(n: int, folder: Path, rate_limit: bool = True) -> tuple[list[float], int]:
    sim, exchange = connect_sim({"USDT": 100_000}, {"BTCUSDT": 43210.55, "ETHUSDT": 2250.12, "LINKUSDT": 14.56})
    exchange.enableRateLimit = rate_limit  # ccxt spaces requests by exchange.rateLimit ms when on
    trader = LiveTrader(
        equal_weight(ASSETS),
        exchange,
        assets=ASSETS,
        interval="1h",
        portfolio_id=f"bench{rate_limit}",
        journal_path=folder / "ccxt-journal.sqlite",
        live=True,
    )
    exchange.load_markets()
    times = []
    for i in range(n):
        # BTC and ETH move apart so that every interval rebalances
        sim.prices["BTCUSDT"] *= 1.03 if i % 2 else 1 / 1.03
        sim.prices["ETHUSDT"] *= 1 / 1.03 if i % 2 else 1.03
        t = time.perf_counter()
        report = trader.run_once(START + pd.Timedelta(hours=i))
        times.append(time.perf_counter() - t)
        assert report.status == "done"
    return times, len(sim.orders)


def paper_cycles(n: int, folder: Path) -> tuple[list[float], int]:
    paper = PaperExchange(folder / "paper.sqlite", binance_markets(), interval="1h", initial_balance={"USDT": 100_000})
    bars = DemoBars("1h", horizon="2024-03-01")
    trader = LiveTrader(
        equal_weight(ASSETS),
        paper,
        assets=ASSETS,
        interval="1h",
        portfolio_id="bench",
        journal_path=folder / "paper-journal.sqlite",
        prepare=paper_feeder(paper, bars, ASSETS),
    )
    (
        bars.market("BTC", START.floor("1h"), 2),
        bars.market("ETH", START.floor("1h"), 2),
        bars.market("LINK", START.floor("1h"), 2),
    )
    times = []
    for i in range(n):
        t = time.perf_counter()
        report = trader.run_once(START + pd.Timedelta(hours=i))
        times.append(time.perf_counter() - t)
        assert report.status == "done"
    return times, len(paper.fills())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--intervals", type=int, default=40, help="intervals per measurement (default: %(default)s)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = (
            ("ccxt.binance, rate limiter on", ccxt_cycles),
            ("ccxt.binance, rate limiter off", lambda n, f: ccxt_cycles(n, f, rate_limit=False)),
            ("paper account (SQLite)", paper_cycles),
        )
        for name, fn in runs:
            times, orders = fn(args.intervals, folder)
            per = statistics.median(times) * 1000
            print(
                f"{name:<30} {per:7.1f} ms per interval (median of {len(times)}), "
                f"{orders} orders, {sum(times) / max(orders, 1) * 1000:6.1f} ms per order"
            )


if __name__ == "__main__":
    main()
