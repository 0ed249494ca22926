"""Compare every alternative agent (and any extra strategy, such as the Crypto Module portfolio)
on one split, with the same fees and metrics: what ``python -m experiments.compare`` runs.

Every agent is fitted on the bars up to ``train_end`` and gives weights for each bar in
``[start, end]`` from data up to that bar; every strategy (agents, baselines, extra ones) is
backtested by :func:`cryptorl.portfolio.strategy.backtest_strategies` with the same fee, slippage
and execution. Written to
``out``: the backtest report (:func:`cryptorl.portfolio.report.write_report`), forecaster errors
(the naive last-value forecast beside each model), the reliability analysis (Sharpe,
rolling-Sharpe CV, CVaR 95 %, Wilcoxon p against buy-and-hold, entropy-weighted TOPSIS),
``weights/<strategy>.csv`` and ``config.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from rich.console import Console
from tqdm.auto import tqdm

from cryptorl.data.frames import to_utc_timestamp
from cryptorl.portfolio.baselines import BuyAndHold, EqualWeightBuyAndHold, TrendTiming
from cryptorl.portfolio.reliability import reliability
from cryptorl.portfolio.report import frame_markdown, slug, write_report
from cryptorl.portfolio.strategy import FixedWeights, Strategy, backtest_strategies

from .catalog import AGENT_NAMES, FORECASTERS, make_agents

BENCHMARK = "buy_and_hold"
DEMO_SPLIT = ("2022-02-28", "2022-03-01", "2022-09-30")  # the paper's backtest range


def default_split(
    index: pd.DatetimeIndex, source: str, test_fraction: float = 0.3
) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """``(train_end, start, end)``: the paper's range on demo data, else the last 30 % of the bars."""
    if (
        source == "demo"
        and index[0] <= to_utc_timestamp(DEMO_SPLIT[0])
        and index[-1] >= to_utc_timestamp(DEMO_SPLIT[2])
    ):
        return tuple(to_utc_timestamp(d) for d in DEMO_SPLIT)
    k = int(len(index) * (1 - test_fraction))
    return index[k - 1], index[k], index[-1]


def run_comparison(
    markets: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, pd.DataFrame] | None,
    *,
    interval: str,
    train_end,
    start,
    end,
    agents: list[str] | tuple[str, ...] = AGENT_NAMES,
    extra: Mapping[str, pd.DataFrame] | None = None,
    strategies: Sequence[Strategy] = (),
    out: str | Path = "reports/compare",
    fee: float = 0.001,
    slippage: float = 0.0,
    execution: str = "close",
    fast: bool = False,
    seed: int = 0,
    use_metrics: bool = False,
    log_dir: str | Path | None = None,
    device: str = "cpu",
    console: Console | None = None,
    progress: bool = True,
) -> dict:
    """Fit, backtest and report. Returns ``{"results", "errors", "reliability", "paths", "failed"}``.

    ``extra``: strategy name -> weight frame (columns ``["cash", *assets]``), backtested and
    reported beside the agents; ``strategies``: more strategies (such as the voted Crypto Modules,
    :class:`cryptorl.portfolio.Portfolio`), fitted and backtested as the agents are.
    """
    train_end, start, end = (to_utc_timestamp(v) for v in (train_end, start, end))
    if not train_end < start <= end:
        raise ValueError(f"need train_end < start <= end, got {train_end} / {start} / {end}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    assets = list(markets)
    zoo = make_agents(list(agents), fast=fast, seed=seed, log_dir=log_dir, use_metrics=use_metrics, device=device)
    listed = [*zoo.values(), *BuyAndHold.instances(assets), TrendTiming(assets=assets)]
    benchmark = BENCHMARK if BENCHMARK in zoo else EqualWeightBuyAndHold().name
    if BENCHMARK not in zoo:
        listed.append(EqualWeightBuyAndHold(assets=assets))
    listed += [*strategies, *(FixedWeights(name, w) for name, w in (extra or {}).items())]
    bar = tqdm(total=len(zoo), desc="agents", unit="agent", disable=not progress)

    def started(name: str) -> None:
        if name in zoo:
            bar.set_postfix_str(name)
            bar.update(1)

    runs = backtest_strategies(
        listed,
        markets,
        metrics,
        interval=interval,
        fit_end=train_end,
        start=start,
        end=end,
        fee=fee,
        slippage=slippage,
        execution=execution,
        keep_going=True,
        on_start=started,
    )
    bar.close()
    failed = {name: run.error for name, run in runs.items() if run.error is not None}
    for name, why in failed.items():
        if name not in zoo:
            raise runs[name].exception  # a given strategy (not an agent of the catalogue) is the caller's to fix
        if console is not None:
            console.print(f"[red]agent {name} failed:[/red] {why}")
    errors = []
    for name in FORECASTERS:
        if name in zoo and name not in failed:
            e = zoo[name].errors(markets, metrics, start=start, end=end)
            errors.append(e.assign(forecaster=name).reset_index().set_index(["forecaster", "asset"]))
    results = {name: run.result for name, run in runs.items() if run.error is None}
    weights = {name: run.weights for name, run in runs.items() if run.error is None}
    timings = {name: run.seconds for name, run in runs.items() if name in zoo}

    title = f"Comparison {', '.join(assets)} {interval}: train <= {train_end.date()}, backtest {start.date()} .. {end.date()}"
    paths = write_report(results, out, title=title, console=console)
    wdir = out / "weights"
    wdir.mkdir(exist_ok=True)
    for name, w in weights.items():
        w.to_csv(wdir / f"{slug(name)}.csv", float_format="%.10g")

    err_table = pd.concat(errors) if errors else pd.DataFrame()
    if len(err_table):
        err_table.to_csv(out / "forecast_errors.csv", float_format="%.10g")
        notes = [
            f"Forecasts of the next close made at each bar of {start.date()} .. {end.date()} (fitted on bars <= {train_end.date()}).",
            (
                "MSE/RMSE/MAE/R2 on the price level (as the seeds report them); naive_* = the last-value forecast; "
                "skill = 1 - MSE/naive_MSE (> 0 beats the naive forecast); R2_return and hit_rate on the implied next return."
            ),
        ]
        (out / "forecast_errors.md").write_text(frame_markdown(err_table, "Forecaster errors", notes))
        paths["errors_md"] = out / "forecast_errors.md"
        paths["errors_csv"] = out / "forecast_errors.csv"

    rel = reliability({n: r.returns for n, r in results.items()}, benchmark=benchmark, interval=interval)
    rel.to_csv(out / "reliability.csv", float_format="%.10g")
    notes = [
        (
            f"The reliability analysis of Chen & Zheng (2025); Wilcoxon tests against '{benchmark}'. Sharpe annualised; CV of the 30-bar "
            "rolling Sharpe (std/|mean|); CVaR95 = mean loss of the worst 5 % of bars (positive = loss); p_value "
            "two-sided, p_greater one-sided (used by TOPSIS). w_* = entropy weights; Score = TOPSIS closeness (higher is better)."
        ),
    ]
    (out / "reliability.md").write_text(frame_markdown(rel, "Reliability analysis (TOPSIS, entropy weights)", notes))
    paths["reliability_md"] = out / "reliability.md"
    paths["reliability_csv"] = out / "reliability.csv"

    config = {
        "assets": assets,
        "interval": interval,
        "train_end": str(train_end),
        "start": str(start),
        "end": str(end),
        "fee": fee,
        "slippage": slippage,
        "execution": execution,
        "fast": fast,
        "seed": seed,
        "use_metrics": use_metrics,
        "agents": list(zoo),
        "extra": list(extra or {}),
        "failed": failed,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    paths["config"] = out / "config.json"

    if console is None:
        return {"results": results, "errors": err_table, "reliability": rel, "paths": paths, "failed": failed}
    if len(err_table):
        console.print("[bold]Forecaster errors[/bold] (test range)")
        console.print(err_table[["RMSE", "MAE", "R2", "skill", "hit_rate"]].round(4).to_string())
    console.print("[bold]Reliability (TOPSIS score, best first)[/bold]")
    console.print(rel[["Sharpe", "CV", "CVaR95", "p_value", "p_greater", "Score"]].round(4).to_string())
    for key in ("errors_md", "reliability_md", "config"):
        if key in paths:
            console.print(f"{key}: {paths[key]}")
    return {"results": results, "errors": err_table, "reliability": rel, "paths": paths, "failed": failed}
