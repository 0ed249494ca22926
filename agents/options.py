"""Checks of the Crypto Module options a command takes, before any data are loaded or anything
is trained: stable-baselines3 hyper-parameters, ``train_cm``'s options (flags or ``--config``),
``update``'s, and the time order of a model store's family.

Each check raises :class:`cryptorl.cli.UserError` with one line naming the option, the value and
the fix (the generic checks, folders, numbers and dates, are in :mod:`cryptorl.validation`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from cryptorl.cli import UserError
from cryptorl.data.frames import interval_seconds, interval_timedelta
from cryptorl.modelstore import ModelStore
from cryptorl.portfolio.costs import EXECUTIONS
from cryptorl.validation import check_date, check_dir, check_number, check_source

from .config import MAX_ENSEMBLE, CMConfig
from .learners import LEARNERS

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
    if algo not in LEARNERS:
        raise UserError(f"--algo: unknown algorithm {algo!r}: choose among {', '.join(sorted(LEARNERS))}")
    if not isinstance(hyperparams, Mapping):
        raise UserError(f"{flag} must be a mapping of KEY: VALUE, got {type(hyperparams).__name__}")
    cls = LEARNERS[algo].algorithm_class
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
    "ensemble": (1, MAX_ENSEMBLE, False, False, True),
}


def check_cm_options(options: Mapping[str, Any]) -> None:
    """The Crypto Module options of a training command (from flags or a ``--config`` file)."""
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
    if options.get("execution") not in (None, *EXECUTIONS):
        raise UserError(f"--execution must be {' or '.join(EXECUTIONS)}, got {options['execution']!r}")
    for key in (f.name for f in fields(CMConfig) if isinstance(f.default, bool)):
        if options.get(key) is not None and not isinstance(options[key], bool):
            raise UserError(f"{key} must be true or false, got {options[key]!r}")
    if options.get("interval") is not None:
        try:
            interval_seconds(options["interval"])
        except ValueError as exc:
            raise UserError(f"--interval: {exc}") from None
    # the learner that will take them: the given algo, else the module's default (DQN)
    check_hyperparams(options.get("algo") or CMConfig.algo, options.get("hyperparams") or {})


def check_train_options(args: Any, options: Mapping[str, Any]) -> None:
    """``experiments.train_cm``: the Crypto Module options, the month split, the dates and the
    folders it writes to (``--models`` unless ``--no-save``, ``--tensorboard-log``, ``--store``)."""
    check_cm_options({**options, "eval_freq": getattr(args, "eval_freq", None)})
    for flag in ("train_months", "val_months", "backtest_months"):
        check_number(getattr(args, flag), f"--{flag.replace('_', '-')}", low=0, low_open=True, optional=True)
    for flag in ("start", "end", "train_start", "val_start", "backtest_start"):
        check_date(getattr(args, flag, None), f"--{flag.replace('_', '-')}")
    check_dir(args.store, "--store")
    check_dir(args.tensorboard_log or None, "--tensorboard-log")
    if not args.no_save:
        check_dir(ModelStore(args.models).root, "--models")


def check_update_options(args: Any, store: Any, assets: list[str], at: Any) -> None:
    """``experiments.update``: source, folders, numbers, the model store's pointers and history, and
    time order: ``--at`` before what a family has already seen (its current version's data, an
    earlier retrain) is refused unless ``--force``."""
    from .updating import latest_time

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
    from .updating import latest_time

    store = ModelStore(models)
    seen = latest_time(store, asset, interval)
    if seen is not None and last_bar + interval_timedelta(interval) <= seen:
        raise UserError(
            f"the data end at {last_bar:%Y-%m-%d %H:%M}, before {seen:%Y-%m-%d %H:%M}, the latest time the {asset} "
            f"{interval} modules in {store.root} have seen; saving would promote a module trained on older data "
            "(give a later --end, another --models, or --no-save)"
        )


__all__ = [
    "check_cm_options",
    "check_hyperparams",
    "check_not_older",
    "check_train_options",
    "check_update_options",
]
