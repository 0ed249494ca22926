"""Compose a portfolio from trained Crypto Modules by voting, backtest it against the baselines
and write a report (the paper's section 3: Table 2, Figures 6-8).

    python -m experiments.compose --assets BTC,ETH,LINK                  # demo data, ./models
    python -m experiments.compose --assets BTC,ETH,LINK,BNB --train-missing --timesteps 20000
    python -m experiments.compose --assets BTC,ETH --cm models/ETH_1d/v0002-... --html
    python -m experiments.compose --assets BTC,ETH --source csv:../shared/data/prices/daily \\
        --start 2022-03-01 --end 2022-09-30

Each asset's CM is the model store's current (promoted) version for the interval (``--cm FOLDER``
plugs in a specific saved version instead). A missing CM is an error, or is trained with
``--train-missing`` exactly as ``python -m experiments.train_cm --asset A`` would (same defaults,
same data, same train/validation split) and saved in the store; CMs already there are reused
as they are, never retrained. A CM on another interval, or one whose training data reaches into
the backtest range, is refused.

The backtest runs by default from the first bar after the latest training/validation end of the
CMs to the end of the data (``--start``/``--end`` choose it; the data are loaded from their
beginning, so the CMs' observation windows warm up before the first decision). The voted
portfolio ("CryptoRLPM") and the baselines (buy-and-hold of each asset, equal-weight
buy-and-hold, equal-weight rebalanced CRP, trend timing on the 20-bar SMA) are backtested with the same fee and execution. The
report folder gets metrics.md / metrics.csv (also printed), cumulative_returns.png, weights_*.png
and, with --html, a quantstats tear sheet; the paths are printed at the end.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from cryptorl.cli import (
    OneLineParser,
    UserError,
    add_data_arguments,
    add_ensemble_argument,
    command,
    console,
    load_for_cli,
    load_markets,
    one_line,
    parse_assets,
)
from cryptorl.parallel import add_parallel_arguments

DESCRIPTION = __doc__


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m experiments.compose",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        conflict_handler="resolve",
    )
    p.add_argument("--assets", required=True, help="comma-separated tickers of the portfolio, e.g. BTC,ETH,LINK")
    add_data_arguments(p)
    # Here --start/--end choose the backtest range (they replace the data-loading flags above).
    p.add_argument(
        "--start",
        default=None,
        help="first decision time of the backtest (default: the first bar after the latest "
        "training/validation end of the CMs); must lie after every CM's training",
    )
    p.add_argument("--end", default=None, help="last decision time of the backtest (default: the end of the data)")
    p.add_argument("--models", default=None, help="model store folder (default ./models or $CRYPTORL_MODELS)")
    p.add_argument(
        "--cm",
        action="append",
        default=[],
        metavar="FOLDER",
        type=Path,
        help="a saved CM version folder to use for its asset instead of the store's current one "
        "(repeatable; its asset must be one of --assets)",
    )
    p.add_argument(
        "--train-missing",
        action="store_true",
        help="train (as experiments.train_cm does, with its defaults) and save the CMs the store lacks",
    )
    p.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="with --train-missing: SAM training timesteps (default: train_cm's, 30000)",
    )
    p.add_argument("--seed", type=int, default=None, help="with --train-missing: random seed (default: train_cm's, 0)")
    add_ensemble_argument(
        p,
        "with --train-missing: SAMs voting in each module (default: train_cm's, 5; 1 trains five times faster)",
    )
    p.add_argument(
        "--tensorboard-log",
        default="runs",
        help="with --train-missing: TensorBoard folder (default runs/; '' to disable)",
    )
    p.add_argument(
        "--fee",
        type=float,
        default=None,
        help="transaction cost rate on traded value for every strategy (default 0.001, Binance spot "
        "taker); with --train-missing also the new CMs' training fee",
    )
    p.add_argument("--slippage", type=float, default=0.0, help="extra cost rate on traded value (default 0)")
    p.add_argument(
        "--execution",
        choices=["close", "next_open"],
        default=None,
        help="trade at the decision bar's close (default) or at the next bar's open",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report folder; one that holds an earlier report is refused (default reports/compose-<assets>-<interval>, "
        "numbered -2, -3, ... when an earlier report is there: a rerun never overwrites one)",
    )
    p.add_argument("--title", default=None, help="report title (default 'Portfolio <assets> (<interval>)')")
    p.add_argument(
        "--html",
        action="store_true",
        help="also write a quantstats HTML tear sheet of the portfolio, against equal-weight buy-and-hold of its coins",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_parallel_arguments(p)
    return p


def _plugged(folders: list[Path], assets: list[str]) -> dict[str, Path]:
    """``{asset: folder}`` of the ``--cm`` folders, each verified and belonging to ``--assets``."""
    from cryptorl.modelstore import verify

    plugged: dict[str, Path] = {}
    for folder in folders:
        asset = str(verify(folder).get("asset", "?")).upper()
        if asset not in assets:
            raise UserError(f"--cm {folder} holds a CM for {asset}, which is not in --assets {','.join(assets)}")
        if asset in plugged:
            raise UserError(f"two --cm folders for {asset}: {plugged[asset]} and {folder}")
        plugged[asset] = folder
    return plugged


def _train_missing(args: argparse.Namespace, missing: list[str], interval: str, store) -> None:
    """Train the missing CMs as ``train_cm --asset A`` would with its defaults, or say how to."""
    from agents.pipeline import train_missing

    if not args.train_missing:
        other = sorted({p.name for a in missing for p in store.root.glob(f"{a}_*") if p.is_dir()})
        hint = f" (the store has {', '.join(other)})" if other else ""
        source = f" --source {args.source}" if args.source else ""
        raise UserError(
            f"no trained {interval} CM for {', '.join(missing)} in {store.root}{hint}: train each with "
            f"`python -m experiments.train_cm --asset {missing[0]} --interval {interval}{source} "
            f"--models {store.root}`, or rerun with --train-missing"
        )
    print(f"training the missing {interval} CMs for {', '.join(missing)} (train_cm defaults)")
    overrides = {
        k: v
        for k, v in (
            ("timesteps", args.timesteps),
            ("ensemble", args.ensemble),
            ("seed", args.seed),
            ("fee", args.fee),
            ("execution", args.execution),
        )
        if v is not None
    }
    train_missing(
        missing,
        interval,
        lambda a: load_for_cli(argparse.Namespace(**{**vars(args), "start": None}), a),
        models=store,
        overrides=overrides,
        tensorboard_log=args.tensorboard_log or None,
        workers=args.workers,
        address=args.address,
        progress=not args.no_progress,
    )


def _report_folder(args: argparse.Namespace, assets: list[str], interval: str) -> Path:
    """``--out``, refused if it holds an earlier report; else the default folder, numbered past the
    ones that hold earlier reports."""

    def has_report(folder: Path) -> bool:
        return (folder / "metrics.md").exists() or (folder / "metrics.csv").exists()

    if args.out is not None:
        if has_report(args.out):
            raise UserError(f"--out {args.out} holds an earlier report: choose another folder, or remove that one")
        return args.out
    base = Path("reports") / f"compose-{'-'.join(a.lower() for a in assets)}-{interval}"
    out, k = base, 1
    while has_report(out):
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _benchmark(results: dict, assets: list[str]) -> str:
    """The tear sheet's benchmark: equal-weight buy-and-hold of the portfolio's coins (B&H of the
    coin for a one-coin portfolio)."""
    return "B&H equal weight" if "B&H equal weight" in results else f"B&H {assets[0]}"


def _describe(portfolio, bt, fee: float, execution: str) -> None:
    from cryptorl.data.frames import when

    print(
        f"Portfolio {'+'.join(portfolio.assets)} on {portfolio.interval} bars, backtest {when(bt.start)} .. "
        f"{when(bt.end)} (fee {fee:.2%}, execution {execution}):"
    )
    for asset, module in portfolio.modules.items():
        trained = module.ranges.get("train", ("?", "?"))
        where = module.folder if module.folder is not None else "(not saved)"
        print(
            f"  CM {asset}: {module.config.algo.upper()}{'+EAM' if module.eam is not None else ''}, "
            f"trained {str(trained[0])[:10]} .. {str(module.train_end)[:10]} (incl. validation); {where}"
        )
        if (module.config.fee, module.config.execution) != (fee, execution):
            print(
                f"  note: CM {asset} was trained with fee {module.config.fee:.2%}, execution "
                f"{module.config.execution}; the backtest uses fee {fee:.2%}, execution {execution}"
            )


@command("compose")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cryptorl.modelstore import ModelStore

    assets = parse_assets(args.assets)
    interval = args.interval or "1d"
    store = ModelStore(args.models)
    from cryptorl.validation import check_report_options

    check_report_options(args, assets, models=args.models)  # before any training or report
    out = _report_folder(args, assets, interval)
    plugged = _plugged(args.cm, assets)
    missing = [a for a in assets if a not in plugged and store.current(a, interval) is None]
    if missing:
        _train_missing(args, missing, interval, store)

    from agents.crypto_module import CryptoModule
    from agents.pipeline import STRATEGY, backtest_portfolio
    from agents.portfolio import load_module
    from cryptorl.portfolio import Portfolio, write_report

    try:
        with warnings.catch_warnings():
            # Rebuilding a PPO SAM for inference only trips SB3's mini-batch-size advice; harmless here.
            warnings.filterwarnings("ignore", message="You have specified a mini-batch size", category=UserWarning)
            modules = [
                CryptoModule.load(plugged[a]) if a in plugged else load_module(a, store, interval) for a in assets
            ]
        portfolio = Portfolio(modules, interval=interval)
        # the data from their beginning (the CMs' observation windows warm up) to --end
        markets, metrics = load_markets(args, assets, end=args.end)
        fee = 0.001 if args.fee is None else args.fee
        execution = args.execution or "close"
        bt = backtest_portfolio(
            portfolio, markets, metrics, args.start, args.end, fee=fee, slippage=args.slippage, execution=execution
        )
    except (ValueError, TypeError, KeyError) as exc:  # DataError is a ValueError
        raise UserError(one_line(exc)) from None
    _describe(portfolio, bt, fee, execution)
    title = args.title or f"Portfolio {'+'.join(assets)} ({interval})"
    write_report(
        bt.results,
        out,
        title=title,
        html=[STRATEGY] if args.html else False,
        benchmark=_benchmark(bt.results, assets) if args.html else None,
        console=console(),
    )
    print(f"report folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
