"""Checks every command runs on its options and inputs *before* any state is created.

Each check raises :class:`cryptorl.cli.UserError` with one line naming the option, the value and
the fix; the commands turn it into ``error: ...`` on stderr and exit code 2. Nothing here writes
anything that stays: the writability probe of a folder creates and removes one temporary file.

* :func:`check_dir` - ``--store``, ``--models``, ``--out``: a folder (or a path that can become
  one) that this process may write to.
* :func:`check_db_file` - a SQLite file given on the command line (paper account, order journal):
  not a folder, in a writable folder, and if it exists a SQLite database that is not truncated.
* :func:`check_number` - a numeric option within its range (finite, integer where it must be).
* :func:`check_hyperparams` - stable-baselines3 keyword arguments: known to the algorithm, of the
  right type and in range.
* :func:`check_cm_options` - the Crypto Module options of ``train_cm`` (flags or ``--config``).
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._sqlite import sqlite_problem
from .cli import UserError


def check_assets(text: str, flag: str = "--assets") -> list[str]:
    """``" btc, eth "`` -> ``["BTC", "ETH"]``; empty lists, repeated or malformed tickers are errors."""
    assets = [a.strip().upper() for a in str(text).split(",") if a.strip()]
    if not assets:
        raise UserError(f"{flag} is empty: give tickers such as BTC,ETH,LINK")
    bad = [a for a in assets if not a.isalnum()]
    if bad:
        raise UserError(f"{flag}: {bad[0]!r} is not a ticker (letters and digits only)")
    dupes = sorted({a for a in assets if assets.count(a) > 1})
    if dupes:
        raise UserError(f"{flag} lists {', '.join(dupes)} more than once; give each ticker once")
    return assets


def check_date(value: Any, flag: str):
    """A UTC timestamp from a date or time text (None stays None)."""
    if value is None:
        return None
    from cryptorl.data.frames import to_utc_timestamp

    try:
        return to_utc_timestamp(value)
    except (ValueError, TypeError):
        raise UserError(f"{flag} {value!r} is not a date or UTC time such as 2022-01-31 or 2022-01-31T06:00") from None


def check_source(source: str, flag: str = "--source", allowed: tuple[str, ...] = ("demo", "store", "csv:PATH")) -> str:
    """A data source among ``allowed`` (``csv:PATH`` stands for any path that exists)."""
    ok = source in allowed or (source.startswith("csv:") and "csv:PATH" in allowed)
    if not ok:
        raise UserError(f"{flag} {source!r}: use one of {', '.join(allowed)}")
    if source.startswith("csv:") and not Path(source[4:]).expanduser().exists():
        raise UserError(f"{flag} {source}: no such file or folder")
    return source


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (a real probe: also right for root and read-only mounts)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError:
        return False
    return True


def check_dir(path: str | Path | None, flag: str) -> Path | None:
    """``path`` must be a folder this process can write in, or a path where one can be created."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} is a file, not a folder: give a folder path")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise UserError(f"{flag} {p}: {base} is a file, so the folder cannot be created; give another path")
    if not _writable(base):
        raise UserError(f"{flag} {p}: {base} is not writable; give a folder you can write to")
    return p


def check_db_file(path: str | Path | None, flag: str) -> Path | None:
    """A SQLite file named on the command line: not a folder, creatable, not truncated or foreign."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{flag} {p} is a folder, not a file: give a file path such as {p / 'account.sqlite'}")
    if not p.exists():
        check_dir(p.parent, f"{flag} folder")
        return p
    problem = sqlite_problem(p)
    if problem:
        raise UserError(f"{flag} {p}: {problem}; move it away or give another path")
    if not os.access(p, os.R_OK | os.W_OK) or not _writable(p.parent):
        raise UserError(f"{flag} {p} is not writable; give a file you can write to")
    return p


def check_number(
    value: Any,
    flag: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    optional: bool = False,
) -> Any:
    """A finite number (an integer with ``integer``) in ``[low, high]`` (ends open as told)."""
    if value is None and optional:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise UserError(f"{flag} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise UserError(f"{flag} must be a finite number, got {value!r}")
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        raise UserError(f"{flag} must be {' and '.join(x for x in (lo, hi) if x)}, got {value!r}")
    return int(value) if integer else value


# stable-baselines3 keyword arguments the commands set themselves
_SET_BY_COMMAND = {
    "policy",
    "env",
    "policy_kwargs",
    "seed",
    "device",
    "verbose",
    "tensorboard_log",
    "_init_setup_model",
    "replay_buffer_class",
    "replay_buffer_kwargs",
    "rollout_buffer_class",
    "rollout_buffer_kwargs",
    "stats_window_size",
    "supported_action_spaces",
}
# (low, high, low_open, high_open, integer)
_RANGES: dict[str, tuple[float | None, float | None, bool, bool, bool]] = {
    "learning_rate": (0, None, True, False, False),
    "n_steps": (1, None, False, False, True),
    "batch_size": (1, None, False, False, True),
    "n_epochs": (1, None, False, False, True),
    "buffer_size": (1, None, False, False, True),
    "learning_starts": (0, None, False, False, True),
    "gradient_steps": (-1, None, False, False, True),
    "target_update_interval": (1, None, False, False, True),
    "gamma": (0, 1, True, False, False),
    "gae_lambda": (0, 1, False, False, False),
    "tau": (0, 1, True, False, False),
    "exploration_fraction": (0, 1, False, False, False),
    "exploration_initial_eps": (0, 1, False, False, False),
    "exploration_final_eps": (0, 1, False, False, False),
    "clip_range": (0, None, True, False, False),
    "clip_range_vf": (0, None, True, False, False),
    "ent_coef": (0, None, False, False, False),
    "vf_coef": (0, None, False, False, False),
    "max_grad_norm": (0, None, True, False, False),
    "target_kl": (0, None, True, False, False),
    "rms_prop_eps": (0, None, True, False, False),
    "sde_sample_freq": (-1, None, False, False, True),
}


def check_hyperparams(algo: str, hyperparams: Mapping[str, Any], flag: str = "--hyperparams") -> dict[str, Any]:
    """Hyper-parameters for ``algo``'s stable-baselines3 class: known keys, right types, sane values."""
    from agents.crypto_module import ALGOS

    if algo not in ALGOS:
        raise UserError(f"--algo: unknown algorithm {algo!r}: choose among {', '.join(sorted(ALGOS))}")
    if not isinstance(hyperparams, Mapping):
        raise UserError(f"{flag} must be a mapping of KEY: VALUE, got {type(hyperparams).__name__}")
    cls = ALGOS[algo]
    params = inspect.signature(cls.__init__).parameters
    known = {n for n in params if n != "self"} - _SET_BY_COMMAND
    out: dict[str, Any] = {}
    for key, value in hyperparams.items():
        key = str(key)
        if key in _SET_BY_COMMAND:
            option = {"device": "--device", "seed": "--seed", "tensorboard_log": "--tensorboard-log"}.get(key)
            use = f"; use {option}" if option else ""
            raise UserError(f"{flag}: {key} is set by the command itself and cannot be given as a hyper-parameter{use}")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; {cls.__name__} takes {', '.join(sorted(known))}"
            raise UserError(f"{flag}: unknown {cls.__name__} hyper-parameter {key!r}{hint}")
        name = f"{flag} {key}"
        if key == "train_freq" and isinstance(value, (list, tuple)):
            if len(value) != 2 or value[1] not in ("step", "episode"):
                raise UserError(f"{name} must be N or [N, 'step' | 'episode'], got {value!r}")
            check_number(value[0], name, low=1, integer=True)
        elif key == "train_freq":
            check_number(value, name, low=1, integer=True)
        elif key in _RANGES:
            lo, hi, lo_open, hi_open, integer = _RANGES[key]
            optional = params[key].default is None
            value = check_number(
                value, name, low=lo, high=hi, low_open=lo_open, high_open=hi_open, integer=integer, optional=optional
            )
        else:
            default = params[key].default
            if isinstance(default, bool) and not isinstance(value, bool):
                raise UserError(f"{name} must be true or false, got {value!r}")
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                check_number(value, name, integer=isinstance(default, int) and not isinstance(default, float))
        out[key] = value
    return out


# Crypto Module options: (low, high, low_open, high_open, integer)
_CM_RANGES: dict[str, tuple[float | None, float | None, bool, bool, bool]] = {
    "timesteps": (1, None, False, False, True),
    "eam_timesteps": (1, None, False, False, True),
    "window": (2, None, False, False, True),
    "episode_length": (2, None, False, False, True),
    "n_envs": (1, None, False, False, True),
    "seed": (0, 2**32 - 1, False, False, True),
    "features_dim": (1, None, False, False, True),
    "fee": (0, 1, False, True, False),
    "eval_freq": (1, None, False, False, True),
    "ensemble": (1, 32, False, False, True),
}


def check_cm_options(options: Mapping[str, Any]) -> None:
    """The Crypto Module options of a training command (from flags or a ``--config`` file)."""
    from cryptorl.data.frames import interval_seconds

    for key, (lo, hi, lo_open, hi_open, integer) in _CM_RANGES.items():
        if options.get(key) is not None:
            check_number(
                options[key],
                f"--{key.replace('_', '-')}",
                low=lo,
                high=hi,
                low_open=lo_open,
                high_open=hi_open,
                integer=integer,
            )
    for key in ("asset", "interval", "algo", "execution"):
        if key in options and not isinstance(options[key], str):
            raise UserError(f"--{key} must be text, got {options[key]!r}")
    if "asset" in options and not options["asset"].strip().isalnum():
        raise UserError(f"--asset {options['asset']!r} is not a ticker (letters and digits only, e.g. BTC)")
    if options.get("execution") not in (None, "close", "next_open"):
        raise UserError(f"--execution must be close or next_open, got {options['execution']!r}")
    for key in ("with_eam", "observe_position"):
        if options.get(key) is not None and not isinstance(options[key], bool):
            raise UserError(f"{key} must be true or false, got {options[key]!r}")
    if options.get("interval") is not None:
        try:
            interval_seconds(options["interval"])
        except ValueError as exc:
            raise UserError(f"--interval: {exc}") from None
    from agents.crypto_module import CMConfig

    # the learner that will take them: the given algo, else the module's default (DQN)
    check_hyperparams(options.get("algo") or CMConfig.algo, options.get("hyperparams") or {})


def check_costs(args: Any) -> None:
    """``--fee`` and ``--slippage`` of a backtesting command (either may be absent or None)."""
    for flag in ("fee", "slippage"):
        check_number(getattr(args, flag, None), f"--{flag}", low=0, high=0.1, high_open=True, optional=True)


def check_train_options(args: Any, options: Mapping[str, Any]) -> None:
    """``experiments.train_cm``: the Crypto Module options, the month split, the dates and the
    folders it writes to (``--models`` unless ``--no-save``, ``--tensorboard-log``, ``--store``)."""
    from cryptorl.modelstore import ModelStore

    check_cm_options({**options, "eval_freq": getattr(args, "eval_freq", None)})
    for flag in ("train_months", "val_months", "backtest_months"):
        check_number(getattr(args, flag), f"--{flag.replace('_', '-')}", low=0, low_open=True, optional=True)
    for flag in ("start", "end", "train_start", "val_start", "backtest_start"):
        check_date(getattr(args, flag, None), f"--{flag.replace('_', '-')}")
    check_dir(args.store, "--store")
    check_dir(args.tensorboard_log or None, "--tensorboard-log")
    if not args.no_save:
        check_dir(ModelStore(args.models).root, "--models")


def check_live_options(args: Any, assets: list[str], paper_path: Path, *, models: str | Path) -> None:
    """``experiments.live``: every option and file before an account, a journal entry or an order exists.

    Costs and limits in range, ``--now`` a time, ``--quote`` a code, no real orders on the demo
    market, journal and paper account usable SQLite files, a trained module for every asset (unless
    a placeholder strategy decides), and ``--now`` not before the last bar the paper account has
    processed (unless ``--force``).
    """
    from cryptorl.live.loop import last_closed
    from cryptorl.live.paper import PaperExchange, account_exists
    from cryptorl.modelstore import ModelStore

    check_number(args.fee, "--fee", low=0, high=0.1, high_open=True)
    check_number(args.initial_cash, "--initial-cash", low=0, low_open=True)
    check_number(args.price_buffer, "--price-buffer", low=0, high=0.5, high_open=True)
    check_number(args.max_order_notional, "--max-order-notional", low=0, low_open=True, optional=True)
    check_number(args.max_daily_turnover, "--max-daily-turnover", low=0, low_open=True, optional=True)
    now = check_date(args.now, "--now")
    if not str(args.quote).strip().isalnum():
        raise UserError(f"--quote {args.quote!r} is not a currency code such as USDT")
    if args.live and args.data == "demo":
        raise UserError(
            "--live with --data demo would send real orders decided on synthetic prices; "
            "use --data exchange for live trading, or drop --live to paper-trade the demo market"
        )
    check_db_file(args.journal, "--journal")
    if Path(args.kill_switch).is_dir():
        raise UserError(f"--kill-switch {args.kill_switch} is a folder; give the path of a file")
    if args.markets_file is not None and not Path(args.markets_file).is_file():
        raise UserError(f"--markets-file {args.markets_file}: no such file")
    if args.strategy is None:  # the trained modules, before an account is created for them
        store = ModelStore(models)
        missing = [a for a in assets if store.current(a, args.interval) is None]
        if missing:
            raise UserError(
                f"no trained Crypto Module for {missing[0]} at {args.interval} in {store.root} (train one with "
                f"python -m experiments.train_cm --asset {missing[0]} --interval {args.interval}, or use a "
                "placeholder --strategy equal|demo-momentum)"
            )
    if args.live:
        return
    path = check_db_file(paper_path, "--paper-db")
    if now is not None and not args.force and account_exists(path):
        paper = PaperExchange(path)
        try:
            done = paper.last_bar_time()
        finally:
            paper.close()
        bar_time, _ = last_closed(now, args.interval)
        if done is not None and bar_time < done:
            raise UserError(
                f"--now {now} acts on the bar of {bar_time}, before the last bar the paper account "
                f"{path} processed ({done}); time only moves forward (add --force to do it anyway)"
            )


def check_report_options(args: Any, assets: list[str], *, models: str | Path | None) -> None:
    """``experiments.compose`` / ``compare``: costs, dates, training overrides and the folders written to
    (``--out``, ``--store``, ``--log-dir``; the model store with ``--train-missing``), and the
    model store's ``CURRENT`` pointers of ``assets`` when it is read."""
    from cryptorl.modelstore import ModelStore
    from cryptorl.parallel import check_address

    check_costs(args)
    check_number(getattr(args, "workers", None), "--workers", low=1, integer=True, optional=True)
    check_address(getattr(args, "address", None))
    check_number(getattr(args, "timesteps", None), "--timesteps", low=1, integer=True, optional=True)
    check_number(getattr(args, "seed", None), "--seed", low=0, integer=True, optional=True)
    check_number(getattr(args, "ensemble", None), "--ensemble", low=1, high=32, integer=True, optional=True)
    for flag in ("train_end", "start", "end"):
        check_date(getattr(args, flag, None), f"--{flag.replace('_', '-')}")
    for flag in ("out", "store", "log_dir"):
        check_dir(getattr(args, flag, None), f"--{flag.replace('_', '-')}")
    store = ModelStore(models)
    if getattr(args, "train_missing", False):
        check_dir(store.root, "--models")
    for asset in assets:
        store.current(asset, getattr(args, "interval", None) or "1d")  # a CURRENT naming a missing version


def check_update_options(args: Any, store: Any, assets: list[str], at: Any) -> None:
    """``experiments.update``: source, folders, numbers, the model store's pointers and history, and
    time order: ``--at`` before what a family has already seen (its current version's data, an
    earlier retrain) is refused unless ``--force``."""
    from agents.updating import latest_time

    check_source(args.source)
    check_dir(store.root, "--models")
    check_dir(args.store, "--store")
    check_number(args.eval_freq, "--eval-freq", low=1, integer=True)
    check_number(args.seed, "--seed", low=0, integer=True, optional=True)
    for asset in assets:
        store.current(asset, args.interval)  # a CURRENT naming a missing version is an error
        store.history(asset, args.interval)  # so is a damaged history
        seen = latest_time(store, asset, args.interval) if at is not None and not args.force else None
        if seen is not None and at < seen:
            raise UserError(
                f"--at {at} is before {seen}, the latest time the {asset} {args.interval} modules in "
                f"{store.root} have seen; retraining there would move them backwards in time "
                "(add --force to do it anyway)"
            )


def check_not_older(models: str | Path | None, asset: str, interval: str, last_bar) -> None:
    """``experiments.train_cm``: a module saved (and promoted) into ``models`` must not have been
    trained on data older than what the family's current version (or a later retrain) has seen."""
    from agents.updating import latest_time
    from cryptorl.data.frames import interval_timedelta
    from cryptorl.modelstore import ModelStore

    store = ModelStore(models)
    seen = latest_time(store, asset, interval)
    if seen is not None and last_bar + interval_timedelta(interval) <= seen:
        raise UserError(
            f"the data end at {last_bar:%Y-%m-%d %H:%M}, before {seen:%Y-%m-%d %H:%M}, the latest time the {asset} "
            f"{interval} modules in {store.root} have seen; saving would promote a module trained on older data "
            "(give a later --end, another --models, or --no-save)"
        )


__all__ = [
    "check_assets",
    "check_not_older",
    "check_cm_options",
    "check_costs",
    "check_date",
    "check_db_file",
    "check_dir",
    "check_hyperparams",
    "check_live_options",
    "check_number",
    "check_report_options",
    "check_source",
    "check_train_options",
    "check_update_options",
    "sqlite_problem",
]
