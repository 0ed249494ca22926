"""Benchmark: the DRU's rolling normalisation + rolling PCA against a naive scikit-learn loop.

Refines the 10 metrics the DRU picks for a demo asset over 50,000 hourly rows with 90-row
windows, and prints the time of ``DataRefinementUnit.transform`` next to a naive loop that
refits ``sklearn.decomposition.PCA`` at every row (same normalised input, same sign rule), the
speed-up, and the largest absolute difference between the two outputs.

    python benchmarks/dru_rolling_pca.py                      # the whole naive loop (~1 min)
    python benchmarks/dru_rolling_pca.py --naive-rows 5000    # naive on a subset, extrapolated
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptorl.data.demo import demo_data
from cryptorl.features import DataRefinementUnit, rolling_pca, rolling_pca_reference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000, help="rows to refine (default 50000)")
    ap.add_argument("--metrics", type=int, default=10, help="metrics the DRU keeps (default 10)")
    ap.add_argument("--window", type=int, default=90, help="norm_window = pca_window (default 90)")
    ap.add_argument(
        "--naive-rows",
        type=int,
        default=None,
        help="time the naive loop on the last N rows only and extrapolate (default: all rows)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for our implementation (default 3)")
    args = ap.parse_args()

    start = pd.Timestamp("2017-01-01", tz="UTC")
    end = start + pd.Timedelta(hours=args.rows - 1)
    t0 = time.perf_counter()
    market, metrics = demo_data("BTC", "1h", start, end)
    print(
        f"data: demo BTC 1h, {len(market):,} rows x {metrics.shape[1]} metrics ({time.perf_counter() - t0:.1f} s to generate)"
    )

    train_end = market.index[min(len(market) - 1, 10_000)]
    dru = DataRefinementUnit(max_metrics=args.metrics, norm_window=args.window, pca_window=args.window)
    dru.fit(market, metrics, train_end, asset="BTC")
    print(
        f"DRU: fitted on the first 10,000 rows: {len(dru.metrics)} metrics -> k = {dru.n_components} components; "
        f"windows {args.window} rows"
    )

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = dru.transform(market, metrics).to_numpy()
        times.append(time.perf_counter() - t0)
    t_ours = min(times)
    # the same normalised input for both PCA implementations
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptorl.features.dru import _align

        z = dru._normalise(_align(metrics[dru.metrics], market.index, dru.ffill_limit), "BTC", "benchmark")
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        core = rolling_pca(z, dru.pca_window, dru.reference_loadings)
        times.append(time.perf_counter() - t0)
    t_core = min(times)
    assert np.array_equal(core, ours, equal_nan=True)

    n = len(z)
    first = dru.norm_window - 1  # first row with a normalised value
    lo = first if args.naive_rows is None else max(first, n - args.naive_rows)
    w = dru.pca_window
    naive = np.full_like(ours, np.nan)
    step = 2_500
    t0 = time.perf_counter()
    for s in tqdm(range(lo + w - 1, n, step), desc="naive sklearn loop", unit="chunk", leave=False):
        e = min(n, s + step)
        naive[s:e] = rolling_pca_reference(z[s - w + 1 : e], w, dru.reference_loadings)[w - 1 :]
    t_naive = time.perf_counter() - t0
    rows_naive = n - (lo + w - 1)
    rows_all = n - (first + w - 1)
    t_naive_all = t_naive * rows_all / rows_naive
    both = ~np.isnan(naive).any(axis=1)
    diff = float(np.max(np.abs(ours[both] - naive[both])))

    print()
    print(f"{'implementation':<44} {'rows':>8} {'seconds':>9}")
    print(f"{'ours: DataRefinementUnit.transform (all)':<44} {n:>8,} {t_ours:>9.3f}  (best of {args.repeat})")
    print(f"{'ours: rolling_pca core only':<44} {n:>8,} {t_core:>9.3f}  (best of {args.repeat})")
    label = "naive: sklearn PCA refit at every row"
    print(f"{label:<44} {rows_naive:>8,} {t_naive:>9.3f}")
    if rows_naive < rows_all:
        print(f"{'naive, extrapolated to all rows':<44} {rows_all:>8,} {t_naive_all:>9.3f}  (linear in rows)")
    print()
    print(f"speed-up, whole transform vs naive PCA loop: {t_naive_all / t_ours:,.0f}x")
    print(f"speed-up, rolling_pca core vs naive PCA loop: {t_naive_all / t_core:,.0f}x")
    print(
        f"largest |ours - naive| over {int(both.sum()):,} rows x {dru.n_components} components "
        f"(same sign rule): {diff:.2e}"
    )


if __name__ == "__main__":
    main()
