"""How fast are the data stores? Upserts, re-upserts, queries and a file import.

Prints, for ``--years`` of hourly demo bars of one asset (and its ~22 metrics):

* ``upsert_market`` / ``upsert_metrics`` of the whole range in one batch (rows/s), and of
  1000-bar pages, one transaction each (the exchange downloader's pattern);
* the same upsert again (idempotent: nothing written, still validated and compared);
* ``market()`` / ``metrics()`` queries of the whole range and of the last 90 days;
* importing ``../shared/data/prices/daily`` (10 files) when that folder exists;
* importing freqtrade's 1h Feather files of 8 coins (``prices/binance_freqtrade``), as 1h bars
  and resampled to 6h on import (target: under 2 s for all eight), and the 1h -> 6h resample
  alone, when that folder exists.

Run: ``python benchmarks/data_store.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cryptorl.data import DataStore
from cryptorl.data.demo import demo_data
from cryptorl.data.files import import_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "prices" / "daily"
FREQTRADE = SHARED.parent / "binance_freqtrade"
COINS = ["BTC", "ETH", "LINK", "BNB", "LTC", "XRP", "ADA", "DOGE"]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--years", type=float, default=2.0, help="years of hourly bars (default: %(default)s)")
    args = p.parse_args()
    end = f"{2017 + int(args.years)}-{1 + int(args.years % 1 * 12):02d}-01"
    market, metrics = demo_data("BTC", "1h", "2017-01-01", end)
    n, nv = len(market), int(metrics.notna().sum().sum())
    print(f"{n} hourly bars, {metrics.shape[1]} metrics ({nv} values)")
    with tempfile.TemporaryDirectory() as d, DataStore(d) as s:
        _, t = timed(lambda: s.upsert_market("BTC", "1h", market, "demo"))
        print(f"upsert_market, one batch     {t:7.3f} s  {n / t:10,.0f} rows/s")
        _, t = timed(lambda: s.upsert_metrics("BTC", "1h", metrics, "demo"))
        print(f"upsert_metrics, one batch    {t:7.3f} s  {nv / t:10,.0f} values/s")
        _, t = timed(lambda: s.upsert_market("BTC", "1h", market, "demo"))
        print(f"upsert_market again (no-op)  {t:7.3f} s  {n / t:10,.0f} rows/s")
        _, t = timed(lambda: s.market("BTC", "1h"))
        print(f"market(), all                {t:7.3f} s")
        _, t = timed(lambda: s.metrics("BTC", "1h"))
        print(f"metrics(), all               {t:7.3f} s")
        start = market.index[-1] - (90 * 24 - 1) * market.index.freq
        _, t = timed(lambda: s.market("BTC", "1h", start))
        print(f"market(), last 90 days       {t:7.3f} s")
        _, t = timed(lambda: s.metrics("BTC", "1h", start))
        print(f"metrics(), last 90 days      {t:7.3f} s")
    with tempfile.TemporaryDirectory() as d, DataStore(d) as s:

        def pages():
            for i in range(0, n, 1000):
                s.upsert_market("BTC", "1h", market.iloc[i : i + 1000], "demo")

        _, t = timed(pages)
        print(f"upsert_market, 1000-bar pages {t:6.3f} s  {n / t:10,.0f} rows/s  ({-(-n // 1000)} transactions)")
    if SHARED.is_dir():
        with tempfile.TemporaryDirectory() as d, DataStore(d) as s:
            items, t = timed(lambda: import_path(SHARED, s))
            rows = sum(i.rows for i in items)
            print(f"import {SHARED.name}/ ({len(items)} files) {t:6.3f} s  {rows / t:10,.0f} rows/s")
    if FREQTRADE.is_dir():
        from cryptorl.data.resample import resample_market

        for interval in ("1h", "6h"):
            with tempfile.TemporaryDirectory() as d, DataStore(d) as s:
                items, t = timed(lambda iv=interval: import_path(FREQTRADE, s, assets=COINS, interval=iv))
                rows = sum(i.rows for i in items)
                print(
                    f"import {len(items)} coins x 1h feather as {interval:<3}  {t:6.3f} s  {rows:,} bars stored "
                    f"({'resampled on import' if interval != '1h' else 'as they are'})"
                )
        with tempfile.TemporaryDirectory() as d, DataStore(d) as s:
            hourly = [i.frame for i in import_path(FREQTRADE, s, assets=COINS, interval="1h")]
        _, t = timed(lambda: [resample_market(h, "1h", "6h") for h in hourly])
        print(
            f"resample 1h -> 6h, {len(hourly)} coins     {t:6.3f} s  {sum(map(len, hourly)) / t:10,.0f} hourly bars/s"
        )


if __name__ == "__main__":
    main()
