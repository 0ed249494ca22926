"""Train a Crypto Module end to end and backtest it against buy-and-hold.

    python -m experiments.train_cm --asset BTC                      # demo market, PPO, defaults
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
from typing import Any

import pandas as pd

from cryptorl.cli import add_data_arguments, fail, load_for_cli, parse_value, print_table

DESCRIPTION = __doc__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.train_cm", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--asset", required=True, help="ticker of the crypto, e.g. BTC")
    add_data_arguments(p)
    p.add_argument("--algo", default=None, choices=["ppo", "dqn", "a2c", "qrdqn"], help="SAM algorithm (default ppo)")
    p.add_argument("--timesteps", type=int, default=None, help="SAM training timesteps (default 30000)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--with-eam", action="store_true", default=None, help="train an EAM (DQN signals) first and feed its signals to the SAM")
    p.add_argument("--eam-timesteps", type=int, default=None, help="EAM training timesteps (default 10000)")
    p.add_argument("--window", type=int, default=None, help="observation window n in bars (default 30)")
    p.add_argument("--fee", type=float, default=None, help="transaction cost rate on traded value (default 0.001)")
    p.add_argument("--execution", choices=["close", "next_open"], default=None,
                   help="trade at the decision bar's close (default) or at the next bar's open")
    p.add_argument("--n-envs", type=int, default=None, help="parallel training episodes in the batched env (default 64)")
    p.add_argument("--episode-length", type=int, default=None, help="training episode length in bars (default 64)")
    p.add_argument("--eval-freq", type=int, default=2000, help="validate every N timesteps (default 2000)")
    p.add_argument("--hyperparams", nargs="*", default=[], metavar="KEY=VALUE",
                   help="SB3 hyper-parameters, e.g. learning_rate=1e-4 gamma=0.9")
    p.add_argument("--config", type=Path, default=None,
                   help="YAML file with any of these options (keys as the flags, with underscores) and a "
                        "'hyperparams' mapping; flags given on the command line win")
    p.add_argument("--train-months", type=float, default=15, help="training months (default 15, the paper's)")
    p.add_argument("--val-months", type=float, default=2, help="validation months (default 2)")
    p.add_argument("--backtest-months", type=float, default=7, help="backtest months (default 7)")
    p.add_argument("--train-start", default=None, help="explicit training start (overrides the month split)")
    p.add_argument("--val-start", default=None, help="explicit validation start")
    p.add_argument("--backtest-start", default=None, help="explicit backtest start")
    p.add_argument("--tensorboard-log", default="runs", help="TensorBoard folder (default runs/; '' to disable)")
    p.add_argument("--models", default=None, help="model store folder (default ./models or $CRYPTORL_MODELS)")
    p.add_argument("--no-save", action="store_true", help="do not save the trained module")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _config_from(args: argparse.Namespace) -> dict[str, Any]:
    """Options from the YAML file, overridden by the flags given."""
    from agents.crypto_module import CMConfig

    cfg: dict[str, Any] = {}
    if args.config is not None:
        import yaml

        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            fail(f"cannot read config file {args.config}: {' '.join(str(exc).split())}")
        if not isinstance(loaded, dict):
            fail(f"config file {args.config} must hold a mapping of options")
        cfg.update(loaded)
    known = {f.name for f in fields(CMConfig)}
    for name in known - {"hyperparams", "dru"}:
        value = getattr(args, name, None)
        if value is not None:
            cfg[name] = value
    hp = {k: parse_value(v) if isinstance(v, str) else v for k, v in (cfg.get("hyperparams") or {}).items()}
    for item in args.hyperparams:
        if "=" not in item:
            fail(f"--hyperparams takes KEY=VALUE pairs, got {item!r}")
        k, v = item.split("=", 1)
        hp[k.strip()] = parse_value(v)
    cfg["hyperparams"] = hp
    unknown = set(cfg) - known - {"eval_freq", "source", "start", "end", "store", "models", "tensorboard_log"}
    if unknown:
        fail(f"unknown option(s) in config: {sorted(unknown)}")
    for k in ("eval_freq", "tensorboard_log", "models"):
        if k in cfg and getattr(args, k, None) in (None, 2000, "runs"):
            setattr(args, k, cfg[k])
    return {k: v for k, v in cfg.items() if k in known}


def make_split(args: argparse.Namespace, index: pd.DatetimeIndex):
    from agents.training import Split, paper_split
    from cryptorl.data.frames import to_utc_timestamp

    if args.val_start or args.backtest_start:
        if not (args.val_start and args.backtest_start):
            fail("give both --val-start and --backtest-start (or neither)")
        eps = pd.Timedelta(seconds=1)
        tr0 = to_utc_timestamp(args.train_start) if args.train_start else index[0]
        v0, b0 = to_utc_timestamp(args.val_start), to_utc_timestamp(args.backtest_start)
        if not tr0 < v0 < b0 <= index[-1]:
            fail(f"the split must satisfy train start < validation start < backtest start <= data end ({index[-1]})")
        return Split((tr0, v0 - eps), (v0, b0 - eps), (b0, index[-1]))
    return paper_split(index, args.train_months, args.val_months, args.backtest_months)


def equity_figure(results: dict[str, Any], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, res in results.items():
        ax.plot(res.values.index, res.values.to_numpy(), label=name)
    ax.set_title(title)
    ax.set_ylabel("value (start = 1)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from agents.crypto_module import CMConfig
    from agents.training import policy_backtest, train_crypto_module
    from cryptorl.cli import UserError
    from cryptorl.modelstore import ModelStore
    from cryptorl.portfolio.backtest import backtest
    from cryptorl.validation import check_cm_options, check_date, check_dir, check_number

    options = _config_from(args)
    try:  # every option and output folder before any data is read or any training starts
        check_cm_options({**options, "eval_freq": args.eval_freq})
        for flag in ("train_months", "val_months", "backtest_months"):
            check_number(getattr(args, flag), f"--{flag.replace('_', '-')}", low=0, low_open=True)
        for flag in ("start", "end", "train_start", "val_start", "backtest_start"):
            check_date(getattr(args, flag), f"--{flag.replace('_', '-')}")
        for flag, folder in (("--store", args.store), ("--tensorboard-log", args.tensorboard_log or None),
                             ("--models", None if args.no_save else (args.models or ModelStore().root))):
            check_dir(folder, flag)
        config = CMConfig(**options)
    except UserError as exc:
        fail(str(exc))
    except (TypeError, ValueError) as exc:
        fail(str(exc))
    market, metrics = load_for_cli(args, config.asset, config.interval)
    split = make_split(args, market.index)
    print(f"{config.asset} {config.interval}: {len(market)} bars {market.index[0]:%Y-%m-%d} .. {market.index[-1]:%Y-%m-%d}; "
          f"{0 if metrics is None else metrics.shape[1]} metrics")
    for name, (a, b) in split.as_dict().items():
        print(f"  {name:<10} {a[:10]} .. {b[:10]}")
    tb = args.tensorboard_log or None
    try:
        module, callback = train_crypto_module(
            market, metrics, config, split, eval_freq=args.eval_freq, tensorboard_log=tb,
            progress_bar=not args.no_progress,
        )
    except ValueError as exc:  # DataError is a ValueError
        fail(str(exc))
    print("\nDRU selection (fitted on the training range):")
    print(module.dru.selection)

    b0, b1 = split.backtest
    cm = policy_backtest(module, market, metrics, b0, b1)
    bh_weights = cm.weights.assign(cash=0.0, **{config.asset: 1.0})
    bh = backtest(bh_weights, {config.asset: market}, interval=config.interval, fee=config.fee,
                  execution=config.execution)
    results = {f"CM {config.asset} ({config.algo.upper()})": cm, f"Buy & hold {config.asset}": bh}
    rows = []
    for name, res in results.items():
        m = res.metrics()
        rows.append([name, f"{m['ARR']:.2%}", f"{m['DRR']:.4%}", f"{m['Sortino']:.3f}", f"{m['Sharpe']:.3f}",
                     f"{m['MaxDrawdown']:.2%}"])
    print_table(f"Backtest {b0:%Y-%m-%d} .. {b1:%Y-%m-%d} (fee {config.fee:.2%}, execution {config.execution})",
                ["strategy", "ARR", "DRR", "Sortino", "Sharpe", "MaxDD"], rows)
    v = module.validation
    if v:
        print(f"best validation: Sortino {v['Sortino']:.3f}, ARR {v['ARR']:.2%}, MaxDD {v['MaxDrawdown']:.2%}")
    if tb:
        from stable_baselines3.common.logger import Figure

        fig = equity_figure(results, f"{config.asset} backtest")
        module.sam.logger.record("backtest/equity_curve", Figure(fig, close=True), exclude=("stdout", "log", "json", "csv"))
        for k, val in cm.metrics().items():
            module.sam.logger.record(f"backtest/{k}", float(val))
        module.sam.logger.dump(module.sam.num_timesteps)
        print(f"TensorBoard: tensorboard --logdir {tb}")
    if not args.no_save:
        folder = module.save(ModelStore(args.models), note=f"train_cm seed {config.seed}")
        print(f"saved: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
