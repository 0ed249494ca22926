"""Compare every alternative agent (and any extra strategy) on one split, fees and metrics.

    python -m experiments.compare --assets BTC,ETH,LINK --source demo
    python -m experiments.compare --assets BTC,ETH,LINK --source csv:/path/to/folder \\
        --train-end 2021-12-31 --start 2022-01-01 --end 2022-09-30 --out reports/compare

Every agent is fitted on the bars up to ``--train-end`` and gives weights for each bar in
``[--start, --end]`` from data up to that bar; every strategy is backtested by
:func:`cryptorl.portfolio.backtest.backtest` with the same fee, slippage and execution. Written
to ``--out``: the backtest report (:func:`cryptorl.portfolio.report.write_report`: metrics table,
cumulative returns, weights plots), ``forecast_errors.md/.csv`` (MSE, RMSE, MAE, R² of every
forecaster on the backtest range, the naive last-value forecast beside them),
``reliability.md/.csv`` (seed 002's Sharpe, rolling-Sharpe CV, CVaR 95 %, Wilcoxon p against
buy-and-hold, entropy-weighted TOPSIS score), ``weights/<strategy>.csv`` and ``config.json``.

Hook for other strategies (the Crypto Module portfolios): pass weight frames to
:func:`run_comparison` as ``extra={"CM portfolio": weights}``, or on the command line
``--extra "CM portfolio=path/to/weights.csv"`` (a CSV with a ``time`` column, ``cash`` and one
column per asset, as :func:`cryptorl.portfolio.backtest.backtest` takes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from tqdm.auto import tqdm

from agents.catalog import AGENT_NAMES, FORECASTERS, make_agents
from cryptorl.cli import UserError
from cryptorl.cli import console as wide_console
from cryptorl.data.frames import DataError, to_utc_timestamp
from cryptorl.portfolio.backtest import BacktestResult, backtest, check_weights
from cryptorl.portfolio.baselines import (
    buy_and_hold,
    common_index,
    equal_weight_buy_and_hold,
)
from cryptorl.portfolio.reliability import reliability
from cryptorl.portfolio.report import write_report

BENCHMARK = "buy_and_hold"
DEMO_SPLIT = ("2022-02-28", "2022-03-01", "2022-09-30")  # the paper's backtest range



def load_markets(assets: list[str], source: str, interval: str) -> tuple[dict, dict]:
    """``({asset: market}, {asset: metrics})`` through ``cryptorl.data.load_data``."""
    try:
        from cryptorl.data import load_data
    except ImportError:  # the data layer's loader is not there yet: demo only
        load_data = None
    markets, metrics = {}, {}
    for a in assets:
        if load_data is not None:
            markets[a], metrics[a] = load_data(a, interval, source=source)
        elif source == "demo":
            from cryptorl.data.demo import demo_data

            markets[a], metrics[a] = demo_data(a, interval)
        else:
            raise UserError(f"source {source!r} needs cryptorl.data.load_data, which is not available")
    return markets, metrics


def align(markets: dict, metrics: dict) -> tuple[dict, dict]:
    """Cut every asset's market to the bars all of them have (one common index).

    Metrics keep their own timestamps: the agents put them on the market index without
    looking ahead (:func:`cryptorl.data.frames.align_metrics`).
    """
    idx = common_index(markets)
    m = {a: df.reindex(idx) for a, df in markets.items()}
    x = dict(metrics)
    for a, df in m.items():
        if df.isna().any().any():
            t = df.index[df.isna().any(axis=1).to_numpy()][0]
            raise DataError(a, "the common range has a hole in this asset's bars", str(t))
    return m, x


def default_split(index: pd.DatetimeIndex, source: str, test_fraction: float = 0.3) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """``(train_end, start, end)``: the paper's range on demo data, else the last 30 % of the bars."""
    if source == "demo" and index[0] <= to_utc_timestamp(DEMO_SPLIT[0]) and index[-1] >= to_utc_timestamp(DEMO_SPLIT[2]):
        return tuple(to_utc_timestamp(d) for d in DEMO_SPLIT)
    k = int(len(index) * (1 - test_fraction))
    return index[k - 1], index[k], index[-1]


def read_weights_csv(spec: str) -> tuple[str, pd.DataFrame]:
    """``NAME=PATH`` -> (name, weight frame read from the CSV)."""
    if "=" not in spec:
        raise UserError(f"--extra takes NAME=PATH, got {spec!r}")
    name, path = spec.split("=", 1)
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--extra {name}: no file {p}")
    df = pd.read_csv(p)
    if "time" not in df.columns:
        raise UserError(f"--extra {name}: {p} has no 'time' column")
    df["time"] = pd.to_datetime(df["time"], utc=True)
    return name.strip(), df.set_index("time")


def _markdown(table: pd.DataFrame, title: str, notes: list[str], floatfmt: str = "{:.4g}") -> str:
    head = [*(n or "" for n in table.index.names), *map(str, table.columns)]
    lines = [f"# {title}", "", *notes, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in table.iterrows():
        cells = [str(i) for i in (idx if isinstance(idx, tuple) else (idx,))]
        cells += [floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
    out: str | Path = "reports/compare",
    fee: float = 0.001,
    slippage: float = 0.0,
    execution: str = "close",
    fast: bool = False,
    seed: int = 0,
    use_metrics: bool = False,
    log_dir: str | Path | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> dict:
    """Fit, backtest and report. Returns ``{"results", "errors", "reliability", "paths", "failed"}``.

    ``extra``: strategy name -> weight frame (columns ``["cash", *assets]``), backtested and
    reported beside the agents (the hook for the Crypto Module portfolios).
    """
    console = console or wide_console()
    train_end, start, end = (to_utc_timestamp(v) for v in (train_end, start, end))
    if not train_end < start <= end:
        raise UserError(f"need train_end < start <= end, got {train_end} / {start} / {end}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    assets = list(markets)
    zoo = make_agents(list(agents), fast=fast, seed=seed, log_dir=log_dir, use_metrics=use_metrics)
    weights: dict[str, pd.DataFrame] = {}
    failed: dict[str, str] = {}
    errors = []
    timings = {}
    bar = tqdm(zoo.items(), desc="agents", unit="agent", disable=not progress)
    for name, agent in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                agent.fit(markets, metrics, end=train_end)
                weights[name] = agent.weights(markets, metrics, start=start, end=end)
                if name in FORECASTERS:
                    e = agent.errors(markets, metrics, start=start, end=end)
                    errors.append(e.assign(forecaster=name).reset_index().set_index(["forecaster", "asset"]))
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]agent {name} failed:[/red] {failed[name]}")
        timings[name] = time.perf_counter() - t0
    for a in assets:
        weights[f"B&H {a}"] = buy_and_hold(markets, a, start=start, end=end)
    benchmark = BENCHMARK if BENCHMARK in weights else "B&H equal weight"
    if benchmark not in weights:
        weights[benchmark] = equal_weight_buy_and_hold(markets, assets, start=start, end=end)
    for name, w in (extra or {}).items():
        if name in weights:
            raise UserError(f"extra strategy {name!r} clashes with an agent or baseline of the same name")
        w = check_weights(w, interval, what=f"extra strategy {name!r}")
        weights[name] = w.loc[(w.index >= start) & (w.index <= end)]

    results: dict[str, BacktestResult] = {}
    for name, w in weights.items():
        results[name] = backtest(w, markets, interval=interval, fee=fee, slippage=slippage, execution=execution)

    title = f"Comparison {', '.join(assets)} {interval}: train <= {train_end.date()}, backtest {start.date()} .. {end.date()}"
    paths = write_report(results, out, title=title, console=console)
    wdir = out / "weights"
    wdir.mkdir(exist_ok=True)
    for name, w in weights.items():
        w.to_csv(wdir / f"{_slug(name)}.csv", float_format="%.10g")

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
        (out / "forecast_errors.md").write_text(_markdown(err_table, "Forecaster errors", notes))
        paths["errors_md"] = out / "forecast_errors.md"
        paths["errors_csv"] = out / "forecast_errors.csv"

    rel = reliability({n: r.returns for n, r in results.items()}, benchmark=benchmark, interval=interval)
    rel.to_csv(out / "reliability.csv", float_format="%.10g")
    notes = [
        (
            f"Seed 002's reliability analysis; Wilcoxon tests against '{benchmark}'. Sharpe annualised; CV of the 30-bar "
            "rolling Sharpe (std/|mean|); CVaR95 = mean loss of the worst 5 % of bars (positive = loss); p_value "
            "two-sided, p_greater one-sided (used by TOPSIS). w_* = entropy weights; Score = TOPSIS closeness (higher is better)."
        ),
    ]
    (out / "reliability.md").write_text(_markdown(rel, "Reliability analysis (TOPSIS, entropy weights)", notes))
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

    if len(err_table):
        console.print("[bold]Forecaster errors[/bold] (test range)")
        console.print(err_table[["RMSE", "MAE", "R2", "skill", "hit_rate"]].round(4).to_string())
    console.print("[bold]Reliability (TOPSIS score, best first)[/bold]")
    console.print(rel[["Sharpe", "CV", "CVaR95", "p_value", "p_greater", "Score"]].round(4).to_string())
    for key in ("errors_md", "reliability_md", "config"):
        if key in paths:
            console.print(f"{key}: {paths[key]}")
    return {"results": results, "errors": err_table, "reliability": rel, "paths": paths, "failed": failed}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_") or "strategy"


def crypto_module_weights(args: argparse.Namespace, assets: list[str], markets: dict, metrics: dict,
                          start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Voted weights of the store's Crypto Modules (training the missing ones when asked)."""
    from agents.portfolio import load_portfolio, missing_modules
    from cryptorl.modelstore import ModelStore, ModelStoreError
    from experiments import train_cm

    store = ModelStore(args.models)
    try:
        missing = missing_modules(assets, store, args.interval)
    except ModelStoreError as exc:
        raise UserError(" ".join(str(exc).split())) from None
    if missing and args.train_missing:
        for asset in missing:
            argv = ["--asset", asset, "--interval", args.interval, "--source", args.source,
                    "--models", str(store.root), "--no-progress"]
            if args.timesteps is not None:
                argv += ["--timesteps", str(args.timesteps)]
            print(f"training the missing Crypto Module for {asset}: python -m experiments.train_cm {' '.join(argv)}")
            train_cm.main(argv)
    try:
        return load_portfolio(assets, store, args.interval).decide(markets, metrics, start, end)
    except ModelStoreError as exc:
        raise UserError(" ".join(str(exc).split())) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description=(
            "Fit every alternative agent (seed forecasters, Sharpe-trained networks, classical allocators) on the "
            "same training range, backtest them with the same fees, and write one report: metrics table, "
            "cumulative returns, forecaster errors and seed 002's reliability analysis (TOPSIS)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--assets", default="BTC,ETH,LINK", help="comma-separated tickers")
    p.add_argument("--source", default="demo", help="'demo' (built-in synthetic market), 'store', or 'csv:PATH'")
    p.add_argument("--interval", default="1d", help="bar interval")
    p.add_argument("--agents", default=",".join(AGENT_NAMES), help=f"comma-separated agents among: {', '.join(AGENT_NAMES)}")
    p.add_argument("--train-end", default=None, help="last training bar (default: demo 2022-02-28, else 70 %% of the bars)")
    p.add_argument("--start", default=None, help="first backtest bar (default: the bar after --train-end)")
    p.add_argument("--end", default=None, help="last backtest bar (default: demo 2022-09-30, else the last bar)")
    p.add_argument("--fee", type=float, default=0.001, help="fee rate per traded fraction (Binance spot taker)")
    p.add_argument("--slippage", type=float, default=0.0, help="slippage rate per traded fraction")
    p.add_argument("--execution", default="close", choices=["close", "next_open"], help="when a decision trades")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=CSV", help="an extra strategy's weights (repeatable)")
    p.add_argument("--models", default=None,
                   help="model store with trained Crypto Modules: their voted portfolio joins the comparison as "
                        "'CryptoRLPM' (default: none; see also --train-missing)")
    p.add_argument("--train-missing", action="store_true",
                   help="train (as experiments.train_cm does) the Crypto Modules the store lacks, then compare them")
    p.add_argument("--timesteps", type=int, default=None, help="with --train-missing: SAM timesteps (train_cm's default)")
    p.add_argument("--use-metrics", action="store_true", help="forecasters and DLS also read each asset's metrics")
    p.add_argument("--fast", action="store_true", help="tiny networks and 3 epochs (smoke runs, CI)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--log-dir", default=None, help="TensorBoard log folder for the networks' losses")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (small networks run best on one)")
    p.add_argument("--out", default="reports/compare", help="report folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = wide_console()
    if args.threads < 1:
        print("error: --threads must be >= 1", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    try:
        from cryptorl.validation import check_assets, check_costs, check_dir

        assets = check_assets(args.assets)
        check_costs(args)
        check_dir(args.out, "--out")
        check_dir(args.log_dir, "--log-dir")
        if args.train_missing:
            from cryptorl.modelstore import ModelStore

            check_dir(ModelStore(args.models).root, "--models")
        names = [a.strip() for a in args.agents.split(",") if a.strip()]
        unknown = [n for n in names if n not in AGENT_NAMES]
        if unknown:
            raise UserError(f"unknown agent(s) {unknown}; known: {', '.join(AGENT_NAMES)}")
        extra = dict(read_weights_csv(s) for s in args.extra)
        markets, metrics = align(*load_markets(assets, args.source, args.interval))
        idx = next(iter(markets.values())).index
        d_train_end, d_start, d_end = default_split(idx, args.source)
        train_end = to_utc_timestamp(args.train_end) if args.train_end else None
        start = to_utc_timestamp(args.start) if args.start else None
        end = to_utc_timestamp(args.end) or d_end
        if train_end is None and start is None:
            train_end, start = d_train_end, d_start
        elif start is None:
            after = idx[idx > train_end]
            if len(after) == 0:
                raise UserError(f"--train-end {train_end} leaves no bar to backtest (data ends {idx[-1]})")
            start = after[0]
        elif train_end is None:
            before = idx[idx < start]
            if len(before) == 0:
                raise UserError(f"--start {start} leaves no bar to train on (data starts {idx[0]})")
            train_end = before[-1]
        if args.models is not None or args.train_missing:
            extra["CryptoRLPM"] = crypto_module_weights(args, assets, markets, metrics, start, end)
        run_comparison(
            markets,
            metrics,
            interval=args.interval,
            train_end=train_end,
            start=start,
            end=end,
            agents=names,
            extra=extra,
            out=args.out,
            fee=args.fee,
            slippage=args.slippage,
            execution=args.execution,
            fast=args.fast,
            seed=args.seed,
            use_metrics=args.use_metrics,
            log_dir=args.log_dir,
            console=console,
        )
    except (UserError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
