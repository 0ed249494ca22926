"""Metric selection by Pearson correlation with 12/24/48-period returns (paper section 2.2.1).

For one asset and its training range only:

1. returns over each horizon ``h`` (in bars of the data's own interval), log returns of close:
   ``direction="forward"`` (default, predictive): ``r_h(t) = log(close[t+h] / close[t])``, paired
   with the metric at ``t``; only pairs whose forward window ends inside the training range
   count (the caller cuts the data at ``train_end`` first, so nothing after it is ever read).
   ``direction="backward"``: ``r_h(t) = log(close[t] / close[t-h])``;
2. the Pearson correlation of every usable metric with each of the returns (one *group* per
   horizon), over the rows where both are present;
3. in each group keep the ``per_group`` highest and the ``per_group`` lowest coefficients;
4. rank the kept metrics by the number of groups they appear in, ties broken by the mean
   absolute coefficient over all horizons (then by name, for determinism), and keep the first
   ``max_metrics``.

Metrics that are all-NaN, constant, below ``min_coverage`` or with too few complete pairs in
the training range are dropped, with the reason, in :attr:`MetricSelection.dropped`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIN_PAIRS = 10  # fewest (metric, return) pairs a coefficient may rest on


def horizon_returns(close: pd.Series, horizons: tuple[int, ...], direction: str = "forward") -> pd.DataFrame:
    """Log returns of ``close`` over each horizon, columns ``ret_<h>``, on close's index."""
    logc = np.log(close.astype("float64"))
    out = {}
    for h in horizons:
        if direction == "forward":
            out[f"ret_{h}"] = logc.shift(-h) - logc
        elif direction == "backward":
            out[f"ret_{h}"] = logc - logc.shift(h)
        else:
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    return pd.DataFrame(out, index=close.index)


def rank_metrics(
    coefficients: pd.DataFrame, per_group: int, max_metrics: int
) -> tuple[list[str], dict[str, list[str]], dict[str, int]]:
    """Pick metrics from a table of coefficients (rows: metrics, columns: one group per horizon).

    Returns ``(chosen, groups, counts)``: the chosen metrics in rank order, the metrics kept in
    each group (top ``per_group`` then bottom ``per_group``), and in how many groups each kept
    metric appears.
    """
    groups: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for col in coefficients.columns:
        # Stable order: by coefficient, ties by name.
        ordered = sorted(coefficients.index, key=lambda m: (-coefficients.at[m, col], m))
        top = ordered[:per_group]
        bottom = [m for m in ordered[::-1][:per_group] if m not in top]
        groups[col] = top + bottom
        for m in groups[col]:
            counts[m] = counts.get(m, 0) + 1
    mean_abs = coefficients.abs().mean(axis=1)
    ranked = sorted(counts, key=lambda m: (-counts[m], -mean_abs[m], m))
    return ranked[:max_metrics], groups, counts


@dataclass
class MetricSelection:
    """The outcome of the correlation test for one asset (inspectable, printable)."""

    asset: str | None
    horizons: tuple[int, ...]
    direction: str
    train_start: pd.Timestamp | None
    train_end: pd.Timestamp | None
    n_rows: int
    coefficients: pd.DataFrame  # usable metrics x ret_<h>
    n_pairs: pd.DataFrame  # usable metrics x ret_<h>: complete pairs behind each coefficient
    groups: dict[str, list[str]]
    counts: dict[str, int]
    chosen: list[str]
    dropped: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Every usable metric with its coefficients, groups count, mean |corr| and rank (chosen first)."""
        t = self.coefficients.copy()
        t["groups"] = [self.counts.get(m, 0) for m in t.index]
        t["mean_abs"] = self.coefficients.abs().mean(axis=1)
        t["chosen"] = [m in self.chosen for m in t.index]
        rest = sorted(
            (m for m in t.index if m not in self.chosen), key=lambda m: (-t.at[m, "groups"], -t.at[m, "mean_abs"], m)
        )
        t = t.loc[[*self.chosen, *rest]]
        t.index.name = "metric"
        return t

    def __str__(self) -> str:
        rng = f"{_day(self.train_start)} .. {_day(self.train_end)}"
        head = (
            f"Metric selection for {self.asset or 'asset'}: {self.direction} log returns over "
            f"{', '.join(map(str, self.horizons))} bars, training range {rng} ({self.n_rows} rows); "
            f"{len(self.chosen)} chosen of {len(self.coefficients)} usable, {len(self.dropped)} dropped"
        )
        lines = [head]
        t = self.table()
        if len(t):
            ret_cols = [f"ret_{h}" for h in self.horizons]
            header = ["#", "metric", *[f"corr {h}" for h in self.horizons], "groups", "mean|corr|"]
            rows = []
            for _i, (m, r) in enumerate(t.iterrows()):
                rank = str(self.chosen.index(m) + 1) if r["chosen"] else "-"
                rows.append(
                    [rank, m, *[f"{r[c]:+.3f}" for c in ret_cols], str(int(r["groups"])), f"{r['mean_abs']:.3f}"]
                )
            lines.append(_plain_table(header, rows))
        if self.dropped:
            lines.append("Dropped:")
            width = max(len(m) for m in self.dropped)
            lines.extend(f"  {m:<{width}}  {why}" for m, why in self.dropped.items())
        return "\n".join(lines)

    # -- JSON round trip (no pickle) --
    def to_dict(self) -> dict:
        return {
            "asset": self.asset,
            "horizons": list(self.horizons),
            "direction": self.direction,
            "train_start": None if self.train_start is None else self.train_start.isoformat(),
            "train_end": None if self.train_end is None else self.train_end.isoformat(),
            "n_rows": self.n_rows,
            "coefficients": {m: [float(v) for v in row] for m, row in self.coefficients.iterrows()},
            "n_pairs": {m: [int(v) for v in row] for m, row in self.n_pairs.iterrows()},
            "groups": self.groups,
            "counts": self.counts,
            "chosen": self.chosen,
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, d: dict) -> MetricSelection:
        cols = [f"ret_{h}" for h in d["horizons"]]

        def frame(rows: dict, dtype: str) -> pd.DataFrame:
            f = pd.DataFrame.from_dict(rows, orient="index", columns=cols).astype(dtype)
            return f if len(rows) else pd.DataFrame(columns=cols, dtype=dtype)

        return cls(
            asset=d["asset"],
            horizons=tuple(d["horizons"]),
            direction=d["direction"],
            train_start=None if d["train_start"] is None else pd.Timestamp(d["train_start"]),
            train_end=None if d["train_end"] is None else pd.Timestamp(d["train_end"]),
            n_rows=int(d["n_rows"]),
            coefficients=frame(d["coefficients"], "float64"),
            n_pairs=frame(d["n_pairs"], "int64"),
            groups={k: list(v) for k, v in d["groups"].items()},
            counts={k: int(v) for k, v in d["counts"].items()},
            chosen=list(d["chosen"]),
            dropped=dict(d["dropped"]),
        )


def select_metrics(
    close: pd.Series,
    metrics: pd.DataFrame,
    *,
    horizons: tuple[int, ...] = (12, 24, 48),
    direction: str = "forward",
    per_group: int = 5,
    max_metrics: int = 10,
    min_coverage: float = 0.8,
    asset: str | None = None,
) -> MetricSelection:
    """Run the correlation test on a training range.

    ``close`` and ``metrics`` must already be cut to the training range and share one index
    (metrics aligned to the market, see :func:`cryptorl.data.frames.align_metrics`).
    """
    if not close.index.equals(metrics.index):
        raise ValueError("close and metrics must share one index (align the metrics to the market first)")
    n = len(close)
    rets = horizon_returns(close, tuple(horizons), direction)
    dropped: dict[str, str] = {}
    coefs: dict[str, list[float]] = {}
    pairs: dict[str, list[int]] = {}
    for name in metrics.columns:
        x = metrics[name]
        present = int(x.notna().sum())
        if present == 0:
            dropped[name] = "no values in the training range (all NaN)"
            continue
        coverage = present / n
        if coverage < min_coverage:
            dropped[name] = f"coverage {coverage:.1%} < {min_coverage:.0%} of the training rows"
            continue
        vals = x.dropna().to_numpy()
        if np.all(vals == vals[0]):
            dropped[name] = f"constant in the training range (always {vals[0]:g})"
            continue
        row, cnt, why = [], [], None
        for col in rets.columns:
            both = x.notna() & rets[col].notna()
            k = int(both.sum())
            if k < MIN_PAIRS:
                why = f"only {k} complete pairs with {col} (need {MIN_PAIRS})"
                break
            xv, rv = x[both].to_numpy(), rets[col][both].to_numpy()
            if np.all(xv == xv[0]) or np.all(rv == rv[0]):
                why = f"constant over the rows paired with {col}: correlation undefined"
                break
            row.append(float(np.corrcoef(xv, rv)[0, 1]))
            cnt.append(k)
        if why:
            dropped[name] = why
            continue
        coefs[name], pairs[name] = row, cnt
    cols = list(rets.columns)
    coef_frame = (
        pd.DataFrame.from_dict(coefs, orient="index", columns=cols)
        if coefs
        else pd.DataFrame(columns=cols, dtype="float64")
    )
    pair_frame = (
        pd.DataFrame.from_dict(pairs, orient="index", columns=cols)
        if pairs
        else pd.DataFrame(columns=cols, dtype="int64")
    )
    chosen, groups, counts = (
        rank_metrics(coef_frame, per_group, max_metrics) if coefs else ([], {c: [] for c in cols}, {})
    )
    return MetricSelection(
        asset=asset,
        horizons=tuple(horizons),
        direction=direction,
        train_start=close.index[0] if n else None,
        train_end=close.index[-1] if n else None,
        n_rows=n,
        coefficients=coef_frame.astype("float64"),
        n_pairs=pair_frame.astype("int64"),
        groups=groups,
        counts=counts,
        chosen=chosen,
        dropped=dropped,
    )


def _day(ts: pd.Timestamp | None) -> str:
    if ts is None:
        return "?"
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")


def _plain_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with right-aligned numbers and a rule under the header."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    left = {1}  # the metric name column

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])
