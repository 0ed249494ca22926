"""Compare every alternative agent (and any extra strategy) on one split, fees and metrics.

    python -m experiments.compare --assets BTC,ETH,LINK --source demo
    python -m experiments.compare --assets BTC,ETH,LINK --source csv:/path/to/folder \\
        --train-end 2021-12-31 --start 2022-01-01 --end 2022-09-30 --out reports/compare

Every agent is fitted on the bars up to ``--train-end`` and gives weights for each bar in
``[--start, --end]`` from data up to that bar; every strategy is backtested with the same fee,
slippage and execution (:func:`agents.compare.run_comparison`). Written to ``--out``: the
backtest report (metrics table, cumulative returns, weights plots), ``forecast_errors.md/.csv``,
``reliability.md/.csv``, ``weights/<strategy>.csv`` and ``config.json``.

Other strategies join with ``--extra "NAME=path/to/weights.csv"`` (a CSV with a ``time``
column, ``cash`` and one column per asset) or, for the Crypto Module portfolio, ``--models``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from agents.catalog import AGENT_NAMES
from cryptorl.cli import (
    DefaultsHelpFormatter,
    OneLineParser,
    UserError,
    add_data_arguments,
    add_ensemble_argument,
    command,
    console,
    load_markets,
    parse_assets,
)
from cryptorl.data.frames import to_utc_timestamp
from cryptorl.parallel import add_parallel_arguments


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


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m experiments.compare",
        description=(
            "Fit every alternative agent (seed forecasters, Sharpe-trained networks, classical allocators) on the "
            "same training range, backtest them with the same fees, and write one report: metrics table, "
            "cumulative returns, forecaster errors and the reliability analysis of Chen & Zheng (2025) (TOPSIS)."
        ),
        formatter_class=DefaultsHelpFormatter,
        conflict_handler="resolve",
    )
    p.add_argument("--assets", default="BTC,ETH,LINK", help="comma-separated tickers")
    add_data_arguments(p)
    p.add_argument(
        "--agents", default=",".join(AGENT_NAMES), help=f"comma-separated agents among: {', '.join(AGENT_NAMES)}"
    )
    p.add_argument(
        "--train-end", default=None, help="last training bar (default: demo 2022-02-28, else 70 %% of the bars)"
    )
    p.add_argument("--start", default=None, help="first backtest bar (default: the bar after --train-end)")
    p.add_argument("--end", default=None, help="last backtest bar (default: demo 2022-09-30, else the last bar)")
    p.add_argument("--fee", type=float, default=0.001, help="fee rate per traded fraction (Binance spot taker)")
    p.add_argument("--slippage", type=float, default=0.0, help="slippage rate per traded fraction")
    p.add_argument("--execution", default="close", choices=["close", "next_open"], help="when a decision trades")
    p.add_argument(
        "--extra", action="append", default=[], metavar="NAME=CSV", help="an extra strategy's weights (repeatable)"
    )
    p.add_argument(
        "--models",
        default=None,
        help="model store with trained Crypto Modules: their voted portfolio joins the comparison as "
        "'CryptoRLPM' (default: none; see also --train-missing)",
    )
    p.add_argument(
        "--train-missing",
        action="store_true",
        help="train (as experiments.train_cm does) the Crypto Modules the store lacks, then compare them",
    )
    p.add_argument(
        "--timesteps", type=int, default=None, help="with --train-missing: SAM timesteps (train_cm's default)"
    )
    add_ensemble_argument(
        p,
        "with --train-missing: SAMs voting in each module (train_cm's default, 5)",
    )
    p.add_argument("--use-metrics", action="store_true", help="forecasters and DLS also read each asset's metrics")
    p.add_argument("--fast", action="store_true", help="tiny networks and 3 epochs (smoke runs, CI)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--log-dir", default=None, help="TensorBoard log folder for the networks' losses")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="cpu",
        help="torch device of the forecasters' networks (CPU is fastest for these small networks)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (small networks run best on one)")
    p.add_argument("--out", default="reports/compare", help="report folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_parallel_arguments(p)
    return p


def _split(args: argparse.Namespace, idx: pd.DatetimeIndex) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """``(train_end, start, end)`` from the flags, defaulting to :func:`agents.compare.default_split`."""
    from agents.compare import default_split

    d_train_end, d_start, d_end = default_split(idx, args.source)
    train_end = to_utc_timestamp(args.train_end) if args.train_end else None
    start = to_utc_timestamp(args.start) if args.start else None
    end = to_utc_timestamp(args.end) or d_end
    if train_end is None and start is None:
        return d_train_end, d_start, end
    if start is None:
        after = idx[idx > train_end]
        if len(after) == 0:
            raise UserError(f"--train-end {train_end} leaves no bar to backtest (data ends {idx[-1]})")
        return train_end, after[0], end
    if train_end is None:
        before = idx[idx < start]
        if len(before) == 0:
            raise UserError(f"--start {start} leaves no bar to train on (data starts {idx[0]})")
        return before[-1], start, end
    return train_end, start, end


def crypto_module_portfolio(args: argparse.Namespace, assets: list[str], markets: dict, metrics: dict):
    """The store's Crypto Modules voted together (training the missing ones when asked)."""
    from agents.pipeline import train_missing
    from agents.portfolio import load_portfolio

    if args.train_missing:
        overrides = {k: v for k, v in (("timesteps", args.timesteps), ("ensemble", args.ensemble)) if v is not None}
        train_missing(
            assets,
            args.interval,
            lambda a: (markets[a], metrics[a]),
            models=args.models,
            overrides=overrides,
            workers=args.workers,
            address=args.address,
            progress=not args.no_progress,
        )
    return load_portfolio(assets, args.models, args.interval)


@command("compare")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1:
        raise UserError("--threads must be >= 1")
    import torch

    from agents.compare import run_comparison
    from cryptorl.portfolio import common_markets

    torch.set_num_threads(args.threads)
    args.interval = args.interval or "1d"
    assets = parse_assets(args.assets)
    from cryptorl.validation import check_report_options

    check_report_options(args, assets if args.models is not None else [], models=args.models)
    names = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = [n for n in names if n not in AGENT_NAMES]
    if unknown:
        raise UserError(f"unknown agent(s) {unknown}; known: {', '.join(AGENT_NAMES)}")
    extra = dict(read_weights_csv(s) for s in args.extra)
    markets, metrics = load_markets(args, assets)
    markets = common_markets(markets)
    train_end, start, end = _split(args, next(iter(markets.values())).index)
    cms = (
        [crypto_module_portfolio(args, assets, markets, metrics)]
        if args.models is not None or args.train_missing
        else []
    )
    try:
        run_comparison(
            markets,
            metrics,
            interval=args.interval,
            train_end=train_end,
            start=start,
            end=end,
            agents=names,
            extra=extra,
            strategies=cms,
            out=args.out,
            fee=args.fee,
            slippage=args.slippage,
            execution=args.execution,
            fast=args.fast,
            seed=args.seed,
            use_metrics=args.use_metrics,
            log_dir=args.log_dir,
            device=args.device,
            console=console(),
            progress=not args.no_progress,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
