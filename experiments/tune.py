"""Hyper-parameter search for Crypto Modules: Optuna (TPE, pruning) on the validation ranges, trials on Ray.

    python -m experiments.tune --asset BTC --trials 50                       # demo market, DQN
    python -m experiments.tune --assets BTC,ETH,LINK --trials 50 --seeds 3   # shared hyper-parameters
    python -m experiments.tune --asset BTC --trials 200 --address auto \\
        --storage postgresql://user:pass@db-host/optuna                      # a cluster, a shared study
    python -m experiments.train_cm --asset BTC --config reports/tune/tune_BTC_1d_dqn/best.yml
    python -m experiments.tune --protocol experiments/protocols/walk_forward_daily.yml \\
        --until 2021-12-31 --trials 12                                        # walk-forward folds

Each trial trains one module per asset and seed (--seeds N: seeds 0..N-1) with the hyper-parameters
TPE proposes, and scores the mean best validation Sortino. The data are split as train_cm splits
them (--train-months / --val-months / --backtest-months) and cut at the end of the validation range
before training: the backtest range is never used, so it stays out of sample for the tuned recipe.
Every validation during training is reported to Optuna, and the median pruner (or --pruner asha)
stops trials that fall behind. Trials run as Ray tasks (one CPU each, all cores by default;
--workers 1 runs them in this process, --address joins a cluster).

The study lives in --storage (default sqlite:///<out>/study.db): run the same command again
(same --storage and --study-name) to resume an interrupted search or to add trials; several
machines can work on one study through a PostgreSQL storage. Written to --out (default
reports/tune/<study name>): best.yml (the best recipe, for train_cm --config), trials.csv,
optimization_history.png and param_importances.png (with --protocol also protocol_config.yml: the
recipe as a protocol configuration; fold_scores.csv: every completed trial's validation Sortino per
window, drawn in trials_by_window.png; and the search's probability of backtest overfitting, PBO,
is printed).

With --protocol (a scoreboard protocol, see python -m experiments.evaluate --help) the trials train
on its walk-forward windows instead: one module per (window, asset, seed), on that window's training
range with the data cut at its validation end, backtested on that window's validation range; the
objective is the Sortino ratio of each asset's validation returns chained over the windows, averaged
over assets and seeds. The recipe is the protocol's configuration (--config, default its first) with
the trial's hyper-parameters (--space module: also its prior, observation window and market
features). A window's validation range is the backtest of the window before it: --until DATE tunes
on the windows whose validation ends by DATE, and the command says from when the backtests stay out
of sample for the tuned recipe (score it there, with the trials counted by the protocol's
trials_before).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptorl.cli import (
    OneLineParser,
    UserError,
    add_config_arguments,
    add_data_arguments,
    command,
    load_for_cli,
    one_line,
    parse_assets,
    print_table,
)
from cryptorl.parallel import add_parallel_arguments

DESCRIPTION = __doc__
# CMConfig fields a study's recipe takes from the command line (best.yml repeats them for train_cm)
TUNED_FIELDS = ("algo", "timesteps", "window", "n_envs", "episode_length")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m experiments.tune", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--asset", help="tune one crypto's module, e.g. BTC")
    which.add_argument(
        "--assets",
        help="tune hyper-parameters shared by several cryptos, e.g. BTC,ETH,LINK (with --protocol: a subset)",
    )
    p.add_argument("--protocol", type=Path, help="tune on a scoreboard protocol's walk-forward windows (YAML)")
    p.add_argument("--config", help="with --protocol: the configuration to tune (default the protocol's first)")
    p.add_argument(
        "--until", help="with --protocol: only the windows whose validation range ends by this date (YYYY-MM-DD)"
    )
    add_data_arguments(p)
    p.add_argument("--trials", type=int, default=50, help="finished trials the study should have (default 50)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="seeds per asset and trial, 0..N-1 (with --protocol its first N; default 1)",
    )
    from agents.config import CMConfig

    # the recipe's options, as train_cm takes them (the defaults are CMConfig's)
    add_config_arguments(p, CMConfig, only=TUNED_FIELDS)
    p.add_argument(
        "--eval-freq",
        type=int,
        default=None,
        help="validate (and report to the pruner) every N timesteps (default 2000; with --protocol its eval_freq)",
    )
    p.add_argument("--train-months", type=float, default=15, help="training months (default 15)")
    p.add_argument("--val-months", type=float, default=2, help="validation months (default 2)")
    p.add_argument(
        "--backtest-months", type=float, default=7, help="backtest months, left out of the search (default 7)"
    )
    p.add_argument(
        "--space",
        default="learner",
        choices=["learner", "module"],
        help="what trials vary: learner, the algorithm's hyper-parameters; module, also the module's prior "
        "(donchian, sma20, vol_target), observation window (10, 30, 60 bars) and market features (on/off) "
        "(default learner)",
    )
    p.add_argument("--pruner", default="median", choices=["median", "asha", "none"], help="default median")
    p.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    p.add_argument(
        "--study-name",
        default=None,
        help="default tune_[<protocol>_]<assets>_<interval>_<algo>[_module]",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL (default sqlite:///<out>/study.db; postgresql://... for several machines)",
    )
    p.add_argument("--out", type=Path, default=None, help="report folder (default reports/tune/<study name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_parallel_arguments(p)
    return p


def _validation_data(args: argparse.Namespace, assets: list[str], interval: str) -> dict:
    """Each asset's data cut at its validation end (the backtest range is never loaded into a trial)."""
    from agents.training import paper_split
    from agents.tuning import validation_data

    data = {}
    for asset in assets:
        market, metrics = load_for_cli(args, asset, interval)
        split = paper_split(market.index, args.train_months, args.val_months, args.backtest_months)
        data[asset] = validation_data(market, metrics, split)
        (t0, t1), (v0, v1) = split.train, split.validation
        print(
            f"{asset} {interval}: train {t0:%Y-%m-%d} .. {t1:%Y-%m-%d}, validation {v0:%Y-%m-%d} .. {v1:%Y-%m-%d}"
            f" (backtest from {split.backtest[0]:%Y-%m-%d} left out)"
        )
    return data


def on_trial(trial, outcome) -> None:
    """One line per finished trial."""
    if not outcome.ok:
        what = f"failed: {outcome.error}"
    elif outcome.value.pruned:
        what = "pruned"
    else:
        what = f"validation Sortino {outcome.value.value:.3f}"
    print(f"trial {trial.number}: {what}  {trial.params}", flush=True)


def _protocol_spec(args: argparse.Namespace, assets: list[str], given: dict):
    """The study's spec on a protocol's walk-forward windows (up to ``--until``) and the protocol's interval."""
    from dataclasses import replace

    from agents.evaluation import load_markets, load_protocol
    from agents.evaluation.protocol import protocol_date
    from agents.training import Split
    from agents.tuning import TuneSpec, validation_data

    # a search scores every coin on every fold, whatever the protocol's universe
    protocol = replace(load_protocol(args.protocol).subset(assets=assets or None), universe="fixed")
    if args.until is not None:
        until = protocol_date(args.until, end=True, where="--until")
        protocol = replace(protocol, windows=tuple(w for w in protocol.windows if w.validation[1] <= until))
    if not protocol.windows:
        raise ValueError(f"no window of {args.protocol} has its validation range ending by {args.until}")
    name = args.config or next(iter(protocol.configs))
    if name not in protocol.configs:
        raise ValueError(
            f"--config {name!r} is not one of the protocol's configurations ({', '.join(protocol.configs)})"
        )
    if args.seeds > len(protocol.seeds):
        raise ValueError(f"--seeds {args.seeds}: the protocol has {len(protocol.seeds)} seed(s)")
    base = replace(protocol.cm_config(name, protocol.assets[0], protocol.seeds[0]), **given)
    if base.pool:
        raise ValueError(f"configuration {name!r} pools several coins: tune its hyper-parameters unpooled")
    folds = tuple(Split(w.train, w.validation) for w in protocol.windows)
    data = {
        a: validation_data(market, metrics, folds[-1])
        for a, (market, metrics) in load_markets(protocol, args.store, progress=not args.no_progress).items()
    }
    last = protocol.windows[-1]
    print(
        f"{protocol.name}: configuration {name!r}, {len(folds)} window(s) {protocol.windows[0].name} .. {last.name}, "
        f"validation ranges {folds[0].validation[0]:%Y-%m-%d} .. {last.validation[1]:%Y-%m-%d}, "
        f"assets {','.join(protocol.assets)}; the backtests after {last.validation[1]:%Y-%m-%d} stay out of sample"
    )
    eval_freq = args.eval_freq or protocol.eval_freq
    return TuneSpec(data, base, protocol.seeds[: args.seeds], eval_freq, folds, args.space), protocol.interval


@command("tune")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.asset or args.assets or args.protocol):
        raise UserError("name what to tune: --asset, --assets or --protocol")
    if args.protocol is None and (args.config or args.until):
        raise UserError("--config and --until choose among a protocol's configurations and windows: add --protocol")
    if args.protocol is not None and args.asset:
        raise UserError("with --protocol, --assets names a subset of its assets")
    if args.protocol is not None and any(getattr(args, k) for k in ("source", "interval", "start", "end", "metrics")):
        raise UserError("the protocol names the data: --source, --interval, --start, --end and --metrics do not apply")
    assets = parse_assets(args.asset or args.assets) if (args.asset or args.assets) else []
    for name in ("trials", "seeds", "timesteps", "eval_freq", "n_envs", "episode_length", "window", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")

    from agents.config import CMConfig
    from agents.tuning import TuneSpec, default_storage, fold_scores, open_study, search_pbo, tune, write_report
    from cryptorl.parallel import check_address

    check_address(args.address)  # a cluster that does not answer: before the study database exists

    given = {name: getattr(args, name) for name in TUNED_FIELDS if getattr(args, name) is not None}
    try:
        if args.protocol is not None:
            spec, interval = _protocol_spec(args, assets, given)
            assets = list(spec.data)
        else:
            interval = args.interval or "1d"
            # trials tune one SAM; train_cm --config best.yml then trains the ensemble
            base = CMConfig(asset=assets[0], interval=interval, ensemble=1, **given)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(one_line(exc)) from None
    if args.protocol is None:
        data = _validation_data(args, assets, interval)
        spec = TuneSpec(data, base, tuple(range(args.seeds)), args.eval_freq or 2000, space=args.space)
    base = spec.base
    what = f"{args.protocol.stem}_" if args.protocol is not None else ""
    space = "_module" if args.space == "module" else ""
    study_name = args.study_name or f"tune_{what}{'-'.join(assets)}_{interval}_{base.algo}{space}"
    out: Path = args.out or Path("reports/tune") / study_name
    storage = args.storage or default_storage(out)

    try:
        study = open_study(study_name, storage, pruner=args.pruner, seed=args.sampler_seed)
    except Exception as exc:  # a bad URL, an unreachable database, a missing driver
        raise UserError(f"cannot open the Optuna storage {storage}: {one_line(exc)}") from None
    print(
        f"study {study_name} in {storage}: {len(study.trials)} trial(s) so far; target {args.trials} finished; "
        f"{base.algo.upper()} {base.timesteps} steps x {len(assets)} asset(s) x {args.seeds} seed(s)"
        f"{f' x {len(spec.folds)} window(s)' if spec.folds else ''} per trial"
    )

    try:
        tune(
            spec,
            study,
            storage,
            args.trials,
            pruner=args.pruner,
            workers=args.workers,
            address=args.address,
            progress=not args.no_progress,
            on_trial=on_trial,
        )
    except ValueError as exc:
        raise UserError(one_line(exc)) from None
    except KeyboardInterrupt:
        print(f"interrupted; the study is kept in {storage}: run the same command to resume", file=sys.stderr)
        return 130

    paths = write_report(study, spec, out)
    best = study.best_trial
    print_table(
        f"Best trial {best.number} of {len(study.trials)}: mean validation Sortino {best.value:.3f}",
        ["parameter", "value"],
        [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in best.params.items()],
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(f"train it: python -m experiments.train_cm --asset {assets[0]} --config {paths['config']}")
    if spec.folds:
        scores = fold_scores(study)
        pbo = search_pbo(scores)
        if pbo is not None:
            print(
                f"PBO of the search: {pbo:.2f} over {scores.shape[1]} completed trials and {scores.shape[0]} windows "
                "(how often the trial best on half of the windows is at or below the median on the other half; "
                "about 0.5 when the validation windows rank noise)"
            )
        print(
            f"score it out of sample: add {paths['protocol_config']} to the configs of {args.protocol}, evaluate "
            f"the windows whose backtests start after {spec.folds[-1].validation[1]:%Y-%m-%d}, and count these "
            f"{len(study.trials)} trials in trials_before"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
