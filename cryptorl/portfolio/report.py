"""Backtest reports: a table like the paper's Table 2, cumulative-return and weight plots,
and optional quantstats tear sheets.

Files written in ``out_dir``:

* ``metrics.md`` / ``metrics.csv``: one row per strategy (CSV: raw fractions; Markdown and the
  terminal: percent where the metric is a rate);
* ``cumulative_returns.png``: cumulative return of every strategy (the paper's Figs 6-8);
* ``weights_<strategy>.png``: stacked weights over time, for every strategy that is not a
  buy-and-hold of a single asset;
* ``tearsheet_<strategy>.html`` with ``html=True`` (quantstats; a failure there warns and the
  rest of the report is still written).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from cryptorl.data.frames import interval_seconds, periods_per_year, when

from .backtest import BacktestResult
from .metrics import METRIC_KEYS, bar_returns, daily_returns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# (metric key, column title, scale, decimals); scale 100 shows a percentage.
COLUMNS = [
    ("ARR", "ARR: total return (%)", 100, 2),
    ("DRR", "DRR (%)", 100, 4),
    ("Sortino", "SR (Sortino)", 1, 4),
    ("Sharpe", "Sharpe", 1, 4),
    ("AnnVol", "AnnVol (%)", 100, 2),
    ("MaxDrawdown", "MaxDD (%)", 100, 2),
    ("Calmar", "Calmar", 1, 4),
    ("CVaR95", "CVaR95 (%)", 100, 2),
    ("WinRate", "WinRate (%)", 100, 2),
    ("Turnover", "Turnover (/yr)", 1, 2),
]


def slug(name: str) -> str:
    """A file-name-safe version of a strategy name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "strategy"


def metrics_table(results: Mapping[str, BacktestResult]) -> pd.DataFrame:
    """One row per strategy, one column per metric (raw fractions), index named ``strategy``."""
    rows = {name: res.metrics() for name, res in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(METRIC_KEYS)).rename_axis("strategy")


def _fmt(value: float, scale: float, decimals: int) -> str:
    if value is None or not np.isfinite(value):
        return "n/a" if value is None or np.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value * scale:.{decimals}f}"


def _formatted(table: pd.DataFrame) -> list[list[str]]:
    return [[name, *(_fmt(row[k], s, d) for k, _, s, d in COLUMNS)] for name, row in table.iterrows()]


def markdown(title: str, notes: Sequence[str], header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown document: ``# title``, the notes, then one table."""
    lines = [f"# {title}", "", *notes, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def frame_markdown(table: pd.DataFrame, title: str, notes: Sequence[str], floatfmt: str = "{:.4g}") -> str:
    """:func:`markdown` of any frame: the index levels, then the columns (floats by ``floatfmt``)."""
    header = [*(n or "" for n in table.index.names), *map(str, table.columns)]
    rows = []
    for idx, row in table.iterrows():
        cells = [str(i) for i in (idx if isinstance(idx, tuple) else (idx,))]
        rows.append(cells + [floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v) for v in row])
    return markdown(title, notes, header, rows)


def _is_single_buy_and_hold(res: BacktestResult) -> bool:
    w = res.weights.to_numpy()
    risky = w[:, 1:]
    return risky.shape[1] >= 1 and bool(
        np.any(np.all(np.abs(risky - 1.0) <= 1e-12, axis=0)) and np.all(np.abs(w[:, 0]) <= 1e-12)
    )


HIGHLIGHT = "CryptoRLPM"  # the voted portfolio of Crypto Modules (agents.pipeline.STRATEGY)


def line_styles(n: int) -> list[tuple[tuple[float, float, float, float], str]]:
    """``n`` (colour, line style) pairs, every colour distinct: tab10's strong colours first, then
    tab20's light ones (dashed), then evenly spaced hues (dotted) for more than 20 lines."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors
    styles = [(tuple(tab20[i]) + (1.0,), "-") for i in range(0, 20, 2)]
    styles += [(tuple(tab20[i]) + (1.0,), "--") for i in range(1, 20, 2)]
    if n > len(styles):
        hues = colormaps["hsv"]
        extra = n - len(styles)
        styles += [(tuple(hues((k + 0.5) / extra)), ":") for k in range(extra)]
    return styles[:n]


def legend_outside(ax, **kwargs) -> None:
    """The legend to the right of the axes, off the data (two columns for many entries)."""
    n = len(ax.get_legend_handles_labels()[1])
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, ncol=2 if n > 16 else 1, **kwargs
    )


def equity_figure(results: Mapping[str, BacktestResult], title: str) -> Figure:
    """Cumulative return of every strategy in one figure (the paper's Figs 6-8; also logged to
    TensorBoard by training): a distinct colour per line, the legend beside the axes."""
    from matplotlib.figure import Figure  # imported here: matplotlib takes most of a second to import

    fig = Figure(figsize=(12, 5.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    # the strong colours go to the strategies, the light ones to the buy-and-holds; the voted
    # portfolio of Crypto Modules is black and on top
    ranked = sorted((n for n in results if n != HIGHLIGHT), key=lambda n: n.startswith("B&H"))
    style = dict(zip(ranked, line_styles(len(ranked))))
    for name, res in results.items():
        cum = (res.values / res.values.iloc[0] - 1.0) * 100
        colour, dash = style.get(name, ("black", "-"))
        width = 2.4 if name == HIGHLIGHT else 1.6 if not name.startswith("B&H") else 1.1
        ax.plot(
            cum.index,
            cum.to_numpy(),
            label=name,
            color=colour,
            linestyle=dash,
            linewidth=width,
            zorder=3 if name == HIGHLIGHT else 2,
        )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_title(f"{title}: cumulative return")
    ax.set_ylabel("cumulative return (%)")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.tick_params(axis="x", labelrotation=30)
    return fig


def weights_figure(name: str, res: BacktestResult) -> Figure:
    """A strategy's weights over time, stacked; the legend beside the axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    w = res.weights
    ax.stackplot(w.index, *(w[c].to_numpy() for c in w.columns), labels=list(w.columns), step="post")
    ax.set_ylim(0, 1)
    ax.set_xlim(w.index[0], w.index[-1])
    ax.set_title(f"{name}: weights over time (decided at each bar's close)")
    ax.set_ylabel("weight")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8
    )  # top of the stack first
    ax.tick_params(axis="x", labelrotation=30)
    return fig


def _plot_weights(name: str, res: BacktestResult, path: Path) -> None:
    weights_figure(name, res).savefig(path)


def _tearsheet_returns(res: BacktestResult) -> tuple[pd.Series, int]:
    if interval_seconds(res.interval) <= 86400:
        r, ppy = daily_returns(res.values, res.interval), 365
    else:
        r, ppy = bar_returns(res.values), int(round(periods_per_year(res.interval)))
    return r.tz_localize(None) if r.index.tz is not None else r, ppy


def _tearsheet(
    name: str, res: BacktestResult, bench: tuple[str, BacktestResult] | None, path: Path, title: str
) -> None:
    import matplotlib

    if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")  # headless: quantstats draws through pyplot
    import quantstats as qs

    returns, ppy = _tearsheet_returns(res)
    bench_r = None
    if bench is not None:
        bench_r, _ = _tearsheet_returns(bench[1])
        bench_r = bench_r.rename(bench[0])
    font_logger = logging.getLogger("matplotlib.font_manager")
    level = font_logger.level
    font_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qs.reports.html(
                returns.rename(name),
                benchmark=bench_r,
                output=str(path),
                title=f"{title}: {name}",
                periods_per_year=ppy,
                strategy_title=name,  # the legends and columns name the strategy, not "Strategy"
                **({"benchmark_title": bench[0]} if bench is not None else {}),
            )
    finally:
        font_logger.setLevel(level)
        import matplotlib.pyplot as plt

        plt.close("all")
    _drop_longer_periods(path, res.values.index[-1] - res.values.index[0])


# quantstats' trailing-period rows and how long a backtest must be for each to mean anything
_PERIOD_ROWS = {"3M": 91, "6M": 182, "1Y": 365, "3Y (ann.)": 3 * 365, "5Y (ann.)": 5 * 365, "10Y (ann.)": 10 * 365}


def _drop_longer_periods(path: Path, span: pd.Timedelta) -> None:
    """Remove the tear sheet's trailing-period rows longer than the backtest (a 7-month backtest has
    no 3Y figure; quantstats would repeat the all-time one)."""
    text = path.read_text(encoding="utf-8")
    for label, days in _PERIOD_ROWS.items():
        if span < pd.Timedelta(days=days):
            text = re.sub(rf"<tr><td>{re.escape(label)}</td>(<td>[^<]*</td>)*</tr>\s*", "", text)
    path.write_text(text, encoding="utf-8")


def write_report(
    results: Mapping[str, BacktestResult],
    out_dir: str | Path,
    *,
    title: str = "Backtest",
    html: bool | Sequence[str] = False,
    benchmark: str | None = None,
    console: Console | None = None,
) -> dict[str, Path]:
    """Write the report files for ``results`` (strategy name -> result) into ``out_dir``.

    ``html``: True for a quantstats tear sheet of every strategy, or a list of names.
    ``benchmark``: a strategy name used as the tear sheets' benchmark. With a rich ``console``
    the table and the paths are printed there. Returns ``{"table_md", "table_csv", "cumulative_png", "weights_<slug>"...,
    "tearsheet_<slug>"...}`` -> path.
    """
    if not results:
        raise ValueError("write_report needs at least one result")
    if benchmark is not None and benchmark not in results:
        raise ValueError(f"benchmark {benchmark!r} is not one of the strategies {list(results)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = metrics_table(results)
    first = next(iter(results.values()))
    notes = [
        f"Interval {first.interval}, execution at {first.execution}, fee {first.fee:.2%}, slippage "
        f"{first.slippage:.2%}; {when(first.values.index[0])} .. {when(first.values.index[-1])}.",
        "ARR = total return over the range, V_end/V_0 - 1 (the paper's accumulated rate of return, not annualised); DRR = mean daily return; SR = Sortino (target 0), Sharpe (rf 0) and AnnVol "
        "annualised with a 365-day year; MaxDD per bar; CVaR95 = mean loss of the worst 5 % of bars (positive = loss); Turnover = traded fraction per year.",
    ]
    paths: dict[str, Path] = {}
    paths["table_csv"] = out / "metrics.csv"
    table.to_csv(paths["table_csv"], float_format="%.10g")
    paths["table_md"] = out / "metrics.md"
    header = ["Strategy", *(t for _, t, _, _ in COLUMNS)]
    paths["table_md"].write_text(markdown(title, notes, header, _formatted(table)))
    paths["cumulative_png"] = out / "cumulative_returns.png"
    equity_figure(results, title).savefig(paths["cumulative_png"])
    for name, res in results.items():
        if not _is_single_buy_and_hold(res):
            key = f"weights_{slug(name)}"
            paths[key] = out / f"{key}.png"
            _plot_weights(name, res, paths[key])
    wanted = list(results) if html is True else list(html or [])
    for name in wanted:
        if name not in results:
            raise ValueError(f"html: {name!r} is not one of the strategies {list(results)}")
        key = f"tearsheet_{slug(name)}"
        target = out / f"{key}.html"
        bench = (benchmark, results[benchmark]) if benchmark is not None and benchmark != name else None
        try:
            _tearsheet(name, results[name], bench, target, title)
        except Exception as exc:  # quantstats is fragile across pandas versions: warn, keep going
            warnings.warn(f"quantstats tear sheet for {name!r} failed ({type(exc).__name__}: {exc}); skipped")
            continue
        paths[key] = target

    if console is None:
        return paths
    term = Table(title=title)
    for head in header:
        term.add_column(head, justify="left" if head == "Strategy" else "right")
    for row in _formatted(table):
        term.add_row(*row)
    console.print(term)
    for note in notes:
        console.print(note)
    for key, path in paths.items():
        console.print(f"{key}: {path}")
    return paths
