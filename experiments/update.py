"""Agent Updating Unit: retrain the Crypto Modules on a sliding window, on schedule or once.

    python -m experiments.update --assets BTC,ETH,LINK --every 7d            # scheduler loop
    python -m experiments.update --assets BTC,ETH,LINK --now                 # retrain once, exit
    python -m experiments.update --assets BTC --now --at 2022-06-01 --timesteps 5000
    python -m experiments.update --assets BTC,ETH --source store --models models --every 7d

Each retrain trains a new module on the last ``--window`` of closed bars (the last
``--val-window`` of it is the validation range), saves it as a new version in the model store
(``--models``) WITHOUT promoting it, re-evaluates the current version on the same validation
range, and promotes the new one only if its validation Sortino is not worse than the current
one's by more than ``--min-improvement`` (0: not worse; 0.2: must be 0.2 better; -0.1: may be
0.1 worse). The decision, both figures and the ranges are appended to the family's
history.jsonl; earlier versions stay on disk. A retrain repeats the current version's recipe
(algorithm, hyper-parameters, DRU settings); --algo, --timesteps and --seed override it.

Without --now the command runs until stopped (Ctrl-C): an asset never retrained is due at once,
then every --every; the next due time is written to the store, so a restarted scheduler waits
for it instead of retraining early. Data come from --source at each run: "store" reads the
SQLite stores kept fresh by experiments.fetch_data / experiments.live (stale data are refused),
"demo" generates the built-in synthetic market up to the current time.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd

from cryptorl.cli import (
    OneLineParser,
    UserError,
    add_config_arguments,
    add_gaps_argument,
    command,
    gap_message,
    parse_assets,
)
from cryptorl.parallel import add_parallel_arguments

DESCRIPTION = __doc__
# CMConfig fields a retrain may change from the current version's recipe
OVERRIDES = ("algo", "timesteps", "seed", "ensemble")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m experiments.update",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--assets", required=True, help="comma-separated tickers, e.g. BTC,ETH,LINK")
    p.add_argument("--every", default="7d", help="retraining period, e.g. 7d, 12h (default 7d)")
    p.add_argument("--now", action="store_true", help="retrain every asset once now, then exit")
    p.add_argument(
        "--at",
        default=None,
        metavar="TIME",
        help="with --now: act as if the current time were TIME (UTC), e.g. 2022-06-01",
    )
    p.add_argument(
        "--window",
        default="450d",
        help="sliding window of bars the module learns from, training + validation (default 450d)",
    )
    p.add_argument(
        "--val-window",
        default="60d",
        help="the last part of the window used for validation "
        "and for the comparison with the current version (default 60d)",
    )
    p.add_argument(
        "--min-improvement",
        type=float,
        default=0.0,
        help="promote only if new Sortino >= current Sortino + this (default 0.0: not worse)",
    )
    p.add_argument("--models", default=None, help="model store folder (default ./models or $CRYPTORL_MODELS)")
    from cryptorl.data.sources import describe

    p.add_argument("--source", default="demo", help=f"data source: {describe('market', local=True)} (default demo)")
    p.add_argument("--store", default=None, help="data store folder (default ./data or $CRYPTORL_DATA)")
    add_gaps_argument(p)
    p.add_argument("--interval", default="1d", help="bar interval of the modules (default 1d)")
    from agents.config import CMConfig

    # a retrain repeats the current version's recipe; these flags override it
    add_config_arguments(p, CMConfig, only=OVERRIDES, default_text="the current version's, else {default}")
    p.add_argument("--eval-freq", type=int, default=2000, help="validate every N timesteps (default 2000)")
    p.add_argument(
        "--max-runs",
        type=int,
        default=None,
        help="stop the scheduler after N rounds of retraining (default: run until stopped)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with --at: retrain even if TIME is earlier than what the model store has seen",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_parallel_arguments(p)
    return p


def _options(args: argparse.Namespace) -> tuple[pd.Timedelta, pd.Timedelta, pd.Timedelta, pd.Timestamp | None]:
    """``(every, window, val_window, at)`` from the flags; every bad value is a UserError."""
    from agents.updating import parse_duration
    from cryptorl.data.frames import interval_timedelta, to_utc_timestamp

    try:
        every = parse_duration(args.every, "--every")
        window = parse_duration(args.window, "--window")
        val_window = parse_duration(args.val_window, "--val-window")
        interval_timedelta(args.interval)
        at = to_utc_timestamp(args.at) if args.at else None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if val_window >= window:
        raise UserError(f"--val-window ({args.val_window}) must be shorter than --window ({args.window})")
    if not math.isfinite(args.min_improvement):
        raise UserError("--min-improvement must be a finite number")
    if at is not None and not args.now:
        raise UserError("--at only works with --now (the scheduler follows the real clock)")
    for flag, value, low in (
        ("--max-runs", args.max_runs, 1),
        ("--timesteps", args.timesteps, 1),
        ("--ensemble", args.ensemble, 1),
        ("--workers", args.workers, 1),
    ):
        if value is not None and value < low:
            raise UserError(f"{flag} must be at least {low}")
    return every, window, val_window, at


def _batch(args: argparse.Namespace, store, window: pd.Timedelta, val_window: pd.Timedelta):
    """The round's work: every due asset's module trained at once (Ray tasks, or in process with
    --workers 1) on the latest ``window`` of its data, with the store's recipe and the flags."""
    from tqdm.auto import tqdm

    from agents.config import CMConfig
    from agents.updating import current_config, history_bars, retrain_all
    from cryptorl.data import load_data
    from cryptorl.data.frames import interval_timedelta

    bar = interval_timedelta(args.interval)
    overrides = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}

    def load(asset: str, now: pd.Timestamp):
        base = current_config(store, asset, args.interval) or CMConfig(asset=asset, interval=args.interval)
        config = replace(base, asset=asset, interval=args.interval, **overrides)
        start = now - window - (history_bars(config) + 2) * bar
        try:
            market, metrics = load_data(
                asset, args.interval, start, now, source=args.source, store=args.store, gaps=args.gaps
            )
        except FileNotFoundError as exc:
            raise ValueError(str(exc)) from None
        return market, (metrics if metrics is not None and metrics.shape[1] else None), config

    def batch(names: list[str], now: pd.Timestamp) -> dict[str, Any]:
        results = retrain_all(
            names,
            load,
            store,
            window=window,
            now=now,
            validation=val_window,
            min_improvement=args.min_improvement,
            eval_freq=args.eval_freq,
            workers=args.workers,
            address=args.address,
            progress=not args.no_progress,
        )
        for result in results.values():
            if not isinstance(result, Exception):
                tqdm.write(result.summary())
        return results

    return batch


@command("update")
def main(
    argv: list[str] | None = None,
    *,
    clock: Callable[[], pd.Timestamp] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Run the command; ``clock`` and ``sleep`` replace the wall clock and time.sleep (tests)."""
    args = build_parser().parse_args(argv)
    from tqdm.auto import tqdm

    from agents.options import check_update_options
    from agents.updating import next_due, run_round, run_schedule, utc_now
    from cryptorl.data.frames import to_utc_timestamp
    from cryptorl.modelstore import ModelStore

    assets = parse_assets(args.assets)
    every, window, val_window, at = _options(args)
    store = ModelStore(args.models)
    check_update_options(args, store, assets, at)  # before anything is trained or written
    batch = _batch(args, store, window, val_window)

    def job(asset: str, now: pd.Timestamp) -> Any:  # rounds go through batch; kept for run_round's API
        return batch([asset], now)[asset]

    def on_error(asset: str, exc: Exception) -> None:
        tqdm.write(f"error: {asset}: {exc}", file=sys.stderr)

    print(
        f"{', '.join(assets)} {args.interval}: window {args.window} (validation {args.val_window}), "
        f"min improvement {args.min_improvement:g}; model store {store.root}"
    )
    if args.now:
        now = at or to_utc_timestamp((clock or utc_now)())
        results = run_round(store, assets, args.interval, every, job, now, batch=batch, record_failures=False)
        failed = [f"{a}: {gap_message(r)}" for a, r in results.items() if isinstance(r, Exception)]
        if failed:
            raise UserError(f"retraining failed for {'; '.join(failed)}")
        return 0

    def on_round(now: pd.Timestamp, results: dict[str, Any]) -> None:
        dues = [d for d in (next_due(store, a, args.interval) for a in assets) if d is not None]
        print(f"next retrain due {min(dues):%Y-%m-%d %H:%M} UTC")

    print(f"scheduler: every {args.every}; Ctrl-C to stop")
    try:
        run_schedule(
            store,
            assets,
            args.interval,
            every,
            job,
            clock=clock or utc_now,
            sleep=sleep or _sleep,
            max_rounds=args.max_runs,
            on_error=on_error,
            on_round=on_round,
            batch=batch,
        )
    except KeyboardInterrupt:
        print("stopped")
        return 130
    return 0


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


if __name__ == "__main__":
    sys.exit(main())
