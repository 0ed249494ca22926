"""The evaluation report: Markdown + CSV tables and cumulative-return PNGs (see
``docs/findings.md`` for how to read it).

* ``portfolios.csv``: per window, portfolio and strategy, mean and spread (std) over seeds of
  ARR, Sortino, max drawdown and turnover, and for every config how many seeds beat each
  baseline on Sortino, with a Wilcoxon signed-rank p-value on the daily returns of the
  seed-mean portfolio against the baseline;
* ``cms.csv``: per module (window, config, asset, seed): mean crypto weight, share of bars in
  crypto, trades, collapse flag (always in / always out), Sortino against its own buy-and-hold;
* ``targets.csv``: the target figures per window and config;
* ``runs.csv``: every backtest's figures; ``cumulative_<window>_<portfolio>.png``;
* ``skill.csv``: per module (config, asset, seed), its timing skill over all the windows against
  random policies of the same exposure (:func:`.runner.timing_skill`), and per (config, asset) the
  seeds' mean votes' (seed -1), pooled per portfolio in the report; the same for the agents that
  filter a rule, with the portfolio they were fitted on (``portfolio``; empty for the modules);
* with two or more disjoint windows, the walk-forward scoreboard (:mod:`.scoreboard`):
  ``scoreboard.csv`` (stitched figures), ``versus.csv`` (every strategy against every portfolio
  baseline), ``pbo.csv``, ``selection.csv`` and ``stitched_<portfolio>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryptorl.portfolio.baselines import EQUAL_WEIGHT, holds_one_asset, trend_name
from cryptorl.portfolio.reliability import wilcoxon_p
from cryptorl.portfolio.report import slug
from cryptorl.portfolio.skill import combined_pvalue

from .protocol import Protocol
from .runner import SEED_MEAN, Scores
from .scoreboard import Scoreboard, build_scoreboard, plot_stitched

FIGURES = ("ARR", "Sortino", "MaxDrawdown", "Turnover")


def portfolio_table(protocol: Protocol, scores: Scores) -> pd.DataFrame:
    """Mean / std over seeds per (window, portfolio, strategy), seeds beating each baseline, p-values."""
    runs = scores.runs
    rows = []
    for (window, pname, strategy), g in runs.groupby(["window", "portfolio", "strategy"], sort=False):
        row = {"window": window, "portfolio": pname, "strategy": strategy, "seeds": int((g["seed"] >= 0).sum())}
        for k in FIGURES:
            row[f"{k} mean"] = float(g[k].mean())
            row[f"{k} std"] = float(g[k].std(ddof=1)) if len(g) > 1 else 0.0
        if g["kind"].iloc[0] in ("cm", "agent"):
            base = runs[(runs.window == window) & (runs.portfolio == pname) & (runs.kind == "baseline")]
            for _, b in base.iterrows():
                row[f"beats {b.strategy}"] = int((g["Sortino"] > b["Sortino"]).sum())
                row[f"p vs {b.strategy}"] = wilcoxon_p(
                    scores.returns[(window, pname, strategy)], scores.returns[(window, pname, b.strategy)]
                )
        rows.append(row)
    return pd.DataFrame(rows)


def cm_table(scores: Scores) -> pd.DataFrame:
    """Per (window, config, asset): means over seeds, collapsed modules, seeds beating own B&H."""
    cms = scores.cms
    g = cms.groupby(["window", "config", "asset"], sort=False)
    return pd.DataFrame(
        {
            "seeds": g.size(),
            "crypto_share": g["crypto_share"].mean(),
            "in_crypto": g["in_crypto"].mean(),
            "trades": g["trades"].mean(),
            "collapsed": g["collapsed"].apply(lambda s: int((s != "").sum())),
            "Sortino": g["Sortino"].mean(),
            "B&H Sortino": g["B&H Sortino"].first(),
            "beats_own_bh": g["beats_own_bh"].sum().astype(int),
            "ARR": g["ARR"].mean(),
        }
    ).reset_index()


def skill_table(protocol: Protocol, skill: pd.DataFrame) -> pd.DataFrame:
    """Per (config, portfolio): the modules' timing skill over the windows (``Scores.skill``, or
    ``skill.csv``), each seed's p-values over the portfolio's coins pooled by Stouffer's method,
    and the same for the seeds' mean votes (NaN with one seed); then the same per (agent,
    portfolio) for the agents that filter a rule (their rows name the portfolio they were fitted on)."""
    if "portfolio" not in skill:  # a skill.csv written before agents were tested
        skill = skill.assign(portfolio=np.nan)
    modules = skill[skill["portfolio"].isna()]
    rows = []
    for name in [*protocol.configs, *protocol.agents]:
        for pname, members in protocol.portfolios.items():
            mine = modules if name in protocol.configs else skill[skill["portfolio"] == pname]
            g = mine[(mine["config"] == name) & mine["asset"].isin(members)]
            mean = g[g.seed == SEED_MEAN]
            g = g[g.seed != SEED_MEAN]
            if g.empty:
                continue
            pooled = [combined_pvalue(s["p"]) for _, s in g.groupby("seed")]
            rows.append(
                {
                    "config": name,
                    "portfolio": pname,
                    "windows": int(g["windows"].max()),
                    "pooled p by seed": ", ".join(f"{p:.3f}" for p in pooled),
                    "pooled p of the seeds' mean": combined_pvalue(mean["p"]) if len(mean) else float("nan"),
                    "median pooled p": float(np.median(pooled)),
                    "modules p < 0.05": float((g["p"] < 0.05).mean()),
                    "mean percentile": float(g["percentile"].mean()),
                }
            )
    return pd.DataFrame(rows)


def targets(protocol: Protocol, scores: Scores, table: pd.DataFrame) -> pd.DataFrame:
    """The target figures per (window, config): trading modules, seeds beating the baselines."""
    cms, rows = scores.cms, []
    trend = trend_name(protocol.trend_sma)
    for (window, cname), g in cms.groupby(["window", "config"], sort=False):
        row = {
            "window": window,
            "config": cname,
            "CMs": len(g),
            "trading share": float((g["collapsed"] == "").mean()),
            "beats own B&H share": float(g["beats_own_bh"].mean()),
        }
        for pname in protocol.portfolios:
            t = table[(table.window == window) & (table.portfolio == pname)].set_index("strategy")
            if t.empty:  # none of its coins listed in this window (universe: listed)
                continue
            row[f"{pname}: seeds beating EW B&H"] = int(t.loc[cname, f"beats {EQUAL_WEIGHT}"])
            row[f"{pname}: mean Sortino"] = float(t.loc[cname, "Sortino mean"])
            row[f"{pname}: EW B&H Sortino"] = float(t.loc[EQUAL_WEIGHT, "Sortino mean"])
            row[f"{pname}: {trend} Sortino"] = float(t.loc[trend, "Sortino mean"])
            row[f"{pname}: mean ARR"] = float(t.loc[cname, "ARR mean"])
        rows.append(row)
    return pd.DataFrame(rows)


def print_targets(tgt: pd.DataFrame, protocol: Protocol, console=None) -> None:
    """The target figures on the console: per portfolio one table, a row per (window, config)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=160)
    trend = trend_name(protocol.trend_sma)
    head = [
        "window",
        "config",
        "CMs",
        "trading",
        "beat own B&H",
        "seeds > EW B&H",
        "Sortino",
        "EW B&H Sortino",
        f"{trend} Sortino",
        "total return (ARR)",
    ]
    for pname in protocol.portfolios:
        table = Table(title=f"{pname}: target figures (modules: means over seeds)")
        for h in head:
            table.add_column(h, justify="left" if h in ("window", "config") else "right")
        for r in tgt.to_dict("records"):
            if pd.isna(r.get(f"{pname}: mean Sortino")):  # not in this window (universe: listed)
                continue
            table.add_row(
                str(r["window"]),
                str(r["config"]),
                str(int(r["CMs"])),
                f"{r['trading share']:.0%}",
                f"{r['beats own B&H share']:.0%}",
                str(int(r[f"{pname}: seeds beating EW B&H"])),
                f"{r[f'{pname}: mean Sortino']:.2f}",
                f"{r[f'{pname}: EW B&H Sortino']:.2f}",
                f"{r[f'{pname}: {trend} Sortino']:.2f}",
                f"{r[f'{pname}: mean ARR']:+.2%}",
            )
        console.print(table)


def _md(frame: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(v) < 1e6:
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return "nan" if np.isnan(v) else f"{v:.3f}"
        return str(v)

    def percent(v):  # ARR: the total return over the range, as every command shows it
        return "nan" if not np.isfinite(v) else f"{v:.2%}"

    total = [isinstance(c, str) and "ARR" in c for c in frame.columns]
    names = [f"{c} (total return)" if t else str(c) for c, t in zip(frame.columns, total)]
    head = "| " + " | ".join(names) + " |"
    sep = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = [
        "| " + " | ".join(percent(v) if t else fmt(v) for v, t in zip(row, total)) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, sep, *body])


def evaluation_figure(scores: Scores, window: str, pname: str):
    """Value (start = 1) of every strategy of one portfolio and window: the voted portfolios
    (means over seeds), the baselines and each coin's buy-and-hold (thin), a distinct colour per
    line and the legend beside the axes."""
    from matplotlib.figure import Figure

    from cryptorl.portfolio.report import legend_outside, line_styles

    lines = [(strategy, v) for (w, p, strategy), v in scores.values.items() if (w, p) == (window, pname)]
    fig = Figure(figsize=(12, 5), dpi=100, layout="constrained")
    ax = fig.subplots()
    for (strategy, v), (colour, style) in zip(lines, line_styles(len(lines))):
        own = holds_one_asset(strategy)
        baseline = strategy.startswith(("B&H", "CRP", "Trend"))
        ax.plot(
            v.index,
            v.to_numpy(),
            label=strategy,
            color=colour,
            linestyle=style,
            lw=0.9 if own else 1.2 if baseline else 2,
            alpha=0.8 if own else 1.0,
        )
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_title(f"{pname}, window {window}: portfolios averaged over seeds, baselines, each coin's buy-and-hold")
    ax.set_ylabel("value (start = 1)")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.tick_params(axis="x", labelrotation=30)
    return fig


def _plot(scores: Scores, window: str, pname: str, path: Path) -> None:
    evaluation_figure(scores, window, pname).savefig(path)


def write_evaluation_report(protocol: Protocol, scores: Scores, out: Path, *, on: str = "backtest") -> dict[str, Path]:
    """Write report.md, the CSV tables and the PNGs into ``out``; returns the paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = portfolio_table(protocol, scores)
    trained = not scores.cms.empty  # False when only the baselines were scored
    cmt = cm_table(scores) if trained else pd.DataFrame()
    tgt = targets(protocol, scores, table) if trained else pd.DataFrame()
    paths = {"report": out / "report.md", "portfolios": out / "portfolios.csv", "runs": out / "runs.csv"}
    if trained:
        paths.update(cms=out / "cms.csv", targets=out / "targets.csv")
        cmt.to_csv(paths["cms"], index=False, float_format="%.6g")
        tgt.to_csv(paths["targets"], index=False, float_format="%.6g")
    table.to_csv(paths["portfolios"], index=False, float_format="%.6g")
    pd.concat([scores.runs, scores.cms.assign(kind="module")], ignore_index=True).to_csv(
        paths["runs"], index=False, float_format="%.6g"
    )
    lines = [
        f"# Evaluation: {protocol.name}",
        "",
        f"Assets {', '.join(protocol.assets)}; {protocol.interval} bars from `{protocol.source}`; fee "
        f"{protocol.fee:.2%}, execution {protocol.execution}; seeds {list(protocol.seeds)}; configs "
        f"{', '.join(protocol.configs)}.",
        "",
        *_universe_lines(protocol, scores),
        (
            "**Baselines only**: no Crypto Module was trained or scored."
            if not trained
            else "Model selection never looked at a backtest range: every module was trained and selected on data "
            "cut at its window's validation end (enforced in code), and the backtests ran once, after all "
            "training."
            if on == "backtest"
            else "**Scored on the validation ranges**, where the modules were selected: in-sample figures for "
            "choosing a configuration; no backtest range was looked at."
        ),
        "p-values: Wilcoxon signed-rank test on the daily returns of the seed-mean portfolio "
        "against the baseline (two-sided).",
        "",
    ]
    for window in protocol.windows:
        lines += [
            f"## Window {window.name}",
            "",
            f"train {window.train[0]:%Y-%m-%d} .. {window.train[1]:%Y-%m-%d}, validation "
            f"{window.validation[0]:%Y-%m-%d} .. {window.validation[1]:%Y-%m-%d}, backtest "
            f"{window.backtest[0]:%Y-%m-%d} .. {window.backtest[1]:%Y-%m-%d}; scored on the {on} range",
            "",
        ]
        for pname in protocol.portfolios:
            t = table[(table.window == window.name) & (table.portfolio == pname)].drop(columns=["window", "portfolio"])
            if t.empty:  # none of its coins listed in this window (universe: listed)
                continue
            png = out / f"cumulative_{slug(window.name)}_{slug(pname)}.png"
            _plot(scores, window.name, pname, png)
            paths[png.stem] = png
            keep = ["strategy", "seeds"] + [c for c in t.columns if c.endswith((" mean", " std"))]
            lines += [f"### {pname}", "", _md(t[keep]), ""]
            tests = [c for c in t.columns if c.startswith(("beats ", "p vs "))]
            if tests:
                lines += [
                    _md(t[t.seeds > 0][["strategy", *tests]].dropna(axis=1, how="all")),
                    "",
                    f"![]({png.name})",
                    "",
                ]
        if not trained:
            continue
        c = cmt[cmt.window == window.name].drop(columns=["window"])
        lines += [
            "### Crypto Modules",
            "",
            "seeds beating own B&H = seeds whose Sortino beats the coin's "
            "buy-and-hold; collapsed = seeds in crypto < 5 % or > 95 % of the bars.",
            "",
            _md(c),
            "",
        ]
    board = build_scoreboard(protocol, scores)
    if board is not None:
        lines += scoreboard_section(protocol, board, out, paths, on=on)
    if "config" in scores.skill:  # modules, or agents that filter a rule, were scored
        paths["skill"] = out / "skill.csv"
        scores.skill.to_csv(paths["skill"], index=False, float_format="%.6g")
        lines += [
            "## Timing skill of the modules",
            "",
            "Does a module time its coin better than random policies with its exposure and at most its number "
            "of trades (its holding periods shuffled across the windows, over the same prior)? One-sided p per "
            "(config, coin, seed) in skill.csv; here each seed's p-values over the portfolio's coins pooled by "
            "Stouffer's method (about uniform on (0, 1) without skill; the learning guard asks for < 0.05), the "
            "same for the seeds' mean votes (the configuration's one answer: a coin's seeds are not independent "
            "tests), the share of modules with p < 0.05 (about 5 % without skill) and the mean share of the null "
            "each beats. Agents that filter a rule (the meta-labellers) are tested the same way, against random "
            "filters of their rule, per portfolio they were fitted on.",
            "",
            _md(skill_table(protocol, scores.skill)),
            "",
        ]
    if trained:
        lines += ["## Targets", "", _md(tgt), ""]
    paths["report"].write_text("\n".join(lines))
    return paths


def _universe_lines(protocol: Protocol, scores: Scores) -> list[str]:
    """Under ``universe: listed``, the windows each coin was in (none under a fixed universe)."""
    if protocol.universe == "fixed":
        return []
    names = list(scores.listed)
    spans = []
    for asset in protocol.assets:
        held = [w for w in names if asset in scores.listed[w]]
        span = "every window" if len(held) == len(names) else f"windows {held[0]} .. {held[-1]}" if held else "none"
        spans.append(f"{asset} {span}")
    return [
        "Universe **listed**: each window holds the coins whose data cover it, from its training start to its "
        f"backtest end, and each portfolio its coins listed then ({'; '.join(spans)}).",
        "",
    ]


def selection_table(selection: pd.DataFrame) -> pd.DataFrame:
    """(window x portfolio) the configuration "selected" trades, windows in time order (as given)."""
    table = selection.pivot(index="window", columns="portfolio", values="config")
    return table.reindex(selection["window"].unique()).reset_index()


def scoreboard_section(
    protocol: Protocol, board: Scoreboard, out: Path, paths: dict[str, Path], *, on: str
) -> list[str]:
    """Write the scoreboard's CSVs and PNGs into ``out`` (adding them to ``paths``); its Markdown lines."""
    for name in ("stitched", "versus", "pbo", "selection"):
        frame = getattr(board, name)
        key = "scoreboard" if name == "stitched" else name
        if not frame.empty:
            paths[key] = out / f"{key}.csv"
            frame.to_csv(paths[key], index=False, float_format="%.6g")
    lines = [
        "## Walk-forward scoreboard",
        "",
        f"The disjoint {on} windows stitched into one out-of-sample curve per strategy (seed-mean value "
        "paths, daily returns chained; every window starts from cash). Sortino and Sharpe are annualised; "
        f"DSR = deflated Sharpe ratio given {protocol.n_trials} configuration(s) tried "
        f"({len(protocol.configs) + len(protocol.agents)} here, agents included, + {protocol.trials_before} "
        "before); PSR = probabilistic Sharpe ratio against 0; won = share of windows whose Sortino beats the "
        "baseline's; p (windows) = Wilcoxon signed-rank over the windows' Sortino pairs (two-sided: the median "
        "window difference gives its direction); bootstrap p = "
        "stationary block bootstrap (mean block 20 days, 1000 resamples) of the paired stitched daily returns, "
        "for the difference of Sortino ratios; detectable = the true Sortino difference that this bootstrap "
        "finds at p < 0.05 four times in five (2.8 standard errors): a smaller edge cannot be told from luck "
        "on these windows. How to read it: docs/evaluation.md.",
        "",
    ]
    for pname in dict.fromkeys(board.stitched.portfolio):
        st = board.stitched[board.stitched.portfolio == pname].drop(columns=["portfolio"])
        n = int(st["windows"].iloc[0])
        png = out / f"stitched_{slug(pname)}.png"
        plot_stitched(board, pname, png, f"{pname}: {n} stitched out-of-sample windows ({protocol.name})")
        paths[png.stem] = png
        vs = board.versus[board.versus.portfolio == pname].drop(columns=["portfolio"])
        keep = [
            "strategy",
            "baseline",
            "windows won",
            "median window Sortino diff",
            "Wilcoxon p (windows)",
            "Sortino diff",
            "Sortino diff CI low",
            "Sortino diff CI high",
            "bootstrap p (Sortino)",
            "detectable Sortino diff",
            "bootstrap p (Sharpe)",
        ]
        lines += [
            f"### {pname} ({n} windows)",
            "",
            _md(st.dropna(axis=1, how="all")),
            "",
            f"![]({png.name})",
            "",
            "Against each portfolio baseline (and the first configuration, the reference, with two or more):",
            "",
            _md(vs[keep]),
            "",
        ]
    if not board.pbo.empty:
        lines += [
            "### Probability of backtest overfitting (CSCV over windows x configurations)",
            "",
            _md(board.pbo),
            "",
        ]
    if not board.selection.empty:
        sel = selection_table(board.selection)
        lines += [
            "### Configuration selected per window (walk-forward: the best Sortino of the earlier windows, chained)",
            "",
            _md(sel),
            "",
        ]
    return lines
