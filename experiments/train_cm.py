"""Train a Crypto Module end to end and backtest it against buy-and-hold.

    python -m experiments.train_cm --asset BTC                      # demo market, DQN, defaults
    python -m experiments.train_cm --asset ETH --algo dqn --timesteps 50000 --with-eam
    python -m experiments.train_cm --asset BTC --source csv:../shared/data/prices/daily
    tensorboard --logdir runs/                                      # one run per module

Data come from ``--source`` (the built-in demo market by default), the DRU is fitted on the
training range, the SAM (and EAM with ``--with-eam``) is trained with validation every
``--eval-freq`` steps keeping the best model, then the module is backtested on the held-out
range, printed against buy-and-hold and saved in the model store (``--models``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptorl.cli import (
    OneLineParser,
    UserError,
    add_config_arguments,
    add_data_arguments,
    command,
    load_for_cli,
    parse_value,
    print_table,
)

if TYPE_CHECKING:
    import pandas as pd

DESCRIPTION = __doc__


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m experiments.train_cm",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from agents.config import CMConfig

    # every CMConfig field is a flag (--n-envs, --observe-position/--no-observe-position, ...);
    # --interval comes with the data options
    add_config_arguments(p, CMConfig, exclude=("interval",), required=("asset",))
    add_data_arguments(p)
    p.add_argument(
        "--eval-freq", type=int, default=None, help=f"validate every N timesteps (default {RUN_DEFAULTS['eval_freq']})"
    )
    p.add_argument(
        "--hyperparams",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="SB3 hyper-parameters, e.g. learning_rate=1e-4 gamma=0.9",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML file with any of these options (keys as the flags, with underscores) and a "
        "'hyperparams' mapping; flags given on the command line win",
    )
    p.add_argument("--train-months", type=float, default=15, help="training months (default 15, the paper's)")
    p.add_argument("--val-months", type=float, default=2, help="validation months (default 2)")
    p.add_argument("--backtest-months", type=float, default=7, help="backtest months (default 7)")
    p.add_argument("--train-start", default=None, help="explicit training start (overrides the month split)")
    p.add_argument("--val-start", default=None, help="explicit validation start")
    p.add_argument("--backtest-start", default=None, help="explicit backtest start")
    p.add_argument("--tensorboard-log", default=None, help="TensorBoard folder (default runs/; '' to disable)")
    p.add_argument("--models", default=None, help="model store folder (default ./models or $CRYPTORL_MODELS)")
    p.add_argument("--no-save", action="store_true", help="do not save the trained module")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


# Options of the command that are not CMConfig fields, with their defaults (a config file may set them).
RUN_DEFAULTS: dict[str, Any] = {"eval_freq": 2000, "tensorboard_log": "runs", "models": None}


def _config_from(args: argparse.Namespace) -> dict[str, Any]:
    """Options from the YAML file, overridden by the flags given on the command line."""
    from agents.config import CMConfig

    cfg: dict[str, Any] = {}
    if args.config is not None:
        import yaml

        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"cannot read config file {args.config}: {exc}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"config file {args.config} must hold a mapping of options")
        cfg.update(loaded)
    known = {f.name for f in fields(CMConfig)}
    unknown = set(cfg) - known - set(RUN_DEFAULTS) - {"source", "start", "end", "store"}
    if unknown:
        raise UserError(f"unknown option(s) in config: {sorted(unknown)}")
    for name in (known - {"hyperparams", "dru"}) | set(RUN_DEFAULTS):
        value = getattr(args, name, None)
        if value is not None:  # every flag defaults to None: given means given, whatever its value
            cfg[name] = value
    hp = {k: parse_value(v) if isinstance(v, str) else v for k, v in (cfg.get("hyperparams") or {}).items()}
    for item in args.hyperparams:
        if "=" not in item:
            raise UserError(f"--hyperparams takes KEY=VALUE pairs, got {item!r}")
        k, v = item.split("=", 1)
        hp[k.strip()] = parse_value(v)
    cfg["hyperparams"] = hp
    for k, default in RUN_DEFAULTS.items():
        setattr(args, k, cfg.pop(k, default))
    return {k: v for k, v in cfg.items() if k in known}


def make_split(args: argparse.Namespace, index: pd.DatetimeIndex):
    from agents.training import explicit_split, paper_split

    if args.val_start or args.backtest_start:
        if not (args.val_start and args.backtest_start):
            raise UserError("give both --val-start and --backtest-start (or neither)")
        try:
            return explicit_split(index, args.train_start, args.val_start, args.backtest_start)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return paper_split(index, args.train_months, args.val_months, args.backtest_months)


def _print_results(trained) -> None:
    module = trained.module
    print("\nDRU selection (fitted on the training range):")
    print(module.dru.selection)
    if trained.backtest:
        cm = next(iter(trained.backtest.values()))
        b0, b1 = cm.values.index[0], cm.values.index[-1]
        rows = []
        for name, res in trained.backtest.items():
            m = res.metrics()
            rows.append(
                [
                    name,
                    f"{m['ARR']:.2%}",
                    f"{m['DRR']:.4%}",
                    f"{m['Sortino']:.3f}",
                    f"{m['Sharpe']:.3f}",
                    f"{m['MaxDrawdown']:.2%}",
                ]
            )
        print_table(
            f"Backtest {b0:%Y-%m-%d} .. {b1:%Y-%m-%d} (fee {module.config.fee:.2%}, "
            f"execution {module.config.execution})",
            ["strategy", "ARR: total return", "DRR", "Sortino", "Sharpe", "MaxDD"],
            rows,
        )
    v = module.validation
    if v:
        print(
            f"validation (the weights kept): Sortino {v['Sortino']:.3f}, total return (ARR) {v['ARR']:.2%}, "
            f"MaxDD {v['MaxDrawdown']:.2%}"
        )
    if "follows_prior" in v:
        prior = f"its {module.config.prior} prior"
        if v["follows_prior"]:
            print(f"what the module learned did not beat {prior} on validation: it follows the rule")
        else:
            print(f"what the module learned beat {prior} on validation: kept")


@command("train_cm")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from agents.config import CMConfig
    from agents.options import check_not_older, check_train_options
    from agents.pipeline import train_and_save

    options = _config_from(args)
    check_train_options(args, options)  # every option and output folder before any data or training
    try:
        config = CMConfig(**options)
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    market, metrics = load_for_cli(args, config.asset, config.interval)
    pool = {a: load_for_cli(args, a, config.interval)[0] for a in config.pool}
    if pool and metrics is not None:
        print(f"--pool: training on market features only ({metrics.shape[1]} metrics left out)", file=sys.stderr)
        metrics = None
    if not args.no_save:
        check_not_older(args.models, config.asset, config.interval, market.index[-1])
    split = make_split(args, market.index)
    print(
        f"{config.asset} {config.interval}: {len(market)} bars {market.index[0]:%Y-%m-%d} .. {market.index[-1]:%Y-%m-%d}; "
        f"{0 if metrics is None else metrics.shape[1]} metrics"
    )
    for name, (a, b) in split.as_dict().items():
        print(f"  {name:<10} {a[:10]} .. {b[:10]}")
    tb = args.tensorboard_log or None
    try:
        trained = train_and_save(
            market,
            metrics,
            config,
            split,
            models=args.models,
            save=not args.no_save,
            eval_freq=args.eval_freq,
            tensorboard_log=tb,
            progress_bar=not args.no_progress,
            note=f"train_cm seed {config.seed}",
            pool=pool,
        )
    except ValueError as exc:  # DataError is a ValueError
        text = str(exc)
        if "rows up to train_end" in text:  # too little training data: say where the range came from
            text += (
                f"; the data loaded are {len(market)} bars from {market.index[0]:%Y-%m-%d %H:%M} (without --start "
                "they begin after the last gap in the stored bars: --gaps fill goes across it) and the default "
                "split gives training the first 15/24 of them (give --start, or --train-start, --val-start and "
                "--backtest-start)"
            )
        raise UserError(" ".join(text.split())) from None
    _print_results(trained)
    if tb:
        print(f"TensorBoard: tensorboard --logdir {tb}")
    if trained.folder is not None:
        print(f"saved: {trained.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
