"""Walk-forward backtest: retrain every --step on the trailing window, trade the next --step.

    python -m experiments.walk_forward --assets BTC,ETH                       # demo, 2022-03-01..09-30
    python -m experiments.walk_forward --assets BTC,ETH,LINK --step 30d --timesteps 20000
    python -m experiments.walk_forward --assets BTC,ETH --source csv:../shared/data/prices/daily \\
        --start 2022-03-01 --end 2022-09-30 --out reports/walk_forward_real

At the start of every segment each asset's Crypto Module is trained from scratch on the bars that
have closed by then: --train-window of training followed by --val-window of validation (the
checkpoint with the best validation Sortino is kept); the DRU and the observation window warm up
on older bars before the training window. The modules are voted into portfolio weights for each
bar of the segment (paper eq. 2). The weights of all segments are stitched together and backtested
once over the whole out-of-sample span, so the value and the holdings carry across segments and
every model change pays exactly the fees of the trades it causes. This is the honest answer to
"would it have worked": no decision is made by a model that saw the bar it trades on.

Written to --out (default reports/walk_forward): the report of experiments.compose (metrics.md /
metrics.csv, also printed; cumulative_returns.png; weights_*.png; with --html a quantstats tear
sheet) comparing the walk-forward portfolio with buy-and-hold of each asset, equal-weight
buy-and-hold and CRP over the same span, plus segments.csv (ranges, each model's validation
Sortino, each segment's return and turnover), weights.csv (the stitched weights) and config.json.

Defaults: --start/--end = the paper's backtest range 2022-03-01 .. 2022-09-30 on demo data; on
other sources --end is the end of the data and --start the first time with enough history.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from cryptorl.cli import (
    DEMO_END,
    OneLineParser,
    UserError,
    add_config_arguments,
    add_gaps_argument,
    command,
    console,
    data_source,
    load_markets,
    one_line,
    parse_assets,
    print_table,
)
from cryptorl.parallel import add_parallel_arguments

DESCRIPTION = __doc__
DEMO_RANGE = ("2022-03-01", DEMO_END)
# CMConfig fields this command takes as flags (the rest keep CMConfig's defaults)
CM_FIELDS = ("algo", "timesteps", "seed", "ensemble", "fee", "execution")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m experiments.walk_forward",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--assets", required=True, help="comma-separated tickers of the portfolio, e.g. BTC,ETH")
    from cryptorl.data.sources import describe

    p.add_argument("--source", default=None, help=f"data source: {describe('market')} (default: demo, with a warning)")
    p.add_argument("--store", default=None, help="data store folder (default ./data or $CRYPTORL_DATA)")
    add_gaps_argument(p)
    p.add_argument("--interval", default="1d", help="bar interval (default 1d)")
    p.add_argument("--start", default=None, help="first out-of-sample decision time (see the defaults above)")
    p.add_argument("--end", default=None, help="last out-of-sample decision time (see the defaults above)")
    p.add_argument("--train-window", default="450d", help="training range before each segment (default 450d)")
    p.add_argument(
        "--val-window", default="60d", help="validation range between the training range and the segment (default 60d)"
    )
    p.add_argument("--step", default="30d", help="segment length: retrain every STEP (default 30d)")
    from agents.config import CMConfig

    # the modules' recipe, as train_cm takes it (--fee also costs every backtest)
    add_config_arguments(p, CMConfig, only=CM_FIELDS)
    p.add_argument("--eval-freq", type=int, default=2000, help="validate every N timesteps (default 2000)")
    p.add_argument("--slippage", type=float, default=0.0, help="extra cost rate in the backtests (default 0)")
    p.add_argument(
        "--out", type=Path, default=Path("reports/walk_forward"), help="report folder (default reports/walk_forward)"
    )
    p.add_argument("--title", default=None, help="report title (default 'Walk-forward <assets> (<interval>)')")
    p.add_argument("--html", action="store_true", help="also write a quantstats HTML tear sheet of the portfolio")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_parallel_arguments(p)
    return p


def _load(
    args: argparse.Namespace, assets: list[str], history: pd.Timedelta
) -> tuple[dict, dict, pd.Timestamp, pd.Timestamp]:
    """The markets (cut to their common bars) and metrics from ``history`` before the start."""
    from cryptorl.data.frames import to_utc_timestamp
    from cryptorl.portfolio import common_markets

    start, end = to_utc_timestamp(args.start), to_utc_timestamp(args.end)
    if data_source(args) == "demo":
        start = start or to_utc_timestamp(DEMO_RANGE[0])
        end = end or to_utc_timestamp(DEMO_RANGE[1])
    markets, metrics = load_markets(args, assets, start=start - history if start is not None else None, end=end)
    markets = common_markets(markets)
    index = next(iter(markets.values())).index
    return markets, metrics, start or index[0] + history, end or index[-1]


def _print_segments(table: pd.DataFrame, assets: list[str]) -> None:
    rows = []
    for number, row in table.iterrows():
        vals = " ".join(f"{a} {row[f'val_sortino_{a}']:.2f}" for a in assets)
        rows.append(
            [
                str(number),
                str(row["start"])[:10],
                str(row["end"])[:10],
                f"{str(row['train_start'])[:10]} .. {str(row['val_end'])[:10]}",
                vals,
                f"{row['return']:.2%}",
                f"{row['turnover']:.2f}",
            ]
        )
    print_table(
        "Segments (models trained on data before each segment's start)",
        ["#", "start", "end", "trained on (train + validation)", "validation Sortino", "return", "turnover"],
        rows,
    )


@command("walk_forward")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    assets = parse_assets(args.assets)
    for name in ("timesteps", "eval_freq", "workers", "ensemble"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    from cryptorl.validation import check_costs, check_dir

    check_costs(args)
    check_dir(args.out, "--out")
    check_dir(args.store, "--store")

    from agents.config import CMConfig
    from agents.updating import history_bars, parse_duration
    from agents.walk_forward import STRATEGY, run_walk_forward
    from cryptorl.data.frames import interval_timedelta
    from cryptorl.portfolio import write_report

    try:
        train_w = parse_duration(args.train_window, "--train-window")
        val_w = parse_duration(args.val_window, "--val-window")
        parse_duration(args.step, "--step")
        given = {name: getattr(args, name) for name in CM_FIELDS if getattr(args, name) is not None}
        config = CMConfig(asset=assets[0], interval=args.interval, **given)
        history = train_w + val_w + (history_bars(config) + 2) * interval_timedelta(args.interval)
        markets, metrics, start, end = _load(args, assets, history)
        print(
            f"Walk-forward {'+'.join(assets)} on {args.interval} bars, {start:%Y-%m-%d} .. {end:%Y-%m-%d}: retrain "
            f"every {args.step} on {args.train_window} + {args.val_window} validation; {config.algo.upper()} "
            f"{config.timesteps} steps; fee {config.fee:.2%}, slippage {args.slippage:.2%}, execution {config.execution}"
        )
        wf = run_walk_forward(
            markets,
            metrics,
            config,
            start=start,
            end=end,
            train_window=train_w,
            val_window=val_w,
            step=args.step,
            eval_freq=args.eval_freq,
            slippage=args.slippage,
            progress=not args.no_progress,
            workers=args.workers,
            address=args.address,
        )
    except ValueError as exc:  # DataError is a ValueError
        raise UserError(one_line(exc)) from None
    table = wf.segment_table()
    _print_segments(table, assets)
    out: Path = args.out
    title = args.title or f"Walk-forward {'+'.join(assets)} ({args.interval})"
    write_report(
        wf.results(),
        out,
        title=title,
        html=[STRATEGY] if args.html else False,
        benchmark=f"B&H {assets[0]}" if args.html else None,
        console=console(),
    )
    table.to_csv(out / "segments.csv")
    wf.weights.to_csv(out / "weights.csv", float_format="%.10g")
    (out / "config.json").write_text(
        json.dumps(
            {
                "assets": assets,
                "source": args.source,
                "start": str(start),
                "end": str(end),
                "train_window": args.train_window,
                "val_window": args.val_window,
                "step": args.step,
                "slippage": args.slippage,
                "segments": len(wf.segments),
                "cm_config": asdict(replace(config, asset="*")),
            },
            indent=2,
            default=str,
        )
    )
    print(f"segments: {out / 'segments.csv'}\nweights: {out / 'weights.csv'}\nreport folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
