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
buy-and-hold, equal-weight rebalanced CRP) are backtested with the same fee and execution. The
report folder gets metrics.md / metrics.csv (also printed), cumulative_returns.png, weights_*.png
and, with --html, a quantstats tear sheet; the paths are printed at the end.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

from cryptorl.cli import add_data_arguments, fail, load_for_cli, one_line, parse_assets

DESCRIPTION = __doc__
STRATEGY = "CryptoRLPM"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.compose", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve",
    )
    p.add_argument("--assets", required=True, help="comma-separated tickers of the portfolio, e.g. BTC,ETH,LINK")
    add_data_arguments(p)
    # Here --start/--end choose the backtest range (they replace the data-loading flags above).
    p.add_argument("--start", default=None,
                   help="first decision time of the backtest (default: the first bar after the latest "
                        "training/validation end of the CMs); must lie after every CM's training")
    p.add_argument("--end", default=None, help="last decision time of the backtest (default: the end of the data)")
    p.add_argument("--models", default=None, help="model store folder (default ./models or $CRYPTORL_MODELS)")
    p.add_argument("--cm", action="append", default=[], metavar="FOLDER", type=Path,
                   help="a saved CM version folder to use for its asset instead of the store's current one "
                        "(repeatable; its asset must be one of --assets)")
    p.add_argument("--train-missing", action="store_true",
                   help="train (as experiments.train_cm does, with its defaults) and save the CMs the store lacks")
    p.add_argument("--timesteps", type=int, default=None,
                   help="with --train-missing: SAM training timesteps (default: train_cm's, 30000)")
    p.add_argument("--seed", type=int, default=None, help="with --train-missing: random seed (default: train_cm's, 0)")
    p.add_argument("--tensorboard-log", default="runs",
                   help="with --train-missing: TensorBoard folder (default runs/; '' to disable)")
    p.add_argument("--fee", type=float, default=None,
                   help="transaction cost rate on traded value for every strategy (default 0.001, Binance spot "
                        "taker); with --train-missing also the new CMs' training fee")
    p.add_argument("--slippage", type=float, default=0.0, help="extra cost rate on traded value (default 0)")
    p.add_argument("--execution", choices=["close", "next_open"], default=None,
                   help="trade at the decision bar's close (default) or at the next bar's open")
    p.add_argument("--out", type=Path, default=None,
                   help="report folder (default reports/compose-<assets>-<interval>)")
    p.add_argument("--title", default=None, help="report title (default 'Portfolio <assets> (<interval>)')")
    p.add_argument("--html", action="store_true", help="also write a quantstats HTML tear sheet of the portfolio")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def train_argv(args: argparse.Namespace, asset: str, interval: str, models: Path) -> list[str]:
    """The ``experiments.train_cm`` command line that trains a missing CM like a user would."""
    argv = ["--asset", asset, "--interval", interval, "--source", args.source, "--models", str(models)]
    for flag, value in (("--store", args.store), ("--end", args.end), ("--timesteps", args.timesteps),
                        ("--seed", args.seed), ("--fee", args.fee), ("--execution", args.execution)):
        if value is not None:
            argv += [flag, str(value)]
    if args.tensorboard_log != "runs":
        argv += ["--tensorboard-log", args.tensorboard_log]
    if args.no_progress:
        argv.append("--no-progress")
    return argv


def _command(argv: list[str]) -> str:
    return "python -m experiments.train_cm " + shlex.join(argv)


def _check_options(args: argparse.Namespace, store, assets: list[str], interval: str) -> None:
    """Numbers, folders and the store's pointers, before any training or report is written."""
    from cryptorl.cli import UserError
    from cryptorl.modelstore import ModelStoreError
    from cryptorl.validation import check_costs, check_dir, check_number

    try:
        check_costs(args)
        check_number(args.timesteps, "--timesteps", low=1, integer=True, optional=True)
        check_number(args.seed, "--seed", low=0, integer=True, optional=True)
        check_dir(args.out, "--out")
        check_dir(args.store, "--store")
        if args.train_missing:
            check_dir(store.root, "--models")
        for asset in assets:
            store.current(asset, interval)  # a CURRENT naming a missing version is an error
    except (UserError, ModelStoreError) as exc:
        fail(one_line(exc))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cryptorl.modelstore import ModelStore, ModelStoreError, verify

    assets = parse_assets(args.assets)
    interval = args.interval or "1d"
    store = ModelStore(args.models)
    _check_options(args, store, assets, interval)
    user_errors = (ValueError, TypeError, KeyError, ModelStoreError)  # DataError is a ValueError

    # 1. which CMs: --cm folders, else the store's current versions (checked before the heavy imports)
    plugged: dict[str, Path] = {}
    for folder in args.cm:
        try:
            asset = str(verify(folder).get("asset", "?")).upper()
        except ModelStoreError as exc:
            fail(one_line(exc))
        if asset not in assets:
            fail(f"--cm {folder} holds a CM for {asset}, which is not in --assets {','.join(assets)}")
        if asset in plugged:
            fail(f"two --cm folders for {asset}: {plugged[asset]} and {folder}")
        plugged[asset] = folder
    missing = [a for a in assets if a not in plugged and store.current(a, interval) is None]
    if missing and not args.train_missing:
        other = sorted({p.name for a in missing for p in store.root.glob(f"{a}_*") if p.is_dir()})
        hint = f" (the store has {', '.join(other)})" if other else ""
        fail(f"no trained {interval} CM for {', '.join(missing)} in {store.root}{hint}: train "
             f"{'it' if len(missing) == 1 else 'each'} with `{_command(train_argv(args, missing[0], interval, store.root))}`"
             f"{' (and the same for ' + ', '.join(missing[1:]) + ')' if len(missing) > 1 else ''}, "
             "or rerun with --train-missing")

    from agents.crypto_module import CryptoModule
    from agents.portfolio import backtest_range, load_module
    from cryptorl.portfolio import Portfolio, backtest, baselines, write_report
    from experiments import train_cm

    for i, asset in enumerate(missing, 1):
        print(f"[{i}/{len(missing)}] training the missing {interval} CM for {asset}: "
              f"{_command(train_argv(args, asset, interval, store.root))}")
        train_cm.main(train_argv(args, asset, interval, store.root))
    chosen: dict[str, CryptoModule] = {}
    try:
        with warnings.catch_warnings():
            # Rebuilding a PPO SAM for inference only trips SB3's mini-batch-size advice; harmless here.
            warnings.filterwarnings("ignore", message="You have specified a mini-batch size", category=UserWarning)
            for asset in assets:
                chosen[asset] = CryptoModule.load(plugged[asset]) if asset in plugged else load_module(asset, store, interval)
        portfolio = Portfolio([chosen[a] for a in assets], interval=interval)
    except user_errors as exc:
        fail(one_line(exc))

    # 2. the data, from its beginning (warm-up) to --end
    data_args = argparse.Namespace(source=args.source, store=args.store, interval=interval, start=None, end=args.end)
    markets, metrics = {}, {}
    for asset in assets:
        markets[asset], metrics[asset] = load_for_cli(data_args, asset, interval)

    # 3. vote, backtest the portfolio and the baselines with the same costs
    fee = 0.001 if args.fee is None else args.fee
    execution = args.execution or "close"
    costs = {"fee": fee, "slippage": args.slippage, "execution": execution}
    try:
        start, end = backtest_range(portfolio, markets, args.start, args.end)
        print(f"Portfolio {'+'.join(assets)} on {interval} bars, backtest {start} .. {end} "
              f"(fee {fee:g}, slippage {args.slippage:g}, execution {execution}):")
        for asset, module in portfolio.modules.items():
            trained = module.ranges.get("train", ("?", "?"))
            where = module.folder if module.folder is not None else "(not saved)"
            print(f"  CM {asset}: {module.config.algo.upper()}{'+EAM' if module.eam is not None else ''}, "
                  f"trained {str(trained[0])[:10]} .. {str(module.train_end)[:10]} (incl. validation); {where}")
            if (module.config.fee, module.config.execution) != (fee, execution):
                print(f"  note: CM {asset} was trained with fee {module.config.fee:g}, execution "
                      f"{module.config.execution}; the backtest uses fee {fee:g}, execution {execution}")
        weights = portfolio.decide(markets, metrics, start, end)
        results = {STRATEGY: backtest(weights, markets, interval=interval, **costs)}
        for name, w in baselines(markets, assets, start=start, end=end).items():
            results[name] = backtest(w, markets, interval=interval, **costs)
    except user_errors as exc:
        fail(one_line(exc))

    # 4. the report
    out = args.out or Path("reports") / f"compose-{'-'.join(a.lower() for a in assets)}-{interval}"
    title = args.title or f"Portfolio {'+'.join(assets)} ({interval})"
    write_report(results, out, title=title, html=[STRATEGY] if args.html else False,
                 benchmark=f"B&H {assets[0]}" if args.html else None)
    print(f"report folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
