"""The walk-forward scoreboard: many disjoint out-of-sample windows, stitched, with the statistics
that tell a better strategy from a lucky one (see ``docs/evaluation.md``).

When a protocol's backtest windows are disjoint (a ``walk_forward`` span with ``step_months`` =
``backtest_months``, or hand-written windows that do not overlap) and there are at least two:

* **stitched curve**: per portfolio and strategy, the windows' daily returns chained in time order
  (of the seed-mean value path; each window starts from cash, so its entry fee is paid again;
  the one bar from a window's last close to the next window's first close is in neither window);
  its Sortino, Sharpe, ARR and max drawdown, and the mean and std over seeds of each seed's
  stitched Sortino. Under ``universe: listed`` a portfolio is stitched over the windows it holds
  a listed coin in, and a line is drawn only for the strategies scored in all of them (a coin's
  own buy-and-hold has none when the coin was listed after the first);
* **versus** every portfolio baseline: the share of windows whose Sortino beats the baseline's,
  the median of the windows' Sortino differences (the direction of the next test), the Wilcoxon
  signed-rank p over the windows' Sortino pairs, and a stationary block bootstrap
  of the paired stitched daily returns (difference of annualised Sortino / Sharpe, p, 95 % CI,
  and the Sortino difference it would detect with 80 % power: its power against this baseline);
  with two configurations or more, every other configuration, agent and "selected" is also
  compared with the protocol's first configuration (an ablation's reference);
* **deflated Sharpe** (Bailey & López de Prado 2014) of each configuration's and alternative
  agent's stitched curve given the configurations tried (the protocol's configurations and agents
  plus ``trials_before``); PSR against 0 for every line;
* **PBO** (Bailey et al. 2015) of the configuration search, by CSCV over the (windows x
  configurations) matrix of window Sortino ratios, when there are two configurations or more;
* **selected**: walk-forward model selection, a meta-strategy that trades in each backtest window
  the configuration whose portfolio has the best Sortino ratio over the earlier windows'
  backtests, their returns chained as the stitched curve chains them (not a mean of the windows'
  ratios, which one window with almost no downside can decide). Each earlier window ended before
  this window's backtest starts (an earlier backtest range is a later window's validation fold),
  so the choice uses data known at the time, and none of the modules it scores chose its
  checkpoints on them. The first window, with none before it, takes the best mean validation
  Sortino of its modules (averaged over the portfolio's coins and the seeds). Its stitched curve
  is out of sample for the selection itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryptorl.data.frames import interval_seconds, periods_per_year
from cryptorl.portfolio.baselines import EQUAL_WEIGHT, holds_one_asset
from cryptorl.portfolio.metrics import daily_returns, performance
from cryptorl.portfolio.stats import (
    bootstrap_difference,
    deflated_sharpe_ratio,
    paired_windows,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
    trials_sharpe_variance,
)

from .protocol import Protocol, Window
from .runner import Scores

SELECTED = "selected"


@dataclass
class Scoreboard:
    """The scoreboard's tables (see the module docstring) and the stitched seed-mean curves."""

    stitched: pd.DataFrame  # one row per (portfolio, strategy)
    versus: pd.DataFrame  # one row per (portfolio, strategy, baseline)
    pbo: pd.DataFrame  # one row per portfolio (empty with one configuration)
    selection: pd.DataFrame  # one row per (portfolio, window): the configuration "selected" trades
    curves: dict[tuple[str, str], pd.Series] = field(default_factory=dict)  # growth of 1


def disjoint_windows(protocol: Protocol) -> list[Window] | None:
    """The windows in backtest order when there are two or more and their backtests do not overlap."""
    wins = sorted(protocol.windows, key=lambda w: w.backtest[0])
    if len(wins) < 2 or any(b.backtest[0] <= a.backtest[1] for a, b in zip(wins, wins[1:])):
        return None
    return wins


def _returns(values: pd.Series, interval: str) -> pd.Series:
    if interval_seconds(interval) <= 86400:
        return daily_returns(values, interval)
    return values.pct_change().iloc[1:]


def _curve_interval(interval: str) -> str:
    return "1d" if interval_seconds(interval) <= 86400 else interval


def _stitch(parts: list[pd.Series], start: pd.Timestamp) -> pd.Series:
    """Growth of 1 from ``start`` over the windows' returns. Intraday bars' daily returns are
    labelled by their day, the first one by the day ``start`` is in: the start is then put on the
    day before, so that the curve's index stays unique."""
    r = pd.concat(parts)
    if len(r) and start >= r.index[0]:
        start = r.index[0] - pd.Timedelta(days=1)
    return pd.concat([pd.Series([1.0], index=[start]), (1.0 + r).cumprod()]).rename("value")


def validation_table(scores: Scores, members) -> pd.DataFrame:
    """(window x config) mean validation Sortino of the modules of ``members`` over seeds."""
    cms = scores.cms
    if cms.empty:
        return pd.DataFrame()
    cms = cms[cms.asset.isin(members)]
    return cms.groupby(["window", "config"])["validation_Sortino"].mean().unstack("config")


def select_configs(
    names: list[str], window_returns: dict[str, list[pd.Series]], validation: pd.DataFrame, interval: str
) -> pd.DataFrame:
    """Per window of ``names`` (in time order): the configuration whose ``window_returns`` (per
    configuration, the portfolio's seed-mean returns of each window) chained over the earlier
    windows have the best Sortino ratio (annualised for ``interval``, the curves' bar); in the
    first window the best of ``validation`` (window x config, the modules' mean validation
    Sortino). Ties: the first configuration of ``window_returns``."""
    configs = list(window_returns)
    val = validation.reindex(index=names, columns=configs)
    rows = []
    for k, w in enumerate(names):
        if k == 0:
            by, scores_k = "validation", val.loc[w]
        else:
            by = "earlier windows"
            scores_k = pd.Series(
                {
                    c: performance(_stitch(r[:k], r[0].index[0]), interval, keys=("Sortino",))["Sortino"]
                    for c, r in window_returns.items()
                }
            )
        best = str(scores_k.idxmax()) if scores_k.notna().any() else configs[0]
        rows.append({"window": w, "config": best, "by": by, "Sortino": float(scores_k.get(best, np.nan))})
    return pd.DataFrame(rows)


def _trials_variance(protocol: Protocol, sharpes: list[float], n_returns: int) -> float | None:
    """The variance of the trials' Sharpe ratios for the deflated Sharpe ratio: the configurations'
    own (None, the null's ``1 / (T - 1)``, with fewer than two). With ``trials_before`` the known
    ones are a few of the trials, often alike (one lever apart), so their variance is no estimate
    of all the trials': it counts only where it is larger than the null's."""
    known = trials_sharpe_variance(sharpes)
    if known is None or not protocol.trials_before:
        return known
    return max(known, 1.0 / (n_returns - 1))


def build_scoreboard(
    protocol: Protocol, scores: Scores, *, reps: int = 1000, block: float = 20.0, seed: int = 0
) -> Scoreboard | None:
    """The scoreboard of a scored protocol, or None when its windows are not two or more disjoint ones."""
    wins = disjoint_windows(protocol)
    if wins is None:
        return None
    curve_iv = _curve_interval(protocol.interval)
    ppy = periods_per_year(curve_iv)
    runs = scores.runs
    configs = [c for c in protocol.configs if (runs.kind == "cm").any() and c in set(runs.strategy)]
    stitched_rows, versus_rows, pbo_rows, selection_rows = [], [], [], []
    curves: dict[tuple[str, str], pd.Series] = {}
    for pname, members in protocol.portfolios.items():
        r = runs[runs.portfolio == pname]
        # the windows the portfolio has a listed coin in (all of them under a fixed universe), and
        # the strategies scored in every one (a coin's buy-and-hold is not, before its listing)
        names = [w.name for w in wins if (r.window == w.name).any()]
        if len(names) < 2:
            continue
        everywhere = r.groupby("strategy", sort=False)["window"].nunique() == len(names)
        r = r[r.strategy.isin(everywhere.index[everywhere])]
        window_sortino = r.groupby(["strategy", "window"])["Sortino"].mean().unstack("window").reindex(columns=names)
        strategies = list(dict.fromkeys(r.strategy))
        baselines = [s for s in strategies if s not in protocol.configs and s not in protocol.agents]
        kind = {s: "baseline" if s in baselines else "agent" if s in protocol.agents else "config" for s in strategies}
        # each strategy's seed-mean returns per window, in time order (chained below, and by the selection)
        window_returns = {
            s: [_returns(scores.values[(w, pname, s)], protocol.interval) for w in names] for s in strategies
        }
        chosen: dict[str, str] = {}
        if len(configs) >= 2:
            validation = validation_table(scores, members)
            sel = select_configs(names, {c: window_returns[c] for c in configs}, validation, curve_iv)
            chosen = dict(zip(sel.window, sel.config))
            selection_rows += [{"portfolio": pname, **row} for row in sel.to_dict("records")]
            window_sortino.loc[SELECTED] = [window_sortino.loc[chosen[w], w] for w in names]
            strategies.append(SELECTED)

        def source(strategy: str, window: str, chosen: dict[str, str] = chosen) -> str:
            return chosen[window] if strategy == SELECTED else strategy

        seeds_of = {s: sorted(set(r.seed[r.strategy == s])) for s in strategies if s != SELECTED}
        seeds_of[SELECTED] = list(protocol.seeds)
        returns: dict[str, pd.Series] = {}
        for strategy in strategies:
            start = scores.values[(names[0], pname, source(strategy, names[0]))].index[0]
            parts = [window_returns[source(strategy, w)][i] for i, w in enumerate(names)]
            curve = _stitch(parts, start)
            curves[(pname, strategy)] = curve
            returns[strategy] = curve.pct_change().iloc[1:]
            m = performance(curve, curve_iv)
            per_seed = []
            for sd in seeds_of[strategy]:
                seed_parts = [
                    _returns(scores.seed_values[(w, pname, source(strategy, w), sd)], protocol.interval) for w in names
                ]
                per_seed.append(performance(_stitch(seed_parts, curve.index[0]), curve_iv)["Sortino"])
            row = {
                "portfolio": pname,
                "strategy": strategy,
                "kind": kind.get(strategy, "config"),
                "windows": len(names),
                "Sortino": m["Sortino"],
                "Sharpe": m["Sharpe"],
                "ARR": m["ARR"],
                "MaxDrawdown": m["MaxDrawdown"],
                "Sortino seed mean": float(np.mean(per_seed)),
                "Sortino seed std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
                "PSR": probabilistic_sharpe_ratio(returns[strategy]),
            }
            if kind.get(strategy, "config") == "config":
                cms = scores.cms[scores.cms.asset.isin(members)]
                pick = [(w, source(strategy, w)) for w in names]
                mine = cms[[(w, c) in set(pick) for w, c in zip(cms.window, cms.config)]]
                row["trading share"] = float((mine["collapsed"] == "").mean()) if len(mine) else np.nan
            stitched_rows.append(row)
        # the deflated Sharpe of the configurations and agents, given every configuration tried
        tried = [s for s in strategies if kind.get(s) in ("config", "agent")]
        var = _trials_variance(protocol, [sharpe_ratio(returns[c]) for c in tried], len(returns[strategies[0]]))
        for row in stitched_rows:
            if row["portfolio"] == pname and row["kind"] in ("config", "agent"):
                row["DSR"] = deflated_sharpe_ratio(returns[row["strategy"]], protocol.n_trials, var)
                row["trials"] = protocol.n_trials
        against = [b for b in baselines if not holds_one_asset(b)]
        reference = configs[0] if len(configs) >= 2 else None  # an ablation's reference: the first config
        for strategy in strategies:
            if holds_one_asset(strategy):
                continue
            refs = [reference] if reference not in (None, strategy) and strategy not in baselines else []
            for base in against + refs:
                if base == strategy:
                    continue
                won, p_w = paired_windows(window_sortino.loc[strategy], window_sortino.loc[base])
                boot = bootstrap_difference(returns[strategy], returns[base], reps=reps, block=block, seed=seed)
                versus_rows.append(
                    {
                        "portfolio": pname,
                        "strategy": strategy,
                        "baseline": base,
                        "windows won": won,
                        "median window Sortino diff": float(
                            (window_sortino.loc[strategy] - window_sortino.loc[base]).median()
                        ),
                        "Wilcoxon p (windows)": p_w,
                        "Sortino diff": boot["sortino"].difference * np.sqrt(ppy),
                        "Sortino diff CI low": boot["sortino"].ci_low * np.sqrt(ppy),
                        "Sortino diff CI high": boot["sortino"].ci_high * np.sqrt(ppy),
                        "bootstrap p (Sortino)": boot["sortino"].p_value,
                        "detectable Sortino diff": boot["sortino"].detectable() * np.sqrt(ppy),
                        "Sharpe diff": boot["sharpe"].difference * np.sqrt(ppy),
                        "bootstrap p (Sharpe)": boot["sharpe"].p_value,
                    }
                )
        if len(configs) >= 2:
            res = probability_of_backtest_overfitting(window_sortino.loc[configs].T.to_numpy())
            pbo_rows.append(
                {
                    "portfolio": pname,
                    "configs": len(configs),
                    "windows": len(names),
                    "blocks": res.n_blocks,
                    "combinations": len(res.logits),
                    "PBO": res.pbo,
                    "median logit": float(np.median(res.logits)),
                }
            )
    if not stitched_rows:  # no portfolio holds a listed coin in two windows
        return None
    return Scoreboard(
        pd.DataFrame(stitched_rows),
        pd.DataFrame(versus_rows),
        pd.DataFrame(pbo_rows),
        pd.DataFrame(selection_rows),
        curves,
    )


def plot_stitched(board: Scoreboard, pname: str, path: Path, title: str) -> None:
    """The stitched growth of 1 of every strategy of ``pname`` (per-coin buy-and-hold thin and grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [(s, c) for (p, s), c in board.curves.items() if p == pname]
    main = [(s, c) for s, c in lines if not holds_one_asset(s)]
    cmap = plt.get_cmap("tab10" if len(main) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(11, 5))
    for s, c in lines:
        if holds_one_asset(s):
            ax.plot(c.index, c.to_numpy(), lw=0.7, color="0.6", alpha=0.7, ls="--", label=s)
    baselines = set(board.stitched.strategy[board.stitched.kind == "baseline"])
    for k, (s, c) in enumerate(main):
        ax.plot(c.index, c.to_numpy(), lw=1.3 if s in baselines else 2.2, color=cmap(k % cmap.N), label=s)
    ax.set_yscale("log")
    ax.set_xlabel("date (stitched out-of-sample windows)")
    ax.set_ylabel("growth of 1 (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_scoreboard(stitched: pd.DataFrame, versus: pd.DataFrame, console=None, *, on: str = "backtest") -> None:
    """A readable console summary: per portfolio the stitched figures and, against equal-weight
    buy-and-hold, windows won, the median window Sortino difference (the direction of the window
    test), the p-values and the Sortino difference the bootstrap would detect."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=160)
    for pname, g in stitched.groupby("portfolio", sort=False):
        what = "out-of-sample" if on == "backtest" else "validation ranges (in-sample for the selection)"
        table = Table(title=f"{pname}: stitched {what} ({int(g['windows'].iloc[0])} windows)")
        cols = [
            "strategy",
            "Sortino",
            "Sharpe",
            "ARR: total",
            "MaxDD",
            "Sortino seeds",
            "DSR",
            "won vs EW",
            "median Δ",
            "p windows",
            "p boot",
            "detectable",
        ]
        for c in cols:
            table.add_column(c, justify="left" if c == "strategy" else "right")
        v = versus[(versus.portfolio == pname) & (versus.baseline == EQUAL_WEIGHT)].set_index("strategy")
        for d in g.to_dict("records"):
            if holds_one_asset(d["strategy"]):
                continue
            vs = v.loc[d["strategy"]] if d["strategy"] in v.index else None
            dsr = d.get("DSR", np.nan)
            table.add_row(
                d["strategy"],
                f"{d['Sortino']:.2f}",
                f"{d['Sharpe']:.2f}",
                f"{d['ARR']:+.0%}",
                f"{d['MaxDrawdown']:.0%}",
                f"{d['Sortino seed mean']:.2f} ± {d['Sortino seed std']:.2f}",
                "" if dsr is None or not np.isfinite(dsr) else f"{dsr:.2f}",
                "" if vs is None else f"{vs['windows won']:.0%}",
                "" if vs is None else f"{vs['median window Sortino diff']:+.2f}",
                "" if vs is None else f"{vs['Wilcoxon p (windows)']:.3f}",
                "" if vs is None else f"{vs['bootstrap p (Sortino)']:.3f}",
                "" if vs is None else f"{vs['detectable Sortino diff']:.2f}",
            )
        console.print(table)
